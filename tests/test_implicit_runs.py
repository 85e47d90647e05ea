"""Implicit feedback end to end: a click file trains, is evaluated on lists and recommends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import aerec
from aerec.cli import run_task
from aerec.errors import ConfigError
from tests.conftest import FAST_TRAIN


def write_clicks(path: Path, n_users: int = 80, n_items: int = 40, seed: int = 0) -> Path:
    """A two-column `user,item` file: two taste groups, each clicking mostly its own half."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n_users + 1):
        own = np.arange(n_items // 2) + (n_items // 2 if user % 2 else 0)
        items = rng.choice(own, size=10, replace=False)
        items = np.concatenate([items, rng.choice(n_items, size=2, replace=False)])
        lines += [f"{user},{item + 1}" for item in np.unique(items)]
    lines.append(lines[0])  # a repeated click: one interaction
    path.write_text("\n".join(lines) + "\n")
    return path


def click_run(compose_config, clicks: Path, *overrides: str):
    return compose_config(*FAST_TRAIN, "dataset=custom", f"dataset.path={clicks}",
                          "dataset.feedback=implicit", "split.kind=per_user",
                          "split.test_fraction=0.2", "split.valid_fraction=0.2",
                          "checkpoint.enabled=false", *overrides, fast=False)


def test_a_click_file_trains_evaluates_and_recommends(compose_config, tmp_path: Path) -> None:
    clicks = write_clicks(tmp_path / "clicks.csv")
    cfg = click_run(compose_config, clicks, "model=ease", "model.l2=10", "ranking.k=[5]")
    results = run_task(cfg, tmp_path / "run")
    assert results["feedback"] == "implicit" and results["monitor"] == "ndcg@10"
    assert results["model"] == "ease" and np.isfinite(results["valid_ndcg@10"])
    assert results["n_duplicates_merged"] == 1
    assert results["test_rmse"] is None or np.isnan(results["test_rmse"])
    notes = json.loads((tmp_path / "run" / "results.json").read_text())["notes"]
    assert "predicts no ratings" in notes["test_rmse"]
    assert 0 < results["ndcg@5"] <= 1 and results["ranking_users"] > 0
    evaluated = run_task(compose_config("task=evaluate", f"checkpoint.path={tmp_path / 'run'}"
                                        "/model", "ranking.k=[5]", fast=False), tmp_path / "ev")
    assert evaluated["ndcg@5"] == pytest.approx(results["ndcg@5"])
    lists = aerec.load(tmp_path / "run" / "model").recommend(2, k=3)
    assert len(lists) == 3 and "predicted_rating" not in lists
    # an even user clicks the lower half (items 1-20) mostly: so is its list
    assert (lists["item"] <= 20).all()


@pytest.mark.slow  # 15 epochs and a second run
def test_the_papers_loss_learns_the_groups_from_clicks(compose_config, tmp_path: Path) -> None:
    clicks = write_clicks(tmp_path / "clicks.csv")
    trained = run_task(click_run(compose_config, clicks, "model.loss=all_cells",
                                 "model.hidden=16", "model.latent=8", "model.orientation=user",
                                 "optimizer.learning_rate=0.01", "train.epochs=15",
                                 "ranking.k=[5]"), tmp_path / "ae")
    popular = run_task(click_run(compose_config, clicks, "model=popularity", "ranking.k=[5]"),
                       tmp_path / "pop")
    assert trained["ndcg@5"] > popular["ndcg@5"] + 0.1  # it sees the two groups


@pytest.mark.parametrize(("overrides", "message"), [
    (("model.loss=masked",), "model.loss=masked learns the observed cells only"),
    (("model=svd",), "model.center=true fits what is left"),
    (("model=popularity", "train.monitor=rmse"), "implicit feedback has no ratings"),
])
def test_a_rating_model_that_would_learn_nothing_is_refused(compose_config, tmp_path: Path,
                                                            overrides, message) -> None:
    clicks = write_clicks(tmp_path / "clicks.csv")
    with pytest.raises(ConfigError, match=message):
        run_task(click_run(compose_config, clicks, *overrides), tmp_path / "run")
