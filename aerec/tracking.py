"""Experiment tracking: a training run's resolved configuration, every epoch's record and its
final results, sent to MLflow or TensorBoard as well as to the run's own files
(`logger=none|mlflow|tensorboard`, configs/logger/, docs/tracking.md).

Each tracker's library is imported only when chosen; a missing one is a ConfigError naming
the extra that installs it. Names are the same in both: epoch records as `epoch/<key>` at
step = epoch (`epoch/train_loss`, `epoch/valid_rmse`, `epoch/epoch_seconds`), the final
figures under their results.json names (`test_rmse`, `best_epoch`), `@` written `_at_`
(`ndcg_at_10`: MLflow refuses `@` in a name).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import yaml

from aerec.errors import ConfigError, TrainingInterrupted
from aerec.identity import flatten_config
from aerec.logs import brief
from aerec.run_config import LoggerConfig

LOGGERS = ("none", "mlflow", "tensorboard")
# What `pip install` brings each tracker: the extra of pyproject.toml, and the module.
EXTRAS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboard", "tensorboardX")}
# MLflow's own limit on parameters in one call of log_batch.
PARAMS_PER_BATCH = 100


class Tracker(Protocol):
    """Where a training run reports, besides its output directory. Called in this order:
    `start` once, `log_epoch` per epoch (a resumed run's earlier epochs first), then
    `finish` with the results, or `abort` if the run ends otherwise."""

    def start(self, config: Mapping[str, Any]) -> None:
        """Open the run and record its resolved configuration (plain dicts and lists)."""

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """One epoch's record: `epoch` (from 1) and its figures (`train_loss`, ...)."""

    def finish(self, results: Mapping[str, Any]) -> None:
        """The final results (results.json's content); closes the run."""

    def abort(self, status: str) -> None:
        """Close the run unfinished: `status` is "failed" (an error) or "stopped" (a stop
        request or Ctrl-C)."""


def metric_name(key: str) -> str:
    """A figure's name as the trackers record it: `@` as `_at_` (`ndcg@10` -> `ndcg_at_10`),
    any other character MLflow refuses as `_`."""
    return re.sub(r"[^/\w.\- ]", "_", key.replace("@", "_at_"))


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries that are numbers (booleans, strings, lists and None left out), as floats,
    under their recorded names."""
    return {metric_name(key): float(value) for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def epoch_figures(record: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """An epoch record as (step, {`epoch/<key>`: value}): the step is its epoch."""
    figures = {key: value for key, value in record.items() if key != "epoch"}
    return int(record["epoch"]), {f"epoch/{key}": value
                                  for key, value in numeric(figures).items()}


def param_value(value: Any) -> str | int | float | bool:
    """A configuration value as a parameter: strings, numbers and booleans as they are,
    anything else (None, lists) as JSON."""
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value)


class NoTracker:
    """`logger=none`: the run's own files only."""

    def start(self, config: Mapping[str, Any]) -> None:
        """Nothing to open."""

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """Nothing to record."""

    def finish(self, results: Mapping[str, Any]) -> None:
        """Nothing to close."""

    def abort(self, status: str) -> None:
        """Nothing to close."""


def require(logger: str) -> ModuleType:
    """The tracker's library, imported now; a ConfigError naming the extra if it is missing."""
    extra, module = EXTRAS[logger]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(f"logger={logger} needs {module}, which cannot be imported "
                          f"({brief(error)}): pip install 'aerec[{extra}]'") from error


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI when set; else a SQLite database in the working directory,
    `./mlflow.db`, where `mlflow ui` run from the same directory finds it (MLflow 3 keeps its
    file store in maintenance mode and refuses it unless told otherwise)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class MlflowTracker:
    """`logger=mlflow`: one MLflow run per training run, through MLflow's client (no global
    active run). Parameters: the configuration's dotted keys; metrics: epoch records and
    numeric results; artifact: results.json (with the notes and text figures)."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str | None,
                 tags: Mapping[str, str]):
        require("mlflow")
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.tags = dict(tags)
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, config: Mapping[str, Any]) -> None:
        """Create the run (and the experiment if new); log the configuration as parameters.
        A store that cannot be opened or written is a ConfigError naming
        logger.tracking_uri."""
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)  # opens the store
            found = self.client.get_experiment_by_name(self.experiment)
            experiment_id = (found.experiment_id if found is not None else
                             self.client.create_experiment(
                                 self.experiment, artifact_location=self.artifact_location()))
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name,
                                                 tags=self.tags).info.run_id
        except (MlflowException, OSError) as error:
            raise ConfigError(f"logger.tracking_uri={self.tracking_uri} cannot be used: "
                              f"{brief(error)}") from error
        params = [Param(key, str(param_value(value)))
                  for key, value in flatten_config(dict(config)).items()]
        for first in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[first:first + PARAMS_PER_BATCH])

    def artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: beside a SQLite database, in
        `mlruns/<experiment>` (MLflow would use ./mlruns of whichever directory the first run
        was started from); a server's own default otherwise."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        database = Path(self.tracking_uri.removeprefix("sqlite:///"))
        folder = re.sub(r"[^\w-]", "_", self.experiment)
        return str((database.parent / "mlruns" / folder).absolute())

    def _log(self, figures: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in figures.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """The epoch's figures at step = epoch."""
        step, figures = epoch_figures(record)
        self._log(figures, step)

    def finish(self, results: Mapping[str, Any]) -> None:
        """Numeric results as metrics, results.json as an artifact; the run FINISHED."""
        self._log(numeric(results), 0)
        self.client.log_dict(self.run_id, dict(results), "results.json")
        self.client.set_terminated(self.run_id, "FINISHED")

    def abort(self, status: str) -> None:
        """The run FAILED, or KILLED when stopped."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "KILLED" if status == "stopped"
                                       else "FAILED")


class TensorBoardTracker:
    """`logger=tensorboard`: event files in `log_dir` (tensorboardX's writer). The
    configuration as text at start; epoch records as scalars; at the end, the configuration
    and numeric results as one session of TensorBoard's HParams tab (in the same directory,
    so that `tensorboard --logdir <sweep dir>` lists each trial once)."""

    def __init__(self, log_dir: Path):
        self.tensorboardx = require("tensorboard")
        self.log_dir = log_dir
        self.writer: Any = None
        self.config: Mapping[str, Any] = {}

    def start(self, config: Mapping[str, Any]) -> None:
        """Open the writer; the configuration as YAML text (`config`)."""
        self.config = config
        self.writer = self.tensorboardx.SummaryWriter(logdir=str(self.log_dir))
        text = yaml.safe_dump(dict(config), sort_keys=False)
        # TensorBoard renders text as Markdown: indented, it is shown as written
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))
        self.writer.flush()

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """The epoch's figures as scalars at step = epoch, flushed (a live TensorBoard shows
        each epoch as it ends)."""
        step, figures = epoch_figures(record)
        for key, value in figures.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, results: Mapping[str, Any]) -> None:
        """The HParams session: configuration keys and finite numeric results."""
        hparams = {key: param_value(value)
                   for key, value in flatten_config(dict(self.config)).items()}
        figures = {key: value for key, value in numeric(results).items()
                   if math.isfinite(value)}
        # in this run, not in the subfolder add_hparams would open (one run per trial in
        # TensorBoard's lists; and a second writer named in the same second would overwrite
        # this one's file)
        from tensorboardX.summary import hparams as hparams_summaries

        for summary in hparams_summaries(hparams, figures):
            self.writer.file_writer.add_summary(summary)
        for key, value in figures.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()

    def abort(self, status: str) -> None:
        """Close the writer: what was written stays readable."""
        if self.writer is not None:
            self.writer.close()


def make_tracker(logger: LoggerConfig, output_dir: Path) -> Tracker:
    """The tracker `logger` names, for a run writing into `output_dir`."""
    if logger.name == "mlflow":
        return MlflowTracker(logger.tracking_uri or default_tracking_uri(), logger.experiment,
                             logger.run_name, {"aerec.output_dir": str(output_dir.absolute())})
    if logger.name == "tensorboard":
        return TensorBoardTracker(Path(logger.log_dir) if logger.log_dir
                                  else output_dir / "tensorboard")
    return NoTracker()


@contextmanager
def tracking(logger: LoggerConfig, config: Mapping[str, Any], output_dir: Path
             ) -> Iterator[Tracker]:
    """The started tracker of a run; the caller calls its `finish`. An exception (or a stop)
    in `start` or leaving the block closes the run as failed (stopped) and goes on."""
    tracker = make_tracker(logger, output_dir)
    try:
        tracker.start(config)
        yield tracker
    except (TrainingInterrupted, KeyboardInterrupt, SystemExit):
        tracker.abort("stopped")
        raise
    except BaseException:
        tracker.abort("failed")
        raise
