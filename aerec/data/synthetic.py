"""A seeded low-rank rating matrix with power-law popularity, of any size, for offline use."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats.sampling import DiscreteAliasUrn

# Pairs are drawn with replacement and deduplicated; drawing a little more than needed each
# round keeps the number of rounds small even for very skewed popularity.
OVERSAMPLE = 1.3
SCORE_CHUNK = 1 << 20


def _power_law(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    # Zipf-like weights over a random permutation, so that popular ids are spread out. Scaled
    # to mean 1, not sum 1: the alias table normalises them itself, and probabilities of
    # ~1e-7 tripped its round-off check (a warning at 480,189 users).
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return rng.permutation(weights * (n / weights.sum()))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # np.union1d / np.unique hash on recent numpy, several times slower than one sort at the
    # ML-10M shape; the result is the same sorted distinct values.
    values.sort()
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def synthetic_ratings(n_users: int, n_items: int, n_ratings: int, *, rank: int = 10,
                      popularity_exponent: float = 0.8, activity_exponent: float = 0.5,
                      noise: float = 0.5, rating_min: float = 1.0, rating_max: float = 5.0,
                      rating_step: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Ratings of a low-rank model plus biases and noise, on distinct (user, item) pairs.

    Item popularity and user activity follow power laws (exponents as given), like MovieLens.
    """
    if not 0 < n_ratings <= n_users * n_items:
        raise ValueError(f"n_ratings must be in (0, n_users * n_items], got {n_ratings}")
    rng = np.random.default_rng(seed)
    # Alias tables (Walker's method, SciPy's UNU.RAN) draw in constant time per sample:
    # Generator.choice(p=...) searches the cumulative weights for every draw, 7x slower here
    # (the Netflix shape's 130 million draws per side took a minute).
    users_of = DiscreteAliasUrn(_power_law(n_users, activity_exponent, rng), random_state=rng)
    items_of = DiscreteAliasUrn(_power_law(n_items, popularity_exponent, rng), random_state=rng)
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n_ratings:
        draw = int((n_ratings - keys.size) * OVERSAMPLE) + 16
        new = users_of.rvs(draw).astype(np.int64) * n_items + items_of.rvs(draw)
        keys = _sorted_unique(np.concatenate([keys, new]))
    # Drop the surplus at random; what is kept stays sorted.
    keep = np.ones(keys.size, bool)
    keep[rng.choice(keys.size, size=keys.size - n_ratings, replace=False)] = False
    keys = keys[keep]
    user, item = np.divmod(keys, n_items)
    user_factors = rng.normal(0.0, 1.0 / np.sqrt(rank), size=(n_users, rank)).astype(np.float32)
    item_factors = rng.normal(0.0, 1.0, size=(n_items, rank)).astype(np.float32)
    user_bias = rng.normal(0.0, 0.4, size=n_users).astype(np.float32)
    item_bias = rng.normal(0.0, 0.4, size=n_items).astype(np.float32)
    middle = (rating_min + rating_max) / 2
    score = np.empty(n_ratings, dtype=np.float32)
    for start in range(0, n_ratings, SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        u, i = user[part], item[part]
        score[part] = np.einsum("nk,nk->n", user_factors[u], item_factors[i]) + user_bias[u] \
            + item_bias[i]
    score += rng.normal(0.0, noise, size=n_ratings).astype(np.float32) + middle
    rating = np.clip(np.round(score / rating_step) * rating_step, rating_min, rating_max)
    # Ids start at 1, as in MovieLens, so that raw ids and contiguous indices differ.
    return pd.DataFrame({"user": user + 1, "item": item + 1, "rating": rating.astype(np.float32)})
