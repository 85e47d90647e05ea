"""Top-N evaluation: Precision, Recall, NDCG, HitRate, MAP, MRR and capped recall at k, and
catalogue coverage.

For each user with at least one relevant held-out item (a test rating >= the threshold), every
item the user has not rated outside the test set is ranked by the model's score (full
ranking, no sampled negatives); items the user rated in training, validation or fold-in are
excluded, so they can never be recommended. Definitions, with hits h_1..h_k of the top k and R
the user's relevant items:

    precision@k = sum(h) / k          recall@k = sum(h) / |R|       hit_rate@k = [sum(h) > 0]
    ndcg@k = sum_j h_j / log2(j + 1) / sum_{j <= min(k, |R|)} 1 / log2(j + 1)
    map@k  = sum_j h_j * precision@j / min(k, |R|)    (trec_eval divides by |R|)
    mrr@k  = 1 / (position of the first hit), 0 without a hit in the top k
    capped_recall@k = sum(h) / min(k, |R|)   (Liang et al. 2018's Recall@k: 1 for a full list)
    coverage@k = |union of all evaluated users' top k| / number of items

Ties in score rank the lower item index first (jax.lax.top_k is stable). Users are scored,
masked and ranked in fixed-size chunks, each one jit-compiled pass on the device, so memory
stays bounded; only each user's top-k hits come back to the host, where the figures are
computed per user in float64 and averaged in user order, so the result does not depend on the
chunk size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import Dataset
from aerec.data.device_rows import padded_chunks, rating_matrix
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.rankers import Ranker

METRICS = ("precision", "recall", "ndcg", "hit_rate", "map", "mrr", "capped_recall")


@partial(jax.jit, static_argnames="k_max")
def top_hits(scores: jax.Array, exclude: jax.Array, relevant: jax.Array, k_max: int
             ) -> tuple[jax.Array, jax.Array]:
    """The top-`k_max` items of each user (scores masked by `exclude`) and which are relevant.

    A slot whose item is excluded (a user with fewer candidates than k_max) holds -1 and is
    never a hit.
    """
    masked = jnp.where(exclude, -jnp.inf, scores)
    top_scores, top_items = jax.lax.top_k(masked, min(k_max, scores.shape[1]))
    candidate = top_scores > -jnp.inf
    hits = jnp.take_along_axis(relevant, top_items, axis=1) & candidate
    # A cut-off beyond the catalogue: the missing slots hold no item and no hit.
    missing = k_max - top_items.shape[1]
    top_items = jnp.where(candidate, top_items, -1)
    return (jnp.pad(top_items, ((0, 0), (0, missing)), constant_values=-1),
            jnp.pad(hits, ((0, 0), (0, missing))))


def user_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Per-user figures (users, len(ks), len(METRICS)) from the top lists' hits, in float64 on
    the host: each user's figures depend only on that user's row, whatever the batch."""
    hits = np.asarray(hits, np.float64)
    n_relevant = np.asarray(n_relevant, np.float64)
    positions = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log2(positions + 1.0)
    ideal = np.cumsum(discount)
    precision_at = np.cumsum(hits, axis=1) / positions
    figures = np.empty((hits.shape[0], len(ks), len(METRICS)))
    for position, k in enumerate(ks):
        hit_k = hits[:, :k]
        found = hit_k.sum(axis=1)
        ideal_k = np.maximum(np.minimum(n_relevant, k), 1.0)  # users without relevant items
        figures[:, position] = np.stack([  # are left out by the caller
            found / k,
            found / np.maximum(n_relevant, 1.0),
            (hit_k * discount[:k]).sum(axis=1) / ideal[ideal_k.astype(np.int64) - 1],
            (found > 0).astype(np.float64),
            (hit_k * precision_at[:, :k]).sum(axis=1) / ideal_k,
            np.where(found > 0, 1.0 / (np.argmax(hit_k, axis=1) + 1.0), 0.0),
            found / ideal_k,
        ], axis=1)
    return figures


def ranking_targets(dataset: Dataset, threshold: float | None, held_out: int = TEST
                    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(exclude, relevant) user x item matrices for ranking the `held_out` role (TEST, or
    VALID while training): relevant, its ratings >= `threshold` (all of them with None:
    implicit feedback); excluded, what the user is known by at that point: for the test,
    every other rating; for validation, the model's inputs (training and fold-in), the test
    items being candidates like any unseen item."""
    known = (TRAIN, VALID, FOLD_IN) if held_out == TEST else (TRAIN, FOLD_IN)
    exclude = rating_matrix(dataset, known, "user")
    relevant = rating_matrix(dataset, (held_out,), "user")
    if threshold is not None:
        relevant.data = (relevant.data >= threshold).astype(np.float32)
        relevant.eliminate_zeros()
    return exclude, relevant


def evaluate_ranking(ranker: Ranker, exclude: sp.csr_matrix, relevant: sp.csr_matrix,
                     ks: Sequence[int], chunk_users: int = 1024) -> dict[str, float]:
    """Mean top-k figures over the users with relevant items, and coverage@k."""
    ks = tuple(sorted({int(k) for k in ks}))
    users = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int32)
    hits = np.zeros((users.size, max(ks)), bool)
    covered = np.zeros((len(ks), ranker.n_items), bool)
    for start, ids, count in padded_chunks(users, chunk_users):
        safe = np.maximum(ids, 0)
        top, chunk_hits = top_hits(ranker.user_scores(ids),
                                   jax.device_put(exclude[safe].toarray() > 0),
                                   jax.device_put(relevant[safe].toarray() > 0), max(ks))
        hits[start:start + count] = np.asarray(chunk_hits)[:count]
        top = np.asarray(top)[:count]
        for position, k in enumerate(ks):
            chosen = top[:, :k]
            covered[position, chosen[chosen >= 0]] = True
    per_user = user_metrics(hits, np.diff(relevant.indptr)[users], ks)
    means = per_user.mean(axis=0) if users.size else np.full((len(ks), len(METRICS)), np.nan)
    results: dict[str, float] = {"ranking_users": int(users.size)}
    for position, k in enumerate(ks):
        for column, name in enumerate(METRICS):
            results[f"{name}@{k}"] = float(means[position, column])
        results[f"coverage@{k}"] = float(covered[position].mean())
    return results
