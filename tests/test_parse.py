"""Parsers on small fixtures in each official format, written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aerec.data.dataset import read_raw_ratings
from aerec.data.parse import field_separator, read_ratings
from aerec.data.sources import SOURCES
from aerec.errors import ConfigError, DataError
from aerec.run_config import DatasetConfig, section

# (dataset, file content) in each release's exact format
OFFICIAL = {
    "ml100k": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
    "ml1m": "1::1193::5::978300760\n1::661::3::978302109\n2::914::4::978301968\n",
    "ml10m": "1::122::5::838985046\n1::185::4.5::838983525\n2::231::0.5::838983392\n",
    "ml20m": "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
             "3,32,0.5,1112484819\n",
    "ml-latest-small": "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n"
                       "1,3,4.0,964981247\r\n6,6,0.5,964982224\r\n",
}
EXPECTED = {
    "ml100k": ([196, 186, 22], [242, 302, 377], [3, 3, 1]),
    "ml1m": ([1, 1, 2], [1193, 661, 914], [5, 3, 4]),
    "ml10m": ([1, 1, 2], [122, 185, 231], [5, 4.5, 0.5]),
    "ml20m": ([1, 1, 3], [2, 29, 32], [3.5, 3.5, 0.5]),
    "ml-latest-small": ([1, 1, 6], [1, 3, 6], [4.0, 4.0, 0.5]),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_formats(tmp_path: Path, name: str) -> None:
    source = SOURCES[name]
    path = write(tmp_path, source.ratings_file, OFFICIAL[name])
    table = read_ratings(path, sep=source.sep, header=source.header,
                         rating_range=(source.rating_min, source.rating_max))
    users, items, ratings = EXPECTED[name]
    assert table["user"].tolist() == users
    assert table["item"].tolist() == items
    np.testing.assert_array_equal(table["rating"].to_numpy(), np.float32(ratings))
    assert table["rating"].dtype == np.float32
    assert "timestamp" in table.columns


def test_three_field_file_has_no_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings_notime.dat", "1::1::5\n1::48::5\n2::150::3\n")
    table = read_ratings(path, sep="::", header=False)
    assert list(table.columns) == ["user", "item", "rating"]
    assert table["item"].tolist() == [1, 48, 150]


def test_custom_columns_and_skipped_field(tmp_path: Path) -> None:
    path = write(tmp_path, "r.tsv", "item\tuser\tscore\textra\n10\t1\t2.0\tx\n11\t2\t3.0\ty\n")
    table = read_ratings(path, sep="\t", header=True, columns=["item", "user", "rating", "_"])
    assert table["user"].tolist() == [1, 2]
    assert table["item"].tolist() == [10, 11]


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "r.dat", "1::1::5::1\n\n2::2::3::2\n\n")
    assert len(read_ratings(path, sep="::", header=False)) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1::1::5::1\n1::2::5\n", "line 2: expected 4 fields"),
        ("1::1::5::1\nx::2::5::1\n", "line 2: user must be an integer"),
        ("1::1::5::1\n1::2::abc::1\n", "line 2: rating must be a number"),
        ("1::1::5::1\n1::2::nan::1\n", "line 2: rating must be finite"),
        ("1::1::5::1\n1::2::9::1\n", "line 2: rating 9 outside the scale"),
        # beyond 64 bits (pandas overflowed with a traceback), and between 2^63 and 2^64
        (f"1::1::5::1\n{2**64 + 1}::2::5::1\n", "line 2: user 18446744073709551617 does not "
                                                 "fit in 64 bits"),
        (f"1::1::5::1\n1::{-2**64}::5::1\n", "line 2: item -18446744073709551616 does not"),
        (f"1::1::5::1\n1::2::5::{2**63}\n", "line 2: timestamp 9223372036854775808 does not"),
        ("", "no ratings in the file"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "ratings.dat", text)
    with pytest.raises(DataError, match=message) as caught:
        read_ratings(path, sep="::", header=False, rating_range=(1.0, 5.0))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "sep", "hint"),
    [
        ("1::1::5::978300760\n", ",", "splits on '::': set dataset.sep='::'"),
        ("1,1,4.0,964982703\n", "::", "splits on ',': set dataset.sep=','"),
        ("1\t1\t5\n", ",", "splits on '\\t': set dataset.sep=tab"),
        ("1/1/5/0/0\n", ",", "set dataset.columns to name each field"),  # no separator fits
    ],
)
def test_a_wrong_separator_is_named(tmp_path: Path, text: str, sep: str, hint: str) -> None:
    path = write(tmp_path, "ratings.dat", text)
    with pytest.raises(DataError, match=f"found 1 with dataset.sep={sep!r}") as caught:
        read_ratings(path, sep=sep, header=False)
    assert str(caught.value).endswith(hint)


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match="no ratings"):
        read_ratings(path, sep=",", header=True)


def test_invalid_columns_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "1,2,3\n")
    with pytest.raises(ConfigError, match=r"dataset\.columns"):
        read_ratings(path, sep=",", header=False, columns=["user", "user", "rating"])


@pytest.mark.parametrize("given", ["tab", "\\t", "\t"])
def test_a_tab_separator_can_be_typed(given: str) -> None:
    # Hydra keeps the backslash of "dataset.sep='\\t'": "\\t" and "tab" are a tab
    assert field_separator(given) == "\t"
    assert field_separator("::") == "::"


def test_a_custom_dataset_reads_tabs_by_name(tmp_path: Path) -> None:
    path = tmp_path / "r.tsv"
    path.write_text("1\t1\t5\n1\t2\t3\n2\t1\t4\n2\t2\t2\n")
    cfg = section(DatasetConfig, {"name": "custom", "path": str(path), "sep": "tab",
                                  "header": False, "columns": None, "encoding": "utf-8",
                                  "rating_min": None, "rating_max": None})
    table, scale, _ = read_raw_ratings(cfg, tmp_path, progress=False)
    assert table["rating"].tolist() == [5.0, 3.0, 4.0, 2.0] and scale == (2.0, 5.0)


def test_a_directory_given_as_the_ratings_file_is_named(tmp_path: Path) -> None:
    cfg = section(DatasetConfig, {"name": "custom", "path": str(tmp_path), "sep": ",",
                                  "header": False, "columns": None, "encoding": "utf-8",
                                  "rating_min": None, "rating_max": None})
    with pytest.raises(ConfigError, match=f"dataset.path={tmp_path} is a directory"):
        read_raw_ratings(cfg, tmp_path, progress=False)
    official = section(DatasetConfig, {"name": "ml1m", "ratings_file": str(tmp_path),
                                       "download": False})
    with pytest.raises(DataError, match=f"ratings file {tmp_path} is a directory, not a file"):
        read_raw_ratings(official, tmp_path, progress=False)
