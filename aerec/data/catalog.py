"""Item titles, years and genres from a MovieLens movies file, for showing recommendations.

Formats: ML-1M / ML-10M `movies.dat` (`MovieID::Title (Year)::Genre|Genre`; Latin-1 for ML-1M),
ML-20M / latest `movies.csv` (header, quoted titles with commas), ML-100K `u.item`
(`id|title|release date|video date|IMDb URL|19 genre flags`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aerec.data.locate import locate_file
from aerec.data.sources import SOURCES, Source
from aerec.errors import DataError

if TYPE_CHECKING:
    from aerec.run_config import DatasetConfig

log = logging.getLogger(__name__)

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
YEAR = re.compile(r"\((\d{4})\)\s*$")
COLUMNS = ("item", "title", "year", "genres")


def _year(title: str) -> int:
    match = YEAR.search(title)
    return int(match.group(1)) if match else 0


def read_movies(path: Path, source: Source) -> pd.DataFrame:
    """Columns item (int64), title, year (0 when unknown), genres ('A|B'); errors name the line."""
    path = Path(path)
    if path.suffix == ".csv":
        try:
            table = pd.read_csv(path, encoding=source.encoding, dtype={"movieId": "int64"})
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: could not parse the movies file: {error}") from error
        missing = {"movieId", "title", "genres"} - set(table.columns)
        if missing:
            raise DataError(f"{path}: header lacks {', '.join(sorted(missing))}")
        items, titles = table["movieId"].to_numpy(), table["title"].astype(str).tolist()
        genres = table["genres"].fillna("").astype(str).tolist()
    else:
        items, titles, genres = [], [], []
        with open(path, encoding=source.encoding, newline="") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split(source.movies_sep)
                expected = 5 + len(ML100K_GENRES) if source.name == "ml100k" else 3
                if len(fields) != expected or not fields[0].strip().isdigit():
                    raise DataError(f"{path}, line {number}: expected {expected} fields "
                                    f"separated by {source.movies_sep!r} starting with a "
                                    f"numeric id, got {line[:80]!r}")
                items.append(int(fields[0]))
                titles.append(fields[1])
                if source.name == "ml100k":
                    genres.append("|".join(name for name, flag in zip(
                        ML100K_GENRES, fields[5:], strict=True) if flag == "1"))
                else:
                    genres.append(fields[2])
    return pd.DataFrame({"item": np.asarray(items, np.int64), "title": titles,
                         "year": np.asarray([_year(t) for t in titles], np.int32),
                         "genres": genres})


def load_catalog(dataset_cfg: DatasetConfig, data_dir: Path) -> pd.DataFrame | None:
    """The movies table of a MovieLens dataset, found like its ratings (no download just for
    titles); None, with a warning, where the dataset has none or it is not on disk."""
    source = SOURCES.get(dataset_cfg.name)
    if source is None:
        return None
    try:
        path = locate_file(source, data_dir, source.movies_file, allow_download=False,
                           progress=False)
    except DataError as error:
        log.warning("no titles for recommendations: %s", str(error).splitlines()[0])
        return None
    return read_movies(path, source)


def align_catalog(catalog: pd.DataFrame | None, item_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Title, year and genres for each of `item_ids` ('' and 0 for items the catalog lacks)."""
    table = pd.DataFrame({"item": item_ids})
    if catalog is not None:
        table = table.merge(catalog.drop_duplicates("item"), on="item", how="left")
    titles = table.get("title", pd.Series([""] * len(table))).fillna("").astype(str)
    genres = table.get("genres", pd.Series([""] * len(table))).fillna("").astype(str)
    years = table.get("year", pd.Series([0] * len(table))).fillna(0).astype(np.int32)
    return {"titles": np.asarray(titles.tolist(), dtype=str),
            "genres": np.asarray(genres.tolist(), dtype=str),
            "years": years.to_numpy(np.int32)}
