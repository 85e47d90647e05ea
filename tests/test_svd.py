"""The JAX truncated-SVD baseline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse

from aerec.models.svd import fit_biases, fit_svd, predict_svd, randomized_svd


def test_randomized_svd_matches_numpy_on_a_low_rank_matrix() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.normal(size=(60, 4)) * [10, 5, 2, 1]) @ rng.normal(size=(4, 30))
    matrix = sparse.BCOO.fromdense(jnp.asarray(dense, jnp.float32))
    u, s, vt = randomized_svd(matrix, 4, jax.random.key(0))
    np.testing.assert_allclose(s, np.linalg.svd(dense, compute_uv=False)[:4], rtol=1e-3)
    np.testing.assert_allclose((u * s) @ vt, dense, atol=1e-3 * np.abs(dense).max())


def test_biases_without_regularisation_fit_an_additive_matrix() -> None:
    rows, cols = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    ratings = 3.0 + 0.5 * rows.ravel() - 0.25 * cols.ravel()
    mean, row_bias, col_bias = fit_biases(jnp.asarray(rows.ravel()), jnp.asarray(cols.ravel()),
                                          jnp.asarray(ratings, jnp.float32), (5, 4), reg=0.0,
                                          sweeps=20)
    fitted = mean + row_bias[rows.ravel()] + col_bias[cols.ravel()]
    np.testing.assert_allclose(fitted, ratings, atol=1e-4)


def test_fit_and_predict_recover_a_fully_observed_low_rank_matrix() -> None:
    rng = np.random.default_rng(1)
    dense = 3 + rng.normal(size=(30, 2)) @ rng.normal(size=(2, 20)) * 0.5
    params = fit_svd(sp.csr_matrix(dense.astype(np.float32)), rank=3, bias_reg=0.0, seed=0)
    predictions = predict_svd(params, jnp.arange(30), jnp.zeros((30, 20)))
    np.testing.assert_allclose(predictions, dense, atol=1e-3)
