"""The protocols' splits and filters: RecBole's per-user random split with its rounding,
Liang et al.'s held-out users, and minimum counts repeated to a fixed point."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aerec.config import validate
from aerec.data.dataset import load_dataset
from aerec.data.prepare import filter_min_counts
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID, recbole_counts, split_roles
from aerec.errors import ConfigError, DataError
from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig


def test_recbole_rounding_by_hand() -> None:
    # RecBole's _calcu_split_ids for [0.8, 0.1, 0.1]: int(0.1 n) each; a part below one
    # interaction gets one (test first) while training keeps more than one.
    counts = np.array([1, 2, 3, 9, 10, 19, 20, 25])
    valid, test = recbole_counts(counts, 0.1, 0.1)
    assert valid.tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert test.tolist() == [0, 1, 1, 1, 1, 1, 2, 2]
    # [0.7, 0.1, 0.2]: n=4: shares 0.4 and 0.8 -> one each; n=5: test int(1.0) = 1, valid 1
    valid, test = recbole_counts(np.array([4, 5, 10, 11]), 0.1, 0.2)
    assert valid.tolist() == [1, 1, 1, 1] and test.tolist() == [1, 1, 2, 2]
    assert recbole_counts(np.array([2, 7]), 0.0, 0.1)[0].tolist() == [0, 0]  # no validation


def test_recbole_split_follows_the_counts_per_user() -> None:
    counts = [1, 2, 3, 9, 10, 19, 20, 25]
    user_index = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    roles = split_roles(user_index, len(counts), kind="recbole", test_fraction=0.1,
                        valid_fraction=0.1, fold_in_fraction=0.8, seed=3)
    valid, test = recbole_counts(np.array(counts), 0.1, 0.1)
    for user in range(len(counts)):
        mine = roles[user_index == user]
        assert np.count_nonzero(mine == VALID) == valid[user]
        assert np.count_nonzero(mine == TEST) == test[user]
        assert np.count_nonzero(mine == TRAIN) == counts[user] - valid[user] - test[user]
    other = split_roles(user_index, len(counts), kind="recbole", test_fraction=0.1,
                        valid_fraction=0.1, fold_in_fraction=0.8, seed=4)
    assert not np.array_equal(roles, other)  # a random order, seeded


def heldout_ratings() -> tuple[np.ndarray, np.ndarray]:
    """40 users, user u: 10 of 20 shared items, plus item 100 + u that no one else has
    (users 0-4 have 3 shared items only, fewer than 5 interactions)."""
    users, items = [], []
    for user in range(40):
        shared = [(user + k) % 20 for k in range(3 if user < 5 else 10)]
        for item in sorted([*shared, 100 + user]):
            users.append(user)
            items.append(item)
    return np.array(users, np.int32), np.array(items, np.int32)


def test_heldout_users_are_disjoint_and_drop_their_own_items() -> None:
    user_index, item_index = heldout_ratings()
    roles = split_roles(user_index, 40, kind="heldout_users", test_fraction=0.1,
                        valid_fraction=0.1, fold_in_fraction=0.8, seed=0,
                        item_index=item_index, heldout_users=6)
    dropped = roles < 0
    valid_users = set(user_index[roles == VALID]) | set(user_index[(roles == FOLD_IN)])
    test_users = set(user_index[roles == TEST])
    train_users = set(user_index[roles == TRAIN])
    held = set(user_index[np.isin(roles, (VALID, TEST, FOLD_IN))])
    assert len(held) == 12 and not held & train_users and not test_users & set(
        user_index[roles == VALID])
    assert len(train_users) == 28 and train_users | held == set(range(40))
    assert valid_users >= set(user_index[roles == VALID])
    # each held-out user's own item (100 + u) is dropped, nothing else
    np.testing.assert_array_equal(np.sort(item_index[dropped]),
                                  sorted(100 + user for user in held))
    for user in held:
        mine = roles[(user_index == user) & ~dropped]
        n = mine.size
        targets = np.count_nonzero(np.isin(mine, (VALID, TEST)))
        assert targets == (int(0.2 * n) if n >= 5 else 0)  # Liang: int(0.2 n), n >= 5
        assert np.count_nonzero(mine == FOLD_IN) == n - targets
        assert len(set(mine[mine != FOLD_IN])) <= 1  # a user is validation or test, not both


def test_heldout_users_through_the_loader(tmp_path: Path) -> None:
    user_index, item_index = heldout_ratings()
    path = tmp_path / "clicks.csv"
    pd.DataFrame({"u": user_index + 1, "i": item_index + 1}).to_csv(path, header=False,
                                                                    index=False)
    dataset = load_dataset(DatasetConfig(name="custom", path=str(path), feedback="implicit"),
                           PrepareConfig(), SplitConfig(kind="heldout_users", heldout_users=6),
                           tmp_path, progress=False)
    assert dataset.accounting["n_heldout_only_items"] == 12
    assert dataset.accounting["n_heldout_only_interactions"] == 12
    assert dataset.n_items == 20 + 28 and dataset.n_users == 40
    assert dataset.rating.size == user_index.size - 12
    # every item left is a training user's
    trained = set(dataset.item_index[dataset.role == TRAIN])
    assert set(dataset.item_index) == trained
    with pytest.raises(DataError, match=r"split\.heldout_users=20 holds out 40 users .* "
                                        "there are 40: at least one must train"):
        load_dataset(DatasetConfig(name="custom", path=str(path), feedback="implicit"),
                     PrepareConfig(), SplitConfig(kind="heldout_users", heldout_users=20),
                     tmp_path, progress=False)


def test_repeated_filters_reach_a_fixed_point() -> None:
    # users 0-1 x items 0-1 are a (2, 2) core. Items first: item 3 (one rating) goes, then
    # user 3 (left with one); that leaves item 2 with one rating, which one pass keeps.
    core = [(0, 0), (0, 1), (1, 0), (1, 1)]
    chain = [(2, 1), (2, 2), (3, 2), (3, 3)]
    table = pd.DataFrame(core + chain, columns=["user", "item"]).assign(rating=1.0)
    once = filter_min_counts(table, 2, 2)
    assert sorted(map(tuple, once[["user", "item"]].to_numpy().tolist())) == [
        *core, (2, 1), (2, 2)]
    stable = filter_min_counts(table, 2, 2, repeat=True)
    assert sorted(map(tuple, stable[["user", "item"]].to_numpy().tolist())) == core
    assert len(filter_min_counts(stable, 2, 2)) == len(stable)  # a fixed point
    with pytest.raises(DataError, match=r"repeated until stable: prepare\.repeat_filters=true"):
        filter_min_counts(table, 3, 3, repeat=True)


@pytest.mark.parametrize(("overrides", "message"), [
    (["split.kind=recbole", "split.valid_fraction=0.5", "split.test_fraction=0.5"],
     r"split\.kind=recbole: split\.valid_fraction=0\.5 plus split\.test_fraction=0\.5 must "
     "be below 1"),
    (["split.kind=heldout_users", "split.heldout_users=0", "model.orientation=user"],
     r"split\.heldout_users=0 must be an integer >= 1"),
    (["split.kind=heldout_users", "model.orientation=item"],
     r"split\.kind=heldout_users holds users out whole"),
    (["prepare.repeat_filters=sometimes"], r"prepare\.repeat_filters='sometimes' must be true "
                                           "or false"),
])
def test_split_keys_are_checked(compose_config, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(*overrides))


@pytest.mark.parametrize(("kind", "digest"), [
    ("ratings", "9f7317351bba6ec7"), ("per_user", "190daffaeb1dbd86"),
    ("users", "d5a2eedd2c5b306f")])
def test_the_earlier_splits_draw_as_before(kind: str, digest: str) -> None:
    # the roles the kinds gave before recbole and heldout_users were added (seed 42)
    user_index = np.repeat(np.arange(50), 20).astype(np.int32)
    roles = split_roles(user_index, 50, kind=kind, test_fraction=0.1,
                        valid_fraction=0.05, fold_in_fraction=0.8, seed=42)
    assert hashlib.sha256(roles.tobytes()).hexdigest()[:16] == digest
