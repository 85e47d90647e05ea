"""Registry of the MovieLens releases: official archive URL, checksum, file layout and format."""

from __future__ import annotations

from dataclasses import dataclass

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Source:
    """One official MovieLens release and how its ratings file is laid out."""

    name: str
    url: str
    sha256: str
    size_bytes: int
    folder: str  # the top-level folder inside the official zip archive
    ratings_file: str
    sep: str
    header: bool
    rating_min: float
    rating_max: float
    movies_file: str
    movies_sep: str
    encoding: str

    @property
    def archive_name(self) -> str:
        """File name of the official archive (the last part of its URL)."""
        return self.url.rsplit("/", 1)[-1]


# Checksums are the SHA-256 of the official archives as published by GroupLens (the same values
# are pinned by tensorflow-datasets' url_checksums; ML-10M's by several independent loaders).
SOURCES: dict[str, Source] = {
    "ml100k": Source(
        name="ml100k",
        url=f"{GROUPLENS}/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size_bytes=4_924_029,
        folder="ml-100k",
        ratings_file="u.data",
        sep="\t",
        header=False,
        rating_min=1.0,
        rating_max=5.0,
        movies_file="u.item",
        movies_sep="|",
        encoding="latin-1",
    ),
    "ml1m": Source(
        name="ml1m",
        url=f"{GROUPLENS}/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        size_bytes=5_917_549,
        folder="ml-1m",
        ratings_file="ratings.dat",
        sep="::",
        header=False,
        rating_min=1.0,
        rating_max=5.0,
        movies_file="movies.dat",
        movies_sep="::",
        encoding="latin-1",
    ),
    "ml10m": Source(
        name="ml10m",
        url=f"{GROUPLENS}/ml-10m.zip",
        sha256="813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
        size_bytes=65_566_137,
        folder="ml-10M100K",
        ratings_file="ratings.dat",
        sep="::",
        header=False,
        rating_min=0.5,
        rating_max=5.0,
        movies_file="movies.dat",
        movies_sep="::",
        encoding="utf-8",
    ),
    "ml20m": Source(
        name="ml20m",
        url=f"{GROUPLENS}/ml-20m.zip",
        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        size_bytes=198_702_078,
        folder="ml-20m",
        ratings_file="ratings.csv",
        sep=",",
        header=True,
        rating_min=0.5,
        rating_max=5.0,
        movies_file="movies.csv",
        movies_sep=",",
        encoding="utf-8",
    ),
    "ml-latest-small": Source(
        name="ml-latest-small",
        url=f"{GROUPLENS}/ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        size_bytes=978_202,
        folder="ml-latest-small",
        ratings_file="ratings.csv",
        sep=",",
        header=True,
        rating_min=0.5,
        rating_max=5.0,
        movies_file="movies.csv",
        movies_sep=",",
        encoding="utf-8",
    ),
}


def get_source(name: str) -> Source:
    """Look up a MovieLens release by its dataset name."""
    try:
        return SOURCES[name]
    except KeyError:
        valid = ", ".join(sorted(SOURCES))
        message = f"dataset.name={name!r} is not a MovieLens release; valid: {valid}"
        raise KeyError(message) from None
