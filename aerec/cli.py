"""The command line behind run.py: validate, run, print and write the results."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from aerec.atomic import temporary_sibling
from aerec.config import refuse_added_keys, run_config, typed_config
from aerec.errors import AerecError, TrainingInterrupted
from aerec.interrupt import (
    Interruptible,
    after_the_epoch,
    exit_on_ctrl_c,
    exit_on_sigterm,
    never,
)
from aerec.logs import brief, route_library_logs
from aerec.outputs import (
    EpochLog,
    format_table,
    plot_learning_curve,
    write_config,
    write_id_maps,
    write_json_atomic,
)
from aerec.recommend import format_recommendations, recommend
from aerec.run_config import LoggerConfig
from aerec.search import objective, worst
from aerec.tracking import tracking


def quiet_library_logging() -> None:
    """For the command line only (importing aerec changes no logging)."""
    # Hydra's job logging shows INFO records; JAX's note that it found no TPU is not news.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    # orbax reports every step of every save through absl at INFO level: progress, not news.
    logging.getLogger("absl").setLevel(logging.WARNING)
    route_library_logs()  # library records and tracebacks: run.log only


def quote_ratings_argument(argv: list[str]) -> list[str]:
    """Quote a `ratings=1193:5,661:3` override, which Hydra would otherwise read as a sweep
    over three values; the shell has already removed any quotes the user typed."""
    quoted = []
    for argument in argv:
        key, _, value = argument.partition("=")
        if key == "ratings" and "," in value and value[:1] not in ("'", '"', "["):
            argument = f"ratings='{value}'"
        quoted.append(argument)
    return quoted


def enable_compile_cache(directory: str | None) -> None:
    """JAX's persistent compilation cache: a repeated run (same shapes) skips compilation.

    `paths.compile_cache_dir`: null for the per-user cache directory, "off" to disable.
    """
    if directory == "off":
        return
    import jax
    import platformdirs

    path = Path(directory).expanduser() if directory else Path(
        platformdirs.user_cache_dir("aerec")) / "jax-cache"
    try:  # JAX would warn about every program it could not write; one note instead
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as error:
        print(f"warning: paths.compile_cache_dir={path} cannot be used ({error}); compiling "
              "without the persistent cache (paths.compile_cache_dir=off silences this)",
              file=sys.stderr)
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Every program is kept, however quickly it compiled (JAX's default keeps only those of a
    # second or more): a run compiles dozens of small ones, and a fresh process loads them
    # faster than it compiles them. Each entry takes a few kilobytes.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def init_distributed(dist_cfg: Any) -> None:
    """jax.distributed.initialize for multi-process runs (before any other JAX call)."""
    if not dist_cfg.enabled:
        return
    import jax

    # CPU processes exchange gradients through gloo; GPUs and TPUs use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # SIGTERM is aerec's (aerec.interrupt): JAX's preemption service would put its own handler
    # in place of it, which takes the signal and does nothing else (the run went on to SIGKILL).
    jax.config.update("jax_enable_preemption_service", False)
    jax.distributed.initialize(coordinator_address=dist_cfg.coordinator,
                               num_processes=dist_cfg.processes, process_id=dist_cfg.process_id)


def run_task(cfg: Any, output_dir: Path, interruptible: Interruptible = never
             ) -> dict[str, Any]:
    """Validate the composed `cfg`, run its task, write config/metrics/results into
    `output_dir`; `interruptible`: how training learns of a requested stop (`aerec.interrupt`).
    The composed tree ends here: what runs below reads its typed `RunConfig`."""
    from aerec.evaluation import evaluate_artifact  # these import JAX: keep --help fast
    from aerec.experiment import run_experiment

    run = run_config(cfg)
    logger = run.logger
    if run.distributed.enabled:
        import jax

        if jax.process_index() > 0:  # process 0 writes the run directory; the others a subfolder
            output_dir = output_dir / f"process-{jax.process_index()}"
            logger = LoggerConfig()  # and process 0 alone reports to the tracker
    output_dir.mkdir(parents=True, exist_ok=True)
    write_config(OmegaConf.to_yaml(cfg, resolve=True), output_dir)
    if run.task == "evaluate":
        results = evaluate_artifact(run)
        write_json_atomic(output_dir / "results.json", {"status": "ok", **results})
        return results
    if run.task == "recommend":
        assert run.checkpoint.path is not None  # checked: task=recommend needs it
        payload = recommend(run.checkpoint.path, run.request,
                            chunk_users=run.ranking.chunk_users, progress=run.train.progress)
        write_json_atomic(output_dir / "recommendations.json", payload)
        return payload
    epoch_log = EpochLog(output_dir / "metrics.jsonl")
    with tracking(logger, run.resolved, output_dir) as tracker:  # closed on failure too

        def on_epoch(record: dict[str, float]) -> None:
            epoch_log(record)
            tracker.log_epoch(record)

        results, dataset = run_experiment(run, on_epoch=on_epoch,
                                          artifact_dir=output_dir / "model",
                                          interruptible=interruptible)
        history = results.pop("history")
        write_id_maps(dataset, output_dir / "id_maps.npz")
        write_json_atomic(output_dir / "results.json", {"status": "ok", **results})
        if history:
            plot_learning_curve(history, output_dir / "learning_curve.png")
        tracker.finish({"status": "ok", **results})
    return results


def after_interrupt(cfg: Any, saved_now: bool = False) -> str:
    """What an interrupted run left, and how to go on from it (`saved_now`: a checkpoint of
    the last epoch was written on the way out); an output file of task=recommend being
    written is removed (it is renamed into place only once whole)."""
    if cfg.task == "recommend" and isinstance(cfg.get("output"), str):
        # the partial file of a list being written (the exit leaves no `finally` to run)
        temporary_sibling(Path(cfg.output)).unlink(missing_ok=True)
        return f"output={cfg.output} was not written"
    if cfg.task != "train":
        return "nothing was written"
    if not checkpointed(cfg):
        return "nothing to resume from (no checkpoints for this run): run it again"
    from aerec.checkpoint import checkpoint_dir_of

    # the stop may come before the configuration was checked: read as it is
    directory = checkpoint_dir_of(typed_config(cfg))
    if saved_now:
        return (f"its checkpoint is in {directory}: run the same command again to resume "
                "from it")
    last = last_checkpoint(directory)
    if last is None:
        return "no checkpoint was written yet: run the same command again to start over"
    return (f"the last checkpoint, epoch {last}, is in {directory}: run the same command "
            "again to resume from it")


def checkpointed(cfg: Any) -> bool:
    """Whether the run writes checkpoints: they are on, and its model is trained in epochs
    (a stop may come before the configuration was checked: an unknown model has none)."""
    from aerec.models.registry import find_family

    family = find_family(cfg.model.name)
    return family is not None and family.iterative and bool(cfg.checkpoint.enabled)


def last_checkpoint(directory: Path) -> int | None:
    """The newest epoch whose checkpoint is complete in `directory`, if any: orbax names each
    by its number once complete (it writes into `<epoch>.orbax-checkpoint-tmp-...`)."""
    epochs = [int(path.name) for path in directory.iterdir()
              if path.name.isdigit()] if directory.is_dir() else []
    return max(epochs, default=None)


def log_traceback(error: BaseException, output_dir: Path) -> Path:
    """Append `error` with its traceback to the run's log file, and to no console; return the
    file. Hydra's job logging writes `<run dir>/<job name>.log` (run.log for run.py); without
    it, `output_dir/run.log`. Raises OSError if the file cannot be written."""
    files = [handler for handler in logging.getLogger().handlers
             if isinstance(handler, logging.FileHandler)]
    path = Path(files[0].baseFilename) if files else output_dir / "run.log"
    formatter = (files[0].formatter if files else None) or logging.Formatter(
        "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, "internal error", None,
                               (type(error), error, error.__traceback__))
    # Written beside the handler, not through it: the root's other handlers print to the
    # console, and a handler that cannot write prints its own traceback.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(formatter.format(record) + "\n")
    return path


def internal_error(error: Exception, output_dir: Path) -> str:
    """The one line an unexpected exception gets: its type, the first line of its message,
    and where its traceback was written."""
    try:
        where = f"full traceback in {log_traceback(error, output_dir)}"
    except OSError as failure:
        where = f"its traceback could not be written: {failure}"
    return f"internal error: {brief(error)} ({where})"


def job_failed(message: str, output_dir: Path, in_sweep: bool, monitor: str = "rmse") -> float:
    """Print the error line; a single run exits 1 at once. A sweep's job records the failure
    in its results.json and returns the worst value of its `monitor` (`aerec.search.worst`),
    so that the sweep goes on (aerec.hydra_callbacks.FailedJobs exits 1 after the last job)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    if not in_sweep:
        sys.exit(1)
    try:
        write_json_atomic(output_dir / "results.json", {"status": "failed", "error": message})
    except OSError as error:
        print(f"warning: could not write {output_dir / 'results.json'}: {error}",
              file=sys.stderr)
    return worst(monitor)


def main(cfg: Any, output_dir: Path, overrides: Sequence[str] = (), in_sweep: bool = False
         ) -> float:
    """Entry point for Hydra: prints the results table; exits 1 with a message on user error
    (`in_sweep`, a job of `-m`: records the failure and returns +inf instead).

    Returns the validation RMSE, so that a Hydra sweeper tunes on validation ratings, never
    on the test ratings (NaN without validation ratings).
    """
    quiet_library_logging()
    # The first Ctrl-C or SIGTERM during the epochs stops after the epoch, saved; at other
    # times (from here on: jax.distributed may wait minutes for its peers), or a second one,
    # the process ends at once with a note on what was kept.
    kept = partial(after_interrupt, cfg)
    with exit_on_ctrl_c(kept), exit_on_sigterm(kept):
        return _main(cfg, output_dir, overrides, in_sweep, kept)


def _main(cfg: Any, output_dir: Path, overrides: Sequence[str], in_sweep: bool,
          kept: Callable[..., str]) -> float:
    """`main` within its Ctrl-C guard; `kept`: what a stop leaves, for its message."""
    try:
        refuse_added_keys(overrides, cfg)
        enable_compile_cache(cfg.paths.get("compile_cache_dir"))
        init_distributed(cfg.distributed)
        # read when the epochs begin: the configuration is validated by then
        results = run_task(cfg, output_dir, interruptible=lambda: after_the_epoch(
            float(cfg.train.stop_grace_seconds), kept=kept))
    except AerecError as error:
        return job_failed(str(error), output_dir, in_sweep, str(cfg.train.get("monitor")))
    except TrainingInterrupted as stop:
        signum = stop.signum or signal.SIGINT  # 128 + its number, as if the signal ended it
        by = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        print(f"stopped after epoch {stop.epoch}{by}: {after_interrupt(cfg, stop.saved)}",
              file=sys.stderr)
        sys.exit(128 + signum)
    except Exception as error:  # a bug, not the user's: one line, the traceback in the log
        return job_failed(internal_error(error, output_dir), output_dir, in_sweep,
                          str(cfg.train.get("monitor")))
    if cfg.task == "recommend":
        # JSON goes alone to stdout so that scripts can parse it; notes go to stderr.
        print(json.dumps(results, indent=2) if cfg.format == "json"
              else format_recommendations(results), flush=True)
        print(f"recommendations written to {output_dir}", file=sys.stderr)
        return float("nan")
    print(format_table(results))
    print(f"results written to {output_dir}")
    # the monitored validation figure, for a sweeper (minimise RMSE, maximise ranking figures)
    return objective(results, str(results.get("monitor", "rmse")))
