"""Rating scales and degenerate data: an inferred scale is reported (its outliers warned
about), all-equal ratings and too few ratings to split are refused, and every figure missing
from results.json says why."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from aerec.cli import run_task
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.scale import describe_inferred_scale, outlying_ends, rating_distribution
from aerec.data.split import TRAIN, split_roles
from aerec.errors import DataError
from aerec.matrices import data_dir_of
from tests.conftest import FAST_MODEL, FAST_TRAIN, ROOT, cli_env

ONE_TO_FIVE = [1 + (k * 7) % 5 for k in range(60)]  # 12 of each value


def write_ratings(path: Path, ratings: Sequence[float], per_user: int = 10) -> Path:
    """A custom CSV in (user, item) order: `per_user` items a user."""
    path.write_text("".join(f"{1 + k // per_user},{1 + k % per_user},{rating:g}\n"
                            for k, rating in enumerate(ratings)))
    return path


def custom(compose_config, path: Path, *overrides: str, model: Sequence[str] = FAST_MODEL):
    return compose_config(*FAST_TRAIN, *model, "dataset=custom", f"dataset.path={path}",
                          *overrides, fast=False)


def load(cfg):
    run = run_config(cfg)
    return load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths), progress=False)


def run_cli(tmp_path: Path, path: Path, *overrides: str) -> subprocess.CompletedProcess:
    # the popularity model: the quickest to train, and the data is what these runs are about
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *FAST_TRAIN, "model=popularity", "dataset=custom",
         f"dataset.path={path}", "checkpoint.enabled=false", *overrides,
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)


def test_the_outlier_rule() -> None:
    def ends(ratings: list[float]) -> list:
        return outlying_ends(np.asarray(ratings, np.float32))

    assert ends([*ONE_TO_FIVE, 500]) == [("top", 500.0, 1)]
    assert ends([*[96, 97, 98, 99, 100] * 20, 1]) == [("bottom", 1.0, 1)]
    assert ends([*ONE_TO_FIVE, 500, 499]) == [("top", 500.0, 1)]  # two typos: still far
    # Not outliers: a rare end next to the bulk (quartiles 4 and 4, one step away), half
    # stars, an end that is far but common (2% of the ratings), only two values.
    assert ends([1] + [2] * 49 + [3] * 150 + [4] * 600 + [5] * 200) == []
    assert ends([0.5 * k for k in range(1, 11)] * 10) == []
    assert ends([*ONE_TO_FIVE * 2, 500, 500, 500]) == []
    assert ends([1] * 999 + [500]) == []
    assert rating_distribution(np.asarray([*ONE_TO_FIVE, 500])) == (
        "1: 12, 2: 12, 3: 12, 4: 12, 5: 12, 500: 1")
    many = rating_distribution(np.arange(1, 101, dtype=np.float64))
    assert many.startswith("100 distinct values; min 1, 1% ") and many.endswith(", max 100")
    note, warnings = describe_inferred_scale(np.asarray([*ONE_TO_FIVE, 500.0]), "F")
    assert note.startswith("F: rating scale inferred as [1, 500] from the data")
    assert len(warnings) == 1 and "dataset.rating_min=1 dataset.rating_max=5" in warnings[0]


def test_an_outlier_in_an_inferred_scale_is_reported_through_the_cli(tmp_path: Path) -> None:
    path = write_ratings(tmp_path / "ratings.csv", [*ONE_TO_FIVE[:59], 500])
    done = run_cli(tmp_path, path, "ranking.enabled=false")
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert (f"dataset.path={path}: rating scale inferred as [1, 500] from the data "
            "(dataset.rating_min/rating_max not set); 60 ratings: 1: 12, 2: 12, 3: 12, 4: 11, "
            "5: 12, 500: 1") in output
    warning = next(line for line in output.splitlines() if "WARNING" in line)
    assert "the top of the inferred rating scale, 500, is held by 1 of 60 ratings" in warning
    assert "dataset.rating_min=1 dataset.rating_max=5" in warning
    assert "Traceback" not in output


def test_an_explicit_scale_is_used_and_enforced(compose_config, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = write_ratings(tmp_path / "ratings.csv", [*ONE_TO_FIVE[:59], 500])
    with caplog.at_level(logging.INFO), pytest.raises(
            DataError, match=f"^{path}, line 60: rating 500 outside the scale"):
        load(custom(compose_config, path, "dataset.rating_min=1", "dataset.rating_max=5"))
    clean = write_ratings(tmp_path / "clean.csv", ONE_TO_FIVE[:59])
    dataset = load(custom(compose_config, clean, "dataset.rating_min=0.5",
                          "dataset.rating_max=10"))
    assert (dataset.rating_min, dataset.rating_max) == (0.5, 10.0)
    assert not [record for record in caplog.records if "inferred" in record.getMessage()]


def test_ratings_that_are_all_equal_are_refused(compose_config, tmp_path: Path) -> None:
    path = write_ratings(tmp_path / "fives.csv", [5] * 60)
    done = run_cli(tmp_path, path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {path}: all 60 ratings are 5: this looks like "
                                  "implicit feedback")
    assert "at least two distinct rating values" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run" / "results.json").exists()
    # with an explicit scale too: nothing to learn whatever the scale
    clicks = write_ratings(tmp_path / "clicks.csv", [1] * 60)
    with pytest.raises(DataError, match=f"^{clicks}: all 60 ratings are 1"):
        load(custom(compose_config, clicks, "dataset.rating_min=1", "dataset.rating_max=5"))


def test_too_few_ratings_to_split_are_refused(compose_config, tmp_path: Path) -> None:
    path = write_ratings(tmp_path / "one.csv", [4])
    done = run_cli(tmp_path, path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {path}: too few ratings to split: split.kind=ratings split.test_fraction=0.1 "
        "split.valid_fraction=0.05 leave 1 training, 0 validation and 0 test ratings of 1; "
        "training and evaluation need at least one training and one test rating: use more "
        "ratings, or a larger split.test_fraction (it holds out round(test_fraction x "
        "ratings))")
    # four ratings a user: per_user at 0.1 tests only users with five
    four_each = write_ratings(tmp_path / "four.csv", ONE_TO_FIVE[:40], per_user=4)
    with pytest.raises(DataError, match=r"split\.kind=per_user .* 0 test ratings of 40; .* "
                                        "users with 5 ratings or more"):
        load(custom(compose_config, four_each, "split.kind=per_user"))
    # three users: round(0.1 x 3) = 0 held out
    with pytest.raises(DataError, match=r"split\.kind=users .*fold_in_fraction=0\.8 leave "
                                        "28 training, 2 validation, 0 test and 0 fold-in"):
        load(custom(compose_config, write_ratings(tmp_path / "three.csv", ONE_TO_FIVE[:30]),
                    "split.kind=users", "model.orientation=user"))


def check_notes(results_file: Path) -> dict:
    """Every null figure of a results.json has its reason in `notes`, and only those do."""
    results = json.loads(results_file.read_text())
    nulls = {key for key, value in results.items() if value is None}
    assert set(results["notes"]) == nulls, results_file
    for key in nulls:
        assert "unexpected" not in results["notes"][key], (results_file, key)
    return results


def test_every_null_in_results_json_says_why(compose_config, tmp_path: Path) -> None:
    # No validation ratings, and the only 5 (the relevance threshold) in training: no valid
    # RMSE and no ranking figure, but all test figures.
    roles = split_roles(np.zeros(30, np.int64), 1, kind="ratings", test_fraction=0.1,
                        valid_fraction=0.0, fold_in_fraction=0.0, seed=42)
    ratings = [5 if k == np.flatnonzero(roles == TRAIN)[0] else 1 + k % 3 for k in range(30)]
    path = write_ratings(tmp_path / "ratings.csv", ratings)
    overrides = ("split.valid_fraction=0", "ranking.threshold=5", "ranking.k=[2]",
                 "train.epochs=1", "checkpoint.enabled=false")
    popularity = ["model=popularity"]  # the quickest model to fit; the autoencoder below
    run_task(custom(compose_config, path, *overrides, model=popularity), tmp_path / "run")
    results = check_notes(tmp_path / "run" / "results.json")
    assert results["notes"]["valid_rmse"] == (
        "no validation ratings (split.valid_fraction=0 left none): no early stopping, the last "
        "epoch's model is kept")
    assert results["notes"]["ndcg@2"] == ("no user has a test rating >= ranking.threshold=5 "
                                          "(no relevant item to rank)")
    assert results["ranking_users"] == 0 and results["coverage@2"] is not None
    for key in ("test_rmse", "test_mae", "paper_rmse"):
        assert results[key] is not None
    run_task(custom(compose_config, path, "task=evaluate", *overrides,
                    f"checkpoint.path={tmp_path / 'run' / 'model'}", model=popularity),
             tmp_path / "evaluate")
    assert "map@2" in check_notes(tmp_path / "evaluate" / "results.json")["notes"]
    # The least a run needs, one training and one test rating, defines every test figure.
    two = write_ratings(tmp_path / "two.csv", [2, 4])
    results = run_task(custom(compose_config, two, "split.test_fraction=0.5", *overrides[:1],
                              *overrides[3:]), tmp_path / "two")
    assert (results["n_train"], results["n_test"]) == (1, 1)
    assert np.isfinite([results["test_rmse"], results["test_mae"], results["paper_rmse"]]).all()
    assert "valid_rmse" in check_notes(tmp_path / "two" / "results.json")["notes"]
