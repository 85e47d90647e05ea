"""Checkpoints: exact resume (also after SIGKILL), mismatches refused, resume modes, fallback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aerec.checkpoint import Checkpointer, checkpoint_dir_of, identity_differences
from aerec.cli import run_task
from aerec.config import run_config, typed_config
from aerec.errors import CheckpointError, ConfigError, TrainingInterrupted
from aerec.identity import TRAINING_FORMAT, run_identity
from tests.conftest import FAST, ROOT, cli_env

COMPARED = ("test_rmse", "test_mae", "paper_rmse", "valid_rmse", "best_epoch", "epochs_run")


def final_arrays(directory: Path):
    """The arrays of the newest checkpoint in `directory`, as numpy."""
    checkpointer = Checkpointer(directory, {})
    step = checkpointer.manager.latest_step()
    restored = checkpointer.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    checkpointer.close()
    return step, jax.tree.map(np.asarray, restored["state"])


def assert_same_arrays(first, second) -> None:
    leaves_a, leaves_b = jax.tree.leaves(first), jax.tree.leaves(second)
    assert len(leaves_a) == len(leaves_b)
    for a, b in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(a, b)


class InterruptError(Exception):
    pass


@pytest.mark.parametrize(("every", "interrupted", "saved", "padded"),
                         [(1, 3, 2, False),
                          # the same path again with other numbers, and padded: pytest -m slow
                          pytest.param(3, 5, 3, False, marks=pytest.mark.slow),
                          pytest.param(1, 3, 2, True, marks=pytest.mark.slow)])
def test_resume_in_process_equals_an_uninterrupted_run(compose_config, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       every: int, interrupted: int,
                                                       saved: int, padded: bool) -> None:
    if padded:  # as an accelerator trains: every width padded to 128 in the step
        monkeypatch.setattr("aerec.accelerate.aligned_width", lambda n: -(-n // 128) * 128)
    overrides = ("train.epochs=6", "train.patience=100", f"checkpoint.every_epochs={every}")
    full = run_task(compose_config(*overrides, f"checkpoint.dir={tmp_path / 'full'}"),
                    tmp_path / "out_full")
    cfg = compose_config(*overrides, f"checkpoint.dir={tmp_path / 'cut'}")

    from aerec.experiment import run_experiment

    def stop(record: dict) -> None:
        if record["epoch"] == interrupted:
            raise InterruptError

    with pytest.raises(InterruptError):
        run_experiment(run_config(cfg), on_epoch=stop)
    resumed = run_task(cfg, tmp_path / "out_cut")
    # interrupted while logging an epoch, before its checkpoint: training resumes after the
    # last epoch saved (every `every` epochs) and repeats the rest
    assert resumed["resumed_from_epoch"] == saved
    assert {key: resumed[key] for key in COMPARED} == {key: full[key] for key in COMPARED}
    lines = (tmp_path / "out_cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]
    step_full, arrays_full = final_arrays(tmp_path / "full")
    step_cut, arrays_cut = final_arrays(tmp_path / "cut")
    assert step_full == step_cut == 6
    assert_same_arrays(arrays_full, arrays_cut)
    # checkpoints hold the model's own widths (122 inputs, 16, 8), never the padded 128
    assert all(128 not in np.shape(leaf) for leaf in jax.tree.leaves(arrays_full))


def test_each_checkpoint_holds_the_history_of_its_own_epoch(tmp_path: Path) -> None:
    # Saves finish in the background while training appends the next epoch to the history it
    # passed to save: each checkpoint must hold the history as it was when save was called.
    checkpointer = Checkpointer(tmp_path / "ckpt", {})
    history: list[dict] = []
    arrays = {"weights": np.ones((256, 256), np.float32)}
    for epoch in range(1, 8):
        history.append({"epoch": epoch})
        checkpointer.save(epoch, arrays, {"history": history}, 1.0 / epoch)
    checkpointer.close()
    reader = Checkpointer(tmp_path / "ckpt", {})
    steps = reader.manager.all_steps()
    saved = {step: reader.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"]["history"] for step in steps}
    reader.close()
    assert steps and all(len(saved[step]) == step for step in steps), saved


@pytest.mark.parametrize("stopping", [(), ("train.epochs=30", "train.patience=1")],
                         ids=["all epochs", "stopped early"])
def test_a_finished_run_is_not_trained_again(compose_config, tmp_path: Path,
                                             stopping: tuple[str, ...]) -> None:
    cfg = compose_config(f"checkpoint.dir={tmp_path / 'ckpt'}", *stopping)
    first = run_task(cfg, tmp_path / "a")
    if stopping:
        assert first["epochs_run"] < 30  # the case is really an early stop
    again = run_task(cfg, tmp_path / "b")
    assert again["resumed_from_epoch"] == first["epochs_run"]
    assert {key: again[key] for key in COMPARED} == {key: first[key] for key in COMPARED}


def test_mismatched_configuration_is_refused(compose_config, tmp_path: Path) -> None:
    directory = f"checkpoint.dir={tmp_path / 'ckpt'}"
    run_task(compose_config(directory), tmp_path / "a")
    for override, key in (("model.layers=2", "model.layers"), ("split.seed=7", "split.seed"),
                          ("dataset.n_users=121", "dataset.n_users")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            run_task(compose_config(directory, override), tmp_path / "b")


def test_resume_modes(compose_config, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    directory = tmp_path / "ckpt"
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_task(compose_config(f"checkpoint.dir={directory}", "train.resume=true"), tmp_path)
    run_task(compose_config(f"checkpoint.dir={directory}"), tmp_path / "a")
    fresh = run_task(compose_config(f"checkpoint.dir={directory}", "train.resume=false"),
                     tmp_path / "b")
    assert fresh["resumed_from_epoch"] == 0
    kept_aside = [path for path in tmp_path.iterdir() if path.name.startswith("ckpt.replaced-")]
    assert len(kept_aside) == 1 and any(kept_aside[0].iterdir())  # moved, not deleted
    assert "starting over" in capsys.readouterr().out


def stop_after(epochs: int):
    """An `interruptible` whose stop is requested from epoch `epochs` on."""

    @contextmanager
    def interruptible():
        seen = [0]

        def stop_requested() -> bool:
            seen[0] += 1
            return seen[0] >= epochs

        yield stop_requested

    return interruptible


def test_corrupt_latest_checkpoint_falls_back(compose_config, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "ckpt"
    cfg = compose_config(f"checkpoint.dir={directory}", "train.epochs=6", "train.patience=100")
    # stopped after epoch 4 of 6 (a finished run keeps only its last checkpoint)
    with pytest.raises(TrainingInterrupted):
        run_task(cfg, tmp_path / "a", interruptible=stop_after(4))
    latest = directory / "4"
    for path in latest.rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")  # every file of the newest checkpoint is damaged
    resumed = run_task(cfg, tmp_path / "b")
    assert resumed["resumed_from_epoch"] == 3
    assert "unreadable" in caplog.text
    # The damaged checkpoint is kept beside the directory, out of the way of epoch 4's save
    # (orbax writes no step at or before its latest): a third run finds epoch 6 finished.
    (aside,) = tmp_path.glob("ckpt.unreadable-*")
    assert (aside / "4").is_dir() and (directory / "6").is_dir()
    assert final_arrays(directory)[0] == 6
    again = run_task(cfg, tmp_path / "c")
    assert again["resumed_from_epoch"] == 6 and again["test_rmse"] == resumed["test_rmse"]


def test_saves_wait_every_seconds_between_them(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("aerec.checkpoint.time.monotonic", lambda: clock[0])
    checkpointer = Checkpointer(tmp_path / "ckpt", {}, every_epochs=2, every_seconds=60)
    saved = []
    for epoch in range(1, 13):  # 25 s an epoch
        clock[0] += 25
        if checkpointer.should_save(epoch, last_epoch=epoch == 12):
            checkpointer.save(epoch, {"weights": np.ones(3, np.float32)}, {}, 1.0)
            saved.append(epoch)
    checkpointer.close()
    # an even epoch at least 60 s after the start or the previous save, and the last one
    assert saved == [4, 8, 12]
    assert Checkpointer(tmp_path / "other", {}).should_save(1, last_epoch=False)  # default 0


def test_a_checkpoint_that_orbax_would_skip_is_an_error(tmp_path: Path) -> None:
    checkpointer = Checkpointer(tmp_path / "ckpt", {})
    arrays = {"weights": np.ones(3, np.float32)}
    checkpointer.save(3, arrays, {}, 1.0)
    with pytest.raises(CheckpointError, match=r"epoch 2 was not written.*holds epoch 3"):
        checkpointer.save(2, arrays, {}, 1.0)
    checkpointer.close()


def test_default_directory_depends_on_the_identity_only(compose_config) -> None:
    def directory(*overrides: str, fast: bool = True) -> Path:
        return checkpoint_dir_of(typed_config(compose_config(*overrides, fast=fast)))

    def identity(*overrides: str, fast: bool = True) -> dict:
        return run_identity(typed_config(compose_config(*overrides, fast=fast)).resolved)

    assert directory() == directory("train.progress=true")
    assert directory() != directory("seed=1")
    assert "train.progress" not in identity()
    # a key added later, at its neutral default, keeps older checkpoints' identity and directory
    assert "train.wide_shards" not in identity()
    assert identity("train.wide_shards=2")["train.wide_shards"] == 2
    # whether the archive may be downloaded changes nothing trained: the same directory, as
    # before this key was left out (it is recorded at its default, true)
    downloads = identity("dataset=ml1m", fast=False)
    assert downloads["dataset.download"] is True
    assert directory("dataset=ml1m", "dataset.download=false", fast=False) == directory(
        "dataset=ml1m", fast=False)
    # a checkpoint saved before, with downloads off, is still this configuration's
    saved = {**downloads, "dataset.download": False}
    assert identity_differences(saved, downloads) == []
    assert identity_differences({**saved, "seed": 7}, downloads) == [
        "seed: 7 -> 0"]


def test_a_change_in_what_training_computes_moves_the_directory(compose_config,
                                                                monkeypatch) -> None:
    # A checkpoint written by code that trained the same configuration differently (older
    # dropout keys, say) is neither resumed nor reported: the training format is identity.
    base = run_config(compose_config())
    assert run_identity(base.resolved)["aerec.training_format"] == TRAINING_FORMAT
    before = checkpoint_dir_of(base)
    monkeypatch.setattr("aerec.identity.TRAINING_FORMAT", TRAINING_FORMAT + 1)
    assert checkpoint_dir_of(base) != before


def run_cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """Start run.py; its output goes to `log` (a pipe could fill up and block the child)."""
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd,
                                env=cli_env(), stdout=output, stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, metrics: Path, epochs_logged: int,
              delay: float, sent: signal.Signals = signal.SIGKILL) -> None:
    """Send `sent` to the process `delay` s after metrics.jsonl reaches `epochs_logged`
    lines."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= epochs_logged:
            time.sleep(delay)
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(sent)
    process.wait()


@pytest.mark.slow  # a subprocess run killed and resumed: 30 s; in-process resume stays fast
def test_sigkill_and_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    # A bigger synthetic matrix so that epochs and saves take long enough to be hit.
    args = [*FAST, "dataset.n_users=600", "dataset.n_items=400", "dataset.n_ratings=40000",
            "model.hidden=256", "model.latent=256", "train.epochs=12", "train.patience=100"]
    full = run_cli(*args, f"checkpoint.dir={tmp_path / 'full'}",
                   f"hydra.run.dir={tmp_path / 'full_run'}", cwd=tmp_path,
                   log=tmp_path / "full.log")
    assert full.wait() == 0, (tmp_path / "full.log").read_text()
    cut_args = [*args, f"checkpoint.dir={tmp_path / 'cut'}"]
    # First kill: in the middle of epoch 3's training. Second kill: right after an epoch is
    # logged, while that epoch's checkpoint is being written.
    for attempt, (epochs_logged, delay) in enumerate(((2, 0.02), (7, 0.0))):
        run_dir = tmp_path / f"cut_run{attempt}"
        process = run_cli(*cut_args, f"hydra.run.dir={run_dir}", cwd=tmp_path,
                          log=tmp_path / f"cut{attempt}.log")
        kill_when(process, run_dir / "metrics.jsonl", epochs_logged, delay)
    final_log = tmp_path / "final.log"
    final = run_cli(*cut_args, f"hydra.run.dir={tmp_path / 'cut_final'}", cwd=tmp_path,
                    log=final_log)
    assert final.wait() == 0, final_log.read_text()
    assert "resumed from epoch" in final_log.read_text()
    expected = json.loads((tmp_path / "full_run" / "results.json").read_text())
    got = json.loads((tmp_path / "cut_final" / "results.json").read_text())
    assert got["resumed_from_epoch"] > 0
    assert {key: got[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}
    assert_same_arrays(final_arrays(tmp_path / "full")[1], final_arrays(tmp_path / "cut")[1])


@pytest.mark.slow  # a subprocess stopped and resumed (20 s): SIGTERM's, the same path, stays fast
def test_ctrl_c_stops_after_the_epoch_saved_and_the_run_resumes(tmp_path: Path) -> None:
    args = [*FAST, "dataset.n_users=600", "dataset.n_items=400", "dataset.n_ratings=40000",
            "model.hidden=256", "model.latent=256", "train.epochs=12", "train.patience=100",
            f"checkpoint.dir={tmp_path / 'ckpt'}", "checkpoint.every_seconds=3600"]
    process = run_cli(*args, f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path,
                      log=tmp_path / "cut.log")
    # a save at most every hour: only the one the stop writes can be resumed from
    kill_when(process, tmp_path / "cut" / "metrics.jsonl", 2, 0.02, signal.SIGINT)
    log = (tmp_path / "cut.log").read_text()
    assert process.returncode == 130, log
    assert "Traceback" not in log
    stopped = int(log.split("stopped after epoch ")[1].split(":")[0])
    assert stopped >= 2
    assert (f"stopped after epoch {stopped}: its checkpoint is in {tmp_path / 'ckpt'}: run the "
            "same command again to resume from it") in log
    final = run_cli(*args, f"hydra.run.dir={tmp_path / 'final'}", cwd=tmp_path,
                    log=tmp_path / "final.log")
    assert final.wait() == 0, (tmp_path / "final.log").read_text()
    assert f"resumed from epoch {stopped}" in (tmp_path / "final.log").read_text()
    full = run_cli(*args[:-2], f"checkpoint.dir={tmp_path / 'full'}",
                   f"hydra.run.dir={tmp_path / 'full_run'}", cwd=tmp_path,
                   log=tmp_path / "full.log")
    assert full.wait() == 0
    expected = json.loads((tmp_path / "full_run" / "results.json").read_text())
    got = json.loads((tmp_path / "final" / "results.json").read_text())
    assert {key: got[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}


def test_a_second_ctrl_c_interrupts_at_once(tmp_path: Path) -> None:
    args = [*FAST, "dataset.n_users=600", "dataset.n_items=400", "dataset.n_ratings=40000",
            "model.hidden=256", "model.latent=256", "train.epochs=12", "train.patience=100",
            f"checkpoint.dir={tmp_path / 'ckpt'}"]
    process = run_cli(*args, f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path,
                      log=tmp_path / "cut.log")
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text()) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    try:  # at once: a KeyboardInterrupt inside orbax's save had the process hang for minutes
        process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
    log = (tmp_path / "cut.log").read_text()
    assert process.returncode == 130, log
    assert "Ctrl-C: stopping once this epoch ends" in log
    # at once: not after the epoch (whether epoch 1's checkpoint was complete by then varies)
    assert "stopped after epoch" not in log and "interrupted: " in log
    assert "Traceback" not in log
