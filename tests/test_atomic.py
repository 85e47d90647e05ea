"""Output files appear whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aerec.atomic import atomic_output
from aerec.outputs import write_json_atomic


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"half of the new content")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]


def test_a_finished_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    write_json_atomic(target, {"test_rmse": 0.83, "paper_rmse": float("nan")})
    assert json.loads(target.read_text()) == {"test_rmse": 0.83, "paper_rmse": None}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]
