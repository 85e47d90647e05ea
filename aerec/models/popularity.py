"""Popularity baseline: rank items by their number of training ratings ("most rated").

Its rating prediction is the item's damped mean rating, (sum + damping * global mean) /
(count + damping), so the same run reports RMSE beside the ranking figures. It is the floor
every personalised ranking must beat.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp


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
