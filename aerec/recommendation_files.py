"""Recommendation lists written to a file: one row per (user, rank), as CSV or Parquet.

Columns `user, rank, item, score` (raw ids; `score` float32, the ranking score the device
computed). The file appears whole or not at all: rows are written chunk by chunk into a
temporary sibling that is renamed over `path` once the last chunk is in (`aerec.atomic`);
an error or a Ctrl-C (KeyboardInterrupt) on the way removes it, and an existing `path` stays
as it was. Memory holds one chunk of rows at a time. Parquet needs pyarrow (the `parquet`
extra), which writes each chunk as a row group.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aerec.atomic import atomic_output, temporary_sibling
from aerec.errors import DataError

SUFFIXES = {".csv": "csv", ".parquet": "parquet"}
COLUMNS = ("user", "rank", "item", "score")
Writer = Callable[[pd.DataFrame], None]


def output_format(path: Path) -> str:
    """csv or parquet, from `path`'s extension; DataError naming it otherwise."""
    kind = SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise DataError(f"output={path}: the file's extension must be .csv or .parquet")
    return kind


def require_pyarrow() -> None:
    """DataError saying how to install pyarrow where it is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError("output=*.parquet needs pyarrow: pip install 'aerec[parquet]' (or "
                        "write a .csv file)") from None


def check_output(path: Path) -> None:
    """DataError (one line) unless `path` can be written as its extension says: checked
    before any work, by creating (and removing) the temporary file the writer will use."""
    path = Path(path)
    if output_format(path) == "parquet":
        require_pyarrow()
    if path.is_dir():
        raise DataError(f"output={path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise DataError(f"output={path}: the directory {path.parent} does not exist")
    probe = temporary_sibling(path)
    try:
        probe.open("wb").close()
    except OSError as error:
        raise DataError(f"output={path} cannot be written: {error.strerror or error}") from None
    probe.unlink(missing_ok=True)


def csv_writer(handle: BinaryIO) -> tuple[Writer, Callable[[], None]]:
    """(write a chunk, finish) for CSV text (UTF-8) with one header line."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    first = [True]

    def write(frame: pd.DataFrame) -> None:
        frame.to_csv(text, header=first[0], index=False)
        first[0] = False

    def finish() -> None:
        if first[0]:  # no rows: the header alone
            pd.DataFrame(columns=list(COLUMNS)).to_csv(text, index=False)
        text.flush()
        text.detach()  # the handle is closed by its owner

    return write, finish


def parquet_writer(handle: BinaryIO) -> tuple[Writer, Callable[[], None]]:
    """(write a chunk, finish) for a Parquet file, one row group per chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: list[Any] = []

    def write(frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if not writer:
            writer.append(pq.ParquetWriter(handle, table.schema))
        writer[0].write_table(table)

    def finish() -> None:
        if not writer:  # no rows: the columns alone
            write(pd.DataFrame({name: np.zeros(0, np.float32 if name == "score" else np.int64)
                                for name in COLUMNS}))
        writer[0].close()

    return write, finish


WRITERS = {"csv": csv_writer, "parquet": parquet_writer}


def chunk_rows(start: int, top: np.ndarray, scores: np.ndarray, users: np.ndarray,
               items: np.ndarray) -> pd.DataFrame:
    """The rows of one chunk of ranked users (`aerec.top_items.ranked_chunks`): slots past
    a user's unseen items (score -inf) left out."""
    listed = scores > -np.inf
    rows, slots = np.nonzero(listed)
    return pd.DataFrame({"user": users[start + rows], "rank": (slots + 1).astype(np.int32),
                         "item": items[top[listed]], "score": scores[listed]})


def write_recommendations(path: Path, chunks: Iterable[tuple[int, np.ndarray, np.ndarray]],
                          users: np.ndarray, items: np.ndarray, progress: bool = False) -> int:
    """Write the ranked `chunks` (start, item indices, scores) of `users` (raw ids, in chunk
    order) to `path`, whole or not at all; `items`: raw item ids by index. A progress bar
    counts users on stderr when `progress`. Returns the number of rows written."""
    path = Path(path)
    check_output(path)
    written = 0
    with (atomic_output(path) as handle,
          tqdm(total=users.size, desc="recommend", unit="user", disable=not progress) as bar):
        write, finish = WRITERS[output_format(path)](handle)
        for start, top, scores in chunks:
            frame = chunk_rows(start, top, scores, users, items)
            write(frame)
            written += len(frame)
            bar.update(top.shape[0])
        finish()
    return written
