"""Downloader and archive lookup against a real HTTP server on loopback (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from aerec.data.download import download, extract_member
from aerec.data.locate import locate_file
from aerec.data.sources import SOURCES
from aerec.errors import DataError, DownloadError
from tests.http_server import Served, serve

RATINGS = b"1::1193::5::978300760\n1::661::3::978302109\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ml1m_zip(ratings: bytes = RATINGS) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ml-1m/ratings.dat", ratings)
        bundle.writestr("ml-1m/README", "fixture")
    return buffer.getvalue()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_checksum_pass(tmp_path: Path) -> None:
    body = b"x" * 100_000
    with serve(Served(files={"/f.bin": body})) as server:
        dest = download(f"{server.base_url}/f.bin", tmp_path / "f.bin", sha256(body),
                        progress=False)
    assert dest.read_bytes() == body
    assert leftovers(tmp_path) == ["f.bin"]


def test_checksum_fail_leaves_nothing(tmp_path: Path) -> None:
    with (serve(Served(files={"/f.bin": b"tampered"})) as server,
          pytest.raises(DownloadError, match="checksum mismatch")):
        download(f"{server.base_url}/f.bin", tmp_path / "f.bin", sha256(b"original"),
                 progress=False)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing_and_retry_works(tmp_path: Path) -> None:
    body = b"y" * 200_000
    served = Served(files={"/f.bin": body}, truncate={"/f.bin"})
    with serve(served) as server:
        with pytest.raises(DownloadError):
            download(f"{server.base_url}/f.bin", tmp_path / "f.bin", sha256(body),
                     progress=False)
        assert leftovers(tmp_path) == []
        with pytest.raises(DownloadError, match="ended after"):  # not only the checksum
            download(f"{server.base_url}/f.bin", tmp_path / "f.bin", None, progress=False)
        assert leftovers(tmp_path) == []
        served.truncate.clear()
        download(f"{server.base_url}/f.bin", tmp_path / "f.bin", sha256(body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body


def test_http_error_is_a_download_error(tmp_path: Path) -> None:
    with serve(Served()) as server, pytest.raises(DownloadError, match="404"):
        download(f"{server.base_url}/nope.zip", tmp_path / "nope.zip", None, progress=False)
    assert leftovers(tmp_path) == []


def test_locate_downloads_once_then_uses_the_cache(tmp_path: Path) -> None:
    archive = ml1m_zip()
    with serve(Served(files={"/ml-1m.zip": archive})) as server:
        source = dataclasses.replace(SOURCES["ml1m"], url=f"{server.base_url}/ml-1m.zip",
                                     sha256=sha256(archive))
        first = locate_file(source, tmp_path, "ratings.dat", allow_download=True,
                            progress=False)
        second = locate_file(source, tmp_path, "ratings.dat", allow_download=True,
                             progress=False)
        assert server.requests == ["/ml-1m.zip"]
    assert first == second == tmp_path / "ml-1m" / "ratings.dat"
    assert first.read_bytes() == RATINGS


def test_locate_extracts_from_a_present_archive_without_network(tmp_path: Path) -> None:
    archive = ml1m_zip()
    (tmp_path / "ml-1m.zip").write_bytes(archive)
    source = dataclasses.replace(SOURCES["ml1m"], url="http://127.0.0.1:9/ml-1m.zip",
                                 sha256=sha256(archive))
    path = locate_file(source, tmp_path, "ratings.dat", allow_download=False, progress=False)
    assert path.read_bytes() == RATINGS


def test_locate_rejects_a_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "ml-1m.zip").write_bytes(ml1m_zip())
    with pytest.raises(DataError, match="sha256"):
        locate_file(SOURCES["ml1m"], tmp_path, "ratings.dat", allow_download=False)


def test_missing_offline_says_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        locate_file(SOURCES["ml10m"], tmp_path, "ratings.dat", allow_download=False)
    message = str(caught.value)
    assert str(tmp_path / "ml-10M100K" / "ratings.dat") in message
    assert "https://files.grouplens.org/datasets/movielens/ml-10m.zip" in message


def test_other_files_of_an_archive_and_files_it_lacks(tmp_path: Path) -> None:
    # Another file of the official archive (as ml-100k's u1.base) is extracted like the
    # ratings file; one it lacks (a derived copy: ratings_notime.dat) is named as such.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ml-1m/ratings.dat", RATINGS)
        bundle.writestr("ml-1m/u1.base", RATINGS[:22])
    archive = buffer.getvalue()
    with serve(Served(files={"/ml-1m.zip": archive})) as server:
        source = dataclasses.replace(SOURCES["ml1m"], url=f"{server.base_url}/ml-1m.zip",
                                     sha256=sha256(archive))
        other = locate_file(source, tmp_path, "u1.base", allow_download=True, progress=False)
        assert other.read_bytes() == RATINGS[:22]
        with pytest.raises(DataError) as caught:
            locate_file(source, tmp_path, "ratings_notime.dat", allow_download=True,
                        progress=False)
        assert server.requests == ["/ml-1m.zip"]  # once: then the archive in the cache
    assert str(caught.value) == (
        f"ml1m: the official archive {tmp_path / 'ml-1m.zip'} has no ml-1m/ratings_notime.dat; "
        f"put ratings_notime.dat at {tmp_path / 'ml-1m' / 'ratings_notime.dat'}, or leave "
        "dataset.ratings_file unset for ratings.dat")
    with pytest.raises(DataError, match=r"if ratings_notime\.dat is one of its files \(it holds "
                                        r"ratings\.dat\)"):
        locate_file(SOURCES["ml10m"], tmp_path, "ratings_notime.dat", allow_download=False)


def test_unreachable_server_says_what_to_put_where(tmp_path: Path) -> None:
    with serve(Served()) as server:
        source = dataclasses.replace(SOURCES["ml1m"], url=f"{server.base_url}/ml-1m.zip")
        with pytest.raises(DataError, match=r"Put ratings\.dat at"):
            locate_file(source, tmp_path, "ratings.dat", allow_download=True, progress=False)
    assert leftovers(tmp_path) == []


def test_extract_refuses_path_traversal(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("../evil.txt", "x")
    archive = tmp_path / "a.zip"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="unsafe"):
        extract_member(archive, "../evil.txt", tmp_path / "out" / "evil.txt")
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("allow_download", [True, False])
def test_a_data_directory_that_is_a_file_is_named(tmp_path: Path, allow_download: bool) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    source = dataclasses.replace(SOURCES["ml1m"], url="http://127.0.0.1:9/ml-1m.zip")
    with pytest.raises(DataError, match=f"the data directory {tmp_path / 'a_file'} "
                                        r"\(paths\.data_dir, or env AEREC_DATA_DIR\) is a file"):
        locate_file(source, tmp_path / "a_file", "ratings.dat", allow_download=allow_download,
                    progress=False)


@pytest.mark.parametrize("where", ["under_a_file", "/proc/aerec-data"])
def test_a_data_directory_that_cannot_be_created_is_named(tmp_path: Path, where: str) -> None:
    # /proc: nothing can be created there, even by root (the tests run as root)
    (tmp_path / "a_file").write_text("not a directory")
    data_dir = tmp_path / "a_file" / "data" if where == "under_a_file" else Path(where)
    source = dataclasses.replace(SOURCES["ml1m"], url="http://127.0.0.1:9/ml-1m.zip")
    with pytest.raises(DataError, match=f"the data directory {data_dir} .* cannot be created"):
        locate_file(source, data_dir, "ratings.dat", allow_download=True, progress=False)


def test_an_archive_that_cannot_be_extracted_is_named(tmp_path: Path) -> None:
    archive = ml1m_zip()
    (tmp_path / "ml-1m.zip").write_bytes(archive)
    (tmp_path / "ml-1m").write_text("a file where the archive's folder goes")
    source = dataclasses.replace(SOURCES["ml1m"], sha256=sha256(archive))
    with pytest.raises(DataError, match=r"could not extract ml-1m/ratings\.dat from "
                                        f"{tmp_path / 'ml-1m.zip'} to "):
        locate_file(source, tmp_path, "ratings.dat", allow_download=False)
