"""EASE / EDLAE / DLAE: the closed forms against float64 NumPy, the memory refusal, the
family's checks, and a run that trains, saves, loads and recommends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import aerec
from aerec.cli import run_task
from aerec.data.device_rows import DeviceRows
from aerec.errors import ConfigError
from aerec.models.ease import (
    EASE,
    block_rows,
    check_fits,
    fit_bytes,
    fit_ease,
    host_available_bytes,
)
from aerec.recommend import format_recommendations
from tests.conftest import FAST_DATA


def ratings_matrix(seed: int = 0, users: int = 40, items: int = 25) -> sp.csr_matrix:
    """Random ratings 1-5 at ~30% of the cells; user 0 and item 3 without any."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((users, items)) < 0.3, rng.integers(1, 6, (users, items)), 0)
    dense[0] = 0
    dense[:, 3] = 0
    return sp.csr_matrix(dense.astype(np.float32))


def closed_form(ratings: sp.csr_matrix, l2: float, dropout: float, zero_diagonal: bool
                ) -> np.ndarray:
    """The papers' closed forms, written out in float64 NumPy."""
    x = (ratings.toarray() > 0).astype(np.float64)
    gram = x.T @ x
    penalty = np.diag(l2 + dropout / (1 - dropout) * np.diag(gram))
    inverse = np.linalg.inv(gram + penalty)
    if not zero_diagonal:
        return inverse @ gram  # DLAE: (G + Λ)^-1 G
    return np.eye(len(gram)) - inverse @ np.diag(1 / np.diag(inverse))  # EASE, EDLAE


@pytest.mark.parametrize(("dropout", "zero_diagonal", "resident"),
                         [(0.0, True, False), (0.3, True, True), (0.0, False, True),
                          (0.3, False, False)],
                         ids=["ease", "edlae", "ridge", "dlae"])
def test_the_weights_are_the_closed_form(dropout: float, zero_diagonal: bool,
                                         resident: bool) -> None:
    ratings = ratings_matrix()
    assert block_rows(*ratings.shape) < ratings.shape[0]  # the Gram matrix summed in blocks
    weights = np.asarray(fit_ease(DeviceRows(ratings, resident), l2=7.0, dropout=dropout,
                                  zero_diagonal=zero_diagonal)["B"])
    expected = closed_form(ratings, 7.0, dropout, zero_diagonal)
    assert weights.dtype == np.float32 and weights.shape == (25, 25)
    np.testing.assert_allclose(weights, expected, atol=2e-6 * np.abs(expected).max())
    if zero_diagonal:
        assert np.all(np.diag(weights) == 0.0)
    else:  # an item predicts itself (item 3 has no interactions: 0, to rounding)
        assert np.all(np.delete(np.diag(weights), 3) > 0.1)
    # an item without interactions is neither predicted nor predicts
    np.testing.assert_allclose(weights[3], 0.0, atol=1e-6)
    np.testing.assert_allclose(weights[:, 3], 0.0, atol=1e-6)


def test_the_fit_block_sizes_spread_rows_evenly() -> None:
    assert block_rows(6033, 3123) == 3017  # two blocks, one padding row
    assert block_rows(40, 25) == 20
    assert block_rows(10, 1000) == 10
    assert block_rows(0, 5) == 1


def test_too_many_items_for_the_device_are_refused_before_the_fit(tmp_path: Path) -> None:
    assert fit_bytes(1000) == 12_000_000
    check_fits(1000, 12_000_000)
    check_fits(1000, None)  # unknown: not checked
    with pytest.raises(ConfigError, match=r"model=ease on 1000 items needs 0\.0 GB .* enough "
                                          r"for about 999 items: keep fewer items with "
                                          r"prepare\.min_item_ratings"):
        check_fits(1000, 11_999_999)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  2048 kB\nMemFree:  512 kB\nMemAvailable:  1024 kB\n")
    assert host_available_bytes(meminfo) == 1024 * 1024
    assert host_available_bytes(tmp_path / "absent") is not None  # os.sysconf's free pages


@pytest.mark.parametrize(("override", "message"), [
    ("model.l2=0", r"model\.l2=0 must be a finite number > 0"),
    ("model.l2=-5.0", r"model\.l2=-5\.0 must be a finite number > 0"),
    ("model.l2=true", r"model\.l2=True must be"),
    ("model.dropout=1.0", r"model\.dropout=1\.0 must be in \[0, 1\)"),
    ("model.zero_diagonal=1", r"model\.zero_diagonal=1 must be true or false"),
    ("model.orientation=item", r"model\.orientation='item' must be user"),
])
def test_invalid_keys_are_refused_by_name(compose_config, tmp_path: Path, override: str,
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_task(compose_config(*FAST_DATA, "model=ease", override, fast=False), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_saved_item_oriented_model_is_invalid() -> None:
    assert EASE.saved_problem({"name": "ease", "orientation": "item"}) == (
        "model.orientation", "must be user: EASE's rows are users")
    assert EASE.saved_problem({"name": "ease", "orientation": "user"}) is None


def test_a_run_trains_saves_loads_and_recommends(compose_config, tmp_path: Path) -> None:
    cfg = compose_config(*FAST_DATA, "model=ease", "model.l2=20", "model.dropout=0.2",
                         fast=False)
    results = run_task(cfg, tmp_path / "run")
    assert results["model"] == "ease" and results["epochs_run"] == 1
    assert results["ndcg@10"] > 0.0
    model = aerec.load(tmp_path / "run" / "model")
    weights = np.asarray(model.params["B"])
    assert weights.shape == (80, 80) and np.all(np.diag(weights) == 0.0)

    user = 5
    table = model.recommend(user, k=10)
    row = int(model.users.index([user])[0])
    scores = (model.inputs[row].toarray()[0] > 0) @ weights.astype(np.float64)
    candidates = np.setdiff1d(np.arange(80), model.seen[row].indices)
    best = candidates[np.argsort(-scores[candidates], kind="stable")][:10]
    assert list(table["item"]) == list(model.items.raw[best])
    assert "predicted_rating" not in table  # a top-N model predicts no rating

    # a new user: each history item counts 1, whatever its rating
    items = model.items.raw[[2, 7, 11]]
    low = model.recommend_for_history(dict.fromkeys(items.tolist(), 1.0), k=5)
    high = model.recommend_for_history(dict(zip(items.tolist(), [5.0, 3.0, 4.0],
                                                strict=True)), k=5)
    assert list(low["item"]) == list(high["item"])
    history_scores = weights[[2, 7, 11]].sum(axis=0)
    history_scores[[2, 7, 11]] = -np.inf
    assert list(low["item"]) == list(model.items.raw[np.argsort(-history_scores,
                                                                 kind="stable")[:5]])

    payload = run_task(compose_config(*FAST_DATA, "task=recommend", "user=5", "k=3",
                                      f"checkpoint.path={tmp_path / 'run' / 'model'}",
                                      fast=False), tmp_path / "recommend")
    assert [entry["item"] for entry in payload["recommendations"]] == list(table["item"][:3])
    saved = json.loads((tmp_path / "recommend" / "recommendations.json").read_text())
    assert saved["model"] == "ease"
    shown = format_recommendations(saved)
    assert "score" in shown and "predicted_rating" not in shown  # a top-N model's scores
