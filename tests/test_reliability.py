"""Faults and bad input: malformed files (property-based), downloads, training, checkpoints,
concurrent runs, and no code-executing formats."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aerec
from aerec.cli import run_task
from aerec.data.download import download
from aerec.data.parse import read_ratings
from aerec.errors import ConfigError, DataError, DownloadError
from aerec.lock import DirectoryLock
from tests.conftest import FAST, FAST_MODEL, FAST_TRAIN, ROOT, cli_env
from tests.http_server import Served, serve

# Outcomes of the generated files; `AEREC_RELIABILITY_COUNTS=<file> pytest
# tests/test_reliability.py` writes them as JSON (the counts quoted in docs/RELIABILITY.md).
OUTCOMES: Counter[str] = Counter()
MAX_EXAMPLES = 150


@pytest.fixture(scope="module", autouse=True)
def record_outcomes():
    """Write this run's counts when asked (the generated files depend on hypothesis's state,
    which other tests in the same process change, so the command in the docs runs it alone)."""
    yield
    if os.environ.get("AEREC_RELIABILITY_COUNTS"):
        Path(os.environ["AEREC_RELIABILITY_COUNTS"]).write_text(
            json.dumps(dict(sorted(OUTCOMES.items())), indent=2) + "\n")


def test_documented_counts_are_the_recorded_ones() -> None:
    counts = json.loads((ROOT / "docs" / "reliability_counts.json").read_text())
    assert counts["files generated"] == MAX_EXAMPLES
    assert counts["parsed"] + counts["clear errors (DataError naming the file)"] == MAX_EXAMPLES
    row = (f"| {counts['files generated']} | {counts['malformed lines']} | {counts['parsed']} | "
           f"{counts['  ratings parsed, all accounted for']} | "
           f"{counts['clear errors (DataError naming the file)']} | "
           f"{counts['  of which name the offending line']} |")
    assert row in (ROOT / "docs" / "RELIABILITY.md").read_text()


# --- malformed ratings files, generated ------------------------------------------------------

VALID, BLANK = "valid", "blank"
BAD = {
    "few_fields": lambda u, i, r: f"{u}::{i}",
    "many_fields": lambda u, i, r: f"{u}::{i}::{r}::1::9",
    "text_user": lambda u, i, r: f"u{u}::{i}::{r}::1",
    "float_item": lambda u, i, r: f"{u}::{i}.5::{r}::1",
    "text_rating": lambda u, i, r: f"{u}::{i}::good::1",
    "nan_rating": lambda u, i, r: f"{u}::{i}::nan::1",
    "inf_rating": lambda u, i, r: f"{u}::{i}::inf::1",
    "out_of_scale": lambda u, i, r: f"{u}::{i}::{r + 10}::1",
}
LINE = st.tuples(st.sampled_from([VALID] * 6 + [BLANK] + sorted(BAD)),
                 st.integers(1, 9999), st.integers(1, 9999), st.integers(1, 5))


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=12), bom=st.booleans(), crlf=st.booleans(),
       trailing_blank=st.integers(0, 2))
def test_generated_files_parse_exactly_or_fail_clearly(tmp_path: Path, lines, bom: bool,
                                                       crlf: bool, trailing_blank: int) -> None:
    texts = [("" if kind == BLANK else f"{u}::{i}::{r}::7" if kind == VALID
              else BAD[kind](u, i, r)) for kind, u, i, r in lines]
    newline = "\r\n" if crlf else "\n"
    path = tmp_path / "ratings.dat"
    body = newline.join(texts) + newline * (1 + trailing_blank) if texts else ""
    path.write_bytes(("\ufeff" if bom else "").encode() + body.encode("utf-8"))
    valid = [(u, i, r) for kind, u, i, r in lines if kind == VALID]
    malformed = [number for number, (kind, *_) in enumerate(lines, 1)
                 if kind not in (VALID, BLANK)]
    OUTCOMES["files generated"] += 1
    OUTCOMES["malformed lines"] += len(malformed)
    try:
        table = read_ratings(path, sep="::", header=False, rating_range=(1.0, 5.0))
    except DataError as error:
        OUTCOMES["clear errors (DataError naming the file)"] += 1
        OUTCOMES["  of which name the offending line"] += " line " in str(error)
        assert str(path) in str(error)
        assert malformed or not valid  # an error only for a malformed or empty file
        if " line " in str(error):
            named = int(str(error).split(" line ")[1].split(":")[0])
            first = next(kind for kind, *_ in lines if kind != BLANK)
            assert named in malformed or first in ("few_fields", "many_fields"), str(error)
        return
    OUTCOMES["parsed"] += 1
    OUTCOMES["  ratings parsed, all accounted for"] += len(table)
    assert not malformed  # a malformed line is never dropped silently
    assert len(table) == len(valid)  # exact row accounting
    np.testing.assert_array_equal(table["user"], [u for u, _, _ in valid])
    np.testing.assert_array_equal(table["rating"], np.float32([r for *_, r in valid]))


def test_bom_crlf_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "r.dat"
    path.write_bytes(b"\xef\xbb\xbf1::10::5::1\r\n2::20::3::1\r\n\r\n")
    assert list(read_ratings(path, sep="::", header=False)["item"]) == [10, 20]
    latin = tmp_path / "r.csv"
    latin.write_bytes("user,item,rating,comment\n1,2,4,caf\xe9\n".encode("latin-1"))
    table = read_ratings(latin, sep=",", header=True, encoding="latin-1",
                         columns=["user", "item", "rating", "_"])
    assert table["rating"].tolist() == [4.0]
    with pytest.raises(DataError, match="not valid utf-8"):
        read_ratings(latin, sep=",", header=True, columns=["user", "item", "rating", "_"])


def test_duplicates_are_counted_not_dropped_silently(tmp_path: Path, compose_config) -> None:
    path = tmp_path / "r.csv"
    path.write_text("1,1,5\n1,1,3\n2,1,4\n2,2,4\n3,2,2\n3,3,1\n")
    base = ["dataset=custom", f"dataset.path={path}", "dataset.header=false",
            "split.test_fraction=0.2", "ranking.enabled=false", *FAST_TRAIN, *FAST_MODEL]
    with pytest.raises(DataError, match=r"2 ratings share a \(user, item\) pair, e\.g\. user 1 "
                       "item 1; set"):
        run_task(compose_config(*base, fast=False), tmp_path / "error")
    results = run_task(compose_config(*base, "prepare.duplicates=mean", fast=False),
                       tmp_path / "mean")
    assert results["n_ratings_read"] == 6 and results["n_duplicates_merged"] == 1
    assert results["n_filtered_out"] == 0
    assert results["n_train"] + results["n_valid"] + results["n_test"] == 5


def test_ratings_that_are_not_positive_are_refused(tmp_path: Path, compose_config) -> None:
    # 0 marks a missing cell in the rating matrices: a -10..10 scale would lose ratings silently
    path = tmp_path / "jester.csv"
    path.write_text("1,1,5\n1,2,-3.5\n2,1,0\n2,2,4\n")
    cfg = compose_config("dataset=custom", f"dataset.path={path}", "dataset.header=false",
                         *FAST_TRAIN, *FAST_MODEL, fast=False)
    with pytest.raises(DataError, match=r"jester\.csv: 2 ratings are <= 0 \(first: user 1, "
                                        r"item 2, rating -3\.5\)"):
        run_task(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


# --- downloads -------------------------------------------------------------------------------


def test_a_stalled_server_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    with serve(Served(files={"/a.zip": b"x" * 1000}, stall={"/a.zip"})) as served:
        started = time.perf_counter()
        with pytest.raises(DownloadError, match="timed out"):
            download(f"{served.base_url}/a.zip", tmp_path / "a.zip", None, timeout=1.0,
                     progress=False)
        assert time.perf_counter() - started < 20
    assert list(tmp_path.iterdir()) == []


def test_server_errors_are_download_errors(tmp_path: Path) -> None:
    with serve(Served(files={"/broken.zip": b"x"}, fail={"/broken.zip"})) as served:
        for status_path, status in (("/missing.zip", "404"), ("/broken.zip", "500")):
            with pytest.raises(DownloadError, match=f"{status_path}.*{status}"):
                download(served.base_url + status_path, tmp_path / "x.zip", None,
                         progress=False)
    assert list(tmp_path.iterdir()) == []


# --- training and checkpoints ----------------------------------------------------------------


def run_cli(*overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *FAST, *overrides],
                          env=cli_env(), capture_output=True, text=True, timeout=timeout)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    """Two good epochs are checkpointed; resumed on poisoned data, epoch 3 diverges: the run
    stops with TrainingDivergedError and the checkpoint of epoch 2 stays loadable and finite.
    (The CLI's message and exit status: tests/test_cli.py.)"""
    import jax
    import optax

    from aerec.checkpoint import Checkpointer
    from aerec.data.device_rows import DeviceRows
    from aerec.errors import TrainingDivergedError
    from aerec.train import fit, init_state
    from tests.test_train import low_rank_matrix, make

    objective, params = make()
    optimizer = optax.adam(1e-2)
    like = {"train": init_state(params, optimizer, 0), "best_params": params}

    def train(matrix, epochs: int, resumed=None):
        checkpointer = Checkpointer(tmp_path / "ckpt", {"run": "same"})
        try:
            return fit(objective, optimizer, like["train"], DeviceRows(matrix, True),
                       lambda p: 1.0, epochs=epochs, batch_size=8, patience=10, seed=0,
                       progress=False, checkpointer=checkpointer, resumed=resumed)
        finally:
            checkpointer.close()

    def latest():
        checkpointer = Checkpointer(tmp_path / "ckpt", {"run": "same"})
        try:
            return checkpointer.restore_latest(like)
        finally:
            checkpointer.close()

    good = low_rank_matrix()
    assert train(good, epochs=2).epochs_run == 2
    resumed = latest()
    resumed.meta["finished"] = False  # continue to epoch 4, on data that overflows float32
    poisoned = good.copy()
    poisoned.data[:] = 3e38
    with pytest.raises(TrainingDivergedError, match="at epoch 3"):
        train(poisoned, epochs=4, resumed=resumed)
    kept = latest()
    assert kept.epoch == 2
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(kept.arrays))


def test_an_unwritable_checkpoint_directory_fails_before_training(tmp_path: Path) -> None:
    done = run_cli("checkpoint.dir=/proc/aerec-not-writable/run",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 1
    assert ("cannot keep checkpoints in /proc/aerec-not-writable/run: "
            "/proc/aerec-not-writable: ") in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("below", ["run", "a/b/run"])
def test_a_file_in_the_checkpoint_path_is_named(tmp_path: Path, below: str) -> None:
    (tmp_path / "notes").write_text("a file, not a directory")
    with pytest.raises(ConfigError, match=f"cannot keep checkpoints in {tmp_path}/notes/{below}: "
                                          f"{tmp_path}/notes is a file, not a directory"):
        DirectoryLock(tmp_path / "notes" / below)


def test_a_second_run_on_the_same_checkpoints_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    holder = DirectoryLock(directory)  # another run, as far as the child can tell
    try:
        done = run_cli(f"checkpoint.dir={directory}", f"hydra.run.dir={tmp_path / 'run'}")
        assert done.returncode == 1
        assert f"another run (pid {os.getpid()}" in done.stderr
        assert f"is using {directory}" in done.stderr
    finally:
        holder.release()
    assert run_cli(f"checkpoint.dir={directory}",
                   f"hydra.run.dir={tmp_path / 'run2'}").returncode == 0


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    script = ("import sys, time; from pathlib import Path; from aerec.lock import DirectoryLock;"
              " lock = DirectoryLock(Path(sys.argv[1])); print('locked', flush=True);"
              " time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script, str(directory)], env=cli_env(),
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(ConfigError, match="another run"):
        DirectoryLock(directory)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    DirectoryLock(directory).release()  # the OS released the dead run's lock


def test_a_lock_released_by_another_thread_is_free(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path / "checkpoints")  # a run may close its checkpoints elsewhere
    releasing = threading.Thread(target=lock.release)
    releasing.start()
    releasing.join()
    DirectoryLock(tmp_path / "checkpoints").release()


def test_without_os_file_locks_training_imports_and_the_lock_is_refused(tmp_path: Path) -> None:
    # fcntl hidden: as on an OS without it. A soft lock (a file's existence) would outlive a
    # killed run, so the lock is refused instead of faked.
    script = ("import sys; sys.modules['fcntl'] = None; from pathlib import Path;"
              " import aerec.train; from aerec.errors import ConfigError;"
              " from aerec.lock import DirectoryLock\n"
              "try:\n    DirectoryLock(Path(sys.argv[1]))\n"
              "except ConfigError as error:\n    print(error)")
    directory = tmp_path / "checkpoints"
    done = subprocess.run([sys.executable, "-c", script, str(directory)], env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (f"cannot keep checkpoints in {directory}: {tmp_path} is on a filesystem without "
            "file locks") in done.stdout


# --- no code-executing formats ---------------------------------------------------------------


class Exploit:
    """Unpickling this would create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_model_directory_with_a_pickle_is_refused_not_executed(tmp_path: Path,
                                                                 compose_config) -> None:
    run_task(compose_config("ranking.enabled=false"), tmp_path / "run")
    model_dir = tmp_path / "run" / "model"
    marker = tmp_path / "executed"
    arrays = dict(np.load(model_dir / "data.npz"))
    arrays["users"] = np.array([Exploit(marker)], dtype=object)
    with open(model_dir / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(DataError, match=r"data\.npz.*allow_pickle"):
        aerec.load(model_dir)
    assert not marker.exists()
    assert pickle.dumps(Exploit(marker))  # the payload itself is a real pickle exploit


def test_an_unknown_dataset_or_model_lists_the_valid_names(tmp_path: Path) -> None:
    for override, group in (("dataset=ml5m", "dataset"), ("model=knn", "model")):
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), override,
                               f"hydra.run.dir={tmp_path / 'run'}"], env=cli_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 1
        assert f"Available options in '{group}'" in done.stderr
        assert ("ml1m" if group == "dataset" else "autoencoder") in done.stderr


def test_a_full_disk_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 8 KiB fail with EFBIG, as a full disk would. The
    child sets the limit itself, then runs run.py (no fork hook in this JAX process)."""
    limited_run = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, "
                   "signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192)); "
                   "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run(
        [sys.executable, "-c", limited_run, str(ROOT / "run.py"), *FAST,
         "paths.compile_cache_dir=off", f"checkpoint.dir={tmp_path / 'checkpoints'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        env={**cli_env(), "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"error: could not write a checkpoint to {tmp_path / 'checkpoints'}" in done.stderr
    assert "File too large" in done.stderr
    # One line: orbax's and TensorStore's tracebacks (and run.log's own failing writes, on
    # the same full disk) are not printed; the clear message is the last line.
    console = (done.stdout + done.stderr).strip().splitlines()
    assert "Traceback" not in done.stdout + done.stderr and len(console) <= 2, console[:20]
    assert console[-1].startswith("error: could not write a checkpoint")
    # Orbax renames a checkpoint into place only when complete: none is half-visible.
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
