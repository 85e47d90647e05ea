"""RMSE/MAE on observed cells and the paper's all-cells RMSE, against hand computation."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from aerec.data.matrix import DeviceRows
from aerec.metrics import Evaluator

# users x items; 0 = missing
TARGETS = np.array([[5.0, 0.0, 1.0], [0.0, 3.0, 0.0]], np.float32)


def constant(value: float):
    return lambda params, row_ids, inputs: jnp.full(inputs.shape, value)


def evaluate(predict, targets: np.ndarray, *, row_known=None, col_known=None, chunk_rows=4,
             **paper) -> dict[str, float]:
    rows = DeviceRows(sp.csr_matrix(targets), resident=False)
    n_rows, n_cols = targets.shape
    evaluator = Evaluator(
        predict, rating_min=1.0, rating_max=5.0, fallback=2.0,
        row_known=np.ones(n_rows, bool) if row_known is None else row_known,
        col_known=np.ones(n_cols, bool) if col_known is None else col_known,
        chunk_rows=chunk_rows)
    return evaluator.evaluate(None, rows, rows, **paper)


def test_observed_rmse_and_mae_by_hand() -> None:
    result = evaluate(constant(3.25), TARGETS)
    # errors 1.75, 2.25, 0.25 on the three observed cells
    assert result["count"] == 3
    assert result["rmse"] == pytest.approx(math.sqrt((1.75**2 + 2.25**2 + 0.25**2) / 3))
    assert result["mae"] == pytest.approx((1.75 + 2.25 + 0.25) / 3)
    assert math.isnan(result["paper_rmse"])  # not asked for


def test_predictions_are_clipped_to_the_scale() -> None:
    result = evaluate(constant(7.0), TARGETS)
    assert result["rmse"] == pytest.approx(math.sqrt((0**2 + 2**2 + 4**2) / 3))


def test_unseen_rows_and_columns_fall_back() -> None:
    result = evaluate(constant(5.0), TARGETS, row_known=np.array([True, False]),
                      col_known=np.array([True, True, False]))
    # cell (0,0): 5 vs 5; cell (0,2): fallback 2 vs 1; cell (1,1): fallback 2 vs 3
    assert result["rmse"] == pytest.approx(math.sqrt((0 + 1 + 1) / 3))


def test_paper_rmse_by_hand() -> None:
    # Paper scale s(r) = (r - 0.5) / 4.5: s(5) = 1, s(1) = 1/9, s(3.25) = 11/18, missing -> 0.
    # Evaluated user 0 only, all three items: (7/18)^2 + (11/18)^2 + (1/2)^2 = 251/324.
    result = evaluate(constant(3.25), TARGETS, paper_rows=np.array([1.0, 0.0]),
                      paper_cols=np.ones(3))
    assert result["paper_rmse"] == pytest.approx(math.sqrt(251 / 324 / 3), rel=1e-6)


def test_paper_rmse_is_the_same_in_item_orientation() -> None:
    user_rows = evaluate(constant(3.25), TARGETS, paper_rows=np.array([1.0, 0.0]),
                         paper_cols=np.ones(3))
    item_rows = evaluate(constant(3.25), TARGETS.T, paper_rows=np.ones(3),
                         paper_cols=np.array([1.0, 0.0]))
    assert item_rows["paper_rmse"] == pytest.approx(user_rows["paper_rmse"])
    assert item_rows["rmse"] == pytest.approx(user_rows["rmse"])


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 64])
def test_chunk_size_does_not_change_the_figures(chunk_rows: int) -> None:
    rng = np.random.default_rng(0)
    targets = np.where(rng.random((37, 11)) < 0.3, rng.integers(1, 6, (37, 11)), 0)
    targets = targets.astype(np.float32)

    def predict(params, row_ids, inputs):
        return 1.0 + row_ids[:, None] % 5 + jnp.arange(inputs.shape[1])[None, :] * 0.1

    weights = {"paper_rows": (np.arange(37) % 2).astype(np.float32), "paper_cols": np.ones(11)}
    reference = evaluate(predict, targets, chunk_rows=37, **weights)
    result = evaluate(predict, targets, chunk_rows=chunk_rows, **weights)
    for key in ("rmse", "mae", "paper_rmse"):  # rows summed on the host: the same figures
        assert result[key] == pytest.approx(reference[key], rel=1e-12)
    assert result["count"] == np.count_nonzero(targets)


def test_a_runs_evaluations_share_one_compiled_program(compose_config, tmp_path) -> None:
    # Validation every epoch, the test figures and the paper metric: one predictor, the same
    # chunk shapes, so one compilation of the evaluation pass (not one per evaluator).
    from aerec.cli import run_task
    from aerec.metrics import chunk_sums

    before = chunk_sums._cache_size()
    run_task(compose_config(), tmp_path / "run")
    assert chunk_sums._cache_size() == before + 1
