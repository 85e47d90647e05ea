"""split.kind=files: a split given as files (ML-100K's u1.base / u1.test, a published split), so
that published figures are compared on their own split.

Each file is in the dataset's format. The users and items are those of the training (and
validation) files; test lines of users or items they do not have cannot be scored: they are
counted, reported and left out, never dropped silently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from aerec.data.locate import locate_file
from aerec.data.sources import SOURCES, get_source
from aerec.data.split import TEST, TRAIN, VALID
from aerec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from aerec.run_config import DatasetConfig, SplitConfig

log = logging.getLogger(__name__)
SPLIT_FILE_KEYS = {TRAIN: "train_path", VALID: "valid_path", TEST: "test_path"}


def split_file_paths(dataset_cfg: DatasetConfig, split_cfg: SplitConfig, data_dir: Path, *,
                     progress: bool = True) -> dict[int, Path]:
    """The split's files by role (validation only when split.valid_path is set).

    A path that exists is used as it is. A relative one that does not is, for a MovieLens
    release, a file of its release: found in `<data_dir>/<folder>/` or extracted from the
    official archive (ML-100K's u1.base ... u5.test, ua/ub). A missing file is an error
    naming its key."""
    paths = {}
    for role, name in SPLIT_FILE_KEYS.items():
        value = getattr(split_cfg, name)
        if value is None:
            if role != VALID:
                raise ConfigError(f"split.kind=files needs split.{name} (split.train_path and "
                                  "split.test_path; split.valid_path is optional)")
            continue
        paths[role] = _split_file(f"split.{name}", str(value), dataset_cfg, data_dir,
                                  progress=progress)
    return paths


def _split_file(key: str, value: str, dataset_cfg: DatasetConfig, data_dir: Path, *,
                progress: bool) -> Path:
    path = Path(value).expanduser()
    if path.is_dir():
        raise ConfigError(f"{key}={path} is a directory: give the file in it")
    if path.is_file():
        return path
    if dataset_cfg.name in SOURCES and not path.is_absolute():
        source = get_source(dataset_cfg.name)
        try:
            return locate_file(source, data_dir, value, allow_download=bool(dataset_cfg.download),
                               progress=progress)
        except DataError as error:
            raise DataError(f"{key}={value}: not found in the current directory, nor as a "
                            f"file of {source.name}: {error}") from None
    raise ConfigError(f"{key}={path} does not exist")


def drop_pairs_seen_before(table: pd.DataFrame, origin: str, accounting: dict[str, int]
                           ) -> pd.DataFrame:
    """A (user, item) pair in more than one file is kept in the first of training,
    validation, test (a pair the model was given cannot be tested on) and left out of the
    others: counted in `accounting` (n_pairs_in_earlier_file) and logged."""
    ordered = table.sort_values("role", kind="stable")
    repeated = ordered.duplicated(["user", "item"], keep="first").to_numpy()
    accounting["n_pairs_in_earlier_file"] = int(repeated.sum())
    if repeated.any():
        log.warning("%s: %d (user, item) pairs of the validation or test file are also in an "
                    "earlier one (training, then validation): left out there", origin,
                    int(repeated.sum()))
    return ordered[~repeated].reset_index(drop=True)


def drop_unknown_test_rows(table: pd.DataFrame, origin: str, accounting: dict[str, int]
                           ) -> pd.DataFrame:
    """Test lines of users or items that no training or validation line has, left out: no
    model can score them. Counted in `accounting` (lines, distinct users, distinct items)
    and logged."""
    roles = table["role"].to_numpy()
    known = table[roles != TEST]
    test = roles == TEST
    unknown_user = test & ~table["user"].isin(known["user"]).to_numpy()
    unknown_item = test & ~table["item"].isin(known["item"]).to_numpy()
    unknown = unknown_user | unknown_item
    accounting.update({
        "n_test_unknown_lines": int(unknown.sum()),
        "n_test_unknown_users": int(table["user"][unknown_user].nunique()),
        "n_test_unknown_items": int(table["item"][unknown_item].nunique())})
    if unknown.any():
        log.warning("%s: %d test lines are left out: their user or item is in no training "
                    "or validation line (%d users, %d items unknown to training), so no "
                    "model can score them", origin, accounting["n_test_unknown_lines"],
                    accounting["n_test_unknown_users"], accounting["n_test_unknown_items"])
    return table[~unknown].reset_index(drop=True)


def describe(paths: dict[int, Path]) -> str:
    """The files of a split, for messages and the data's source."""
    return ", ".join(f"split.{SPLIT_FILE_KEYS[role]}={path}" for role, path in paths.items())
