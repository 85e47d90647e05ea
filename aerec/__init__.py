"""aerec: an autoencoder recommender in JAX/Flax (Ferreira et al. 2020, and beyond)."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real import is deferred: importing JAX makes `run.py --help` slow
    from aerec.api import Recommender
    from aerec.saved_model import TrainedModel

__version__ = "0.1.0"


def load(path: str | PathLike[str]) -> TrainedModel:
    """Load a trained model directory (a run's `model/`); see aerec.saved_model.load."""
    from aerec.saved_model import load as load_artifact  # imports JAX only when needed

    return load_artifact(path)


def __getattr__(name: str) -> type[Recommender]:
    """`aerec.Recommender` (aerec.api), imported when first used."""
    if name == "Recommender":
        from aerec.api import Recommender

        return Recommender
    raise AttributeError(f"module 'aerec' has no attribute {name!r}")
