"""Hydra callbacks of the command line (configs/config.yaml, `hydra.callbacks`): what happens
around aerec's jobs, where Hydra itself would print a traceback or exit 0.

- `WritableOutputDir`: the run's (or sweep's) directory is checked before Hydra creates it and
  opens its log there; one that cannot be written is an `error:` line, not Hydra's traceback.
- `FailedJobs`: a sweep whose jobs failed ends with exit status 1 once every job has run.
- `SweepDirection`: an optimising sweeper (Optuna's) whose direction is not the monitored
  figure's is refused before the first job.

A callback cannot raise an error for aerec.cli to print (Hydra would print its traceback):
it prints the `error:` line and exits itself.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from aerec.search import monitor_direction


def exit_with_error(message: str) -> None:
    """Print `error: <message>` on stderr and end the process with exit status 1."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def unwritable(directory: Path) -> str | None:
    """Why files cannot be written in `directory` (created if missing), or None if they can.
    A file is created and removed: permissions alone do not say it (root, read-only mounts)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as error:
        return error.strerror or str(error)


class WritableOutputDir(Callback):
    """Refuses a run or sweep directory that cannot be written, before Hydra writes there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.run.dir`."""
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check `hydra.sweep.dir` (each job's directory is made inside it)."""
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            directory = Path(str(OmegaConf.select(config, key)))
        except Exception:  # an interpolation only Hydra's job can resolve: Hydra checks it
            return
        reason = unwritable(directory)
        if reason is not None:
            exit_with_error(f"{key}={directory} cannot be written ({reason}): set {key} to a "
                            "writable directory")


class FailedJobs(Callback):
    """Counts a sweep's failed jobs; after the last, exits 1 with one line naming them.

    A job that fails in a sweep (aerec.cli) prints its error, writes its results.json with
    `"status": "failed"`, and returns the worst value (+inf, or -inf for a figure maximised:
    aerec.search.worst) to the sweeper, so that the sweep
    goes on; the return value is what this callback reads of it (the results.json could be the
    very file that failed to be written). Hydra calls `on_job_end` where the job ran: in this
    process for its basic launcher, the one aerec's sweeps use (a launcher that runs jobs in
    other processes would leave this count empty).
    """

    def __init__(self) -> None:
        self.jobs: list[tuple[str, bool]] = []  # (job directory, failed) in the order run

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A new sweep: no job counted yet."""
        self.jobs = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Record the job's directory and whether it failed (sweeps only)."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        failed = job_return.status != JobStatus.COMPLETED or (
            isinstance(job_return.return_value, float) and math.isinf(job_return.return_value))
        self.jobs.append((str(job_return.hydra_cfg.hydra.runtime.output_dir), failed))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Exit 1 naming the failed jobs, if any."""
        failures = [shown(directory) for directory, failed in self.jobs if failed]
        if failures:
            exit_with_error(f"{len(failures)} of {len(self.jobs)} jobs failed: "
                            f"{', '.join(failures)}")


def shown(directory: str) -> str:
    """`directory` relative to the working directory when inside it (multirun/...)."""
    relative = os.path.relpath(directory)
    return directory if relative.startswith("..") else relative


class SweepDirection(Callback):
    """Refuses a sweep whose sweeper optimises in the direction opposite to the figure the
    runs monitor (`hydra.sweeper.direction` against `train.monitor`, aerec.search): each run
    returns its validation figure as it is, so that Optuna's best value is that figure."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the direction before the sweeper is made (Hydra makes it after this)."""
        direction = OmegaConf.select(config, "hydra.sweeper.direction")
        if direction is None:  # a sweeper that reads no return value (Hydra's basic one)
            return
        monitor = str(OmegaConf.select(config, "train.monitor", default="rmse"))
        expected = monitor_direction(monitor)
        if expected is None:
            exit_with_error(f"train.monitor={monitor}: an optimising sweep needs the figure "
                            "named (e.g. train.monitor=rmse or train.monitor=ndcg@10), so "
                            "that its direction is known")
        given = getattr(direction, "name", direction)  # an Enum where the plugin's default
        if str(given) != expected:
            exit_with_error(f"hydra.sweeper.direction={given} does not follow "
                            f"train.monitor={monitor}, which is better "
                            f"{'lower' if expected == 'minimize' else 'higher'}: set "
                            f"hydra.sweeper.direction={expected}")
