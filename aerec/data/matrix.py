"""Sparse rating matrices (CSR on the host) and their dense row blocks on the device."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import Dataset

ORIENTATIONS = ("item", "user")
BYTES_PER_CELL = 4


def rating_matrix(dataset: Dataset, roles: tuple[int, ...], orientation: str) -> sp.csr_matrix:
    """CSR matrix of the ratings with the given roles; rows are items or users (orientation).

    Ratings are never 0 on MovieLens scales, so 0 marks a missing cell.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    chosen = np.isin(dataset.role, roles)
    rows, cols = dataset.item_index, dataset.user_index
    shape = (dataset.n_items, dataset.n_users)
    if orientation == "user":
        rows, cols, shape = cols, rows, shape[::-1]
    matrix = sp.csr_matrix(
        (dataset.rating[chosen], (rows[chosen], cols[chosen])), shape=shape, dtype=np.float32
    )
    matrix.eliminate_zeros()  # stored entries are then exactly the observed cells
    matrix.sort_indices()
    return matrix


def padded_chunks(rows: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray, int]]:
    """(start, ids, count) for consecutive chunks of `rows`: `ids` always holds `size` int32
    ids, the last chunk padded with -1, so that one compiled program serves every chunk."""
    for start in range(0, rows.size, size):
        part = rows[start:start + size]
        ids = np.full(size, -1, np.int32)
        ids[: part.size] = part
        yield start, ids, part.size


def dense_bytes(matrix: sp.csr_matrix) -> int:
    """Bytes the matrix takes when dense (float32)."""
    return int(matrix.shape[0]) * int(matrix.shape[1]) * BYTES_PER_CELL


class DeviceRows:
    """Dense row blocks of a CSR matrix on the device.

    Resident: the whole dense matrix lives on the device and blocks are gathered there.
    Streamed: each block is densified on the host from the CSR rows and transferred.
    """

    def __init__(self, matrix: sp.csr_matrix, resident: bool):
        self.matrix = matrix
        self.resident = resident
        self.dense = jnp.asarray(matrix.toarray()) if resident else None

    def nonempty_rows(self) -> np.ndarray:
        """Boolean mask of the rows that hold at least one rating."""
        return self.counts > 0

    @cached_property
    def counts(self) -> np.ndarray:
        """Observed cells per row (int32), known from the CSR structure without densifying."""
        return np.diff(self.matrix.indptr).astype(np.int32)

    def row_counts(self, row_ids: np.ndarray) -> np.ndarray:
        """Observed cells of rows `row_ids` (host int array); 0 for ids < 0 (padding)."""
        return np.where(row_ids >= 0, self.counts[np.maximum(row_ids, 0)], 0).astype(np.int32)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the matrix."""
        return self.matrix.shape

    def gather(self, row_ids: np.ndarray) -> jax.Array:
        """Dense rows `row_ids` (host int array) as a device array; ids < 0 give zero rows."""
        if self.resident:
            safe = np.where(row_ids >= 0, row_ids, 0)
            block = self.dense[jnp.asarray(safe)]
            return jnp.where(jnp.asarray(row_ids >= 0)[:, None], block, 0.0)
        return jnp.asarray(self.host_rows(row_ids))

    def host_rows(self, row_ids: np.ndarray) -> np.ndarray:
        """Dense rows `row_ids` densified on the host from the CSR matrix (ids < 0: zeros)."""
        block = self.matrix[np.where(row_ids >= 0, row_ids, 0)].toarray()
        block[row_ids < 0] = 0.0
        return block
