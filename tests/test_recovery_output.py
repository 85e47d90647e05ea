"""Recovery events on the console: one line each; library tracebacks go to run.log only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import FAST, ROOT, cli_env


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *FAST, *args], cwd=cwd,
                          env=cli_env(), capture_output=True, text=True, timeout=300)


def test_an_unreadable_checkpoint_is_one_line_and_its_detail_is_in_run_log(tmp_path) -> None:
    checkpoints = tmp_path / "checkpoints"
    common = (f"checkpoint.dir={checkpoints}", "train.epochs=2", "train.patience=100",
              "checkpoint.keep=3")
    first = run_cli(*common, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for path in (checkpoints / "2" / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")  # the arrays of the newest checkpoint damaged
    # a finished run keeps only its last checkpoint: it is trained again from the start
    second = run_cli(*common, f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    console = second.stdout + second.stderr
    assert second.returncode == 0, console
    assert "Traceback" not in console
    unreadable = [line for line in console.splitlines() if "is unreadable" in line]
    assert len(unreadable) == 1 and len(unreadable[0]) < 400, unreadable
    assert len([line for line in console.splitlines() if "set aside" in line]) == 1
    log = (tmp_path / "b" / "run.log").read_text()
    assert "why checkpoint 2" in log and "Traceback" in log  # the detail, for a look later
