"""Sparse rating matrices (CSR on the host) and their dense row blocks on the device."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import Dataset
from aerec.devices import on_accelerator
from aerec.errors import ConfigError

ORIENTATIONS = ("item", "user")
DENSE_DTYPES = ("auto", "float32", "bfloat16")
BLOCK_CELLS = 2**26  # a densified block of rows on the host: ~256 MB as float32


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


def nonempty_columns(matrix: sp.csr_matrix) -> np.ndarray:
    """Boolean mask of the columns of a CSR matrix that hold at least one stored rating."""
    return np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0


def padded_chunks(rows: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray, int]]:
    """(start, ids, count) for consecutive chunks of `rows`: `ids` always holds `size` int32
    ids, the last chunk padded with -1, so that one compiled program serves every chunk."""
    for start in range(0, rows.size, size):
        part = rows[start:start + size]
        ids = np.full(size, -1, np.int32)
        ids[: part.size] = part
        yield start, ids, part.size


def padded_size(count: int, minimum: int = 1) -> int:
    """The power of two at or above `count` (and `minimum`): requests of varying size padded
    to it share one compiled program per size class instead of compiling one per size."""
    return max(minimum, 1 << max(count - 1, 0).bit_length())


def dense_bytes(matrix: sp.csr_matrix, dtype: Any = np.float32) -> int:
    """Bytes the matrix takes when dense (in `dtype`: float32 unless told)."""
    return int(matrix.shape[0]) * int(matrix.shape[1]) * np.dtype(dtype).itemsize


def exact_in_bfloat16(ratings: np.ndarray) -> bool:
    """Whether every rating survives a round trip through bfloat16 (8 significant bits: whole
    and half stars up to 128 do, 3.3 does not)."""
    return bool(np.array_equal(ratings.astype(jnp.bfloat16).astype(np.float32),
                               ratings.astype(np.float32)))


def dense_dtype(requested: str, ratings: np.ndarray) -> Any:
    """The dtype a resident matrix is stored in (`train.dense_dtype`).

    Its cells are read once per epoch by the batch gathers, and half as many bytes halve both
    that traffic and the device memory (the Netflix shape's train and validation matrices: 34
    instead of 68 GB). `auto` stores bfloat16 on an accelerator when every rating is exact in
    it, float32 otherwise and on a CPU; batches are converted to float32 as they are gathered,
    so training reads the same values either way (the same results, to the rounding of
    differently fused programs on a GPU). `bfloat16` on ratings it cannot hold exactly is
    refused rather than rounded.
    """
    if requested not in DENSE_DTYPES:
        raise ConfigError(f"train.dense_dtype={requested!r}; valid: {', '.join(DENSE_DTYPES)}")
    if requested == "float32" or (requested == "auto" and not on_accelerator()):
        return np.dtype(np.float32)
    if exact_in_bfloat16(ratings):
        return jnp.dtype(jnp.bfloat16)
    if requested == "bfloat16":
        raise ConfigError("train.dense_dtype=bfloat16: some ratings are not exact in bfloat16 "
                          "(it holds whole and half stars up to 128); use float32 or auto")
    return np.dtype(np.float32)


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type, alignment: int = 64
                  ) -> np.ndarray:
    """An uninitialised C-ordered array whose data starts on an `alignment`-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def densify(matrix: sp.csr_matrix, dtype: Any = np.float32) -> jax.Array:
    """The dense matrix on the default device, in `dtype` (float32 unless told).

    On an accelerator it is scattered there from the CSR entries, so the host never holds it
    (ML-20M's item rows are 15 GB dense, 0.2 GB as entries) and only the entries cross the bus;
    on the CPU the host's dense array already is the device's.
    """
    if not on_accelerator():
        # Densified into a 64-byte aligned buffer, which the CPU device then uses as it is:
        # an unaligned one (toarray's own) would be copied, twice the matrix at the peak.
        dense = aligned_empty(matrix.shape, dtype)
        if dense.dtype == np.float32:
            matrix.toarray(out=dense)
        else:  # in blocks of rows: no float32 copy of the whole matrix
            step = max(BLOCK_CELLS // max(matrix.shape[1], 1), 1)
            for start in range(0, matrix.shape[0], step):
                dense[start:start + step] = matrix[start:start + step].toarray().astype(dtype)
        return jax.device_put(dense, may_alias=True)
    return rows_on_device(matrix, np.arange(matrix.shape[0], dtype=np.int32), dtype)


@partial(jax.jit, static_argnames=("shape", "dtype"))
def scatter_dense(rows: jax.Array, cols: jax.Array, values: jax.Array,
                  shape: tuple[int, int], dtype: Any = jnp.float32) -> jax.Array:
    """A (rows, cols) matrix of `dtype` holding `values` at distinct (row, col) cells, else 0;
    entries whose row is out of range are dropped."""
    return jnp.zeros(shape, dtype).at[rows, cols].set(values.astype(dtype), mode="drop")


def rows_on_device(matrix: sp.csr_matrix, row_ids: np.ndarray,
                   dtype: Any = np.float32) -> jax.Array:
    """Dense rows `row_ids` of `matrix` (ids < 0: zero rows), scattered on the device from
    their CSR entries, which the host slices and ships: a resident matrix is densified so
    (ML-20M's item rows are 15 GB dense, 0.2 GB as entries), and the streamed batches of a
    matrix too large for `rows_from_entries`' int32 offsets. The entries are padded to a power
    of two, so a few compiled programs serve every size; padding entries point past the block
    and are dropped.
    """
    present = np.flatnonzero(row_ids >= 0)
    block = matrix[row_ids[present]]
    n = block.nnz
    capacity = padded_size(n, 1024)
    rows = np.full(capacity, row_ids.size, np.int32)
    rows[:n] = np.repeat(present.astype(np.int32), np.diff(block.indptr))
    cols = np.zeros(capacity, np.int32)
    cols[:n] = block.indices
    values = np.zeros(capacity, np.float32)
    values[:n] = block.data
    return scatter_dense(*jax.device_put((rows, cols, values)),
                         shape=(row_ids.size, matrix.shape[1]), dtype=jnp.dtype(dtype))


@partial(jax.jit, static_argnames=("width", "capacity"))
def rows_from_entries(indptr: jax.Array, indices: jax.Array, data: jax.Array,
                      row_ids: jax.Array, *, width: int, capacity: int) -> jax.Array:
    """Dense float32 rows `row_ids` (ids < 0: zero rows) of a CSR matrix whose arrays are on
    the device, densified there: the host sends only the ids. `capacity` >= the rows' entries
    (padded_size of their count, so a few programs serve every batch).

    Entry slot k belongs to the batch row whose cumulative count first exceeds k; slots past
    the rows' entries get row len(row_ids) and are dropped by the scatter.
    """
    present = row_ids >= 0
    ids = jnp.maximum(row_ids, 0)
    starts = indptr[ids]
    counts = jnp.where(present, indptr[ids + 1] - starts, 0)
    ends = jnp.cumsum(counts)
    slot = jnp.arange(capacity, dtype=ends.dtype)
    row = jnp.searchsorted(ends, slot, side="right")
    safe = jnp.minimum(row, row_ids.size - 1)
    entry = jnp.clip(starts[safe] + slot - (ends[safe] - counts[safe]), 0, indices.size - 1)
    return jnp.zeros((row_ids.size, width), jnp.float32).at[row, indices[entry]].set(
        data[entry], mode="drop")


def stream_on_device() -> bool:
    """Whether streamed blocks are densified on the device from its copy of the entries (an
    accelerator) rather than on the host (a CPU, whose device memory is the host's)."""
    return on_accelerator()


@jax.jit
def gather_rows(dense: jax.Array, row_ids: jax.Array) -> jax.Array:
    """Rows `row_ids` of a device matrix as float32, zero rows for ids < 0; one compiled
    program (as eager ops, a first gather compiled seven small ones)."""
    block = dense[jnp.maximum(row_ids, 0)].astype(jnp.float32)
    return jnp.where((row_ids >= 0)[:, None], block, 0.0)


class DeviceRows:
    """Dense row blocks of a CSR matrix on the device.

    Resident: the whole dense matrix lives on the device (in `dtype`: see `dense_dtype`) and
    blocks are gathered there. Streamed: each block is densified from the CSR rows, on an
    accelerator from a copy of the CSR arrays kept on it (8 bytes a rating: the Netflix
    shape's 0.8 GB against 34 GB dense), on a CPU on the host. Blocks are float32 either way.
    """

    def __init__(self, matrix: sp.csr_matrix, resident: bool, dtype: Any = np.float32):
        self.matrix = matrix
        self.resident = resident
        self.dense = densify(matrix, dtype) if resident else None

    def nonempty_rows(self) -> np.ndarray:
        """Boolean mask of the rows that hold at least one rating."""
        return self.counts > 0

    def nonempty_columns(self) -> np.ndarray:
        """Boolean mask of the columns that hold at least one rating."""
        return nonempty_columns(self.matrix)

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
            return gather_rows(self.dense, jax.device_put(np.asarray(row_ids, np.int32)))
        if not stream_on_device():
            return jax.device_put(self.host_rows(row_ids))
        row_ids = np.asarray(row_ids, np.int32)
        if row_ids.size == 0 or self.matrix.nnz == 0:  # nothing to read an entry from
            return jnp.zeros((row_ids.size, self.shape[1]), jnp.float32)
        if self.matrix.nnz >= 2**31:  # past int32 offsets (JAX's default): ship the entries
            return rows_on_device(self.matrix, row_ids)
        capacity = padded_size(int(self.row_counts(row_ids).sum()), 1024)
        return rows_from_entries(*self.device_entries, row_ids, width=self.shape[1],
                                 capacity=capacity)

    @cached_property
    def device_entries(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The CSR arrays (indptr, indices, data) on the device, copied there once: a batch
        is then densified from its row ids alone, with no slicing of entries on the host."""
        matrix = self.matrix
        return jax.device_put((matrix.indptr.astype(np.int32), matrix.indices.astype(np.int32),
                               matrix.data.astype(np.float32)))

    def host_rows(self, row_ids: np.ndarray) -> np.ndarray:
        """Dense rows `row_ids` densified on the host from the CSR matrix (ids < 0: zeros)."""
        block = self.matrix[np.where(row_ids >= 0, row_ids, 0)].toarray()
        block[row_ids < 0] = 0.0
        return block
