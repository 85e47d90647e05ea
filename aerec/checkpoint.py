"""Training checkpoints with orbax: save every few epochs, resume exactly, refuse mismatches.

A checkpoint holds every array that training changes (the TrainState, the best parameters so
far and the early-stopping counters) and, as JSON, the run's identity (the configuration keys
that define what is trained) and the per-epoch history. The batch order is a function of
(seed, epoch), so restoring these is enough for a resumed run to end exactly where an
uninterrupted one would. Orbax writes each checkpoint into a temporary directory and renames
it when complete, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import platformdirs
from orbax.checkpoint import checkpoint_managers

from aerec.errors import CheckpointError, ConfigError
from aerec.identity import RECORDED_AS, run_identity
from aerec.lock import DirectoryLock
from aerec.logs import FILE_ONLY, brief
from aerec.run_config import RunConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR_ENV = "AEREC_CHECKPOINT_DIR"


def default_checkpoint_root() -> Path:
    """`$AEREC_CHECKPOINT_DIR` if set, else the per-user cache's checkpoints directory."""
    configured = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(configured) if configured else Path(
        platformdirs.user_cache_dir("aerec")) / "checkpoints"


def checkpoint_dir_of(cfg: RunConfig) -> Path:
    """checkpoint.dir, else <paths.checkpoint_dir>/<dataset>-<model>-<hash of the identity>."""
    if cfg.checkpoint.dir:
        return Path(cfg.checkpoint.dir).expanduser().absolute()
    root = (Path(cfg.paths.checkpoint_dir).expanduser() if cfg.paths.checkpoint_dir
            else default_checkpoint_root())
    digest = hashlib.sha256(json.dumps(run_identity(cfg.resolved), default=str).encode()
                            ).hexdigest()
    return (root / f"{cfg.dataset.name}-{cfg.model.name}-{digest[:12]}").absolute()


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two identities, as 'key: saved -> current' (a
    checkpoint written before a key was recorded at one value counts as having that value)."""
    saved = {key: RECORDED_AS.get(key, value) for key, value in saved.items()}
    keys = sorted(set(saved) | set(current))
    return [f"{key}: {saved.get(key, '<absent>')!r} -> {current.get(key, '<absent>')!r}"
            for key in keys if saved.get(key) != current.get(key)]


class DataChanged(Exception):  # noqa: N818 (a finding, not a fault)
    """The checkpoints were trained on other data than this run's (`saved`: their data
    fingerprint, None when written before fingerprints were recorded)."""

    def __init__(self, saved: str | None):
        super().__init__(saved)
        self.saved = saved


@dataclass
class Resumed:
    """What a restored checkpoint gives back to the fit loop."""

    epoch: int
    arrays: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Checkpointer:
    """An orbax CheckpointManager for one run directory: the latest `keep` and the best one."""

    def __init__(self, directory: Path, identity: dict[str, Any], *, every_epochs: int = 1,
                 every_seconds: float = 0.0, keep: int = 2,
                 lock: DirectoryLock | None = None, data_fingerprint: str = "",
                 long_epoch_seconds: float = math.inf):
        self.directory = directory
        self.lock = lock
        self.identity = identity
        self.data_fingerprint = data_fingerprint
        self.finished = False  # whether the last save was of a finished run
        self.every_epochs = every_epochs
        self.every_seconds = every_seconds
        self.long_epoch_seconds = long_epoch_seconds
        self.last_save = time.monotonic()  # training starts now
        policy = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(keep),
            # "valid": the monitored figure to minimise (`Monitor.loss`); "valid_rmse" before
            checkpoint_managers.BestN(
                get_metric_fn=lambda metrics: metrics.get("valid", metrics.get("valid_rmse")),
                reverse=True, n=1),
        ])
        self.manager = ocp.CheckpointManager(
            directory, item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(preservation_policy=policy))

    def should_save(self, epoch: int, last_epoch: bool, epoch_seconds: float = 0.0) -> bool:
        """Always at the end of training; before, every `every_epochs` epochs once
        `every_seconds` have passed since the previous save (or the start), or after an epoch
        of `long_epoch_seconds` or more. A save writes the whole training state: every epoch,
        that took a fifth of a CPU run's time and would dominate a GPU's, whose epochs take
        milliseconds (experiments/README.md, "Checkpoint saves"). A long epoch is saved as a
        stop (SIGTERM) waits no longer than that for the next one to end
        (`train.stop_grace_seconds`): the last completed epoch is then on disk, and a stop
        loses only the one in progress."""
        if last_epoch:
            return True
        return (epoch % self.every_epochs == 0
                and (time.monotonic() - self.last_save >= self.every_seconds
                     or epoch_seconds >= self.long_epoch_seconds))

    def save(self, epoch: int, arrays: Any, meta: dict[str, Any], valid_loss: float) -> None:
        """Save the arrays and JSON `meta` of `epoch` (asynchronously; see `close`).

        Scalars go into the JSON, which keeps Python floats exact (a float32 array would not).
        `meta` is copied now: the save completes in the background, and the caller goes on
        changing its objects (the training history grows while the previous epoch is written).
        """
        metric = valid_loss if np.isfinite(valid_loss) else float("inf")
        try:  # also surfaces the failure of the previous, asynchronous save
            meta = json.loads(json.dumps({**meta, "epoch": epoch, "identity": self.identity,
                                          "data_fingerprint": self.data_fingerprint}))
            saved = self.manager.save(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)),
                metrics={"valid": metric})
        except Exception as error:
            raise self._write_error(epoch, error) from error
        self.last_save = time.monotonic()
        if not saved:  # orbax skips, without an error, a step at or before its latest one
            raise CheckpointError(
                f"the checkpoint of epoch {epoch} was not written: {self.directory} already "
                f"holds epoch {self.manager.latest_step()}")
        self.finished = bool(meta.get("finished"))  # only once this run's save is the latest

    def _write_error(self, epoch: int | None, error: Exception) -> CheckpointError:
        latest = self.manager.latest_step()
        kept = f"; the checkpoint of epoch {latest} is intact" if latest is not None else ""
        # Saves are asynchronous: the failure may be that of an earlier epoch's save.
        when = f" (found while saving epoch {epoch})" if epoch is not None else ""
        return CheckpointError(f"could not write a checkpoint to {self.directory}{when}: "
                               f"{type(error).__name__}: {error}{kept}")

    def restore_latest(self, like: Any) -> Resumed | None:
        """The newest checkpoint that restores cleanly (older ones on failure), or None.

        Unreadable checkpoints newer than the one restored are moved aside (`set_aside`):
        orbax writes no step at or before its latest, so left in place they would block every
        later save up to their epoch. Raises ConfigError, naming the differing keys, if a
        checkpoint was written by another config, and DataChanged if it was trained on other
        data (or before the data's fingerprint was recorded).
        """
        abstract = jax.eval_shape(lambda: like)
        unreadable: list[int] = []
        resumed = None
        for step in sorted(self.manager.all_steps(), reverse=True):
            # The identity first: a checkpoint of another configuration is refused by name
            # rather than failing on mismatched array shapes.
            meta = self._restore_item(step, "meta", ocp.args.JsonRestore())
            if meta is not None:
                differences = identity_differences(meta["identity"], self.identity)
                if differences:
                    raise ConfigError(
                        f"the checkpoint in {self.directory} was written by another "
                        f"configuration ({'; '.join(differences)}); use checkpoint.dir=... "
                        "for a new run or train.resume=false to start over")
                if meta.get("data_fingerprint") != self.data_fingerprint:
                    raise DataChanged(meta.get("data_fingerprint"))
                arrays = self._restore_item(step, "state", ocp.args.StandardRestore(abstract))
                if arrays is not None:
                    resumed = Resumed(int(meta["epoch"]), arrays, dict(meta))
                    self.finished = bool(meta.get("finished"))
                    break
            unreadable.append(step)
        if unreadable:
            self.set_aside(unreadable)
        return resumed

    def set_aside(self, steps: list[int]) -> Path:
        """Move the checkpoints of `steps` out of the directory, into a sibling directory
        named after it (kept, never deleted, for a look at what went wrong); returns it."""
        aside = aside_path(self.directory, "unreadable")
        aside.mkdir(parents=True, exist_ok=True)
        for step in steps:
            path = ocp.step.find_step_path(self.directory, ocp.step.standard_name_format(),
                                           step=step)
            Path(os.fspath(path)).rename(aside / path.name)
        self.manager.reload()
        log.warning("set aside the unreadable checkpoints of epochs %s of %s in %s",
                    ", ".join(map(str, sorted(steps))), self.directory, aside)
        return aside

    def _restore_item(self, step: int, name: str, args: Any) -> Any | None:
        """One item of checkpoint `step`, or None (with a warning) if it cannot be read."""
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**{name: args}))[name]
        except Exception as error:  # any unreadable checkpoint: the caller tries an older one
            log.warning("checkpoint %s of %s is unreadable (%s); trying an older one",
                        step, self.directory, brief(error))
            log.info("why checkpoint %s of %s is unreadable:", step, self.directory,
                     exc_info=error, extra=FILE_ONLY)
            return None

    def close(self) -> None:
        """Wait for pending saves to finish, then release the directory's lock. A finished
        run keeps only its last checkpoint: all that resuming it needs (its best parameters
        and history), where the earlier epochs' would only fill the cache."""
        try:
            self.manager.wait_until_finished()
            if self.finished:
                latest = self.manager.latest_step()
                for step in self.manager.all_steps():
                    if step != latest:
                        self.manager.delete(step)
            self.manager.close()
        except Exception as error:
            raise self._write_error(None, error) from error
        finally:
            if self.lock is not None:
                self.lock.release()


def open_checkpoint(cfg: RunConfig, like: Any, data_fingerprint: str
                    ) -> tuple[Checkpointer | None, Resumed | None]:
    """The run's Checkpointer and, per `train.resume`, the checkpoint to continue from.

    `auto` resumes when a checkpoint exists; `true` requires one; `false` starts over,
    moving an existing checkpoint directory aside (never deleting it). Checkpoints trained on
    other data (`data_fingerprint`: `aerec.identity.data_fingerprint`) are never resumed:
    they are set aside, with a note, and training starts over.
    """
    if not cfg.checkpoint.enabled:
        return None, None
    directory = checkpoint_dir_of(cfg)
    lock = DirectoryLock(directory)  # before anything is read, moved or written
    try:
        return _open_locked(cfg, like, directory, lock, data_fingerprint)
    except BaseException:
        lock.release()
        raise


def aside_path(directory: Path, why: str) -> Path:
    """`<name>.<why>-<time>` beside a checkpoint directory: where what is set aside goes
    (kept, never deleted; `python -m aerec.checkpoints prune --set-aside` removes them)."""
    return directory.with_name(f"{directory.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}")


def set_directory_aside(directory: Path, why: str) -> Path:
    """Rename a checkpoint directory to its `aside_path`; returns the new path."""
    aside = aside_path(directory, why)
    directory.rename(aside)
    return aside


def data_change(saved: str | None, current: str) -> str:
    """How the data's fingerprint changed, for a message."""
    if saved is None:
        return "they were written before aerec recorded the data's fingerprint"
    return f"data fingerprint {saved[:12]}, now {current[:12]}"


def _open_locked(cfg: RunConfig, like: Any, directory: Path, lock: DirectoryLock,
                 data_fingerprint: str) -> tuple[Checkpointer, Resumed | None]:
    resume = cfg.train.resume
    if resume is False and directory.is_dir() and any(directory.iterdir()):
        aside = set_directory_aside(directory, "replaced")
        print(f"train.resume=false: starting over; the previous checkpoints are in {aside}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"the checkpoint directory {directory} cannot be written "
                          f"({error.strerror}); point checkpoint.dir or paths.checkpoint_dir "
                          "at a writable directory, or set checkpoint.enabled=false") from error
    def new_checkpointer() -> Checkpointer:
        return Checkpointer(directory, run_identity(cfg.resolved),
                            every_epochs=int(cfg.checkpoint.every_epochs),
                            every_seconds=float(cfg.checkpoint.every_seconds),
                            keep=int(cfg.checkpoint.keep), lock=lock,
                            data_fingerprint=data_fingerprint,
                            long_epoch_seconds=float(cfg.train.stop_grace_seconds))

    checkpointer = new_checkpointer()
    try:
        resumed = checkpointer.restore_latest(like) if resume in ("auto", True) else None
    except DataChanged as changed:
        checkpointer.manager.close()  # the lock stays held: the directory is still ours
        change = data_change(changed.saved, data_fingerprint)
        if resume is True:
            raise ConfigError(f"train.resume=true but the checkpoints in {directory} were "
                              f"trained on other data ({change}); set train.resume=auto to "
                              "start over on this data") from None
        aside = set_directory_aside(directory, "data-changed")
        print(f"the data changed since the checkpoints in {directory} were written "
              f"({change}): they are set aside in {aside}, and training starts over",
              file=sys.stderr)
        directory.mkdir(parents=True)
        checkpointer, resumed = new_checkpointer(), None
    if resume is True and resumed is None:
        checkpointer.close()
        raise ConfigError(f"train.resume=true but there is no checkpoint in {directory}")
    if resumed is not None:
        state = "finished" if resumed.meta.get("finished") else "continuing"
        print(f"resumed from epoch {resumed.epoch} ({state}) of {directory}")
    return checkpointer, resumed
