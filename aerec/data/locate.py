"""Find a MovieLens ratings file on disk: extracted, inside the official archive, or downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from aerec.data.download import MissingMemberError, download, extract_member, verify_file
from aerec.data.sources import Source
from aerec.errors import DataError, DownloadError

DATA_DIR_ENV = "AEREC_DATA_DIR"


def default_data_dir() -> Path:
    """`$AEREC_DATA_DIR` if set, else the per-user cache directory."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("aerec")) / "data"


def locate_file(source: Source, data_dir: Path, file_name: str, *, allow_download: bool,
                progress: bool = True) -> Path:
    """Path of `file_name` of `source`, extracting or downloading the official archive if needed.

    Looks, in order, at `data_dir/<folder>/<file>` (the extracted release), then for the
    official archive in `data_dir` or `data_dir/<folder>`, then downloads the archive when
    allowed. An absolute `file_name` is used as it is.
    """
    requested = Path(file_name)
    if requested.is_absolute():
        if requested.is_file():
            return requested
        state = "is a directory, not a file" if requested.is_dir() else "does not exist"
        raise DataError(f"{source.name}: ratings file {requested} {state}")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"the data directory {data_dir} (paths.data_dir, or env {DATA_DIR_ENV}) "
                        "is a file: point paths.data_dir at a directory")
    folder = data_dir / source.folder
    extracted = folder / requested
    if extracted.is_file():
        return extracted
    for archive in (data_dir / source.archive_name, folder / source.archive_name):
        if archive.is_file():
            verify_file(archive, source.sha256)
            return _extract(source, archive, requested, extracted)
    if allow_download:
        archive = data_dir / source.archive_name
        _make_data_dir(data_dir)
        try:
            download(source.url, archive, source.sha256, progress=progress)
        except DownloadError as error:
            raise DataError(f"{error}\n{_where_to_put(source, data_dir, requested)}") from error
        return _extract(source, archive, requested, extracted)
    raise DataError(
        f"{source.name}: {extracted} not found and downloads are off (dataset.download=false).\n"
        + _where_to_put(source, data_dir, requested)
    )


def _make_data_dir(data_dir: Path) -> None:
    """Create the data directory for a download, or say why it cannot be created."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"the data directory {data_dir} (paths.data_dir, or env {DATA_DIR_ENV}) "
                        f"cannot be created ({error.strerror}): point paths.data_dir at a "
                        "writable directory") from error


def _extract(source: Source, archive: Path, requested: Path, dest: Path) -> Path:
    member = f"{source.folder}/{requested.as_posix()}"
    try:
        return extract_member(archive, member, dest)
    except MissingMemberError:  # a derived copy (ratings_notime.dat), or a typo
        raise DataError(
            f"{source.name}: the official archive {archive} has no {member}; put "
            f"{requested} at {dest}, or leave dataset.ratings_file unset for "
            f"{source.ratings_file}") from None


def _where_to_put(source: Source, data_dir: Path, requested: Path) -> str:
    origin = (f"the official archive {source.archive_name} ({source.url}) at "
              f"{data_dir / source.archive_name}")
    if requested.as_posix() != source.ratings_file:  # perhaps not a file of the archive at all
        origin += f" if {requested} is one of its files (it holds {source.ratings_file})"
    return (
        f"Put {requested} at {data_dir / source.folder / requested}, or {origin}; "
        f"or point paths.data_dir (env {DATA_DIR_ENV}) at a directory that holds them."
    )
