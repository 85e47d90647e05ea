"""aerec: an autoencoder recommender in JAX/Flax (Ferreira et al. 2020, and beyond)."""

__version__ = "0.1.0"
