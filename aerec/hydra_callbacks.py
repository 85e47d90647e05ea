"""Hydra callbacks of the command line (configs/config.yaml, `hydra.callbacks`): what happens
around aerec's jobs, where Hydra itself would print a traceback or exit 0.

- `WritableOutputDir`: the run's (or sweep's) directory is checked before Hydra creates it and
  opens its log there; one that cannot be written is an `error:` line, not Hydra's traceback.
- `FailedJobs`: a sweep whose jobs failed ends with exit status 1 once every job has run.

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
    `"status": "failed"`, and returns +inf, the worst value, to the sweeper, so that the sweep
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
            isinstance(job_return.return_value, float) and math.isinf(job_return.return_value)
            and job_return.return_value > 0)
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
