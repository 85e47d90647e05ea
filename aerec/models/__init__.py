"""Models: the Flax autoencoder, the JAX truncated-SVD baseline, rating scaling."""
