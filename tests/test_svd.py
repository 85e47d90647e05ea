"""The JAX truncated-SVD baseline."""

from __future__ import annotations

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse
from threadpoolctl import ThreadpoolController

from aerec.cli import run_task
from aerec.config import ConfigError
from aerec.models.scaling import Scaling
from aerec.models.svd import (
    _product,
    _transposed_product_rows,
    fit_biases,
    fit_svd,
    gaussian_test_matrix,
    orthonormal_basis,
    predict_svd,
    randomized_svd,
    single_blas_thread,
    sketch_width,
    svd_history_row,
    transposed_product_rows,
)
from tests.conftest import FAST_DATA


@pytest.mark.parametrize("form", ["dense", "sparse"])
@pytest.mark.parametrize("oversample", [0, 10])
def test_randomized_svd_matches_numpy_on_a_low_rank_matrix(form: str, oversample: int) -> None:
    rng = np.random.default_rng(0)
    dense = (rng.normal(size=(60, 4)) * [10, 5, 2, 1]) @ rng.normal(size=(4, 30))
    matrix = jnp.asarray(dense, jnp.float32)
    if form == "sparse":
        matrix = sparse.BCOO.fromdense(matrix)
    test_matrix = gaussian_test_matrix(30, sketch_width(4, oversample, dense.shape), seed=0)
    u, s, vt = randomized_svd(matrix, 4, test_matrix)
    np.testing.assert_allclose(s, np.linalg.svd(dense, compute_uv=False)[:4], rtol=1e-3)
    np.testing.assert_allclose((u * s) @ vt, dense, atol=1e-3 * np.abs(dense).max())


def test_biases_without_regularisation_fit_an_additive_matrix() -> None:
    rows, cols = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    ratings = 3.0 + 0.5 * rows.ravel() - 0.25 * cols.ravel()
    train = sp.csr_matrix((ratings, (rows.ravel(), cols.ravel())), shape=(5, 4))
    mean, row_bias, col_bias = fit_biases(train, reg=0.0, sweeps=20)
    fitted = mean + row_bias[rows.ravel()] + col_bias[cols.ravel()]
    np.testing.assert_allclose(fitted, ratings, atol=1e-4)


def test_regularised_biases_follow_the_alternating_sweeps() -> None:
    # The sweeps written out on a dense masked matrix: column biases given the row biases,
    # then row biases given the column biases, each a ridge-shrunk mean of the deviations.
    rng = np.random.default_rng(7)
    observed = rng.random((9, 6)) < 0.5
    ratings = np.where(observed, rng.integers(1, 6, size=(9, 6)), 0).astype(np.float64)
    mean, row_bias, col_bias = fit_biases(sp.csr_matrix(ratings), reg=2.0, sweeps=3)
    expected_mean = ratings[observed].mean()
    expected_rows, expected_cols = np.zeros(9), np.zeros(6)
    for _ in range(3):
        expected_cols = (np.where(observed, ratings - expected_mean - expected_rows[:, None], 0)
                         .sum(0) / (observed.sum(0) + 2.0))
        expected_rows = (np.where(observed, ratings - expected_mean - expected_cols[None, :], 0)
                         .sum(1) / (observed.sum(1) + 2.0))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(row_bias, expected_rows, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(col_bias, expected_cols, rtol=1e-12, atol=1e-15)


def test_rows_and_columns_without_ratings_get_zero_bias_also_unregularised() -> None:
    # 3 x 3 with row 1 and column 2 empty: with reg = 0 their biases would be 0 / 0.
    train = sp.csr_matrix(([4.0, 2.0, 3.0], ([0, 0, 2], [0, 1, 1])), shape=(3, 3))
    _, row_bias, col_bias = fit_biases(train, reg=0.0)
    assert np.isfinite(row_bias).all() and np.isfinite(col_bias).all()
    assert row_bias[1] == 0.0 and col_bias[2] == 0.0
    params = {"mean": jnp.float32(3.0), "row_bias": row_bias, "col_bias": col_bias,
              "basis": jnp.eye(3, 1)}
    empty_history = svd_history_row(params, jnp.zeros((1, 3)), bias_reg=0.0)
    np.testing.assert_allclose(empty_history, [3.0 + col_bias], rtol=1e-6)  # the mean user


def low_rank(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (3 + rng.normal(size=(30, 2)) @ rng.normal(size=(2, 20)) * 0.5).astype(np.float32)


def test_fit_and_predict_recover_a_fully_observed_low_rank_matrix() -> None:
    dense = low_rank()
    params = fit_svd(sp.csr_matrix(dense), rank=3, bias_reg=0.0, seed=0)
    predictions = predict_svd(params, jnp.arange(30), jnp.asarray(dense))
    np.testing.assert_allclose(predictions, dense, atol=1e-3)


def test_the_seed_fixes_the_random_sketch() -> None:
    # A flat spectrum and no power iteration: the basis found depends on the test matrix.
    dense = (np.abs(np.random.default_rng(5).normal(size=(40, 25))) + 1).astype(np.float32)

    def basis(seed: int) -> np.ndarray:
        return np.asarray(fit_svd(sp.csr_matrix(dense), rank=3, bias_reg=0.0, seed=seed,
                                  power_iterations=0)["basis"])

    np.testing.assert_array_equal(basis(0), basis(0))
    assert not np.allclose(np.abs(basis(0)), np.abs(basis(1)), atol=1e-2)


def test_projection_equals_the_truncated_reconstruction() -> None:
    # Without centring, (x V) V^T on the training rows is the rank-k SVD of the matrix itself.
    dense = low_rank() * (np.random.default_rng(2).random((30, 20)) < 0.5)
    params = fit_svd(sp.csr_matrix(dense), rank=4, bias_reg=0.0, seed=0, center=False)
    u, s, vt = np.linalg.svd(dense.astype(np.float64), full_matrices=False)
    expected = (u[:, :4] * s[:4]) @ vt[:4]
    predictions = predict_svd(params, jnp.arange(30), jnp.asarray(dense))
    np.testing.assert_allclose(predictions, expected, atol=2e-3)


def test_a_new_row_is_folded_in() -> None:
    dense = low_rank()
    params = fit_svd(sp.csr_matrix(dense[:25]), rank=3, bias_reg=0.0, seed=0)
    # rows 25..29 were never seen: their biases are 0, their factors come from the input
    predictions = predict_svd(params, jnp.arange(25, 30), jnp.asarray(dense[25:]))
    assert np.abs(np.asarray(predictions) - dense[25:]).mean() < 0.2


def test_a_history_is_folded_in_as_the_trained_rows_are() -> None:
    # The same row given as a new user's history or read as a training row: the same
    # predictions. Uncentred (the paper's plain SVD) no bias is estimated for a history.
    dense = low_rank() * (np.random.default_rng(5).random((30, 20)) < 0.6)
    params = fit_svd(sp.csr_matrix(dense), rank=3, bias_reg=2.0, seed=0, center=False)
    rows = jnp.asarray(dense[:4])
    np.testing.assert_allclose(svd_history_row(params, rows, bias_reg=None),
                               predict_svd(params, jnp.arange(4), rows), atol=1e-5)


def test_a_held_out_row_gets_its_bias_from_its_inputs() -> None:
    # Rows 25..29 have no training ratings (a held-out user read from fold-in ratings): with
    # `bias_reg` their bias is estimated from the input, as for a new user's history.
    dense = np.clip(np.round(low_rank(6)), 1, 5).astype(np.float32)
    train = dense.copy()
    train[25:] = 0.0
    params = fit_svd(sp.csr_matrix(train), rank=3, bias_reg=2.0, seed=0)
    assert (np.asarray(params["row_count"]) == 0).tolist() == [False] * 25 + [True] * 5
    held_out = jnp.asarray(dense[25:])
    folded = predict_svd(params, jnp.arange(25, 30), held_out, bias_reg=2.0)
    np.testing.assert_allclose(folded, svd_history_row(params, held_out, bias_reg=2.0),
                               rtol=1e-6)
    assert not np.allclose(folded, predict_svd(params, jnp.arange(25, 30), held_out))
    # trained rows keep their fitted biases
    np.testing.assert_array_equal(
        predict_svd(params, jnp.arange(5), jnp.asarray(train[:5]), bias_reg=2.0),
        predict_svd(params, jnp.arange(5), jnp.asarray(train[:5])))


def test_paper_scaling_round_trips() -> None:
    dense = low_rank()
    scaling = Scaling(0.5, 4.5)
    params = fit_svd(sp.csr_matrix(dense), rank=3, bias_reg=0.0, seed=0, scaling=scaling)
    predictions = predict_svd(params, jnp.arange(30), jnp.asarray(dense), scaling)
    np.testing.assert_allclose(predictions, dense, atol=2e-3)


def test_dense_and_sparse_products_fit_the_same_model() -> None:
    rng = np.random.default_rng(3)
    ratings = np.clip(np.round(low_rank(3)), 1, 5)
    observed = np.where(rng.random(ratings.shape) < 0.4, ratings, 0.0).astype(np.float32)
    for scaling, center in ((Scaling(0.0, 1.0), True), (Scaling(0.5, 4.5), False)):
        common = dict(rank=3, bias_reg=2.0, seed=0, scaling=scaling, center=center)
        sparse_fit = fit_svd(sp.csr_matrix(observed), **common)
        dense_fit = fit_svd(sp.csr_matrix(observed), dense=jnp.asarray(observed), **common)
        # A resident matrix stored in bfloat16 (exact ratings) gives the same fit, bit for bit.
        stored_bf16 = fit_svd(sp.csr_matrix(observed),
                              dense=jnp.asarray(observed, jnp.bfloat16), **common)
        for a, b in zip(jax.tree.leaves(dense_fit), jax.tree.leaves(stored_bf16), strict=True):
            np.testing.assert_array_equal(a, b)
        rows = jnp.arange(observed.shape[0])
        np.testing.assert_allclose(
            predict_svd(dense_fit, rows, jnp.asarray(observed), scaling),
            predict_svd(sparse_fit, rows, jnp.asarray(observed), scaling),
            atol=5e-4)  # float32 sums in different orders, through four power iterations


@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_a_fit_compiles_one_program_per_product_form(form: str) -> None:
    # Host factorisations between compiled products: the sketch and every power iteration
    # share one program per product form (for each shape and matrix form).
    ratings = np.clip(np.round(low_rank(8)), 1, 5)[:23, :19]  # a shape no other test fits
    ratings[::3, ::2] = 0.0
    dense = jnp.asarray(ratings) if form == "dense" else None
    before = _product._cache_size(), _transposed_product_rows._cache_size()
    for _ in range(2):
        fit_svd(sp.csr_matrix(ratings), rank=3, bias_reg=2.0, seed=0, dense=dense)
    assert (_product._cache_size(), _transposed_product_rows._cache_size()) == (
        before[0] + 1, before[1] + 1)


def test_the_factorisations_stay_in_float32() -> None:
    # With x64 off JAX would quietly cast float64 blocks back for the products; the host's
    # factorisations must not compute in float64 to begin with (twice the time and memory).
    block = np.random.default_rng(9).normal(size=(40, 6)).astype(np.float32)
    assert orthonormal_basis(jnp.asarray(block)).dtype == np.float32
    matrix = jnp.asarray(low_rank(9))
    u, s, vt = randomized_svd(matrix, 3, gaussian_test_matrix(20, 8, seed=0))
    assert (u.dtype, s.dtype, vt.dtype) == (np.float32,) * 3
    params = fit_svd(sp.csr_matrix(low_rank(9)), rank=3, bias_reg=1.0, seed=0)
    assert {str(leaf.dtype) for leaf in jax.tree.leaves(params)} == {"float32"}


def test_cells_in_any_order_fit_the_same_model() -> None:
    # A CSR matrix whose rows list their columns unsorted is put in canonical order (the
    # sparse residuals declare their cells sorted), without changing the caller's matrix.
    ratings = np.clip(np.round(low_rank(10)), 1, 5) * (np.random.default_rng(10).random(
        (30, 20)) < 0.5)
    canonical = sp.csr_matrix(ratings.astype(np.float32))
    order = np.concatenate([np.arange(start, stop)[::-1] for start, stop in
                            zip(canonical.indptr[:-1], canonical.indptr[1:], strict=True)])
    shuffled = sp.csr_matrix((canonical.data[order], canonical.indices[order],
                              canonical.indptr), shape=canonical.shape)
    assert not shuffled.has_sorted_indices
    kept = shuffled.indices.copy()
    fits = [fit_svd(matrix, rank=3, bias_reg=2.0, seed=0) for matrix in (canonical, shuffled)]
    for key in fits[0]:
        np.testing.assert_allclose(fits[1][key], fits[0][key], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(shuffled.indices, kept)


def blas_thread_counts() -> list[int]:
    return [pool["num_threads"] for pool in ThreadpoolController().info()
            if pool["user_api"] == "blas"]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the limit is the CPU backend's")
def test_fits_in_two_threads_take_turns_with_the_blas_limit() -> None:
    # Each limit restores the thread count it found on entering: had the second entered while
    # the first held one thread, it would restore one thread for good after the first left.
    before = blas_thread_counts()
    if max(before, default=1) == 1:
        pytest.skip("BLAS runs one thread here anyway")
    first_in, release_first, first_out = (threading.Event() for _ in range(3))

    def first() -> None:
        with single_blas_thread():
            first_in.set()
            release_first.wait(10)
        first_out.set()

    def second() -> None:
        with single_blas_thread():
            first_out.wait(1)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    time.sleep(0.2)  # long enough for the second to enter, were it not made to wait
    release_first.set()
    for thread in threads:
        thread.join(10)
    assert blas_thread_counts() == before


def test_transposed_product_rows_of_dense_and_sparse_matrices() -> None:
    rng = np.random.default_rng(4)
    dense = rng.normal(size=(7, 5)).astype(np.float32)
    basis = rng.normal(size=(7, 3)).astype(np.float32)
    for matrix in (jnp.asarray(dense), sparse.BCOO.fromdense(jnp.asarray(dense))):
        product = jax.jit(transposed_product_rows)(matrix, jnp.asarray(basis))
        np.testing.assert_allclose(product, basis.T @ dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("override", "message"), [
    ("model.power_iterations=-1", r"model\.power_iterations=-1 must be an integer >= 0"),
    ("model.oversample=2.5", r"model\.oversample=2\.5 must be an integer >= 0"),
])
def test_randomized_svd_options_are_validated(compose_config, tmp_path, override: str,
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_task(compose_config(*FAST_DATA, "model=svd", override, fast=False), tmp_path)
