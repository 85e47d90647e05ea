"""Every known user's top k unseen items, ranked on the device in chunks of users.

A chunk's scores (chunk x items) are computed, masked and ranked where they are made; only the
(chunk, k) item indices and scores come back to the host, so memory is bounded by the chunk
size whatever the number of users. Items a user has seen (every rating they gave, in any
split) are masked to -inf and never ranked. Equal scores rank the lower item index first, as
in the ranking evaluation (`jax.lax.top_k` is stable). A slot past a user's candidates (fewer
unseen items than k) holds -inf.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.device_rows import padded_chunks, padded_size
from aerec.errors import DataError
from aerec.rankers import Ranker


@partial(jax.jit, static_argnames="k")
def top_unseen(scores: jax.Array, seen_rows: jax.Array, seen_cols: jax.Array, k: int
               ) -> tuple[jax.Array, jax.Array]:
    """(scores, item indices) of each row's `k` best items once the cells (seen_rows,
    seen_cols) are masked to -inf; entries whose row is out of range (padding) are dropped."""
    masked = scores.at[seen_rows, seen_cols].set(-jnp.inf, mode="drop")
    return jax.lax.top_k(masked, k)


def seen_entries(seen: sp.csr_matrix, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chunk row, item) of every item the users `ids` have seen (ids < 0: padding, none),
    padded to a power of two (at least 1024) with entries of row len(ids), which the mask
    drops: a few compiled programs serve chunks of every number of ratings."""
    present = np.flatnonzero(ids >= 0)
    block = seen[ids[present]]
    capacity = padded_size(block.nnz, 1024)
    rows = np.full(capacity, ids.size, np.int32)
    rows[:block.nnz] = np.repeat(present.astype(np.int32), np.diff(block.indptr))
    cols = np.zeros(capacity, np.int32)
    cols[:block.nnz] = block.indices
    return rows, cols


def chunk_size(n_users: int, chunk_users: int) -> int:
    """Users per pass: `chunk_users`, or for fewer users the power of two at or above their
    number (one compiled program per size class, not per request size)."""
    if isinstance(chunk_users, bool) or not isinstance(chunk_users, int) or chunk_users < 1:
        raise DataError(f"chunk_users={chunk_users!r} must be an integer >= 1")
    return min(chunk_users, padded_size(n_users))


def ranked_chunks(ranker: Ranker, seen: sp.csr_matrix, users: np.ndarray, k: int,
                  chunk_users: int = 1024) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, items, scores) for consecutive chunks of `users` (indices): `items` (count,
    k') int64 item indices and `scores` (count, k') float32, best first, k' = min(k, items);
    a slot past a user's unseen items holds score -inf (its item index means nothing).

    `k` is padded to a power of two on the device (then cut), so requests with different k
    share compiled programs. `chunk_users` is checked here, before the first chunk.
    """
    users = np.asarray(users, np.int32)
    return _ranked(ranker, seen, users, k, chunk_size(users.size, chunk_users))


def _ranked(ranker: Ranker, seen: sp.csr_matrix, users: np.ndarray, k: int, size: int
            ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    k_device = min(padded_size(k), ranker.n_items)
    for start, ids, count in padded_chunks(users, size):
        rows, cols = seen_entries(seen, ids)
        top_scores, top = top_unseen(ranker.user_scores(ids), *jax.device_put((rows, cols)),
                                     k_device)
        yield (start, np.asarray(top)[:count, :k].astype(np.int64),
               np.asarray(top_scores, np.float32)[:count, :k])
