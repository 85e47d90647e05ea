"""Optuna searches (configs/hparams_search/optuna_*.yaml, aerec.search): their spaces, the
direction that follows the monitored figure, and a real sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from aerec.hydra_callbacks import FailedJobs, SweepDirection
from aerec.report import report
from aerec.search import monitor_direction, objective, worst
from tests.conftest import CONFIGS, FAST_DATA, ROOT, cli_env

ABSENT = object()


def composed(*overrides: str) -> DictConfig:
    """The configuration with Hydra's own section, as a sweep's callbacks see it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides),
                       return_hydra_config=True)


def test_the_direction_follows_the_monitored_figure() -> None:
    assert [monitor_direction(name) for name in ("rmse", "mae", "ndcg@10", "recall@20")] == [
        "minimize", "minimize", "maximize", "maximize"]
    assert monitor_direction("auto") is None and monitor_direction("ndcg@") is None
    assert (worst("rmse"), worst("ndcg@10")) == (math.inf, -math.inf)


def test_a_run_returns_its_validation_figure_never_nan() -> None:
    assert objective({"valid_rmse": 0.85, "valid_ndcg@10": 0.3}, "rmse") == 0.85
    assert objective({"valid_rmse": 0.85, "valid_ndcg@10": 0.3}, "ndcg@10") == 0.3
    # no validation ratings: the worst value (Optuna's sweep would end on NaN)
    assert objective({"valid_rmse": float("nan")}, "rmse") == math.inf
    assert objective({}, "ndcg@10") == -math.inf


@pytest.mark.parametrize(("search", "model", "monitor", "direction"), [
    ("optuna_autoencoder", "autoencoder", "rmse", "minimize"),
    ("optuna_multvae", "multvae", "ndcg@10", "maximize"),
])
def test_the_optuna_searches_compose(search: str, model: str, monitor: str,
                                     direction: str) -> None:
    if not (CONFIGS / "model" / f"{model}.yaml").is_file():
        pytest.skip(f"model={model} is not in this checkout's configs")
    cfg = composed(f"hparams_search={search}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert cfg.model.name == model and cfg.train.monitor == monitor
    assert sweeper.direction == direction == monitor_direction(monitor)
    assert sweeper.sampler.seed == 0  # the same trials on every sweep
    parser = OverridesParser.create()
    for key, space in sweeper.params.items():
        # a key of the configuration (a misspelt one would be added), searched over a range
        assert OmegaConf.select(cfg, key, default=ABSENT) is not ABSENT, key
        [override] = parser.parse_overrides([f"{key}={space}"])
        assert override.is_sweep_override(), key
    SweepDirection().on_multirun_start(cfg)  # consistent: goes on


def test_a_direction_against_the_monitor_is_refused(capsys: pytest.CaptureFixture) -> None:
    assert composed().hydra.callbacks.sweep_direction._target_.endswith("SweepDirection")
    for overrides, message in [
        (["hydra.sweeper.direction=maximize"],
         "error: hydra.sweeper.direction=maximize does not follow train.monitor=rmse, which "
         "is better lower: set hydra.sweeper.direction=minimize"),
        (["train.monitor=ndcg@10"],
         "error: hydra.sweeper.direction=minimize does not follow train.monitor=ndcg@10, "
         "which is better higher: set hydra.sweeper.direction=maximize"),
        (["train.monitor=auto"],
         "error: train.monitor=auto: an optimising sweep needs the figure named (e.g. "
         "train.monitor=rmse or train.monitor=ndcg@10), so that its direction is known"),
    ]:
        cfg = composed("hparams_search=optuna_autoencoder", *overrides)
        with pytest.raises(SystemExit) as stop:
            SweepDirection().on_multirun_start(cfg)
        assert stop.value.code == 1
        assert capsys.readouterr().err.strip() == message
    SweepDirection().on_multirun_start(composed())  # Hydra's basic sweeper: no direction


def test_a_job_returning_minus_infinity_failed(capsys: pytest.CaptureFixture) -> None:
    callback, config = FailedJobs(), OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN}})
    callback.on_multirun_start(config)
    for number, value in enumerate([0.3, -math.inf, math.inf]):
        where = OmegaConf.create({"hydra": {"runtime": {"output_dir": f"/sweep/{number}"}}})
        callback.on_job_end(config, JobReturn(hydra_cfg=where, status=JobStatus.COMPLETED,
                                              _return_value=value))
    with pytest.raises(SystemExit):
        callback.on_multirun_end(config)
    assert capsys.readouterr().err.strip() == "error: 2 of 3 jobs failed: /sweep/1, /sweep/2"


@pytest.mark.slow  # two trials, each a process's worth of compiling
def test_an_optuna_sweep_runs_its_trials_and_keeps_the_best(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "hparams_search=optuna_autoencoder",
         *FAST_DATA, "train.epochs=2", "checkpoint.enabled=false", "ranking.enabled=false",
         "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr
    trials = {}
    for number in (0, 1):
        results = json.loads((sweep / str(number) / "results.json").read_text())
        overrides = yaml.safe_load((sweep / str(number) / ".hydra" / "overrides.yaml")
                                   .read_text())
        config = yaml.safe_load((sweep / str(number) / "config.yaml").read_text())
        assert results["status"] == "ok" and results["epochs_run"] == 2
        assert config["model"]["hidden"] in (300, 500, 800)  # drawn from the search space
        assert 1e-6 <= config["model"]["l2"] <= 1e-3
        trials[number] = (results["valid_rmse"], overrides)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    value, overrides = min(trials.values(), key=lambda trial: trial[0])
    assert best["best_value"] == pytest.approx(value)
    for key, chosen in best["best_params"].items():
        assert f"{key}={chosen}" in overrides
    assert "## Runs, best validation RMSE first" in report(sweep)
