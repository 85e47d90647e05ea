"""Rating normalisation: the affine map between ratings and the network's values."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

SCALINGS = ("minmax", "center", "none")


@dataclass(frozen=True)
class Scaling:
    """value = (rating - shift) / scale for observed cells; missing cells (rating 0) stay 0."""

    shift: float
    scale: float

    def encode(self, ratings: jax.Array) -> jax.Array:
        """Network input/target from raw ratings (0 = missing stays 0)."""
        if self.shift == 0.0 and self.scale == 1.0:
            # Ratings are positive and missing cells 0, so the map is the identity: returning
            # the input saves the training step a pass over the batch.
            return ratings
        return jnp.where(ratings > 0, (ratings - self.shift) / self.scale, 0.0)

    def decode(self, values: jax.Array) -> jax.Array:
        """Raw-scale predictions from network outputs."""
        return values * self.scale + self.shift


def paper_scaling(rating_min: float, rating_max: float) -> Scaling:
    """The paper's [0, 1] scaling, ((r - 1) + 0.5) / 4.5 on a 1-5 scale.

    The lowest rating maps above 0, so a missing cell (0) stays distinct from any rating.
    """
    return Scaling(shift=rating_min - 0.5, scale=rating_max - rating_min + 0.5)


def make_scaling(kind: str, rating_min: float, rating_max: float, train_mean: float) -> Scaling:
    """`minmax` (the paper's [0, 1]), `center` (minus the training mean) or `none`."""
    if kind == "minmax":
        return paper_scaling(rating_min, rating_max)
    if kind == "center":
        return Scaling(shift=train_mean, scale=1.0)
    if kind == "none":
        return Scaling(shift=0.0, scale=1.0)
    raise ValueError(f"model.scaling={kind!r}; valid: {', '.join(SCALINGS)}")
