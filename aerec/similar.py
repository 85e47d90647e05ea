"""Similar items: the items whose vectors (`ModelFamily.item_vectors`) point most alike.

Pure NumPy on the host: the vectors are computed once per loaded model, and one query is a
matrix-vector product, which needs no compiled program (and so no warm-up per query size).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from aerec.errors import DataError

METRICS = ("cosine", "dot")
# Scores of at most this many cells per block of queries (64 MiB of float32): a request for
# every item of a large catalogue stays bounded in memory.
BLOCK_CELLS = 1 << 24


def check_request(k: object, metric: object) -> None:
    """DataError for a `k` that is not a whole number >= 1, or an unknown metric."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DataError(f"k={k!r} must be a whole number, at least 1")
    if metric not in METRICS:
        raise DataError(f"metric={metric!r} is not a similarity aerec has; valid: "
                        f"{', '.join(METRICS)}")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows scaled to unit length, whose dot products are cosines; a zero row stays zero
    (similar to nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def most_similar(vectors: np.ndarray, queries: np.ndarray, k: int, excluded: np.ndarray
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For blocks of `queries` (item indices), the `k` best-scored other items of each and
    their scores, best first: (block's queries, k) indices and scores. Candidates are the
    items not `excluded` other than the query itself; equal scores rank the lower item
    index first, like the ranking evaluation. Fewer than `k` candidates give them all.
    No query may be excluded itself."""
    candidates = int(np.count_nonzero(~excluded))
    width = min(k, candidates - 1) if candidates else 0
    block = max(1, BLOCK_CELLS // max(vectors.shape[0], 1))
    for start in range(0, queries.size, block):
        ids = queries[start:start + block]
        scores = vectors[ids] @ vectors.T
        scores[:, excluded] = -np.inf
        scores[np.arange(ids.size), ids] = -np.inf  # an item is not similar to itself
        order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
        yield order, np.take_along_axis(scores, order, axis=1)
