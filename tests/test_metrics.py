"""RMSE/MAE on observed cells and the paper's all-cells RMSE, against hand computation."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from aerec.data.device_rows import DeviceRows
from aerec.rating_metrics import Evaluator

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


@pytest.mark.parametrize(("output_activation", "scaling", "members", "cell_block"),
                         [("linear", (3.0, 1.0), 1, None), ("sigmoid", (1.0, 4.0), 2, None),
                          ("linear", (3.0, 1.0), 2, 16)])
def test_the_autoencoders_cells_alone_give_its_whole_rows_figures(
        monkeypatch: pytest.MonkeyPatch, output_activation: str, scaling: tuple[float, float],
        members: int, cell_block: int | None) -> None:
    # RMSE and MAE from the predictions at the held-out cells alone (codes, then one output
    # column per cell) against the same predictor's whole rows; with rows and columns
    # without training data (fallback), predictions past the scale (clipped), chunks with
    # padding rows, an empty target row, and (cell_block) chunks' cells in several blocks.
    from omegaconf import OmegaConf

    from aerec.models.autoencoder import AutoEncoderPredictor, init_members, predict_ratings
    from aerec.models.scaling import Scaling

    if cell_block is not None:
        monkeypatch.setattr("aerec.rating_metrics.CELL_BLOCK", cell_block)
    rng = np.random.default_rng(3)
    inputs = np.where(rng.random((23, 40)) < 0.3, rng.integers(1, 6, (23, 40)), 0)
    targets = np.where((inputs == 0) & (rng.random((23, 40)) < 0.2),
                       rng.integers(1, 6, (23, 40)), 0)
    targets[5] = 0
    model_cfg = OmegaConf.create({"layers": 2, "hidden": [9, 7], "latent": 5,
                                  "activation": "tanh", "output_activation": output_activation,
                                  "dropout": 0.0, "input_dropout": 0.0, "mirror_decoder": False})
    graphdef, params = init_members(model_cfg, 40, 0, members)
    # biases start at zero: give every parameter some noise, so that each one shows
    params = jax.tree.map(lambda leaf: leaf + 0.3 * rng.standard_normal(leaf.shape), params)
    by_cells = AutoEncoderPredictor(graphdef, Scaling(*scaling), output_activation)
    by_rows = partial(predict_ratings, graphdef, Scaling(*scaling))
    row_known, col_known = rng.random(23) < 0.8, rng.random(40) < 0.9
    matrices = [DeviceRows(sp.csr_matrix(m.astype(np.float32)), resident=False)
                for m in (inputs, targets)]
    figures = []
    for predict in (by_rows, by_cells):
        # rating_max 4: some predictions fall past it, so clipping matters
        evaluator = Evaluator(predict, rating_min=1.0, rating_max=4.0, fallback=2.5,
                              row_known=row_known, col_known=col_known, chunk_rows=8)
        # Full float32 matmuls: a GPU's default (TF32) would round the whole rows' apart.
        with jax.default_matmul_precision("highest"):
            figures.append([evaluator.evaluate(params, *matrices)
                            for _ in range(2)])  # the second from the cells prepared once
    (rows, _), (cells, cells_again) = figures
    assert cells == cells_again and cells["count"] == rows["count"] == np.count_nonzero(targets)
    for key in ("rmse", "mae"):
        assert cells[key] == pytest.approx(rows[key], rel=1e-6)
    assert 0.5 < cells["rmse"] < 3.0
    nothing = DeviceRows(sp.csr_matrix((23, 40), dtype=np.float32), resident=False)
    empty = evaluator.evaluate(params, matrices[0], nothing)
    assert empty["count"] == 0 and math.isnan(empty["rmse"]) and math.isnan(empty["mae"])


def test_evaluations_share_compiled_programs(compose_config, tmp_path) -> None:
    # Validation every epoch and the test figures at their cells, the paper metric by whole
    # rows: one compilation of each pass per chunk shape (not one per evaluator or epoch).
    from aerec.cli import run_task
    from aerec.rating_metrics import cell_block_sums, cell_decoder, chunk_codes, chunk_sums

    programs = (chunk_sums, chunk_codes, cell_decoder, cell_block_sums)

    def programs_added_by(*overrides: str) -> list[int]:
        before = [program._cache_size() for program in programs]
        run_task(compose_config("train.epochs=3", "model.latent=13", *overrides),
                 tmp_path / "-".join(overrides or ("run",)))
        return [program._cache_size() - count for program, count in zip(programs, before,
                                                                         strict=True)]

    added = programs_added_by()  # a latent width no other test uses: compiled here
    # the cells' capacity: one program for the validation ratings, one for the test's
    assert added[:3] == [1, 1, 1] and 1 <= added[3] <= 2
    # an equal predictor (another seed, the same model): the same programs again
    assert programs_added_by("seed=1") == [0, 0, 0, 0]
