"""Seeded train / validation / test splits; every rating gets exactly one role."""

from __future__ import annotations

import math

import numpy as np

from aerec.errors import ConfigError, DataError

TRAIN, VALID, TEST, FOLD_IN = 0, 1, 2, 3
# Not a role of the dataset: a row the split removes (split.kind=heldout_users drops the
# interactions with items that no training user has); the loader drops these rows.
DROPPED = -1
SPLIT_KINDS = ("ratings", "per_user", "users", "recbole", "heldout_users")
# Liang et al. (2018) hold out targets only of users with at least this many interactions.
MIN_TARGET_USER_INTERACTIONS = 5


def split_roles(user_index: np.ndarray, n_users: int, *, kind: str, test_fraction: float,
                valid_fraction: float, fold_in_fraction: float, seed: int,
                item_index: np.ndarray | None = None, heldout_users: int | None = None
                ) -> np.ndarray:
    """Role of each rating (TRAIN, VALID, TEST or FOLD_IN; DROPPED), as an int8 array.

    - `ratings`: a random `test_fraction` of all ratings is TEST, then a random
      `valid_fraction` of the rest is VALID (the standard protocol).
    - `per_user`: the same fractions taken within each user's ratings (at least one rating of
      each user stays in training).
    - `users`: a random `test_fraction` of users is held out whole: a `fold_in_fraction` of each
      one's ratings is FOLD_IN (given as input at test time, never trained on), the rest TEST.
      VALID is a random `valid_fraction` of the other users' ratings.
    - `recbole`: RecBole's random split by user: `valid_fraction` and `test_fraction` of each
      user's interactions, both fractions of all of them, rounded as RecBole does
      (`recbole_counts`).
    - `heldout_users`: Liang et al.'s strong generalisation (`_heldout_users`); needs
      `item_index`, and marks rows DROPPED.
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split.kind={kind!r}; valid: {', '.join(SPLIT_KINDS)}")
    for key, value in (("split.test_fraction", test_fraction),
                       ("split.valid_fraction", valid_fraction),
                       ("split.fold_in_fraction", fold_in_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}={value} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    if kind == "ratings":
        return _by_ratings(user_index.size, test_fraction, valid_fraction, rng)
    if kind == "per_user":
        return _per_user(user_index, n_users, test_fraction, valid_fraction, rng)
    if kind == "users":
        return _users(user_index, n_users, test_fraction, valid_fraction, fold_in_fraction, rng)
    if kind == "recbole":
        return _recbole(user_index, n_users, test_fraction, valid_fraction, rng)
    if item_index is None:
        raise ValueError("split.kind=heldout_users needs the items (item_index)")
    held = round(test_fraction * n_users) if heldout_users is None else int(heldout_users)
    return _heldout_users(user_index, item_index, n_users, held, fold_in_fraction, rng)


def _by_ratings(n: int, test_fraction: float, valid_fraction: float,
                rng: np.random.Generator) -> np.ndarray:
    roles = np.full(n, TRAIN, dtype=np.int8)
    order = rng.permutation(n)
    n_test = round(test_fraction * n)
    n_valid = round(valid_fraction * (n - n_test))
    roles[order[:n_test]] = TEST
    roles[order[n_test:n_test + n_valid]] = VALID
    return roles


def _per_user(user_index: np.ndarray, n_users: int, test_fraction: float,
              valid_fraction: float, rng: np.random.Generator) -> np.ndarray:
    roles = np.full(user_index.size, TRAIN, dtype=np.int8)
    rank, count = _rank_within_user(user_index, n_users, rng)
    n_test = np.floor(test_fraction * count + 0.5).astype(np.int64)
    n_test = np.minimum(n_test, count - 1)
    n_valid = np.floor(valid_fraction * (count - n_test) + 0.5).astype(np.int64)
    n_valid = np.minimum(n_valid, count - n_test - 1)
    roles[rank < n_test[user_index]] = TEST
    roles[(rank >= n_test[user_index]) & (rank < (n_test + n_valid)[user_index])] = VALID
    return roles


def _users(user_index: np.ndarray, n_users: int, test_fraction: float, valid_fraction: float,
           fold_in_fraction: float, rng: np.random.Generator) -> np.ndarray:
    roles = np.full(user_index.size, TRAIN, dtype=np.int8)
    held_out = np.zeros(n_users, dtype=bool)
    held_out[rng.permutation(n_users)[: round(test_fraction * n_users)]] = True
    rank, count = _rank_within_user(user_index, n_users, rng)
    n_fold_in = np.floor(fold_in_fraction * count + 0.5).astype(np.int64)
    in_held_out = held_out[user_index]
    roles[in_held_out] = TEST
    roles[in_held_out & (rank < n_fold_in[user_index])] = FOLD_IN
    others = np.flatnonzero(~in_held_out)
    chosen = rng.permutation(others)[: round(valid_fraction * others.size)]
    roles[chosen] = VALID
    return roles


def recbole_counts(count: np.ndarray, valid_fraction: float, test_fraction: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test counts of users with `count` interactions, as RecBole's
    `Dataset._calcu_split_ids` gives them for ratios [1 - valid - test, valid, test]
    (normalised by their sum, as RecBole does): each part int(ratio x n), training the rest;
    then a part whose share is below one interaction but above zero gets one, test first,
    while more than one interaction is left to training. So at 0.1 / 0.1 a user with 2
    interactions has 1 training and 1 test, one with 3 to 9 has 1 of each held out."""
    ratios = [1.0 - valid_fraction - test_fraction, valid_fraction, test_fraction]
    total = sum(ratios)
    ratios = [ratio / total for ratio in ratios]
    count = np.asarray(count, dtype=np.int64)
    shares = [ratios[1] * count, ratios[2] * count]  # float64, as Python's floats
    n_valid, n_test = (np.floor(share).astype(np.int64) for share in shares)
    n_train = count - n_valid - n_test
    for part, share in ((n_test, shares[1]), (n_valid, shares[0])):  # the last part first
        bump = (n_train > 1) & (share > 0) & (share < 1)
        part += bump
        n_train -= bump
    return n_valid, n_test


def _recbole(user_index: np.ndarray, n_users: int, test_fraction: float,
             valid_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Each user's interactions in a random order: the first ones TRAIN, the next
    `recbole_counts` VALID, the last ones TEST (RecBole's order after its shuffle)."""
    if valid_fraction + test_fraction >= 1.0:
        raise ConfigError(f"split.kind=recbole: split.valid_fraction={valid_fraction} plus "
                          f"split.test_fraction={test_fraction} must be below 1 (both are "
                          "fractions of each user's interactions)")
    rank, count = _rank_within_user(user_index, n_users, rng)
    n_valid, n_test = recbole_counts(count, valid_fraction, test_fraction)
    n_train = count - n_valid - n_test
    roles = np.full(user_index.size, TRAIN, dtype=np.int8)
    roles[rank >= n_train[user_index]] = VALID
    roles[rank >= (n_train + n_valid)[user_index]] = TEST
    return roles


def _heldout_users(user_index: np.ndarray, item_index: np.ndarray, n_users: int, held: int,
                   fold_in_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Liang et al.'s strong generalisation: `held` random users for validation and another
    `held` for test, the others training users (every interaction TRAIN). Interactions with
    items no training user has are DROPPED. Of each held-out user's n interactions left,
    int((1 - fold_in_fraction) x n) random ones are targets (VALID or TEST) when n >= 5, the
    rest FOLD_IN (the model's input); a user with fewer than 5 has only inputs."""
    if 2 * held >= n_users:
        raise DataError(f"split.heldout_users={held} holds out {2 * held} users (validation "
                        f"and test), but there are {n_users}: at least one must train")
    group = np.full(n_users, TRAIN, dtype=np.int8)
    order = rng.permutation(n_users)
    group[order[n_users - 2 * held:n_users - held]] = VALID
    group[order[n_users - held:]] = TEST
    row_group = group[user_index]
    training_items = np.zeros(int(item_index.max(initial=-1)) + 1, dtype=bool)
    training_items[item_index[row_group == TRAIN]] = True
    roles = np.where(training_items[item_index], TRAIN, DROPPED).astype(np.int8)
    held_rows = np.flatnonzero((roles != DROPPED) & (row_group != TRAIN))
    held_users = user_index[held_rows]
    rank, count = _rank_within_user(held_users, n_users, rng)
    # 1 - 0.8 is 0.19999999999999996 in floats: rounded, int(0.2 x 5) is 1 as in Liang's code
    target_share = round(1.0 - fold_in_fraction, 12)
    n_targets = np.where(count >= MIN_TARGET_USER_INTERACTIONS,
                         np.floor(target_share * count), 0).astype(np.int64)
    roles[held_rows] = np.where(rank < n_targets[held_users], row_group[held_rows], FOLD_IN)
    return roles


def _rank_within_user(user_index: np.ndarray, n_users: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A random rank of each rating among its user's ratings, and each user's rating count."""
    order = np.lexsort((rng.random(user_index.size), user_index))
    count = np.bincount(user_index, minlength=n_users)
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))
    rank = np.empty(user_index.size, dtype=np.int64)
    rank[order] = np.arange(user_index.size) - starts[user_index[order]]
    return rank, count


def _too_few_hint(kind: str, test_fraction: float) -> str:
    """What to change when a split of `kind` leaves no training or no test ratings."""
    if kind == "ratings":
        return ("use more ratings, or a larger split.test_fraction (it holds out "
                "round(test_fraction x ratings))")
    if kind == "per_user":
        # a user's test count is test_fraction x count rounded half up, and one rating stays
        needed = max(2, math.ceil(0.5 / test_fraction)) if test_fraction > 0 else "more"
        return (f"per_user holds out test ratings only of users with {needed} ratings or more "
                "at this split.test_fraction: use more ratings per user, a larger "
                "split.test_fraction, or split.kind=ratings")
    if kind == "recbole":
        return ("recbole tests only users with 2 interactions or more (int(test_fraction x "
                "n) of a user's n, at least one): use more interactions per user")
    if kind == "heldout_users":
        return ("heldout_users tests split.heldout_users users (round(split.test_fraction x "
                "users) when null), int((1 - split.fold_in_fraction) x n) of the n "
                f"interactions of those with {MIN_TARGET_USER_INTERACTIONS} or more: use more "
                "users or interactions, or set split.heldout_users")
    return ("users holds out round(split.test_fraction x users) users whole, each one's "
            "split.fold_in_fraction given as input and the rest tested: use more users or "
            "ratings, another split.test_fraction, or a smaller split.fold_in_fraction")


def require_train_and_test(roles: np.ndarray, origin: str, *, kind: str, test_fraction: float,
                           valid_fraction: float, fold_in_fraction: float) -> None:
    """Refuse a split without a training or a test rating: nothing could be trained or
    evaluated (every test figure would be NaN). One of each makes every test figure defined."""
    counts = np.bincount(roles, minlength=4)
    if counts[TRAIN] and counts[TEST]:
        return
    users = kind in ("users", "heldout_users")
    keys = (f"split.kind={kind} split.test_fraction={test_fraction:g} split.valid_fraction="
            f"{valid_fraction:g}" + (f" split.fold_in_fraction={fold_in_fraction:g}"
                                     if users else ""))
    left = (f"{counts[TRAIN]} training, {counts[VALID]} validation, {counts[TEST]} test and "
            f"{counts[FOLD_IN]} fold-in" if users else
            f"{counts[TRAIN]} training, {counts[VALID]} validation and {counts[TEST]} test")
    raise DataError(
        f"{origin}: too few ratings to split: {keys} leave {left} ratings of {roles.size}; "
        "training and evaluation need at least one training and one test rating: "
        + _too_few_hint(kind, test_fraction))
