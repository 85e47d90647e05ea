"""Seeded train / validation / test splits; every rating gets exactly one role."""

from __future__ import annotations

import math

import numpy as np

from aerec.errors import ConfigError, DataError

TRAIN, VALID, TEST, FOLD_IN = 0, 1, 2, 3
SPLIT_KINDS = ("ratings", "per_user", "users")


def split_roles(user_index: np.ndarray, n_users: int, *, kind: str, test_fraction: float,
                valid_fraction: float, fold_in_fraction: float, seed: int) -> np.ndarray:
    """Role of each rating (TRAIN, VALID, TEST or FOLD_IN), as an int8 array.

    - `ratings`: a random `test_fraction` of all ratings is TEST, then a random
      `valid_fraction` of the rest is VALID (the standard protocol).
    - `per_user`: the same fractions taken within each user's ratings (at least one rating of
      each user stays in training).
    - `users`: a random `test_fraction` of users is held out whole: a `fold_in_fraction` of each
      one's ratings is FOLD_IN (given as input at test time, never trained on), the rest TEST.
      VALID is a random `valid_fraction` of the other users' ratings.
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split.kind={kind!r}; valid: {', '.join(SPLIT_KINDS)}")
    for key, value in (("split.test_fraction", test_fraction),
                       ("split.valid_fraction", valid_fraction),
                       ("split.fold_in_fraction", fold_in_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}={value} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    n = user_index.size
    roles = np.full(n, TRAIN, dtype=np.int8)
    if kind == "ratings":
        order = rng.permutation(n)
        n_test = round(test_fraction * n)
        n_valid = round(valid_fraction * (n - n_test))
        roles[order[:n_test]] = TEST
        roles[order[n_test:n_test + n_valid]] = VALID
    elif kind == "per_user":
        rank, count = _rank_within_user(user_index, n_users, rng)
        n_test = np.floor(test_fraction * count + 0.5).astype(np.int64)
        n_test = np.minimum(n_test, count - 1)
        n_valid = np.floor(valid_fraction * (count - n_test) + 0.5).astype(np.int64)
        n_valid = np.minimum(n_valid, count - n_test - 1)
        roles[rank < n_test[user_index]] = TEST
        roles[(rank >= n_test[user_index]) & (rank < (n_test + n_valid)[user_index])] = VALID
    else:
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
    users = kind == "users"
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
