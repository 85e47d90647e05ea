"""Accuracy on held-out ratings: RMSE/MAE on observed cells and the paper's all-cells RMSE.

Evaluation runs over fixed-size chunks of rows, each a jit-compiled pass, so memory stays
bounded at any scale; each row's sums come back to the host, which adds them exactly
(`math.fsum`), so the totals do not depend on how the rows were grouped into chunks. (The
autoencoder's held-out cells, predicted alone, are summed per row and block of cells.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aerec.data.device_rows import DeviceRows, padded_chunks, padded_size
from aerec.models.scaling import paper_scaling

# predict(params, row_ids, input_rows) -> raw-scale predictions for those rows. A predictor
# with `decoder`, `encode` and `decode_cells` (`AutoEncoderPredictor`) also predicts the
# held-out cells alone, which RMSE and MAE then use (`Evaluator.evaluate_cells`).
Predict = Callable[[Any, jax.Array, jax.Array], jax.Array]


@partial(jax.jit, static_argnames=("predict", "rating_min", "rating_max", "fallback"))
def chunk_sums(params: Any, row_ids: jax.Array, inputs: jax.Array, targets: jax.Array,
               row_valid: jax.Array, paper_rows: jax.Array, paper_cols: jax.Array,
               row_known: jax.Array, col_known: jax.Array, *, predict: Predict,
               rating_min: float, rating_max: float, fallback: float) -> dict[str, jax.Array]:
    """Error sums of each row of one chunk (`row_valid` is False on padding rows).

    Compiled once per predictor and shapes: evaluators share the program (one `jax.jit` per
    evaluator would trace and compile each anew). The cache keys on the predictor: equal
    predictors (`AutoEncoderPredictor`: the same model and scaling) share an entry, others
    (a `functools.partial`, which compares by identity) add one each. The autoencoder's
    validation and test figures come from `cell_block_sums`; this pass serves the paper
    metric and the other models.

    Observed cells (target > 0): squared and absolute error of the prediction clipped to the
    rating scale. Cells of rows or columns without training data get `fallback`. Paper cells
    (weight paper_rows x paper_cols): squared error on the paper's [0, 1] scale, missing
    targets counted as 0, predictions unclipped.
    """
    known = row_known[:, None] & col_known[None, :]
    predictions = jnp.where(known, predict(params, row_ids, inputs), fallback)
    clipped = jnp.clip(predictions, rating_min, rating_max)
    observed = (targets > 0) & row_valid[:, None]
    error = jnp.where(observed, clipped - targets, 0.0)
    scaling = paper_scaling(rating_min, rating_max)
    paper_weight = (paper_rows * row_valid)[:, None] * paper_cols[None, :]
    paper_error = scaling.encode(targets) - (predictions - scaling.shift) / scaling.scale
    # Per-row sums, added on the host: float32 chunk totals drifted in the 7th digit with the
    # chunk size. (A predictor built on matrix products may still round a row's predictions
    # differently in chunks of another size: that is XLA's, not the summation's.)
    return {
        "sse": jnp.sum(error**2, axis=1),
        "sae": jnp.sum(jnp.abs(error), axis=1),
        "count": jnp.sum(observed, axis=1),
        "paper_sse": jnp.sum(paper_weight * paper_error**2, axis=1),
        "paper_count": jnp.sum(paper_weight, axis=1),
    }


SUMS = ("sse", "sae", "count", "paper_sse", "paper_count")  # chunk_sums' figures


@partial(jax.jit, static_argnames=("predict",))
def cell_decoder(params: Any, *, predict: Any) -> Any:
    """`predict.decoder(params)`, compiled: what `cell_block_sums` reads columns from."""
    return predict.decoder(params)


@partial(jax.jit, static_argnames=("predict",))
def chunk_codes(params: Any, row_ids: jax.Array, inputs: jax.Array, *, predict: Any) -> Any:
    """`predict.encode` of one chunk's rows, compiled apart from the gathers that read it."""
    return predict.encode(params, row_ids, inputs)


@partial(jax.jit, static_argnames=("predict", "rating_min", "rating_max", "fallback"))
def cell_block_sums(decoder: Any, codes: Any, cell_rows: jax.Array, cell_cols: jax.Array,
                    cell_targets: jax.Array, row_known: jax.Array, col_known: jax.Array, *,
                    predict: Any, rating_min: float, rating_max: float, fallback: float
                    ) -> dict[str, jax.Array]:
    """Per chunk row, the error sums of one block of its observed cells (cell k: chunk row
    `cell_rows[k]`, column `cell_cols[k]`; padding cells have target 0 and count nothing).
    As `chunk_sums`: predictions clipped to the scale, `fallback` where the row or the column
    had no training data."""
    known = row_known[cell_rows] & col_known[cell_cols]
    predictions = jnp.where(known, predict.decode_cells(decoder, codes, cell_rows, cell_cols),
                            fallback)
    observed = cell_targets > 0
    error = jnp.where(observed, jnp.clip(predictions, rating_min, rating_max) - cell_targets,
                      0.0)
    rows = row_known.shape[0]
    return {"sse": jax.ops.segment_sum(error**2, cell_rows, rows),
            "sae": jax.ops.segment_sum(jnp.abs(error), cell_rows, rows),
            "count": jax.ops.segment_sum(observed.astype(jnp.int32), cell_rows, rows)}


# The most cells one compiled call predicts: it gathers a (cells x width) array of codes and
# one of output columns per member, so a chunk of popular rows (ML-20M's most rated items hold
# hundreds of thousands of held-out ratings) is taken in blocks instead of at once.
CELL_BLOCK = 1 << 15


def cell_blocks(targets: DeviceRows, ids: np.ndarray, capacity: int
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The observed cells of rows `ids` (-1: padding, at the end) in blocks of (chunk row,
    column, target), each padded with target-0 cells to `capacity`."""
    block = targets.matrix[ids[ids >= 0]]
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int32), np.diff(block.indptr))
    blocks = []
    for start in range(0, block.nnz, capacity):
        stop = min(start + capacity, block.nnz)
        cell_rows, cell_cols = np.zeros(capacity, np.int32), np.zeros(capacity, np.int32)
        values = np.zeros(capacity, np.float32)
        cell_rows[:stop - start] = rows[start:stop]
        cell_cols[:stop - start] = block.indices[start:stop]
        values[:stop - start] = block.data[start:stop]
        blocks.append((cell_rows, cell_cols, values))
    return blocks


class Evaluator:
    """Chunked, jit-compiled evaluation of one predictor against target matrices."""

    def __init__(self, predict: Predict, *, rating_min: float, rating_max: float,
                 fallback: float, row_known: np.ndarray, col_known: np.ndarray,
                 chunk_rows: int = 1024):
        self._sums = partial(chunk_sums, predict=predict, rating_min=float(rating_min),
                             rating_max=float(rating_max), fallback=float(fallback))
        self._predict = predict
        self._cell_sums = None if getattr(predict, "decode_cells", None) is None else partial(
            cell_block_sums, predict=predict, rating_min=float(rating_min),
            rating_max=float(rating_max), fallback=float(fallback))
        self._cells: tuple[DeviceRows, list[tuple[np.ndarray, Any, Any]]] | None = None
        self.row_known = row_known
        self.col_known = jax.device_put(np.asarray(col_known))
        self.chunk_rows = chunk_rows

    def evaluate(self, params: Any, inputs: DeviceRows, targets: DeviceRows, *,
                 paper_rows: np.ndarray | None = None, paper_cols: np.ndarray | None = None
                 ) -> dict[str, float]:
        """rmse, mae, count over observed targets; paper_rmse over paper_rows x paper_cols.

        Without paper weights the paper metric is skipped (NaN), and a predictor that can
        predict cells is evaluated at the observed target cells alone (`evaluate_cells`).
        """
        n_rows, n_cols = targets.shape
        with_paper = paper_rows is not None and paper_cols is not None
        if not with_paper and self._cell_sums is not None:
            return self.evaluate_cells(params, inputs, targets)
        paper_rows = (np.asarray(paper_rows, np.float32) if with_paper
                      else np.zeros(n_rows, np.float32))
        paper_cols = jax.device_put(np.asarray(paper_cols, np.float32) if with_paper
                                    else np.zeros(n_cols, np.float32))
        # Only rows that hold a target or a paper cell need a forward pass.
        rows = np.flatnonzero(targets.nonempty_rows() | (paper_rows > 0))

        def chunk_results() -> Iterator[dict[str, jax.Array]]:
            for _, ids, _ in padded_chunks(rows, self.chunk_rows):
                safe = np.maximum(ids, 0)
                # Padding rows are invalid and gathered as zeros, so they add nothing.
                # Host arrays go to the device with device_put: jnp.asarray would compile a
                # small program for each new shape.
                row_ids, row_valid, chunk_paper_rows, row_known = jax.device_put(
                    (safe, ids >= 0, paper_rows[safe], self.row_known[safe]))
                yield self._sums(params, row_ids, inputs.gather(ids), targets.gather(ids),
                                 row_valid, chunk_paper_rows, paper_cols, row_known,
                                 self.col_known)

        return summarise(exact_totals(chunk_results(), SUMS))

    def evaluate_cells(self, params: Any, inputs: DeviceRows, targets: DeviceRows
                       ) -> dict[str, float]:
        """rmse, mae, count over the observed targets, predicted at those cells alone; the
        chunks' cells are prepared once per `targets` (validation: every epoch the same)."""
        if self._cells is None or self._cells[0] is not targets:
            rows = np.flatnonzero(targets.nonempty_rows())
            chunks = [ids for _, ids, _ in padded_chunks(rows, self.chunk_rows)]
            # One capacity for every block: one compiled program.
            most = max((int(targets.row_counts(ids).sum()) for ids in chunks), default=0)
            capacity = min(CELL_BLOCK, padded_size(most, 1024))
            self._cells = (targets, [
                (ids, jax.device_put((np.maximum(ids, 0), self.row_known[np.maximum(ids, 0)])),
                 jax.device_put(cell_blocks(targets, ids, capacity))) for ids in chunks])
        decoder = cell_decoder(params, predict=self._predict)

        def block_results() -> Iterator[dict[str, jax.Array]]:
            for ids, (row_ids, row_known), blocks in self._cells[1]:
                codes = chunk_codes(params, row_ids, inputs.gather(ids), predict=self._predict)
                for cell_rows, cell_cols, cell_targets in blocks:
                    yield self._cell_sums(decoder, codes, cell_rows, cell_cols, cell_targets,
                                          row_known, self.col_known)

        return summarise({"paper_sse": 0.0, "paper_count": 0.0,
                          **exact_totals(block_results(), ("sse", "sae", "count"))})


def exact_totals(results: Iterable[dict[str, jax.Array]], keys: Sequence[str]
                 ) -> dict[str, float]:
    """Per key, the exact total (`math.fsum`) of the per-row sums of every result, each
    fetched from the device in one transfer: one sum over all rows, independent of how they
    were grouped into chunks or blocks and of their order."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for result in results:
        for key, value in jax.device_get(result).items():
            parts[key].append(value)
    return {key: math.fsum(np.concatenate(values or [np.zeros(0)]).tolist())
            for key, values in parts.items()}


def summarise(totals: dict[str, float]) -> dict[str, float]:
    """RMSE, MAE and paper RMSE from accumulated sums (NaN where nothing was counted)."""
    count, paper_count = totals["count"], totals["paper_count"]
    return {
        "rmse": math.sqrt(totals["sse"] / count) if count else math.nan,
        "mae": totals["sae"] / count if count else math.nan,
        "count": int(count),
        "paper_rmse": math.sqrt(totals["paper_sse"] / paper_count) if paper_count else math.nan,
    }
