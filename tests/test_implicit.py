"""Implicit feedback on the data side: click files, ratings turned into interactions by a
threshold, repeated pairs as one interaction, and the errors a user's mistake gets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aerec.config import validate
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.split import TEST, TRAIN, VALID
from aerec.errors import ConfigError, DataError
from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig


def custom(path: Path, **keys: Any) -> DatasetConfig:
    return DatasetConfig(name="custom", path=str(path), **keys)


def load(dataset: DatasetConfig, *, split: SplitConfig | None = None,
         prepare: PrepareConfig | None = None) -> Dataset:
    return load_dataset(dataset, prepare or PrepareConfig(), split or SplitConfig(),
                        Path("."), progress=False)


def clicks(path: Path, users: int = 12, items: int = 9, extra: str = "") -> Path:
    """user,item lines: user u clicked the items (u + k) mod items, k < 6."""
    path.write_text("".join(f"{u},{(u + k) % items}\n" for u in range(users) for k in range(6))
                    + extra)
    return path


def test_a_two_column_click_file_is_read_as_interactions(tmp_path: Path) -> None:
    dataset = load(custom(clicks(tmp_path / "clicks.csv"), feedback="implicit"))
    assert dataset.implicit and (dataset.rating_min, dataset.rating_max) == (1.0, 1.0)
    assert dataset.rating.size == 72 and np.all(dataset.rating == 1.0)
    assert dataset.rating.dtype == np.float32
    assert (dataset.n_users, dataset.n_items) == (12, 9)
    assert dataset.count(TRAIN) + dataset.count(VALID) + dataset.count(TEST) == 72
    assert dataset.accounting == {"n_ratings_read": 72, "n_below_implicit_min_rating": 0,
                                  "n_duplicates_merged": 0, "n_filtered_out": 0}


def test_repeated_pairs_are_one_interaction_and_counted(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # prepare.duplicates=error (the default) is for ratings; a repeated click is one click
    path = clicks(tmp_path / "clicks.csv", extra="0,0\n0,0\n3,4\n")
    with caplog.at_level(logging.INFO, logger="aerec.data.dataset"):
        dataset = load(custom(path, feedback="implicit"))
    assert dataset.rating.size == 72
    assert dataset.accounting["n_duplicates_merged"] == 3
    assert "3 repeated (user, item) pairs merged (one interaction each)" in caplog.text
    # with timestamps: named by dataset.columns, a skipped field between
    timed = tmp_path / "timed.csv"
    timed.write_text("1,5,x,100\n1,5,y,50\n2,5,z,7\n")
    dataset = load(custom(timed, feedback="implicit", columns=("user", "item", "_",
                                                               "timestamp")),
                   split=SplitConfig(test_fraction=0.4))
    assert dataset.rating.size == 2 and dataset.accounting["n_duplicates_merged"] == 1


def test_a_threshold_keeps_the_ratings_at_or_above_it(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rated.csv"
    path.write_text("".join(f"{u},{i},{1 + (u + i) % 5}\n" for u in range(10) for i in range(10)))
    with caplog.at_level(logging.INFO, logger="aerec.data.dataset"):
        dataset = load(custom(path, feedback="implicit", implicit_min_rating=4))
    assert dataset.rating.size == 40 and np.all(dataset.rating == 1.0)
    assert dataset.accounting["n_below_implicit_min_rating"] == 60
    assert ("40 of 100 ratings are >= dataset.implicit_min_rating=4 and become interactions; "
            "60 below it are dropped") in caplog.text
    # without a threshold every rating is an interaction (columns name the rating)
    every = load(custom(path, feedback="implicit", columns=("user", "item", "rating")))
    assert every.rating.size == 100 and every.accounting["n_below_implicit_min_rating"] == 0


def test_interactions_of_an_explicit_dataset(tmp_path: Path) -> None:
    path = tmp_path / "rated.csv"
    path.write_text("".join(f"{u},{i},{1 + (u + i) % 5}\n" for u in range(10) for i in range(10)))
    rated = load(custom(path))
    assert not rated.implicit and rated.rating_max == 5.0
    liked = rated.interactions(4)
    kept = rated.rating >= 4
    assert liked.implicit and (liked.rating_min, liked.rating_max) == (1.0, 1.0)
    np.testing.assert_array_equal(liked.user_index, rated.user_index[kept])
    np.testing.assert_array_equal(liked.item_index, rated.item_index[kept])
    np.testing.assert_array_equal(liked.role, rated.role[kept])
    assert liked.users is rated.users and liked.items is rated.items
    assert np.all(liked.rating == 1.0) and liked.accounting["n_below_implicit_min_rating"] == 60
    every = rated.interactions(None)
    assert every.rating.size == 100 and every.interactions(4) is every  # implicit: as it is
    with pytest.raises(DataError, match=rf"^dataset\.implicit_min_rating=6 is above every "
                                        rf"rating of {path} \(max 5\): no interaction left$"):
        rated.interactions(6)


def test_bad_implicit_input_gets_a_clear_error(tmp_path: Path) -> None:
    rated = tmp_path / "rated.csv"
    rated.write_text("1,1,5\n1,2,3\n2,1,4\n")
    with pytest.raises(DataError, match=rf"^dataset\.implicit_min_rating=6 is above every "
                                        rf"rating of {rated} \(max 5\): no interaction left$"):
        load(custom(rated, feedback="implicit", implicit_min_rating=6))
    # three fields and nothing said about them: user, item, rating or user, item, timestamp?
    with pytest.raises(DataError, match=r"3 fields per line with dataset\.feedback=implicit.*"
                                        r"dataset\.columns=\[user,item,rating\]"):
        load(custom(rated, feedback="implicit"))
    click_file = clicks(tmp_path / "clicks.csv")
    with pytest.raises(DataError, match=rf"^{click_file}: 2 fields \(user, item\) where ratings "
                                        r"need 3 \(user, item, rating\): it looks like implicit "
                                        r"feedback: set dataset\.feedback=implicit$"):
        load(custom(click_file))
    with pytest.raises(DataError, match=r"dataset\.implicit_min_rating=4 needs ratings, but "
                                        f"{click_file} has no rating field"):
        load(custom(click_file, feedback="implicit", implicit_min_rating=4))
    with pytest.raises(ConfigError, match=r"missing: \['rating'\]\); a file without ratings "
                                          r"\(clicks, plays\): dataset\.feedback=implicit"):
        load(custom(click_file, columns=("user", "item")))
    # all-equal ratings read as explicit: refused, pointing at implicit feedback
    ones = tmp_path / "ones.csv"
    ones.write_text("".join(f"{u},{i},1\n" for u in range(5) for i in range(5)))
    with pytest.raises(DataError, match=r"all 25 ratings are 1: .* Set "
                                        r"dataset\.feedback=implicit .*model=ease, multvae"):
        load(custom(ones))
    assert load(custom(ones, feedback="implicit", columns=("user", "item", "rating"))).implicit


@pytest.mark.parametrize(("overrides", "message"), [
    (["dataset.feedback=clicks"], r"dataset\.feedback='clicks' is not valid; choose one of: "
                                  "explicit, implicit"),
    (["dataset.implicit_min_rating=high"], r"dataset\.implicit_min_rating='high' must be a "
                                           "number"),
    (["dataset=custom", "dataset.path=x.csv", "dataset.feedback=implicit",
      "dataset.implicit_min_rating=4", "dataset.columns=[user,item]"],
     r"dataset\.implicit_min_rating=4 needs a rating field, but dataset\.columns=\['user', "
     r"'item'\] names none"),
])
def test_implicit_keys_are_checked(compose_config, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(*overrides, fast="dataset=custom" not in overrides))


def test_implicit_ml1m_keeps_its_scale_check(tmp_path: Path) -> None:
    # a MovieLens release read as implicit: its 1-5 scale still refuses a 7, naming the line
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::1\n1::2::7::2\n")
    with pytest.raises(DataError, match=r"line 2: rating 7 outside the scale"):
        load_dataset(DatasetConfig(name="ml1m", download=False, feedback="implicit"),
                     PrepareConfig(), SplitConfig(), tmp_path, progress=False)
