"""Files that appear whole or not at all: written beside the target, then renamed over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def temporary_sibling(path: Path) -> Path:
    """A name for `path`'s partial content: in the same directory, so that os.replace is an
    atomic rename, per process, and never mistaken for the finished file by a lookup."""
    return path.with_name(f".{path.name}.part-{os.getpid()}")


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """Open a binary file whose content replaces `path` only when the block ends without an
    error; on an error `path` is untouched and the partial file removed."""
    partial = temporary_sibling(path)
    try:
        with open(partial, "wb") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """`path`'s new content `text` (UTF-8), written whole or not at all (`atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(text.encode())
