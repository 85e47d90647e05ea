"""The checkpoint cache: finished runs keep one checkpoint; `python -m aerec.checkpoints`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aerec.checkpoint import checkpoint_dir_of
from aerec.checkpoints import main, parse_age, parse_size
from aerec.cli import run_task
from aerec.config import run_config
from aerec.lock import DirectoryLock
from tests.conftest import ROOT, cli_env


def test_a_finished_run_keeps_only_its_last_checkpoint(compose_config, tmp_path) -> None:
    cfg = compose_config("train.epochs=4", "train.patience=100", "checkpoint.keep=2")
    run_task(cfg, tmp_path / "run")
    directory = checkpoint_dir_of(run_config(cfg))
    assert sorted(path.name for path in directory.iterdir() if path.name.isdigit()) == ["4"]
    again = run_task(cfg, tmp_path / "again")  # all that resuming a finished run needs
    assert again["resumed_from_epoch"] == 4 and again["epochs_run"] == 4


def make_entry(root: Path, name: str, size: int, age_days: float) -> Path:
    directory = root / name
    (directory / "3").mkdir(parents=True)
    (directory / "3" / "data").write_bytes(b"x" * size)
    stamp = time.time() - age_days * 86400
    for path in (directory / "3" / "data", directory / "3", directory):
        os.utime(path, (stamp, stamp))
    return directory


def test_prune_by_age_size_and_set_aside_never_a_directory_in_use(tmp_path, capsys) -> None:
    root = tmp_path / "checkpoints"
    old = make_entry(root, "ml1m-autoencoder-aaaaaaaaaaaa", 3000, age_days=40)
    aside = make_entry(root, "ml1m-autoencoder-bbbbbbbbbbbb.data-changed-20260101-120000", 1000,
                       age_days=2)
    busy = make_entry(root, "ml1m-autoencoder-cccccccccccc", 5000, age_days=50)
    new = make_entry(root, "ml1m-autoencoder-dddddddddddd", 2000, age_days=1)
    assert main(["--root", str(root), "list"]) == 0
    listed = capsys.readouterr().out
    assert "4 directories" in listed and "set aside (data-changed)" in listed
    assert main(["--root", str(root), "prune", "--older-than", "30d", "--dry-run"]) == 0
    assert old.exists() and "would remove 2 directories" in capsys.readouterr().out
    lock = DirectoryLock(busy)  # a training run holds it: never removed
    try:
        assert main(["--root", str(root), "prune", "--older-than", "30d"]) == 0
    finally:
        lock.release()
    out = capsys.readouterr().out
    assert not old.exists() and busy.exists() and "kept ml1m-autoencoder-cccccccccccc" in out
    assert main(["--root", str(root), "prune", "--set-aside"]) == 0
    assert not aside.exists() and new.exists()
    # the oldest go first until the rest fits
    assert main(["--root", str(root), "prune", "--max-size", "4K"]) == 0
    assert not busy.exists() and new.exists()
    assert not list(root.glob("*.lock*"))  # its lock file went with it, the owner's on release


def test_bad_prune_arguments_are_one_clear_line(tmp_path) -> None:
    for args, message in ((["prune"], "prune needs --older-than, --max-size or --set-aside"),
                          (["prune", "--older-than", "3x"], "'3x' is not an age"),
                          (["prune", "--max-size", "lots"], "'lots' is not a size")):
        done = subprocess.run([sys.executable, "-m", "aerec.checkpoints", "--root",
                               str(tmp_path), *args], cwd=ROOT, env=cli_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr
        assert "Traceback" not in done.stderr
    (tmp_path / "file").write_text("")
    assert main(["--root", str(tmp_path / "file"), "list"]) == 1


@pytest.mark.parametrize(("text", "value"), [("500M", 500 << 20), ("2G", 2 << 30),
                                             ("1.5k", 1536), ("1000", 1000)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_ages() -> None:
    assert parse_age("30d") == 30 * 86400 and parse_age("12h") == 43200


def test_directories_training_did_not_name_are_never_touched(tmp_path, capsys) -> None:
    # a root shared with other files (paths.checkpoint_dir pointed at a project folder)
    root = tmp_path / "checkpoints"
    mine = make_entry(root, "ml1m-autoencoder-aaaaaaaaaaaa", 1000, age_days=40)
    foreign = [make_entry(root, name, 1000, age_days=40)
               for name in ("my_thesis", ".git", "ml1m-autoencoder-notahash")]
    assert main(["--root", str(root), "prune", "--older-than", "1d", "--max-size", "0"]) == 0
    assert not mine.exists() and all(path.exists() for path in foreign)
    assert main(["--root", str(root), "list"]) == 0
    assert "0 directories" in capsys.readouterr().out
