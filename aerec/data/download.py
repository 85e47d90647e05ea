"""Cached, checksum-verified, atomic downloads and safe extraction of zip members."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from aerec.atomic import atomic_output
from aerec.errors import DataError, DownloadError

CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str | None, *, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Download `url` to `dest`, verifying `sha256`; `dest` appears only when complete and valid."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                atomic_output(dest) as out:  # dest appears only if the block ends cleanly
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not progress) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            received = out.tell()
            if total is not None and received != total:
                raise DownloadError(f"download of {url} ended after {received} of {total} "
                                    "bytes; run again to retry")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise DownloadError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got "
                    f"{digest.hexdigest()}. The file was discarded; run again to retry, or put "
                    f"a verified copy at {dest}")
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as error:
        raise DownloadError(f"could not download {url} to {dest}: {error}") from error
    return dest


def verify_file(path: Path, sha256: str) -> None:
    """Raise DataError if `path` does not have the expected SHA-256."""
    actual = file_sha256(path)
    if actual != sha256:
        raise DataError(
            f"{path} has sha256 {actual}, expected {sha256}: the archive is corrupt or not the "
            "official release. Delete it (it is downloaded again) or replace it."
        )


class MissingMemberError(DataError):
    """The archive is valid but has no such member."""


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Extract one member of a zip archive to `dest`, atomically and without path traversal."""
    member_path = PurePosixPath(member)
    if member_path.is_absolute() or ".." in member_path.parts:
        raise DataError(f"{archive}: refusing unsafe member name {member!r}")
    try:
        with zipfile.ZipFile(archive) as bundle:
            try:
                info = bundle.getinfo(member)
            except KeyError:
                raise MissingMemberError(f"{archive} has no member {member!r}") from None
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)  # only for a member that exists
                with bundle.open(info) as source, atomic_output(dest) as out:
                    shutil.copyfileobj(source, out, CHUNK_BYTES)
            except OSError as error:  # the destination cannot be created or written
                raise DataError(f"could not extract {member} from {archive} to {dest}: "
                                f"{error}") from error
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a valid zip archive: {error}") from error
    return dest
