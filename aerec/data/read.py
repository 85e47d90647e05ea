"""The dataset's files as raw tables: where they are, their format, and their rating scale."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aerec.data.locate import locate_file
from aerec.data.parse import read_ratings
from aerec.data.scale import describe_inferred_scale
from aerec.data.sources import SOURCES, get_source
from aerec.data.synthetic import synthetic_ratings
from aerec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from aerec.run_config import DatasetConfig

log = logging.getLogger(__name__)
DATASET_NAMES = (*SOURCES, "custom", "synthetic")


def require_positive_ratings(table: pd.DataFrame, path: Path | str) -> None:
    """Ratings must be > 0: the rating matrices mark a missing cell with 0."""
    not_positive = np.flatnonzero(table["rating"].to_numpy() <= 0)
    if not_positive.size:
        user, item, rating = (table[name].iloc[not_positive[0]]
                              for name in ("user", "item", "rating"))
        raise DataError(
            f"{path}: {not_positive.size} ratings are <= 0 (first: user {user}, item "
            f"{item}, rating {rating}); aerec needs positive ratings (0 marks "
            "a missing cell): shift the scale, e.g. add 11 to a -10..10 scale")


def report_inferred_scale(ratings: np.ndarray, origin: str) -> None:
    """Log the scale read from a custom file's ratings, their distribution, and a warning for
    an end that looks like an outlier (`aerec.data.scale`)."""
    if ratings.min() == ratings.max():
        return  # refused by require_two_rating_values, or too few to split
    note, warnings = describe_inferred_scale(ratings, origin)
    log.info("%s", note)
    for warning in warnings:
        log.warning("%s", warning)


def custom_path(dataset_cfg: DatasetConfig) -> Path:
    """dataset.path of dataset=custom: an existing file (ConfigError naming the key)."""
    if not dataset_cfg.path:
        raise ConfigError("dataset.path is required for dataset=custom")
    path = Path(dataset_cfg.path).expanduser()
    if path.is_dir():
        raise ConfigError(f"dataset.path={path} is a directory: give the ratings file in it")
    if not path.is_file():
        raise ConfigError(f"dataset.path={path} does not exist")
    return path


def read_table(dataset_cfg: DatasetConfig, path: Path) -> pd.DataFrame:
    """One file in the dataset's format: a MovieLens release's own (its ratings checked
    against its scale), or a custom file's dataset.sep, header, columns and encoding (checked
    against dataset.rating_min/max when given)."""
    implicit = dataset_cfg.feedback == "implicit"
    if dataset_cfg.name in SOURCES:
        source = get_source(dataset_cfg.name)
        return read_ratings(path, sep=source.sep, header=source.header,
                            rating_range=(source.rating_min, source.rating_max),
                            implicit=implicit, rated=True)
    low, high = dataset_cfg.rating_min, dataset_cfg.rating_max
    scale_given = low is not None and high is not None
    return read_ratings(path, sep=dataset_cfg.sep, header=bool(dataset_cfg.header),
                        columns=dataset_cfg.columns, encoding=dataset_cfg.encoding,
                        rating_range=(float(low), float(high)) if scale_given else None,
                        implicit=implicit, rated=dataset_cfg.implicit_min_rating is not None)


def rating_scale(dataset_cfg: DatasetConfig, tables: Sequence[tuple[pd.DataFrame, str]],
                 origin: str) -> tuple[float, float]:
    """The rating scale of the tables read (each with the file it came from): (1, 1) for
    implicit feedback, a release's or the configured one, else read from the ratings
    (reported as `origin`: `aerec.data.scale`)."""
    if dataset_cfg.feedback == "implicit":
        return 1.0, 1.0  # the interactions'; the ratings are only compared with a threshold
    if dataset_cfg.name in SOURCES:
        source = get_source(dataset_cfg.name)
        return source.rating_min, source.rating_max
    if dataset_cfg.name == "synthetic":
        return float(dataset_cfg.rating_min), float(dataset_cfg.rating_max)
    for table, path in tables:
        require_positive_ratings(table, path)
    if dataset_cfg.rating_min is not None and dataset_cfg.rating_max is not None:
        return float(dataset_cfg.rating_min), float(dataset_cfg.rating_max)
    # only a custom file without a configured scale
    ratings = np.concatenate([table["rating"].to_numpy() for table, _ in tables])
    report_inferred_scale(ratings, origin)
    return float(ratings.min()), float(ratings.max())


def read_raw_ratings(dataset_cfg: DatasetConfig, data_dir: Path, *, progress: bool = True
                     ) -> tuple[pd.DataFrame, tuple[float, float], str]:
    """The raw ratings table named by `dataset_cfg`, its rating scale, and where it came from.

    Implicit feedback: the table may have no rating column, and the scale is (1, 1), that of
    the interactions it becomes (a MovieLens release's ratings are still checked against its
    own scale, a custom file's against dataset.rating_min/max when given).
    """
    name = dataset_cfg.name
    if name in SOURCES:
        source = get_source(name)
        path = locate_file(source, data_dir, dataset_cfg.ratings_file or source.ratings_file,
                           allow_download=bool(dataset_cfg.download),
                           progress=progress)
    elif name == "custom":
        path = custom_path(dataset_cfg)
    elif name == "synthetic":
        table = synthetic_ratings(
            dataset_cfg.n_users, dataset_cfg.n_items, dataset_cfg.n_ratings,
            rank=dataset_cfg.rank, popularity_exponent=dataset_cfg.popularity_exponent,
            activity_exponent=dataset_cfg.activity_exponent, noise=dataset_cfg.noise,
            rating_min=dataset_cfg.rating_min, rating_max=dataset_cfg.rating_max,
            rating_step=dataset_cfg.rating_step, seed=dataset_cfg.seed)
        return table, rating_scale(dataset_cfg, [(table, "synthetic")], "synthetic"), "synthetic"
    else:
        raise ConfigError(f"dataset.name={name!r} is unknown; valid: {', '.join(DATASET_NAMES)}")
    table = read_table(dataset_cfg, path)
    return table, rating_scale(dataset_cfg, [(table, str(path))], f"dataset.path={path}"), str(
        path)
