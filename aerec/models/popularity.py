"""Popularity baseline: rank items by their number of training ratings ("most rated").

Its rating prediction is the item's damped mean rating, (sum + damping * global mean) /
(count + damping), so the same run reports RMSE beside the ranking figures. It is the floor
every personalised ranking must beat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.device_rows import DeviceRows
from aerec.errors import ConfigError
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.models.scaling import Scaling
from aerec.rankers import PopularityRanker, Ranker

if TYPE_CHECKING:
    from aerec.train import FitResult


def fit_popularity(train: sp.csr_matrix, orientation: str, damping: float) -> dict[str, Any]:
    """Per-item rating counts and damped mean ratings from the training matrix."""
    by_item = train if orientation == "item" else train.T.tocsr()
    counts = np.diff(by_item.indptr).astype(np.float32)
    sums = np.asarray(by_item.sum(axis=1), np.float64).ravel()
    global_mean = sums.sum() / max(counts.sum(), 1.0)
    # An item without ratings gets the global mean (also with damping 0, where it is 0 / 0).
    weight = counts + damping
    means = np.where(weight > 0, (sums + damping * global_mean) / np.maximum(weight, 1e-30),
                     global_mean)
    return {"count": jnp.asarray(counts), "mean": jnp.asarray(means, jnp.float32)}


def predict_popularity(params: dict[str, Any], row_ids: jax.Array, inputs: jax.Array, *,
                       orientation: str) -> jax.Array:
    """Damped item means for whole rows (rows are items or users, as `orientation` says)."""
    if orientation == "item":
        return jnp.broadcast_to(params["mean"][row_ids][:, None], inputs.shape)
    return jnp.broadcast_to(params["mean"][None, :], inputs.shape)


# The family on the model interface (`aerec.models.base`).

@dataclass(frozen=True)
class PopularityConfig:
    """configs/model/popularity.yaml, typed (its comments explain each key)."""

    name: str = "popularity"
    damping: float = 5.0
    scaling: str = "none"
    orientation: str = "user"


class PopularityFamily:
    """The popularity baseline: counted in one call; the same ranking for every user."""

    name = "popularity"
    config_type = PopularityConfig
    iterative = False
    predicts_ratings = True
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {}

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        damping = model["damping"]
        if not isinstance(damping, int | float) or damping < 0:
            raise ConfigError(f"model.damping={damping!r} must be a number >= 0")

    def from_mapping(self, model: Mapping[str, Any]) -> PopularityConfig:
        """The typed config of a checked `model` section."""
        return config_from_mapping(PopularityConfig, model)

    def fit(self, config: PopularityConfig, train: DeviceRows, scaling: Scaling,
            trainer: Trainer) -> tuple[Predictor, FitResult]:
        """Count each item's training ratings (`fit_popularity`)."""
        predict = self.predictor(config, train.shape[1], scaling)
        return predict, trainer.once(
            lambda: fit_popularity(train.matrix, config.orientation, float(config.damping)),
            predict)

    def predictor(self, config: PopularityConfig, n_inputs: int, scaling: Scaling
                  ) -> Predictor:
        """The items' damped mean ratings (`predict_popularity`)."""
        del n_inputs, scaling  # counts and means are on the raw scale
        return partial(predict_popularity, orientation=config.orientation)

    def ranker(self, config: PopularityConfig, params: Any, inputs: DeviceRows, *,
               scaling: Scaling, chunk_rows: int, fold_in_prior: float) -> Ranker:
        """Most rated first, for every user."""
        del config, inputs, scaling, chunk_rows, fold_in_prior
        return PopularityRanker(params["count"], params["mean"])

    def item_vectors(self, config: PopularityConfig, params: Any, inputs: DeviceRows, *,
                     scaling: Scaling, chunk_rows: int) -> None:
        """None: an item is a count and a mean, not a representation to compare."""
        del config, params, inputs, scaling, chunk_rows

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """No rule across keys."""
        del model
        return None

    def param_shapes(self, config: PopularityConfig, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """As `fit_popularity` returns them."""
        del config, n_inputs, rows

        def f32(*shape: int) -> jax.ShapeDtypeStruct:
            return jax.ShapeDtypeStruct(shape, np.float32)

        return {"count": f32(n_items), "mean": f32(n_items)}, set()


POPULARITY = PopularityFamily()
