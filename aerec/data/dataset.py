"""The prepared dataset: contiguous indices, ratings, split roles and id maps."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aerec.data.locate import locate_file
from aerec.data.parse import read_ratings
from aerec.data.prepare import (
    IdMap,
    build_id_maps,
    filter_min_counts,
    keep_rows,
    merge_repeated_pairs,
    resolve_duplicates,
    strictly_increasing_pairs,
)
from aerec.data.scale import describe_inferred_scale
from aerec.data.sources import SOURCES, get_source
from aerec.data.split import DROPPED, TRAIN, require_train_and_test, split_roles
from aerec.data.synthetic import synthetic_ratings
from aerec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig

log = logging.getLogger(__name__)
DATASET_NAMES = (*SOURCES, "custom", "synthetic")
FEEDBACKS = ("explicit", "implicit")


@dataclass(frozen=True)
class Dataset:
    """Ratings as parallel arrays over contiguous indices, each with its split role."""

    name: str
    users: IdMap
    items: IdMap
    user_index: np.ndarray
    item_index: np.ndarray
    rating: np.ndarray
    role: np.ndarray
    rating_min: float
    rating_max: float
    # Row accounting from the file to the matrix: ratings read, then each count of lines
    # removed (`n_below_implicit_min_rating`, `n_duplicates_merged`, `n_filtered_out`,
    # `n_heldout_only_interactions`; read minus all of them are used). Implicit data and
    # split.kind=heldout_users add their keys; explicit data has the first three only.
    accounting: dict[str, int] = field(default_factory=dict)
    source: str = ""  # where the ratings were read: a file's path, or "synthetic"
    # Implicit feedback: every interaction has rating 1.0 and rating_min = rating_max = 1.0.
    implicit: bool = False

    @property
    def n_users(self) -> int:
        """Number of users after preparation."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items after preparation."""
        return len(self.items)

    def count(self, role: int) -> int:
        """Number of ratings with the given split role."""
        return int(np.count_nonzero(self.role == role))

    def train_mean(self) -> float:
        """Mean training rating: the fallback prediction for unseen users and items."""
        return float(self.rating[self.role == TRAIN].mean(dtype=np.float64))

    def interactions(self, min_rating: float | None = None) -> Dataset:
        """This explicit dataset as implicit feedback: the same users, items and roles, only
        the ratings >= `min_rating` kept (every one when None), each as an interaction of
        value 1.0. An implicit dataset is returned as it is (its threshold, if any, was
        applied when it was read)."""
        if self.implicit:
            return self
        accounting = dict(self.accounting)
        user_index, item_index, role = self.user_index, self.item_index, self.role
        if min_rating is not None:
            kept = self.rating >= min_rating
            if not kept.any():
                raise DataError(above_every_rating(min_rating, self.source,
                                                   float(self.rating.max(initial=0))))
            user_index, item_index, role = user_index[kept], item_index[kept], role[kept]
            accounting["n_below_implicit_min_rating"] = int(kept.size - kept.sum())
        return replace(self, user_index=user_index, item_index=item_index, role=role,
                       rating=np.ones(user_index.size, np.float32), rating_min=1.0,
                       rating_max=1.0, accounting=accounting, implicit=True)


def above_every_rating(min_rating: float, origin: str, highest: float) -> str:
    """The error of a threshold that leaves no interaction."""
    return (f"dataset.implicit_min_rating={min_rating:g} is above every rating of {origin} "
            f"(max {highest:g}): no interaction left")


def require_positive_ratings(table: pd.DataFrame, path: Path) -> None:
    """Ratings must be > 0: the rating matrices mark a missing cell with 0."""
    not_positive = np.flatnonzero(table["rating"].to_numpy() <= 0)
    if not_positive.size:
        user, item, rating = (table[name].iloc[not_positive[0]]
                              for name in ("user", "item", "rating"))
        raise DataError(
            f"{path}: {not_positive.size} ratings are <= 0 (first: user {user}, item "
            f"{item}, rating {rating}); aerec needs positive ratings (0 marks "
            "a missing cell): shift the scale, e.g. add 11 to a -10..10 scale")


def require_two_rating_values(ratings: np.ndarray, origin: str) -> None:
    """Refuse ratings that are all equal: a rating model learns nothing from them (and the
    scale read from them would be empty). A single rating is left to the split's check."""
    if ratings.size >= 2 and ratings.min() == ratings.max():
        raise DataError(
            f"{origin}: all {ratings.size} ratings are {float(ratings[0]):g}: this looks like "
            "implicit feedback (clicks, plays, purchases), which aerec's rating models cannot "
            "learn from: they need at least two distinct rating values. Set "
            "dataset.feedback=implicit and train a top-N model (model=ease, multvae, multdae "
            "or recvae). If the file holds other ratings, check that dataset.columns names "
            "its rating field")


def report_inferred_scale(ratings: np.ndarray, origin: str) -> None:
    """Log the scale read from a custom file's ratings, their distribution, and a warning for
    an end that looks like an outlier (`aerec.data.scale`)."""
    if ratings.min() == ratings.max():
        return  # refused by require_two_rating_values, or too few to split
    note, warnings = describe_inferred_scale(ratings, origin)
    log.info("%s", note)
    for warning in warnings:
        log.warning("%s", warning)


def read_raw_ratings(dataset_cfg: DatasetConfig, data_dir: Path, *, progress: bool = True
                     ) -> tuple[pd.DataFrame, tuple[float, float], str]:
    """The raw ratings table named by `dataset_cfg`, its rating scale, and where it came from.

    Implicit feedback: the table may have no rating column, and the scale is (1, 1), that of
    the interactions it becomes (a MovieLens release's ratings are still checked against its
    own scale, a custom file's against dataset.rating_min/max when given).
    """
    name = dataset_cfg.name
    implicit = dataset_cfg.feedback == "implicit"
    if name in SOURCES:
        source = get_source(name)
        path = locate_file(source, data_dir, dataset_cfg.ratings_file or source.ratings_file,
                           allow_download=bool(dataset_cfg.download),
                           progress=progress)
        scale = (source.rating_min, source.rating_max)
        table = read_ratings(path, sep=source.sep, header=source.header, rating_range=scale,
                             implicit=implicit, rated=True)
        return table, (1.0, 1.0) if implicit else scale, str(path)
    if name == "custom":
        return _read_custom(dataset_cfg)
    if name == "synthetic":
        table = synthetic_ratings(
            dataset_cfg.n_users, dataset_cfg.n_items, dataset_cfg.n_ratings,
            rank=dataset_cfg.rank, popularity_exponent=dataset_cfg.popularity_exponent,
            activity_exponent=dataset_cfg.activity_exponent, noise=dataset_cfg.noise,
            rating_min=dataset_cfg.rating_min, rating_max=dataset_cfg.rating_max,
            rating_step=dataset_cfg.rating_step, seed=dataset_cfg.seed)
        scale = (float(dataset_cfg.rating_min), float(dataset_cfg.rating_max))
        return table, (1.0, 1.0) if implicit else scale, "synthetic"
    raise ConfigError(f"dataset.name={name!r} is unknown; valid: {', '.join(DATASET_NAMES)}")


def _read_custom(dataset_cfg: DatasetConfig) -> tuple[pd.DataFrame, tuple[float, float], str]:
    """`read_raw_ratings` of dataset=custom."""
    if not dataset_cfg.path:
        raise ConfigError("dataset.path is required for dataset=custom")
    path = Path(dataset_cfg.path).expanduser()
    if path.is_dir():
        raise ConfigError(f"dataset.path={path} is a directory: give the ratings file in it")
    if not path.is_file():
        raise ConfigError(f"dataset.path={path} does not exist")
    implicit = dataset_cfg.feedback == "implicit"
    low, high = dataset_cfg.rating_min, dataset_cfg.rating_max
    scale_given = low is not None and high is not None
    table = read_ratings(path, sep=dataset_cfg.sep, header=bool(dataset_cfg.header),
                         columns=dataset_cfg.columns,
                         encoding=dataset_cfg.encoding,
                         rating_range=(float(low), float(high)) if scale_given else None,
                         implicit=implicit, rated=dataset_cfg.implicit_min_rating is not None)
    if implicit:  # the interactions' scale; the ratings are only compared with a threshold
        return table, (1.0, 1.0), str(path)
    require_positive_ratings(table, path)
    if not scale_given:  # only a custom file without a configured scale
        low, high = float(table["rating"].min()), float(table["rating"].max())
        report_inferred_scale(table["rating"].to_numpy(), f"dataset.path={path}")
    return table, (float(low), float(high)), str(path)


def as_interactions(table: pd.DataFrame, min_rating: float | None, origin: str
                    ) -> tuple[pd.DataFrame, int]:
    """Implicit feedback: the lines whose rating is >= `min_rating` (every line when None, or
    when the file has no ratings), each an interaction of rating 1.0; and how many lines were
    below the threshold."""
    below = 0
    if "rating" not in table:
        if min_rating is not None:
            raise DataError(
                f"dataset.implicit_min_rating={min_rating:g} needs ratings, but {origin} has "
                "no rating field (user, item[, timestamp]): leave the threshold null, or name "
                "the rating field in dataset.columns")
    elif min_rating is not None:
        kept = table["rating"].to_numpy() >= min_rating
        if not kept.any():
            raise DataError(above_every_rating(min_rating, origin,
                                               float(table["rating"].max())))
        below = int(kept.size - kept.sum())
        log.info("%s: %d of %d ratings are >= dataset.implicit_min_rating=%g and become "
                 "interactions; %d below it are dropped", origin, kept.size - below,
                 kept.size, min_rating, below)
        table = table[kept]
    table = table.drop(columns="rating", errors="ignore")
    return table.assign(rating=np.ones(len(table), np.float32)), below


def prepare_table(table: pd.DataFrame, dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                  origin: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ratings (or interactions) a dataset keeps, and the accounting of those it drops:
    implicit threshold, duplicates (merged by prepare.duplicates; implicit repeats are one
    interaction), minimum counts. One line logs every drop."""
    read = len(table)
    accounting = {"n_ratings_read": read}
    implicit = dataset_cfg.feedback == "implicit"
    if implicit:
        table, below = as_interactions(table, dataset_cfg.implicit_min_rating, origin)
        accounting["n_below_implicit_min_rating"] = below
        before = len(table)
        table = merge_repeated_pairs(table)
    else:
        before = read
        table = resolve_duplicates(table, prepare_cfg.duplicates, origin)
    accounting["n_duplicates_merged"] = before - len(table)
    before = len(table)
    table = filter_min_counts(table, prepare_cfg.min_item_ratings, prepare_cfg.min_user_ratings,
                              repeat=prepare_cfg.repeat_filters)
    accounting["n_filtered_out"] = before - len(table)
    if read != len(table):  # nothing is dropped silently
        if implicit:
            log.info("%s: %d lines read, %d below the threshold, %d repeated (user, item) "
                     "pairs merged (one interaction each), %d removed by the minimum counts, "
                     "%d interactions used", origin, read,
                     accounting["n_below_implicit_min_rating"],
                     accounting["n_duplicates_merged"], accounting["n_filtered_out"],
                     len(table))
        else:
            log.info("%s: %d ratings read, %d merged as duplicates (prepare.duplicates=%s), "
                     "%d removed by the minimum counts, %d used", origin, read,
                     accounting["n_duplicates_merged"], prepare_cfg.duplicates,
                     accounting["n_filtered_out"], len(table))
    return table, accounting


def drop_heldout_only_items(users: IdMap, items: IdMap, user_index: np.ndarray,
                            item_index: np.ndarray, rating: np.ndarray, roles: np.ndarray,
                            accounting: dict[str, int], origin: str
                            ) -> tuple[IdMap, IdMap, np.ndarray, np.ndarray, np.ndarray,
                                       np.ndarray]:
    """split.kind=heldout_users: the rows the split DROPPED removed (the interactions with
    items no training user has), the id maps re-made without their items (and any user left
    with none), counted in `accounting` and logged."""
    kept = roles != DROPPED
    n_items = len(items)
    users, kept_user_index = keep_rows(users, user_index, kept)
    items, kept_item_index = keep_rows(items, item_index, kept)
    accounting["n_heldout_only_items"] = n_items - len(items)
    accounting["n_heldout_only_interactions"] = int(kept.size - kept.sum())
    log.info("%s: split.kind=heldout_users: %d items occur only in held-out users' "
             "interactions and are dropped with their %d interactions (only the training "
             "users' items are kept, as in Liang et al. 2018)", origin,
             accounting["n_heldout_only_items"], accounting["n_heldout_only_interactions"])
    return users, items, kept_user_index, kept_item_index, rating[kept], roles[kept]


def load_dataset(dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                 split_cfg: SplitConfig, data_dir: Path, *,
                 progress: bool = True) -> Dataset:
    """Read, deduplicate, filter, index and split the dataset the configuration names."""
    table, (low, high), origin = read_raw_ratings(dataset_cfg, data_dir, progress=progress)
    table, accounting = prepare_table(table, dataset_cfg, prepare_cfg, origin)
    implicit = dataset_cfg.feedback == "implicit"
    rating = table["rating"].to_numpy(np.float32)
    if not implicit:
        require_two_rating_values(rating, origin)
    users, items, user_index, item_index = build_id_maps(table)
    # In (user, item) order, not the file's: the split is drawn over the ratings in their
    # order, and the same ratings must split the same way however their lines are ordered
    # (ML-1M's official ratings.dat is not sorted by movie within a user, copies are).
    if not strictly_increasing_pairs(user_index, item_index):  # distinct pairs by now
        order = np.lexsort((item_index, user_index))
        user_index, item_index, rating = user_index[order], item_index[order], rating[order]
    roles = split_roles(user_index, len(users), kind=split_cfg.kind,
                        test_fraction=split_cfg.test_fraction,
                        valid_fraction=split_cfg.valid_fraction,
                        fold_in_fraction=split_cfg.fold_in_fraction, seed=split_cfg.seed,
                        item_index=item_index, heldout_users=split_cfg.heldout_users)
    if split_cfg.kind == "heldout_users":
        users, items, user_index, item_index, rating, roles = drop_heldout_only_items(
            users, items, user_index, item_index, rating, roles, accounting, origin)
    require_train_and_test(roles, origin, kind=split_cfg.kind,
                           test_fraction=split_cfg.test_fraction,
                           valid_fraction=split_cfg.valid_fraction,
                           fold_in_fraction=split_cfg.fold_in_fraction)
    return Dataset(name=dataset_cfg.name, users=users, items=items, user_index=user_index,
                   item_index=item_index, rating=rating,
                   role=roles, rating_min=low, rating_max=high, accounting=accounting,
                   source=origin, implicit=implicit)
