"""JAX truncated-SVD baseline: biases plus a randomized truncated SVD of the residuals.

The training matrix is centred by a global mean and regularised row and column biases (or not
at all: `center=False`, the paper's plain SVD of the zero-filled matrix); the residuals of
observed cells (missing cells are 0) are factorised by a randomized SVD (Halko, Martinsson &
Tropp 2011): on the dense matrix when a run keeps it on the device anyway (dense products are
faster), otherwise on a sparse BCOO matrix, so memory grows with the ratings, not rows x columns.
The products with the matrix are compiled JAX programs on its device; the biases (sparse
sweeps) and the factorisations of the thin sketch blocks run on the host, where they take
milliseconds, instead of compiled into the program: compiling them cost a fresh process more
than the fit itself (experiments/results/code_choices.md).

A row is predicted by projecting its input residuals on the top right singular vectors V:
prediction = baseline + (x V) V^T. For a training row this equals its rank-k SVD
reconstruction (A V = U S), and a row never seen in training (a held-out user, a new user's
history) is folded in the same way, its bias first estimated from its own ratings as
training's row sweep does (none for an uncentred model): the baseline is a linear autoencoder
with tied weights.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse as sp
from jax.experimental import sparse
from threadpoolctl import ThreadpoolController

from aerec.checks import (
    boolean_problem,
    count,
    non_negative_problem,
    one_of,
    positive_int,
    positive_int_problem,
)
from aerec.data.device_rows import DeviceRows
from aerec.devices import on_accelerator
from aerec.errors import ConfigError
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.models.scaling import SCALINGS, Scaling
from aerec.rankers import ColumnRanker, Ranker, RowRanker, item_codes

if TYPE_CHECKING:
    from aerec.train import FitResult

HIGHEST = jax.lax.Precision.HIGHEST
IDENTITY = Scaling(shift=0.0, scale=1.0)  # raw ratings


def fit_biases(train: sp.csr_matrix, reg: float, sweeps: int = 3
               ) -> tuple[float, np.ndarray, np.ndarray]:
    """Global mean and ridge-regularised row/column biases of a CSR matrix's stored values, by
    alternating closed-form sweeps; float64, on the host.

    Each sweep is two sparse matrix-vector products. In XLA the same sums are scatter-adds,
    whose compilation alone costs a fresh process more than the sweeps.
    """
    train = sp.csr_matrix(train, dtype=np.float64)
    values = train.data
    pattern = sp.csr_matrix((np.ones_like(values), train.indices, train.indptr),
                            shape=train.shape)  # the observed cells, as ones
    row_count = np.diff(train.indptr).astype(np.float64)
    col_count = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    row_sum = train @ np.ones(train.shape[1])
    col_sum = np.bincount(train.indices, weights=values, minlength=train.shape[1])
    mean = float(values.mean()) if values.size else 0.0
    # A row or column without ratings gets bias 0 (0 / tiny; with reg = 0 it would be 0 / 0).
    row_norm = np.maximum(row_count + reg, 1e-30)
    col_norm = np.maximum(col_count + reg, 1e-30)
    row_bias = np.zeros(train.shape[0])
    col_bias = np.zeros(train.shape[1])
    for _ in range(sweeps):
        col_bias = (col_sum - mean * col_count - pattern.T @ row_bias) / col_norm
        row_bias = (row_sum - mean * row_count - pattern @ col_bias) / row_norm
    return mean, row_bias, col_bias


def transposed_product_rows(matrix: jax.Array | sparse.BCOO, basis: jax.Array) -> jax.Array:
    """(matrix^T @ basis)^T = basis^T @ matrix, the (width, columns) layout the host then
    transposes for free (a view). A dense matrix is thus read row by row: on a CPU the product
    with the transposed large operand ran at half the speed."""
    return basis.T @ matrix


# The randomized SVD's products, one small program each (compiled once per shape).
_product = jax.jit(operator.matmul)  # the @ of a dense array or of a BCOO matrix
_transposed_product_rows = jax.jit(transposed_product_rows)


def orthonormal_basis(block: jax.Array | np.ndarray) -> np.ndarray:
    """An orthonormal basis of a thin block's columns (Q of its QR), by LAPACK on the host.

    The block has only rank + oversampling columns, so moving it is cheap even from an
    accelerator; on a CPU, XLA would call the same LAPACK routine, but only after compiling
    it into the program, in every fresh process.
    """
    return scipy.linalg.qr(np.asarray(block), mode="economic", check_finite=False)[0]


def gaussian_test_matrix(columns: int, width: int, seed: int) -> np.ndarray:
    """The randomized SVD's (columns, width) standard-normal test matrix, drawn on the host.

    NumPy's generator rather than jax.random: the sketch is small, and threefry's tracing,
    lowering and compilation took a large share of a first fit.
    """
    return np.random.default_rng(seed).standard_normal((columns, width), dtype=np.float32)


def sketch_width(rank: int, oversample: int, shape: tuple[int, int]) -> int:
    """Columns of the randomized SVD's sketch: rank plus oversampling, at most the matrix's."""
    return min(rank + oversample, *shape)


def randomized_svd(matrix: jax.Array | sparse.BCOO, rank: int, test_matrix: np.ndarray, *,
                   power_iterations: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-`rank` singular triplets (U, S, Vt) of a matrix by randomized range finding, from a
    (columns, rank + oversampling) random test matrix (`gaussian_test_matrix`).

    The products with the matrix run on its device, compiled; the thin blocks between them
    are factorised on the host (`orthonormal_basis`, then the small SVD).
    """
    basis = orthonormal_basis(_product(matrix, test_matrix))
    for _ in range(power_iterations):  # subspace iteration sharpens the spectrum's decay
        basis_right = orthonormal_basis(np.asarray(_transposed_product_rows(matrix, basis)).T)
        basis = orthonormal_basis(_product(matrix, basis_right))
    small = np.asarray(_transposed_product_rows(matrix, basis))
    u_small, singular, vt = scipy.linalg.svd(small, full_matrices=False, check_finite=False)
    return (basis @ u_small)[:, :rank], singular[:rank], vt[:rank]


def fit_svd(train: sp.csr_matrix, rank: int, *, bias_reg: float, seed: int,
            scaling: Scaling = IDENTITY, center: bool = True, power_iterations: int = 4,
            oversample: int = 10, dense: jax.Array | None = None) -> dict[str, Any]:
    """Fit the baseline on a CSR training matrix (raw ratings); its parameters as a pytree.

    `dense`: the same matrix, dense on the device (a resident run has it): the factorisation's
    products are then dense matmuls, about twice as fast on ML-1M as sparse ones.
    """
    train = sp.csr_matrix(train)
    if not train.has_canonical_format:  # sorted, distinct (row, column) cells (a copy: the
        train = train.copy()            # caller's matrix stays as it is)
        train.sum_duplicates()
    # Every stored cell is a rating (> 0), so encoding is the affine map itself.
    encoded = sp.csr_matrix(((train.data.astype(np.float64) - scaling.shift) / scaling.scale,
                             train.indices, train.indptr), shape=train.shape)
    if center:
        mean, row_bias, col_bias = fit_biases(encoded, bias_reg)
    else:
        mean, row_bias, col_bias = 0.0, np.zeros(train.shape[0]), np.zeros(train.shape[1])
    # The model keeps float32 biases; both residual paths subtract exactly those.
    mean, row_bias, col_bias = (np.float32(mean), row_bias.astype(np.float32),
                                col_bias.astype(np.float32))
    test_matrix = gaussian_test_matrix(train.shape[1],
                                       sketch_width(rank, oversample, train.shape), seed)
    # Full float32 products: on GPUs the default matmul precision is TF32, whose 10-bit
    # mantissa visibly perturbs the factorisation.
    with jax.default_matmul_precision("highest"), single_blas_thread():
        if dense is None:
            matrix = sparse_residuals(encoded, mean, row_bias, col_bias)
        else:  # the same residuals (to float32 rounding), with zeros where nothing was observed
            matrix = _dense_residuals(dense, mean, row_bias, col_bias, scaling=scaling)
        _, _, vt = randomized_svd(matrix, rank, test_matrix, power_iterations=power_iterations)
    # Training ratings per row: a row without any is folded in at prediction (predict_svd).
    row_count = np.diff(train.indptr).astype(np.float32)
    return jax.device_put({"mean": mean, "row_bias": row_bias, "col_bias": col_bias,
                           "basis": np.ascontiguousarray(vt.T), "row_count": row_count})


_BLAS_LIMIT = threading.Lock()


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """One BLAS thread while a fit runs on the CPU backend.

    The host's QR and SVD calls run in OpenBLAS, whose idle threads spin after each call and
    take the cores from XLA's next matmul: a power iteration took 41 ms with OpenBLAS's two
    threads and 26 ms with one (ML-1M, 2 cores, measured with the one-program fit; the whole
    fit then 330 -> 200 ms). The limit is the process's, so fits in several threads take turns
    (each limit restores the count it found: overlapping ones would leave one thread for good).
    On an accelerator the matmuls are not the CPU's, and the host's QRs of tall blocks keep
    every thread.
    """
    if on_accelerator():
        yield
        return
    with _BLAS_LIMIT, blas_threads().limit(limits=1, user_api="blas"):
        yield


@cache
def blas_threads() -> ThreadpoolController:
    """The process's BLAS thread pools (OpenBLAS: NumPy's and SciPy's), inspected once: the
    inspection takes milliseconds, a limit through it microseconds."""
    return ThreadpoolController()


def sparse_residuals(encoded: sp.csr_matrix, mean: np.float32, row_bias: np.ndarray,
                     col_bias: np.ndarray) -> sparse.BCOO:
    """The observed cells' residuals from the baseline, as a BCOO matrix on the device.

    `encoded` is in canonical CSR form, so the cells come sorted by (row, column) and
    distinct, which the BCOO is told (on a GPU its products then take cuSPARSE's path).
    """
    rows = np.repeat(np.arange(encoded.shape[0], dtype=np.int32), np.diff(encoded.indptr))
    residual = encoded.data - mean - row_bias[rows] - col_bias[encoded.indices]
    indices = np.stack([rows, encoded.indices.astype(np.int32)], axis=1)
    return sparse.BCOO(jax.device_put((residual.astype(np.float32), indices)),
                       shape=encoded.shape, indices_sorted=True, unique_indices=True)


@partial(jax.jit, static_argnames="scaling")
def _dense_residuals(dense: jax.Array, mean: jax.Array, row_bias: jax.Array,
                     col_bias: jax.Array, *, scaling: Scaling) -> jax.Array:
    """The residuals from the baseline of a dense rating matrix (stored float32 or bfloat16);
    0 where nothing was observed."""
    dense = dense.astype(jnp.float32)
    return jnp.where(dense > 0, scaling.encode(dense) - mean - row_bias[:, None]
                     - col_bias[None, :], 0.0)


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


def row_projections(params: dict[str, Any], inputs: DeviceRows, scaling: Scaling,
                    chunk_rows: int) -> jax.Array:
    """Every row's projection on the basis (`project`, with its fitted bias): (1, rows,
    rank), a single member's codes."""
    def codes_of(p: Any, ids: jax.Array, x: jax.Array) -> jax.Array:
        return project(p, p["row_bias"][ids], x, scaling)[None]

    return item_codes(jax.jit(codes_of), params, inputs, chunk_rows)


# The family on the model interface (`aerec.models.base`).

@dataclass(frozen=True)
class SVDConfig:
    """configs/model/svd.yaml, typed (its comments explain each key)."""

    name: str = "svd"
    rank: int = 20
    bias_reg: float = 5.0
    center: bool = True
    scaling: str = "none"
    power_iterations: int = 4
    oversample: int = 10
    orientation: str = "user"


class SVDFamily:
    """The truncated-SVD baseline: fitted in one call, rows folded in by projection."""

    name = "svd"
    config_type = SVDConfig
    iterative = False
    predicts_ratings = True
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {
        "rank": positive_int_problem, "center": boolean_problem,
        "bias_reg": non_negative_problem}

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        positive_int("model.rank", model["rank"])
        if model["bias_reg"] < 0:
            raise ConfigError(f"model.bias_reg={model['bias_reg']} must be >= 0")
        for key in ("power_iterations", "oversample"):
            count(f"model.{key}", model[key])
        one_of("model.scaling", model["scaling"], SCALINGS)

    def from_mapping(self, model: Mapping[str, Any]) -> SVDConfig:
        """The typed config of a checked `model` section."""
        return config_from_mapping(SVDConfig, model)

    def fit(self, config: SVDConfig, train: DeviceRows, scaling: Scaling, trainer: Trainer
            ) -> tuple[Predictor, FitResult]:
        """`fit_svd` in one call; a rank beyond the training matrix is refused."""
        most = min(train.shape)
        if config.rank > most:  # a factorisation has at most that many factors
            raise ConfigError(f"model.rank={config.rank} is more than the {train.shape[0]}"
                              f" x {train.shape[1]} training matrix allows: at most {most}")
        predict = self.predictor(config, train.shape[1], scaling)
        return predict, trainer.once(
            lambda: fit_svd(train.matrix, config.rank, bias_reg=config.bias_reg,
                            seed=trainer.seed, scaling=scaling, center=config.center,
                            power_iterations=config.power_iterations,
                            oversample=config.oversample, dense=train.dense),
            predict)

    def predictor(self, config: SVDConfig, n_inputs: int, scaling: Scaling) -> Predictor:
        """`predict_svd`, folding in rows without training ratings."""
        del n_inputs
        return svd_predictor(config, scaling)

    def ranker(self, config: SVDConfig, params: Any, inputs: DeviceRows, *, scaling: Scaling,
               chunk_rows: int, fold_in_prior: float) -> Ranker:
        """User rows: a row's reconstruction; item rows: every item's projection decoded by
        each user's column of the basis (`aerec.rankers`)."""
        if config.orientation == "user":
            return RowRanker(jax.jit(svd_predictor(config, scaling)),
                             jax.jit(partial(svd_history_row, scaling=scaling,
                                             bias_reg=fold_in_bias_reg(config))),
                             params, inputs)

        codes = row_projections(params, inputs, scaling, chunk_rows)
        offset = (params["mean"] + params["row_bias"])[None]
        return ColumnRanker(codes, params["basis"].T[None], params["col_bias"][None], offset,
                            "linear", scaling, fold_in_prior)

    def item_vectors(self, config: SVDConfig, params: Any, inputs: DeviceRows, *,
                     scaling: Scaling, chunk_rows: int) -> np.ndarray:
        """The item factors. User rows: the basis's rows, V (a user's reconstruction is
        residual V V^T, so V_i . V_j is the weight item i's residual gives item j); item
        rows: each item's projection, its residual row times the basis (U S of the items
        the fit saw), the code the ranker decodes with each user's column."""
        if config.orientation == "user":
            return np.asarray(params["basis"], np.float32)
        return np.asarray(row_projections(params, inputs, scaling, chunk_rows)[0], np.float32)

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """No rule across keys."""
        del model
        return None

    def param_shapes(self, config: SVDConfig, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """As `fit_svd` returns them; models saved before lack the row counts."""
        del n_items

        def f32(*shape: int) -> jax.ShapeDtypeStruct:
            return jax.ShapeDtypeStruct(shape, np.float32)

        return {"mean": f32(), "row_bias": f32(rows), "col_bias": f32(n_inputs),
                "basis": f32(n_inputs, config.rank), "row_count": f32(rows)}, {"row_count"}


SVD = SVDFamily()
