"""The prepared dataset: contiguous indices, ratings, split roles and id maps."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aerec.data import split_files
from aerec.data.prepare import (
    IdMap,
    build_id_maps,
    filter_min_counts,
    keep_rows,
    merge_repeated_pairs,
    resolve_duplicates,
    strictly_increasing_pairs,
)
from aerec.data.read import DATASET_NAMES, rating_scale, read_raw_ratings, read_table
from aerec.data.split import (
    DROPPED,
    TEST,
    TIMED_KINDS,
    TRAIN,
    require_train_and_test,
    split_roles,
)
from aerec.errors import DataError

if TYPE_CHECKING:
    from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig

log = logging.getLogger(__name__)
__all__ = ["DATASET_NAMES", "FEEDBACKS", "Dataset", "load_dataset", "read_raw_ratings"]
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
    # Each rating's timestamp (int64) when the file has them, else None. Not part of the
    # data's fingerprint (`aerec.identity.data_fingerprint`): the ratings are the data.
    timestamp: np.ndarray | None = None

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
        rows = {"user_index": self.user_index, "item_index": self.item_index,
                "role": self.role, "timestamp": self.timestamp}
        if min_rating is not None:
            kept = self.rating >= min_rating
            if not kept.any():
                raise DataError(above_every_rating(min_rating, self.source,
                                                   float(self.rating.max(initial=0))))
            rows = {name: None if array is None else array[kept]
                    for name, array in rows.items()}
            accounting["n_below_implicit_min_rating"] = int(kept.size - kept.sum())
        return replace(self, **rows, rating=np.ones(rows["role"].size, np.float32),
                       rating_min=1.0, rating_max=1.0, accounting=accounting, implicit=True)


def above_every_rating(min_rating: float, origin: str, highest: float) -> str:
    """The error of a threshold that leaves no interaction."""
    return (f"dataset.implicit_min_rating={min_rating:g} is above every rating of {origin} "
            f"(max {highest:g}): no interaction left")


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


def merge_lines(table: pd.DataFrame, dataset_cfg: DatasetConfig, duplicates: str,
                origin: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The lines of one file as ratings (or interactions), and the accounting of those
    dropped: below the implicit threshold, and duplicates (merged by prepare.duplicates;
    repeated interactions are one)."""
    read = len(table)
    accounting = {"n_ratings_read": read}
    if dataset_cfg.feedback == "implicit":
        table, below = as_interactions(table, dataset_cfg.implicit_min_rating, origin)
        accounting["n_below_implicit_min_rating"] = below
        before = len(table)
        table = merge_repeated_pairs(table)
    else:
        before = read
        table = resolve_duplicates(table, duplicates, origin)
    accounting["n_duplicates_merged"] = before - len(table)
    return table, accounting


def log_preparation(origin: str, accounting: dict[str, int], used: int, implicit: bool,
                    duplicates: str) -> None:
    """One line for every line dropped in preparation (nothing is dropped silently)."""
    read = accounting["n_ratings_read"]
    if read == used:
        return
    if implicit:
        log.info("%s: %d lines read, %d below the threshold, %d repeated (user, item) pairs "
                 "merged (one interaction each), %d removed by the minimum counts, %d "
                 "interactions used", origin, read, accounting["n_below_implicit_min_rating"],
                 accounting["n_duplicates_merged"], accounting["n_filtered_out"], used)
    else:
        log.info("%s: %d ratings read, %d merged as duplicates (prepare.duplicates=%s), %d "
                 "removed by the minimum counts, %d used", origin, read,
                 accounting["n_duplicates_merged"], duplicates, accounting["n_filtered_out"],
                 used)


def prepare_table(table: pd.DataFrame, dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                  origin: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ratings (or interactions) a dataset keeps, and the accounting of those it drops:
    implicit threshold, duplicates, minimum counts (`merge_lines`, `filter_min_counts`)."""
    table, accounting = merge_lines(table, dataset_cfg, prepare_cfg.duplicates, origin)
    before = len(table)
    table = filter_min_counts(table, prepare_cfg.min_item_ratings, prepare_cfg.min_user_ratings,
                              repeat=prepare_cfg.repeat_filters)
    accounting["n_filtered_out"] = before - len(table)
    log_preparation(origin, accounting, len(table), dataset_cfg.feedback == "implicit",
                    prepare_cfg.duplicates)
    return table, accounting


def indexed_rows(table: pd.DataFrame) -> tuple[IdMap, IdMap, dict[str, np.ndarray]]:
    """The id maps of a prepared table and its rows as arrays (user_index, item_index,
    rating, and timestamp and role when the table has them) in (user, item) order, not the
    file's: the split is drawn over the ratings in their order, and the same ratings must
    split the same way however their lines are ordered (ML-1M's official ratings.dat is not
    sorted by movie within a user, copies are)."""
    users, items, user_index, item_index = build_id_maps(table)
    rows = {"user_index": user_index, "item_index": item_index,
            "rating": table["rating"].to_numpy(np.float32)}
    for name, dtype in (("timestamp", np.int64), ("role", np.int8)):
        if name in table:
            rows[name] = table[name].to_numpy(dtype)
    if not strictly_increasing_pairs(user_index, item_index):  # distinct pairs by now
        order = np.lexsort((item_index, user_index))
        rows = {name: array[order] for name, array in rows.items()}
    return users, items, rows


def require_timestamps(table: pd.DataFrame, kind: str, origin: str) -> None:
    """A split by time refuses a file without timestamps, naming it."""
    if kind in TIMED_KINDS and "timestamp" not in table:
        raise DataError(f"{origin}: split.kind={kind} orders interactions by time, but the file "
                        f"has no timestamps (its fields: {', '.join(table.columns)}): use a "
                        "file with a timestamp field (dataset.columns names it), or another "
                        "split.kind")


def drop_heldout_only_items(users: IdMap, items: IdMap, rows: dict[str, np.ndarray],
                            accounting: dict[str, int], origin: str
                            ) -> tuple[IdMap, IdMap, dict[str, np.ndarray]]:
    """split.kind=heldout_users: the rows the split DROPPED removed (the interactions with
    items no training user has), the id maps re-made without their items (and any user left
    with none), counted in `accounting` and logged."""
    kept = rows["role"] != DROPPED
    n_items = len(items)
    users, user_index = keep_rows(users, rows["user_index"], kept)
    items, item_index = keep_rows(items, rows["item_index"], kept)
    rows = {**{name: array[kept] for name, array in rows.items()},
            "user_index": user_index, "item_index": item_index}
    accounting["n_heldout_only_items"] = n_items - len(items)
    accounting["n_heldout_only_interactions"] = int(kept.size - kept.sum())
    log.info("%s: split.kind=heldout_users: %d items occur only in held-out users' "
             "interactions and are dropped with their %d interactions (only the training "
             "users' items are kept, as in Liang et al. 2018)", origin,
             accounting["n_heldout_only_items"], accounting["n_heldout_only_interactions"])
    return users, items, rows


def load_dataset(dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                 split_cfg: SplitConfig, data_dir: Path, *,
                 progress: bool = True) -> Dataset:
    """Read, deduplicate, filter, index and split the dataset the configuration names."""
    if split_cfg.kind == "files":
        return load_split_files(dataset_cfg, prepare_cfg, split_cfg, data_dir,
                                progress=progress)
    table, scale, origin = read_raw_ratings(dataset_cfg, data_dir, progress=progress)
    return dataset_from_table(table, scale, origin, dataset_cfg, prepare_cfg, split_cfg)


def dataset_from_table(table: pd.DataFrame, scale: tuple[float, float], origin: str,
                       dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                       split_cfg: SplitConfig) -> Dataset:
    """A raw ratings table (user, item[, rating][, timestamp], as `read_ratings` gives it) of
    rating scale `scale`, read from `origin`, prepared, indexed and split as configured."""
    low, high = scale
    table, accounting = prepare_table(table, dataset_cfg, prepare_cfg, origin)
    implicit = dataset_cfg.feedback == "implicit"
    if not implicit:
        require_two_rating_values(table["rating"].to_numpy(), origin)
    require_timestamps(table, split_cfg.kind, origin)
    users, items, rows = indexed_rows(table)
    rows["role"] = split_roles(
        rows["user_index"], len(users), kind=split_cfg.kind,
        test_fraction=split_cfg.test_fraction, valid_fraction=split_cfg.valid_fraction,
        fold_in_fraction=split_cfg.fold_in_fraction, seed=split_cfg.seed,
        item_index=rows["item_index"], heldout_users=split_cfg.heldout_users,
        timestamp=rows.get("timestamp"), leave_last=split_cfg.leave_last)
    if split_cfg.kind == "heldout_users":
        users, items, rows = drop_heldout_only_items(users, items, rows, accounting, origin)
    require_train_and_test(rows["role"], origin, kind=split_cfg.kind,
                           test_fraction=split_cfg.test_fraction,
                           valid_fraction=split_cfg.valid_fraction,
                           fold_in_fraction=split_cfg.fold_in_fraction)
    return Dataset(name=dataset_cfg.name, users=users, items=items, **rows,
                   rating_min=low, rating_max=high, accounting=accounting,
                   source=origin, implicit=implicit)


def load_split_files(dataset_cfg: DatasetConfig, prepare_cfg: PrepareConfig,
                     split_cfg: SplitConfig, data_dir: Path, *,
                     progress: bool = True) -> Dataset:
    """split.kind=files: each file read and its lines merged as the dataset's file would be
    (implicit threshold, duplicates); a pair in several files kept in the first of training,
    validation, test; the minimum counts over training and validation, whose users and items
    are the dataset's; test lines of other users or items counted, reported and left out."""
    if dataset_cfg.name == "synthetic":
        raise DataError("split.kind=files reads the split's files in a dataset's format: "
                        "dataset=synthetic has none (use dataset=custom or a MovieLens release)")
    paths = split_files.split_file_paths(dataset_cfg, split_cfg, data_dir, progress=progress)
    origin = split_files.describe(paths)
    raw = {role: read_table(dataset_cfg, path) for role, path in paths.items()}
    low, high = rating_scale(dataset_cfg, [(raw[role], str(path))
                                           for role, path in paths.items()], origin)
    accounting: dict[str, int] = {}
    tables = []
    for role, table in raw.items():
        table, counts = merge_lines(table, dataset_cfg, prepare_cfg.duplicates, str(paths[role]))
        tables.append(table.assign(role=np.int8(role)))
        for key, value in counts.items():
            accounting[key] = accounting.get(key, 0) + value
    table = split_files.drop_pairs_seen_before(pd.concat(tables, ignore_index=True),
                                               origin, accounting)
    table = _filter_known(table, prepare_cfg, accounting)
    log_preparation(origin, accounting, len(table), dataset_cfg.feedback == "implicit",
                    prepare_cfg.duplicates)
    table = split_files.drop_unknown_test_rows(table, origin, accounting)
    if dataset_cfg.feedback != "implicit":
        require_two_rating_values(table["rating"].to_numpy(), origin)
    users, items, rows = indexed_rows(table)
    require_train_and_test(rows["role"], origin, kind="files", test_fraction=0.0,
                           valid_fraction=0.0, fold_in_fraction=0.0)
    return Dataset(name=dataset_cfg.name, users=users, items=items, **rows,
                   rating_min=low, rating_max=high, accounting=accounting, source=origin,
                   implicit=dataset_cfg.feedback == "implicit")


def _filter_known(table: pd.DataFrame, prepare_cfg: PrepareConfig,
                  accounting: dict[str, int]) -> pd.DataFrame:
    """The minimum counts over the training and validation lines (test lines are never
    counted: they are what is predicted, and a test line of a user or item filtered out is
    then left out as unknown)."""
    is_test = table["role"].to_numpy() == TEST
    known = table[~is_test]
    kept = filter_min_counts(known, prepare_cfg.min_item_ratings, prepare_cfg.min_user_ratings,
                             repeat=prepare_cfg.repeat_filters)
    accounting["n_filtered_out"] = len(known) - len(kept)
    return pd.concat([kept, table[is_test]], ignore_index=True)
