"""aerec.Recommender: the command line's configuration from Python, fit on a DataFrame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.api import frame_table, full_key
from aerec.cli import run_task
from aerec.errors import ConfigError, DataError
from tests.conftest import FAST_TRAIN


def ratings_frame(n_users: int = 60, n_items: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(user, int(item) + 1, float(rng.integers(1, 6))) for user in range(1, n_users + 1)
            for item in rng.choice(n_items, 10, replace=False)]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_settings_are_the_command_lines_keys() -> None:
    keys = ["train.epochs", "seed", "split.seed", "dataset.seed", "model.hidden"]
    assert full_key("epochs", keys) == "train.epochs"
    assert full_key("train__epochs", keys) == "train.epochs"
    assert full_key("seed", keys) == "seed"  # a whole key before a last part
    with pytest.raises(ConfigError, match=r"aerec has no key epoch; did you mean train\.epochs"):
        full_key("epoch", keys)
    with pytest.raises(ConfigError, match="no key hiden"):
        aerec.Recommender("popularity", hiden=3)
    with pytest.raises(ConfigError, match=r"train\.epochs"):  # the same check as the CLI's
        aerec.Recommender("popularity", epochs=0)


def test_a_bad_dataframe_is_refused_naming_the_column() -> None:
    frame = ratings_frame()
    with pytest.raises(DataError, match="no 'user' column"):
        frame_table(frame.drop(columns="user"))
    with pytest.raises(DataError, match=r"item column: row 3 holds 2\.5, not a whole number"):
        frame_table(frame.assign(item=frame["item"].astype(float).where(frame.index != 3, 2.5)))
    with pytest.raises(DataError, match="rating column: row 0 holds 'x'"):
        frame_table(frame.astype({"rating": object}).assign(
            rating=["x", *frame["rating"].iloc[1:]]))


def test_fit_on_a_dataframe_is_the_runs_fit(compose_config, tmp_path: Path) -> None:
    frame = ratings_frame()
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, header=False, index=False)
    settings = {"train.epochs": 3, "train.batch_size": 16, "model.hidden": 16,
                "model.latent": 8, "optimizer.learning_rate": 0.01,
                "checkpoint.enabled": False}
    rec = aerec.Recommender("autoencoder", overrides=settings, progress=False).fit(frame)
    run = run_task(compose_config(*FAST_TRAIN, "dataset=custom", f"dataset.path={path}",
                                  *(f"{key}={value}" for key, value in settings.items()),
                                  fast=False), tmp_path / "run")
    for key in ("test_rmse", "ndcg@10", "valid_rmse", "data_fingerprint"):
        assert rec.results[key] == run[key], key
    assert len(rec.recommend(1, k=4)) == 4
    saved = rec.save(tmp_path / "saved")
    again = aerec.load(saved)
    np.testing.assert_allclose(again.predict([1, 2], [3, 3]), rec.predict([1, 2], [3, 3]))
    with pytest.raises(DataError, match="exists"):
        rec.save(saved)
    # held-out rows of an unknown user are counted, not dropped silently
    test = pd.DataFrame({"user": [1, 2, 999], "item": [1, 2, 3], "rating": [5.0, 4.0, 5.0]})
    figures = rec.evaluate(test, k=[5])
    assert figures["n_test_unknown_rows"] == 1 and figures["n_test_unknown_users"] == 1
    assert np.isfinite(figures["test_rmse"])


def test_a_dataframe_without_ratings_is_implicit_feedback(tmp_path: Path) -> None:
    clicks = ratings_frame().drop(columns="rating")
    rec = aerec.Recommender("popularity", progress=False, checkpoint__enabled=False,
                            overrides={"split.kind": "per_user"}).fit(clicks)
    assert rec.results["feedback"] == "implicit" and rec.results["monitor"] == "ndcg@10"
    with pytest.raises(DataError, match="not trained yet"):
        aerec.Recommender("popularity").recommend(1)
