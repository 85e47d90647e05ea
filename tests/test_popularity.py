"""The popularity baseline: counts and damped means, in either orientation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from aerec.models.popularity import fit_popularity, predict_popularity

# users x items; item 2 has no rating
RATINGS = np.array([[5.0, 1.0, 0.0],
                    [3.0, 0.0, 0.0]], np.float32)


@pytest.mark.parametrize("orientation", ["user", "item"])
@pytest.mark.parametrize("damping", [0.0, 2.0])
def test_counts_and_damped_means_by_hand(orientation: str, damping: float) -> None:
    train = sp.csr_matrix(RATINGS if orientation == "user" else RATINGS.T)
    params = fit_popularity(train, orientation, damping)
    mean = 9.0 / 3  # the global mean of the three ratings
    expected = [(8.0 + damping * mean) / (2 + damping), (1.0 + damping * mean) / (1 + damping),
                mean]
    np.testing.assert_allclose(params["count"], [2, 1, 0])
    np.testing.assert_allclose(params["mean"], expected, rtol=1e-6)
    rows = jnp.arange(train.shape[0])
    predictions = predict_popularity(params, rows, jnp.asarray(train.toarray()),
                                     orientation=orientation)
    by_user = predictions if orientation == "user" else predictions.T
    np.testing.assert_allclose(by_user, np.broadcast_to(expected, (2, 3)), rtol=1e-6)
