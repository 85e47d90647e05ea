"""train.monitor: what early stopping, the kept epoch and a sweeper follow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aerec.cli import run_task
from aerec.errors import ConfigError
from aerec.monitor import Monitor, parse_monitor, resolve_monitor
from aerec.train import EarlyStopping


@pytest.mark.parametrize("text", ["auc@10", "coverage@10", "ndcg@0", "ndcg", "ndcg@10@2", 3,
                                  "RMSE"])
def test_a_figure_validation_does_not_compute_is_refused(text) -> None:
    with pytest.raises(ConfigError, match=r"train\.monitor=.*not a figure aerec computes"):
        parse_monitor(text)


def test_rmse_is_refused_where_nothing_predicts_ratings() -> None:
    with pytest.raises(ConfigError, match="model=ease ranks items and predicts no ratings"):
        resolve_monitor("rmse", predicts_ratings=False, implicit=False, model_name="ease")
    with pytest.raises(ConfigError, match="implicit feedback has no ratings"):
        resolve_monitor("rmse", predicts_ratings=True, implicit=True, model_name="autoencoder")
    assert resolve_monitor("auto", predicts_ratings=True, implicit=False,
                           model_name="autoencoder") == Monitor("rmse")
    assert resolve_monitor("auto", predicts_ratings=False, implicit=False,
                           model_name="ease") == Monitor("ndcg@10")
    assert resolve_monitor("hit_rate@5", predicts_ratings=True, implicit=True,
                           model_name="autoencoder").key == "valid_hit_rate@5"


def test_early_stopping_follows_the_monitors_direction() -> None:
    # A ranking figure: higher is better; the same sequence under RMSE keeps the other end.
    figures = [0.10, 0.30, 0.20, 0.25]
    for monitor, best in ((Monitor("ndcg@10"), (2, 0.30)), (Monitor("rmse"), (1, 0.10))):
        stopping = EarlyStopping(patience=5, best_params=None, monitor=monitor)
        for epoch, figure in enumerate(figures, start=1):
            stopping.update(epoch, figure, lambda epoch=epoch: epoch)
        assert (stopping.best_epoch, stopping.best_valid) == best
        assert stopping.best_params == best[0]


def test_a_rating_model_can_be_chosen_by_its_lists(compose_config, tmp_path: Path) -> None:
    cfg = compose_config("train.monitor=mrr@5", "train.epochs=4", "train.patience=1",
                         "checkpoint.enabled=false")
    results = run_task(cfg, tmp_path)
    history = [json.loads(line)
               for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    figures = [record["valid_mrr@5"] for record in history]
    assert all("valid_rmse" not in record for record in history)
    assert results["monitor"] == "mrr@5"
    assert results["valid_mrr@5"] == max(figures)  # the kept epoch is the best by the list
    assert results["best_epoch"] == 1 + int(np.argmax(figures))
    assert "chosen for its lists" in results["chosen_by"]
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["valid_mrr@5"] == pytest.approx(results["valid_mrr@5"])


def test_a_run_chosen_by_rmse_says_so(compose_config, tmp_path: Path) -> None:
    results = run_task(compose_config("train.epochs=1", "checkpoint.enabled=false"), tmp_path)
    assert results["monitor"] == "rmse" and "valid_rmse" in results
    assert "chosen for rating error, not for its lists" in results["chosen_by"]
