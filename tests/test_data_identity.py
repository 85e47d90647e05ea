"""Data identity: a run never resumes or evaluates a model on data other than its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aerec.checkpoint import checkpoint_dir_of
from aerec.cli import run_task
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.errors import ConfigError, DataError
from aerec.identity import data_fingerprint
from tests.conftest import SHARED_DATA

CUSTOM = ["dataset=custom", "train.epochs=2", "train.batch_size=16", "train.progress=false",
          "model.hidden=16", "model.latent=8", "ranking.enabled=false",
          "checkpoint.every_seconds=0"]


def write_ratings(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def rating_lines() -> list[str]:
    rng = np.random.default_rng(0)
    cells = rng.choice(60 * 40, size=1200, replace=False)
    return [f"{cell // 40 + 1},{cell % 40 + 1},{rng.integers(1, 6)}" for cell in cells]


def test_the_fingerprint_ignores_line_order_and_sees_every_change(compose_config, tmp_path,
                                                                  rating_lines) -> None:
    path = tmp_path / "ratings.csv"
    cfg = compose_config(*CUSTOM, f"dataset.path={path}", fast=False)

    def fingerprint(lines: list[str]) -> str:
        write_ratings(path, lines)
        run = run_config(cfg)
        return data_fingerprint(load_dataset(run.dataset, run.prepare, run.split, tmp_path,
                                             progress=False))

    original = fingerprint(rating_lines)
    assert len(original) == 64
    assert fingerprint(rating_lines[::-1]) == original  # the same ratings, another order
    changed = [*rating_lines[:-1], rating_lines[-1].rsplit(",", 1)[0] + ",9"]
    assert fingerprint(changed) != original
    assert fingerprint(rating_lines[1:]) != original


def test_changed_data_is_trained_afresh_never_resumed(compose_config, tmp_path,
                                                      rating_lines) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv", rating_lines)
    cfg = compose_config(*CUSTOM, f"dataset.path={ratings}", fast=False)
    first = run_task(cfg, tmp_path / "first")
    directory = checkpoint_dir_of(run_config(cfg))
    # the same ratings in another line order are the same data: the finished run is resumed
    write_ratings(ratings, rating_lines[::-1])
    assert run_task(cfg, tmp_path / "reordered")["resumed_from_epoch"] == 2
    # every third rating changed: train.resume=true refuses, auto sets the old checkpoint
    # aside and trains from scratch, as a fresh run on the new data would
    changed = [line if i % 3 else line.rsplit(",", 1)[0] + ",1"
               for i, line in enumerate(rating_lines)]
    write_ratings(ratings, changed)
    with pytest.raises(ConfigError, match="trained on other data"):
        run_task(compose_config(*CUSTOM, f"dataset.path={ratings}", "train.resume=true",
                                fast=False), tmp_path / "refused")
    second = run_task(cfg, tmp_path / "second")
    assert second["resumed_from_epoch"] == 0
    assert second["data_fingerprint"] != first["data_fingerprint"]
    (aside,) = directory.parent.glob(f"{directory.name}.data-changed-*")
    assert (aside / "2").is_dir()
    fresh = run_task(compose_config(*CUSTOM, f"dataset.path={ratings}",
                                    f"checkpoint.dir={tmp_path / 'fresh'}", fast=False),
                     tmp_path / "fresh-run")
    assert second["test_rmse"] == fresh["test_rmse"]
    assert second["valid_rmse"] == fresh["valid_rmse"]
    saved = json.loads((tmp_path / "second" / "model" / "model.json").read_text())
    assert saved["data_fingerprint"] == second["data_fingerprint"]
    assert saved["data_source"] == str(ratings)
    # a checkpoint written before fingerprints were recorded cannot say what it trained on
    meta = directory / "2" / "meta" / "metadata"
    written = json.loads(meta.read_text())
    del written["data_fingerprint"]
    meta.write_text(json.dumps(written))
    assert run_task(cfg, tmp_path / "third")["resumed_from_epoch"] == 0


def test_task_evaluate_names_the_file_whose_ratings_changed(compose_config, tmp_path,
                                                            rating_lines) -> None:
    ratings = write_ratings(tmp_path / "ratings.csv", rating_lines)
    run_task(compose_config(*CUSTOM, f"dataset.path={ratings}", fast=False), tmp_path / "run")
    # the same count of ratings, one value changed: the same users and items, other data
    write_ratings(ratings, [*rating_lines[:-1], rating_lines[-1].rsplit(",", 1)[0] + ",9"])
    evaluate = compose_config(*CUSTOM, f"dataset.path={ratings}", "task=evaluate",
                              f"checkpoint.path={tmp_path / 'run' / 'model'}", fast=False)
    with pytest.raises(DataError, match=f"^{ratings}: these are not the ratings"):
        run_task(evaluate, tmp_path / "evaluate")

    # a hand-edited model.json without its digest: the saved run configuration is checked
    description = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    del description["content_sha256"]
    for edit, message in ((lambda config: config.pop("dataset"), "config.dataset"),
                          (lambda config: config.update(prepare=5), "config: the saved run")):
        edited = json.loads(json.dumps(description))
        edit(edited["config"])
        (tmp_path / "run" / "model" / "model.json").write_text(json.dumps(edited))
        with pytest.raises(DataError, match=message):
            run_task(evaluate, tmp_path / "evaluate")


def test_task_evaluate_reads_the_data_directory_the_model_was_trained_with(
        compose_config, tmp_path, monkeypatch) -> None:
    if not (SHARED_DATA / "ml-latest-small" / "ratings.csv").is_file():
        pytest.skip("shared ml-latest-small not found")
    small = ["dataset=ml-latest-small", "train.epochs=1", "train.progress=false",
             "model.hidden=8", "model.latent=4", "ranking.enabled=false"]
    trained = run_task(compose_config(*small, f"paths.data_dir={SHARED_DATA}", fast=False),
                       tmp_path / "run")
    # elsewhere, with no data directory given: the model's own is read, nothing downloaded
    monkeypatch.setenv("AEREC_DATA_DIR", str(tmp_path / "empty"))
    evaluated = run_task(compose_config(*small, "task=evaluate", "dataset.download=false",
                                        f"checkpoint.path={tmp_path / 'run' / 'model'}",
                                        fast=False), tmp_path / "evaluate")
    assert evaluated["test_rmse"] == pytest.approx(trained["test_rmse"], rel=1e-6)
