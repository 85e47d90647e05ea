"""SIGTERM (preemption): the epoch ends and is saved, within a grace period, else the run ends
from the last checkpoint; real run.py processes and real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aerec.checkpoint import Checkpointer, checkpoint_dir_of
from aerec.cli import run_task
from aerec.config import run_config, validate
from aerec.errors import ConfigError
from aerec.identity import run_identity
from tests.conftest import FAST, ROOT, cli_env
from tests.test_checkpoint import COMPARED, assert_same_arrays, final_arrays

WAIT = 60  # seconds: the longest any step of these tests waits for a child


def start(args: list[str], log: Path) -> subprocess.Popen:
    """Start run.py with `args`; its output goes to `log` (a pipe could fill and block it)."""
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], env=cli_env(),
                                cwd=log.parent, stdout=output, stderr=subprocess.STDOUT)


def wait_for(ready, process: subprocess.Popen) -> None:
    """Wait until `ready()` (at most WAIT s); the process must still be running then."""
    deadline = time.monotonic() + WAIT
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be signalled"
    assert ready(), f"not ready after {WAIT} s"


def ended(process: subprocess.Popen) -> int:
    """The process's exit status, waiting at most WAIT s; it is killed if still running."""
    try:
        return process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def newest_checkpoint(directory: Path) -> int | None:
    """The newest complete checkpoint's epoch (orbax renames it to its number when done)."""
    return max((int(path.name) for path in directory.iterdir() if path.name.isdigit()),
               default=None)


def epochs_logged(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def test_sigterm_stops_after_the_epoch_saved_and_the_run_resumes(compose_config,
                                                                  tmp_path: Path) -> None:
    # Epochs of milliseconds, many of them: the signal lands during the epochs. A save at most
    # every hour: only the one the stop writes can be resumed from.
    overrides = ["train.epochs=100", "train.patience=1000", "checkpoint.every_seconds=3600"]
    ckpt = tmp_path / "ckpt"
    process = start([*FAST, *overrides, f"checkpoint.dir={ckpt}",
                     f"hydra.run.dir={tmp_path / 'cut'}"], tmp_path / "cut.log")
    try:
        wait_for(lambda: epochs_logged(tmp_path / "cut") >= 2, process)
        process.send_signal(signal.SIGTERM)
    finally:
        status = ended(process)
    log = (tmp_path / "cut.log").read_text()
    assert status == 143, log
    assert "Traceback" not in log
    stopped = int(log.split("stopped after epoch ")[1].split(" ")[0])
    assert 2 <= stopped < 100
    assert (f"stopped after epoch {stopped} (SIGTERM): its checkpoint is in {ckpt}: run the "
            "same command again to resume from it") in log
    assert newest_checkpoint(ckpt) == stopped
    # The same configuration again (in this process: the command line's resume is
    # test_checkpoint.py's), and once never interrupted: the same results and arrays.
    resumed = run_task(compose_config(*overrides, f"checkpoint.dir={ckpt}"), tmp_path / "again")
    assert resumed["resumed_from_epoch"] == stopped
    full = run_task(compose_config(*overrides, f"checkpoint.dir={tmp_path / 'full'}"),
                    tmp_path / "full_run")
    assert {key: resumed[key] for key in COMPARED} == {key: full[key] for key in COMPARED}
    assert_same_arrays(final_arrays(tmp_path / "full")[1], final_arrays(ckpt)[1])


@pytest.mark.slow  # a subprocess with a long epoch (12 s)
def test_sigterm_in_a_long_epoch_ends_the_run_within_the_grace(tmp_path: Path) -> None:
    # Epochs of seconds (a wide matrix, one row a step), a grace of half a second: the epoch
    # in progress is given up, and the run ends from the last complete checkpoint, written
    # although checkpoint.every_seconds=3600: an epoch longer than the grace is always saved.
    ckpt, run_dir = tmp_path / "ckpt", tmp_path / "run"
    args = [*FAST, "dataset.n_users=6000", "dataset.n_items=400", "dataset.n_ratings=40000",
            "train.batch_size=1", "model.hidden=256", "model.latent=256", "train.epochs=3",
            "ranking.enabled=false", "checkpoint.every_seconds=3600",
            "train.stop_grace_seconds=0.5", f"checkpoint.dir={ckpt}", f"hydra.run.dir={run_dir}"]
    process = start(args, tmp_path / "run.log")
    try:
        # early in the third epoch (a signal before the loop has asked, just after the second
        # epoch is logged, stops after that one), the first one's checkpoint complete
        wait_for(lambda: epochs_logged(run_dir) >= 2 and (ckpt / "1").is_dir(), process)
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        signalled, logged = time.monotonic(), epochs_logged(run_dir)
    finally:
        status = ended(process)
    seconds = time.monotonic() - signalled
    log = (tmp_path / "run.log").read_text()
    assert status == 143, log
    # ended within the grace (and a margin for a loaded machine), the epoch unfinished
    assert seconds < 0.5 + 2.5, (seconds, log)
    assert epochs_logged(run_dir) == logged == 2
    # the checkpoint it names (epoch 2's, or epoch 1's if the grace ended during epoch 2's
    # save) is the newest complete one, and it restores: 400 rows, one a step
    last = newest_checkpoint(ckpt)
    assert ("interrupted (SIGTERM): the epoch in progress did not end within "
            f"train.stop_grace_seconds=0.5; the last checkpoint, epoch {last}, is in {ckpt}: "
            "run the same command again to resume from it") in log
    assert "Traceback" not in log
    step, arrays = final_arrays(ckpt)
    assert step == last and last in (1, 2)
    assert int(arrays["train"]["step"]) == 400 * last


# A main thread held in C code, as by a computation (hashlib releases the GIL and looks for
# no signal): a Python signal handler would run only when the call returns.
HELD = """
import hashlib, sys
from aerec.interrupt import after_the_epoch, exit_on_sigterm
guard = (after_the_epoch(0.3, kept=lambda: "kept: nothing") if sys.argv[1] == "epochs"
         else exit_on_sigterm(lambda: "kept: nothing"))
with guard:
    print("holding", flush=True)
    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 10**9)
print("not stopped", flush=True)
"""


@pytest.mark.parametrize(("where", "said"), [
    ("epochs", "SIGTERM: stopping once this epoch ends, its checkpoint written if the run keeps "
               "them (if it ends within 0.3 s)\n\ninterrupted (SIGTERM): the epoch in progress "
               "did not end within train.stop_grace_seconds=0.3; kept: nothing"),
    ("outside", "interrupted (SIGTERM): kept: nothing"),
], ids=["during the epochs", "outside them"])
def test_sigterm_is_taken_while_the_main_thread_is_held(where: str, said: str) -> None:
    process = subprocess.Popen([sys.executable, "-c", HELD, where], env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout.readline() == "holding\n"
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        output = process.communicate(timeout=WAIT)[0]
    finally:
        process.kill()
        process.communicate()
    assert time.monotonic() - signalled < 0.3 + 2.5
    assert process.returncode == 143
    assert output.strip() == said


def test_an_epoch_longer_than_the_grace_is_always_saved(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("aerec.checkpoint.time.monotonic", lambda: clock[0])
    checkpointer = Checkpointer(tmp_path / "ckpt", {}, every_epochs=2, every_seconds=3600,
                                long_epoch_seconds=20)
    saved = []
    for epoch, seconds in enumerate([5, 5, 30, 30, 5, 5, 30, 5], start=1):
        clock[0] += seconds
        if checkpointer.should_save(epoch, last_epoch=False, epoch_seconds=seconds):
            saved.append(epoch)
    checkpointer.close()
    assert saved == [4]  # every_epochs still holds: epochs 3 and 7 are odd


def test_the_grace_is_validated_and_not_part_of_the_identity(compose_config) -> None:
    for value, message in (("-1", r"train\.stop_grace_seconds=-1 must be >= 0"),
                           ("soon", r"train\.stop_grace_seconds='soon' must be a number")):
        with pytest.raises(ConfigError, match=message):
            validate(compose_config(f"train.stop_grace_seconds={value}"))
    validate(compose_config("train.stop_grace_seconds=0"))
    assert "train.stop_grace_seconds" not in run_identity(run_config(compose_config()).resolved)
    assert checkpoint_dir_of(run_config(compose_config("train.stop_grace_seconds=5"))) == (
        checkpoint_dir_of(run_config(compose_config())))


@pytest.mark.slow
def test_a_sigterm_to_one_of_two_processes_stops_both_after_the_same_epoch(
        tmp_path: Path) -> None:
    from tests.test_scale import free_port

    port = free_port()
    env = {**cli_env(), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    args = [*FAST, "train.epochs=200", "train.patience=1000", "checkpoint.enabled=false",
            "ranking.enabled=false", "train.mesh=-1", "distributed.enabled=true",
            f"distributed.coordinator=127.0.0.1:{port}", "distributed.processes=2",
            f"hydra.run.dir={tmp_path / 'run'}"]
    processes = []
    for rank in (0, 1):
        with open(tmp_path / f"{rank}.log", "w") as output:
            processes.append(subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), *args, f"distributed.process_id={rank}"],
                env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT))
    try:
        # JAX's preemption service took SIGTERM in its stead, and the run went on to its end
        wait_for(lambda: epochs_logged(tmp_path / "run" / "process-1") >= 2, processes[1])
        processes[1].send_signal(signal.SIGTERM)
    finally:
        statuses = [ended(process) for process in processes]
    logs = [(tmp_path / f"{rank}.log").read_text() for rank in (0, 1)]
    assert statuses == [143, 143], logs
    stops = [log.split("stopped after epoch ")[1].split(" ")[0] for log in logs]
    assert stops[0] == stops[1], logs
    for log in logs:
        assert (f"stopped after epoch {stops[0]} (SIGTERM): nothing to resume from (no "
                "checkpoints for this run): run it again") in log
