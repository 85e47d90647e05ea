"""JAX truncated-SVD baseline: biases plus a randomized truncated SVD of the residuals.

The training matrix is centred by a global mean and regularised row and column biases (or not
at all: `center=False`, the paper's plain SVD of the zero-filled matrix); the residuals of
observed cells (missing cells are 0) are factorised by a randomized SVD (Halko, Martinsson &
Tropp 2011): on the dense matrix when a run keeps it on the device anyway (dense products are
faster), otherwise on a sparse BCOO matrix, so memory grows with the ratings, not rows x columns.

A row is predicted by projecting its input residuals on the top right singular vectors V:
prediction = baseline + (x V) V^T. For a training row this equals its rank-k SVD
reconstruction (A V = U S), and a row never seen in training (a held-out user, a new user's
history) is folded in the same way, its bias first estimated from its own ratings as
training's row sweep does (none for an uncentred model): the baseline is a linear autoencoder
with tied weights.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse
from threadpoolctl import threadpool_limits

from aerec.models.scaling import Scaling

HIGHEST = jax.lax.Precision.HIGHEST
IDENTITY = Scaling(shift=0.0, scale=1.0)  # raw ratings


def fit_biases(rows: jax.Array, cols: jax.Array, ratings: jax.Array, shape: tuple[int, int],
               reg: float, sweeps: int = 3) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Global mean and ridge-regularised row/column biases by alternating closed-form sweeps."""
    mean = jnp.mean(ratings)
    row_bias = jnp.zeros(shape[0])
    col_bias = jnp.zeros(shape[1])
    # A row or column without ratings gets bias 0 (0 / tiny; with reg = 0 it would be 0 / 0).
    row_norm = jnp.maximum(jax.ops.segment_sum(jnp.ones_like(ratings), rows, shape[0]) + reg,
                           1e-30)
    col_norm = jnp.maximum(jax.ops.segment_sum(jnp.ones_like(ratings), cols, shape[1]) + reg,
                           1e-30)
    for _ in range(sweeps):
        col_bias = jax.ops.segment_sum(ratings - mean - row_bias[rows], cols, shape[1]) / col_norm
        row_bias = jax.ops.segment_sum(ratings - mean - col_bias[cols], rows, shape[0]) / row_norm
    return mean, row_bias, col_bias


def transposed_product(matrix: jax.Array | sparse.BCOO, basis: jax.Array) -> jax.Array:
    """matrix^T @ basis. A dense matrix is read row by row, as (basis^T @ matrix)^T: on a CPU
    the product with the transposed operand ran at half the speed (31-50 ms against 15-17 ms
    for ML-1M's 6040 x 3706 residuals and 30 columns). The barrier keeps XLA from folding the
    small transposes back into that slower product."""
    if isinstance(matrix, sparse.BCOO):  # transposing sparse indices is free
        return matrix.T @ basis
    return jax.lax.optimization_barrier(basis.T @ matrix).T


def gaussian_test_matrix(columns: int, width: int, seed: int) -> np.ndarray:
    """The randomized SVD's (columns, width) standard-normal test matrix, drawn on the host.

    NumPy's generator rather than jax.random: the sketch is small, and threefry's tracing,
    lowering and compilation were ~0.15 s of a first ML-1M fit that otherwise takes ~0.4 s.
    """
    return np.random.default_rng(seed).standard_normal((columns, width), dtype=np.float32)


def sketch_width(rank: int, oversample: int, shape: tuple[int, int]) -> int:
    """Columns of the randomized SVD's sketch: rank plus oversampling, at most the matrix's."""
    return min(rank + oversample, *shape)


def randomized_svd(matrix: jax.Array | sparse.BCOO, rank: int, test_matrix: jax.Array, *,
                   power_iterations: int = 4) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-`rank` singular triplets (U, S, Vt) of a matrix by randomized range finding, from a
    (columns, rank + oversampling) random test matrix (`gaussian_test_matrix`)."""
    basis, _ = jnp.linalg.qr(matrix @ test_matrix)
    for _ in range(power_iterations):  # subspace iteration sharpens the spectrum's decay
        basis_right, _ = jnp.linalg.qr(transposed_product(matrix, basis))
        basis, _ = jnp.linalg.qr(matrix @ basis_right)
    small = transposed_product(matrix, basis).T
    u_small, singular, vt = jnp.linalg.svd(small, full_matrices=False)
    return (basis @ u_small)[:, :rank], singular[:rank], vt[:rank]


def fit_svd(train: sp.csr_matrix, rank: int, *, bias_reg: float, seed: int,
            scaling: Scaling = IDENTITY, center: bool = True, power_iterations: int = 4,
            oversample: int = 10, dense: jax.Array | None = None) -> dict[str, Any]:
    """Fit the baseline on a CSR training matrix (raw ratings); its parameters as a pytree.

    `dense`: the same matrix, dense on the device (a resident run has it): the factorisation's
    products are then dense matmuls, about twice as fast on ML-1M as sparse ones.
    """
    coo = train.tocoo()
    test_matrix = gaussian_test_matrix(train.shape[1],
                                       sketch_width(rank, oversample, train.shape), seed)
    # Host arrays put on the device as they are: in a fresh process each eager conversion
    # would be one more small XLA compilation, which the persistent cache does not keep.
    rows, cols, ratings, test_matrix = jax.device_put(
        (coo.row.astype(np.int32), coo.col.astype(np.int32), coo.data.astype(np.float32),
         test_matrix))
    # Full float32 products: on GPUs the default matmul precision is TF32, whose 10-bit
    # mantissa visibly perturbs the factorisation. On a CPU the QR and SVD calls run in
    # OpenBLAS's LAPACK, whose idle threads spin and take the cores from XLA's matmuls in
    # between: with one BLAS thread the fit is ~1.6x faster (ML-1M, 2 cores: 330 -> 200 ms).
    # The limit holds until the fit has finished, hence the wait inside it; it is the
    # process's, so BLAS calls of other threads meanwhile get one thread too.
    with jax.default_matmul_precision("highest"), threadpool_limits(1, user_api="blas"):
        return jax.block_until_ready(
            _fit_svd(rows, cols, ratings, test_matrix, dense, shape=train.shape, rank=rank,
                     bias_reg=bias_reg, scaling=scaling, center=center,
                     power_iterations=power_iterations))


@partial(jax.jit, static_argnames=("shape", "rank", "scaling", "center", "power_iterations"))
def _fit_svd(rows: jax.Array, cols: jax.Array, ratings: jax.Array, test_matrix: jax.Array,
             dense: jax.Array | None, *,
             shape: tuple[int, int], rank: int, bias_reg: float, scaling: Scaling,
             center: bool, power_iterations: int) -> dict[str, Any]:
    """fit_svd as one compiled program: biases, residuals, randomized SVD."""
    values = scaling.encode(ratings)
    if center:
        mean, row_bias, col_bias = fit_biases(rows, cols, values, shape, bias_reg)
    else:
        mean, row_bias, col_bias = jnp.zeros(()), jnp.zeros(shape[0]), jnp.zeros(shape[1])
    if dense is None:
        residual = values - mean - row_bias[rows] - col_bias[cols]
        matrix = sparse.BCOO((residual, jnp.stack([rows, cols], axis=1)), shape=shape)
    else:  # the same residuals, element for element, with zeros where nothing was observed
        matrix = jnp.where(dense > 0, scaling.encode(dense) - mean - row_bias[:, None]
                           - col_bias[None, :], 0.0)
    _, _, vt = randomized_svd(matrix, rank, test_matrix, power_iterations=power_iterations)
    # Training ratings per row: a row without any is folded in at prediction (predict_svd).
    row_count = jax.ops.segment_sum(jnp.ones_like(values), rows, shape[0])
    return {"mean": mean, "row_bias": row_bias, "col_bias": col_bias, "basis": vt.T,
            "row_count": row_count}


def svd_predictor(model_cfg: Any, scaling: Scaling) -> Callable[..., jax.Array]:
    """predict_svd for a model configured by `model_cfg`: predict(params, row_ids, inputs)."""
    return partial(predict_svd, scaling=scaling, bias_reg=fold_in_bias_reg(model_cfg))


def fold_in_bias_reg(model_cfg: Any) -> float | None:
    """The ridge penalty for estimating the bias of a row that training never saw, or None for
    an uncentred model (`center=False`: no biases, a row is projected as it is)."""
    return float(model_cfg.bias_reg) if bool(model_cfg.center) else None


def estimated_row_bias(params: dict[str, Any], inputs: jax.Array, scaling: Scaling,
                       bias_reg: float) -> jax.Array:
    """Each row's bias from its own ratings, as training's row sweep computes it (ridge)."""
    observed = inputs > 0
    deviation = jnp.where(observed, scaling.encode(inputs) - params["mean"] - params["col_bias"],
                          0.0)
    return jnp.sum(deviation, axis=1) / jnp.maximum(jnp.sum(observed, axis=1) + bias_reg,
                                                    1e-30)  # an empty row: bias 0


def baseline_of(params: dict[str, Any], row_bias: jax.Array) -> jax.Array:
    """mean + row bias + column bias, on the model's scale: (rows, columns)."""
    return params["mean"] + row_bias[:, None] + params["col_bias"][None, :]


def project(params: dict[str, Any], row_bias: jax.Array, inputs: jax.Array,
            scaling: Scaling) -> jax.Array:
    """The rows' codes: their observed residuals (missing = 0) times the basis V."""
    residual = jnp.where(inputs > 0, scaling.encode(inputs) - baseline_of(params, row_bias),
                         0.0)
    return jnp.matmul(residual, params["basis"], precision=HIGHEST)


def reconstruct(params: dict[str, Any], row_bias: jax.Array, inputs: jax.Array,
                scaling: Scaling) -> jax.Array:
    """Raw-scale predictions: baseline + (residual V) V^T, the rows' biases given."""
    code = project(params, row_bias, inputs, scaling)
    return scaling.decode(baseline_of(params, row_bias)
                          + jnp.matmul(code, params["basis"].T, precision=HIGHEST))


def predict_svd(params: dict[str, Any], row_ids: jax.Array, inputs: jax.Array,
                scaling: Scaling = IDENTITY, bias_reg: float | None = None) -> jax.Array:
    """Raw-scale predictions for whole rows from their input ratings (0 = missing).

    A row that had no training ratings (a held-out user read from fold-in ratings) gets its
    bias estimated from `inputs` when `bias_reg` is given (`fold_in_bias_reg`), as a new
    user's history does in `svd_history_row`; otherwise its fitted bias, 0.
    """
    row_bias = params["row_bias"][row_ids]
    if bias_reg is not None and "row_count" in params:  # models saved before lack the counts
        untrained = params["row_count"][row_ids] == 0
        row_bias = jnp.where(untrained, estimated_row_bias(params, inputs, scaling, bias_reg),
                             row_bias)
    return reconstruct(params, row_bias, inputs, scaling)


def svd_history_row(params: dict[str, Any], inputs: jax.Array, *, scaling: Scaling = IDENTITY,
                    bias_reg: float | None) -> jax.Array:
    """Predictions for rows not seen in training (a new user's history): the row bias is
    estimated from the row's ratings as in training (ridge, `bias_reg`; none for an uncentred
    model, `bias_reg=None`), then the row is folded in."""
    row_bias = (jnp.zeros(inputs.shape[0]) if bias_reg is None
                else estimated_row_bias(params, inputs, scaling, bias_reg))
    return reconstruct(params, row_bias, inputs, scaling)
