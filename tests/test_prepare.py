"""Preparation (filters, id maps, duplicates) and splits, with property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aerec.data.dataset import load_dataset
from aerec.data.parse import read_ratings
from aerec.data.prepare import (
    IdMap,
    build_id_maps,
    filter_min_counts,
    resolve_duplicates,
    strictly_increasing_pairs,
)
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID, split_roles
from aerec.errors import DataError, UnknownIdError
from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig, section


def table(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    users, items = zip(*pairs, strict=True)
    return pd.DataFrame({"user": users, "item": items,
                         "rating": np.full(len(pairs), 3.0, np.float32)})


def test_filter_items_first_then_users_once() -> None:
    # item 10: 3 ratings (kept), item 20: 2 (dropped), item 30: 3 (kept) with min 3;
    # then user 1 keeps 2 ratings (10, 30), user 2 keeps 2, user 3 keeps 1 -> dropped with min 2.
    # Dropping user 3 leaves item 30 with 2 ratings: a single pass does not revisit items.
    ratings = table([(1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30), (3, 10), (3, 30),
                     (4, 30)])
    ratings = ratings[~((ratings.user == 3) & (ratings.item == 30))]
    kept = filter_min_counts(ratings, min_item_ratings=3, min_user_ratings=2)
    assert sorted(kept["item"].unique()) == [10, 30]
    assert sorted(kept["user"].unique()) == [1, 2]
    assert len(kept) == 4


def test_filter_that_removes_everything_is_an_error() -> None:
    with pytest.raises(DataError, match="min_item_ratings"):
        filter_min_counts(table([(1, 1), (2, 2)]), min_item_ratings=5, min_user_ratings=1)


def test_paper_counts_on_shared_ml1m(shared_ml1m) -> None:
    ratings = read_ratings(shared_ml1m / "ml-1m" / "ratings_notime.dat", sep="::", header=False)
    kept = filter_min_counts(ratings, min_item_ratings=20, min_user_ratings=20)
    assert kept["item"].nunique() == 3043
    assert kept["user"].nunique() == 6022
    assert len(kept) == 995_154


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=200))
def test_id_maps_are_invertible(raw: list[int]) -> None:
    ratings = pd.DataFrame({"user": raw, "item": raw[::-1], "rating": 1.0})
    users, items, user_index, item_index = build_id_maps(ratings)
    np.testing.assert_array_equal(users.raw[user_index], raw)
    np.testing.assert_array_equal(items.raw[item_index], raw[::-1])
    np.testing.assert_array_equal(users.index(raw), user_index)
    assert len(users) == len(set(raw))


def test_unknown_id_is_named() -> None:
    with pytest.raises(KeyError, match="unknown id 7"):
        IdMap(np.array([1, 5, 9])).index([5, 7])


@pytest.mark.parametrize("raw_id", [5.5, "abc", float("nan")])
def test_an_id_that_is_not_a_whole_known_id_is_unknown(raw_id: object) -> None:
    ids = IdMap(np.array([1, 5, 9]))
    assert ids.index([5.0, 9.0]).tolist() == [1, 2]  # whole floats and digit strings are ids
    assert ids.index(["9"]).tolist() == [2]
    with pytest.raises(UnknownIdError, match="unknown id"):
        ids.index([raw_id])
    with pytest.raises(UnknownIdError, match="unknown id"):  # also in an object column
        ids.index(np.array([raw_id], dtype=object))


def test_ids_beyond_two_to_the_53_are_looked_up_exactly() -> None:
    # through float64, 2**53 + 1 became 2**53: another user, or none
    big = np.array([5, 2**53, 2**53 + 1, 2**62 + 3], np.int64)
    ids = IdMap(big)
    assert ids.index([2**53 + 1, 2**62 + 3, 5]).tolist() == [2, 3, 0]
    assert ids.index(np.array([2**53 + 1], np.uint64)).tolist() == [2]
    assert ids.index([str(2**53 + 1)]).tolist() == [2]
    assert ids.index(np.array([2**53 + 1], dtype=object)).tolist() == [2]
    with pytest.raises(UnknownIdError, match=f"unknown id {2**53 + 2}"):
        ids.index([2**53 + 2])
    with pytest.raises(UnknownIdError, match="unknown id"):  # not an int64 at all
        ids.index(np.array([2**64 - 1], np.uint64))
    # mixed objects one by one: the one named is the one that is no id
    with pytest.raises(UnknownIdError, match="unknown id abc"):
        ids.index(np.array([2**53 + 1, "abc"], dtype=object))
    with pytest.raises(UnknownIdError, match="unknown id True"):  # not id 1
        IdMap(np.array([0, 1])).index([True])


def test_the_unknown_id_named_is_the_wrong_one() -> None:
    with pytest.raises(UnknownIdError, match=r"unknown id abc"):
        IdMap(np.array([1, 5, 9])).index([5, "abc"])


def test_duplicate_policies() -> None:
    ratings = pd.DataFrame({"user": [1, 1, 2], "item": [5, 5, 5],
                            "rating": np.float32([2.0, 4.0, 1.0])})
    with pytest.raises(DataError, match=r"prepare\.duplicates"):
        resolve_duplicates(ratings, "error", "f.csv")
    last = resolve_duplicates(ratings, "last", "f.csv")
    assert last.sort_values("user")["rating"].tolist() == [4.0, 1.0]
    mean = resolve_duplicates(ratings, "mean", "f.csv")
    assert mean.sort_values("user")["rating"].tolist() == [3.0, 1.0]


users_strategy = st.lists(st.integers(0, 30), min_size=1, max_size=400)


@settings(max_examples=60, deadline=None)
@given(users=users_strategy, kind=st.sampled_from(["ratings", "per_user", "users"]),
       test=st.floats(0.0, 0.5), valid=st.floats(0.0, 0.5), fold_in=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**31))
def test_splits_are_complete_and_respect_their_kind(users: list[int], kind: str, test: float,
                                                     valid: float, fold_in: float,
                                                     seed: int) -> None:
    user_index = np.asarray(users, np.int32)
    n_users = int(user_index.max()) + 1
    roles = split_roles(user_index, n_users, kind=kind, test_fraction=test,
                        valid_fraction=valid, fold_in_fraction=fold_in, seed=seed)
    assert roles.shape == user_index.shape
    assert set(np.unique(roles)) <= {TRAIN, VALID, TEST, FOLD_IN}
    again = split_roles(user_index, n_users, kind=kind, test_fraction=test,
                        valid_fraction=valid, fold_in_fraction=fold_in, seed=seed)
    np.testing.assert_array_equal(roles, again)  # seeded
    n = user_index.size
    if kind == "ratings":
        assert np.count_nonzero(roles == TEST) == round(test * n)
        assert not np.any(roles == FOLD_IN)
    elif kind == "per_user":
        for user in np.unique(user_index):
            assert np.any(roles[user_index == user] == TRAIN)  # each user keeps one
    else:
        held_out = np.isin(roles, (TEST, FOLD_IN))
        held_users = np.unique(user_index[held_out])
        # a held-out user has no training or validation ratings at all
        assert not np.any(np.isin(user_index[~held_out], held_users))


@pytest.mark.parametrize(("users", "items", "expected"), [
    ([1, 1, 2, 5], [3, 7, 1, 1], True),
    ([1, 1, 2], [3, 3, 1], False),   # a repeated pair
    ([2, 1], [1, 2], False),         # users out of order
    ([1, 1], [7, 3], False),         # items out of order within a user
    ([], [], True), ([4], [4], True),
])
def test_strictly_increasing_pairs(users, items, expected) -> None:
    for dtype in (np.int64, np.uint32):  # unsigned: a step down must not wrap around to "up"
        assert strictly_increasing_pairs(np.array(users, dtype), np.array(items, dtype)) is (
            expected)


def test_id_maps_are_the_sorted_ids_and_their_positions() -> None:
    ratings = pd.DataFrame({"user": [30, 10, 30, 20], "item": [5, 9, 1, 5],
                            "rating": [1.0, 2.0, 3.0, 4.0]})
    users, items, user_index, item_index = build_id_maps(ratings)
    np.testing.assert_array_equal(users.raw, [10, 20, 30])
    np.testing.assert_array_equal(items.raw, [1, 5, 9])
    np.testing.assert_array_equal(user_index, [2, 0, 2, 1])
    np.testing.assert_array_equal(item_index, [1, 2, 0, 1])
    assert user_index.dtype == np.int32 and item_index.dtype == np.int32


def test_an_id_map_refuses_a_missing_id() -> None:
    ratings = pd.DataFrame({"user": [1.0, np.nan], "item": [5.0, 9.0], "rating": [1.0, 2.0]})
    with pytest.raises(DataError, match="without a user or item id"):
        build_id_maps(ratings)


def test_the_split_does_not_depend_on_the_order_of_the_lines(tmp_path) -> None:
    # The same ratings in another line order (ML-1M's official file and a sorted copy) give
    # every rating the same role.
    rng = np.random.default_rng(3)
    cells = rng.choice(50 * 40, size=900, replace=False)
    lines = [f"{cell // 40 + 1},{cell % 40 + 1},{rng.integers(1, 6)}" for cell in cells]
    roles = {}
    for name, order in (("sorted", sorted(lines, key=lambda line: tuple(
            int(field) for field in line.split(",")[:2]))), ("shuffled", lines)):
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(order) + "\n")
        cfg = section(DatasetConfig, {"name": "custom", "path": str(path), "sep": ",",
                                      "header": False, "columns": None, "encoding": "utf-8",
                                      "rating_min": None, "rating_max": None})
        split = section(SplitConfig, {"kind": "per_user", "test_fraction": 0.2,
                                      "valid_fraction": 0.1, "fold_in_fraction": 0.8,
                                      "seed": 1})
        prepare = section(PrepareConfig, {"min_item_ratings": 1, "min_user_ratings": 1,
                                          "duplicates": "error"})
        dataset = load_dataset(cfg, prepare, split, tmp_path, progress=False)
        roles[name] = {(int(dataset.users.raw[u]), int(dataset.items.raw[i])): int(role)
                       for u, i, role in zip(dataset.user_index, dataset.item_index,
                                             dataset.role, strict=True)}
    assert roles["sorted"] == roles["shuffled"]
    assert set(roles["sorted"].values()) == {TRAIN, VALID, TEST}
