"""Splits by time and by files: timestamps kept with the ratings, a global time cut, each
user's latest interactions held out, and a published split's own files (ML-100K's u1.base /
u1.test)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from aerec.config import validate
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.split import TEST, TRAIN, VALID
from aerec.errors import ConfigError, DataError
from aerec.identity import data_fingerprint
from aerec.run_config import DatasetConfig, PrepareConfig, SplitConfig


def timed_lines(n_users: int = 8, per_user: int = 6) -> list[tuple[int, int, int, int]]:
    """(user, item, rating, timestamp): distinct times in no user's order."""
    return [(u, 10 + (u * 3 + k) % 20, 1 + (u + k) % 5, 7919 * (u * per_user + k) % 10007)
            for u in range(1, n_users + 1) for k in range(per_user)]


def write(path: Path, lines: list[tuple], sep: str = ",") -> Path:
    path.write_text("".join(sep.join(map(str, line)) + "\n" for line in lines))
    return path


def load(path: Path, split: SplitConfig, **dataset: object) -> Dataset:
    return load_dataset(DatasetConfig(name="custom", path=str(path), **dataset),
                        PrepareConfig(), split, path.parent, progress=False)


def test_timestamps_are_kept_and_leave_the_fingerprint_alone(tmp_path: Path) -> None:
    lines = timed_lines()
    shuffled = [lines[k] for k in np.random.default_rng(0).permutation(len(lines))]
    timed = load(write(tmp_path / "timed.csv", shuffled), SplitConfig())
    by_pair = {(u, i): t for u, i, _, t in lines}
    users, items = timed.users.raw[timed.user_index], timed.items.raw[timed.item_index]
    assert timed.timestamp is not None and timed.timestamp.dtype == np.int64
    assert [by_pair[(u, i)] for u, i in zip(users, items, strict=True)] == (
        timed.timestamp.tolist())
    untimed = load(write(tmp_path / "untimed.csv", [line[:3] for line in lines]), SplitConfig())
    assert untimed.timestamp is None
    assert data_fingerprint(timed) == data_fingerprint(untimed)
    assert timed.interactions(3).timestamp.size == np.count_nonzero(timed.rating >= 3)


def test_a_temporal_split_trains_before_it_tests(tmp_path: Path) -> None:
    path = write(tmp_path / "timed.csv", timed_lines())
    dataset = load(path, SplitConfig(kind="temporal", test_fraction=0.25, valid_fraction=0.2))
    times = {role: dataset.timestamp[dataset.role == role] for role in (TRAIN, VALID, TEST)}
    assert times[TRAIN].max() < times[VALID].min() <= times[VALID].max() < times[TEST].min()
    assert dataset.count(TEST) == 12  # round(0.25 x 48), no tie at the cut
    assert dataset.count(VALID) == round(0.2 * 36)
    # a tie at the cut is not cut through: every interaction of the cut's time is tested
    tied = [(u, i, r, 5000 if k < 20 else t) for k, (u, i, r, t) in enumerate(timed_lines())]
    dataset = load(write(tmp_path / "tied.csv", tied), SplitConfig(kind="temporal",
                                                                   test_fraction=0.5))
    assert dataset.count(TEST) == np.count_nonzero(dataset.timestamp >= 5000) > 24


def test_leave_last_holds_out_each_users_latest(tmp_path: Path) -> None:
    lines = [*timed_lines(), (99, 10, 4, 5)]  # one interaction: it trains
    dataset = load(write(tmp_path / "timed.csv", lines), SplitConfig(kind="leave_last"))
    for user in range(len(dataset.users)):
        mine = dataset.user_index == user
        order = np.argsort(dataset.timestamp[mine])
        roles = dataset.role[mine][order]
        if mine.sum() == 1:
            assert roles.tolist() == [TRAIN]
        else:
            assert roles[-1] == TEST and roles[-2] == VALID and np.all(roles[:-2] == TRAIN)
    two = load(write(tmp_path / "timed.csv", lines),
               SplitConfig(kind="leave_last", leave_last=2, valid_fraction=0.0))
    assert two.count(TEST) == 2 * 8 and two.count(VALID) == 0


def test_a_split_by_time_refuses_a_file_without_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path / "untimed.csv", [line[:3] for line in timed_lines()])
    for kind in ("temporal", "leave_last"):
        with pytest.raises(DataError, match=rf"^{path}: split\.kind={kind} orders interactions "
                                            r"by time, but the file has no timestamps"):
            load(path, SplitConfig(kind=kind))


def ml100k_files(data_dir: Path) -> tuple[list[tuple], list[tuple]]:
    """u1.base / u1.test in ML-100K's own format (tab-separated, 4 fields)."""
    lines = timed_lines(10, 8)
    base, test = lines[::5] + [line for k, line in enumerate(lines) if k % 5 and k % 4], [
        line for k, line in enumerate(lines) if k % 5 and not k % 4]
    folder = data_dir / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "u1.base", base, "\t")
    write(folder / "u1.test", test, "\t")
    return base, test


def ml100k(data_dir: Path, **split: object) -> Dataset:
    return load_dataset(DatasetConfig(name="ml100k", download=False), PrepareConfig(),
                        SplitConfig(kind="files", **split), data_dir, progress=False)


def test_a_files_split_reproduces_the_files_counts(tmp_path: Path) -> None:
    base, test = ml100k_files(tmp_path)
    dataset = ml100k(tmp_path, train_path="u1.base", test_path="u1.test")
    assert (dataset.count(TRAIN), dataset.count(VALID), dataset.count(TEST)) == (
        len(base), 0, len(test))
    assert dataset.n_users == len({line[0] for line in base})
    assert dataset.n_items == len({line[1] for line in base})
    tested = {(u, i) for u, i, *_ in test}
    rows = dataset.role == TEST
    assert set(zip(dataset.users.raw[dataset.user_index[rows]].tolist(),
                   dataset.items.raw[dataset.item_index[rows]].tolist(), strict=True)) == tested
    assert dataset.accounting["n_test_unknown_lines"] == 0
    assert "u1.base" in dataset.source and "u1.test" in dataset.source


def test_test_lines_unknown_to_training_are_counted_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base, test = ml100k_files(tmp_path)
    extra = [(999, 10, 4, 1), (999, 11, 4, 2), (1, 5000, 3, 3), base[0]]
    write(tmp_path / "ml-100k" / "u1.test", [*test, *extra], "\t")
    with caplog.at_level(logging.WARNING, logger="aerec.data.split_files"):
        dataset = ml100k(tmp_path, train_path="u1.base", test_path="u1.test")
    assert dataset.count(TEST) == len(test)
    accounting = dataset.accounting
    assert (accounting["n_test_unknown_lines"], accounting["n_test_unknown_users"],
            accounting["n_test_unknown_items"], accounting["n_pairs_in_earlier_file"]) == (
        3, 1, 1, 1)
    assert "3 test lines are left out" in caplog.text
    assert "1 (user, item) pairs of the validation or test file" in caplog.text


def test_a_missing_split_file_names_its_key(tmp_path: Path, compose_config) -> None:
    ml100k_files(tmp_path)
    with pytest.raises(DataError, match=r"^split\.test_path=u9\.test: not found"):
        ml100k(tmp_path, train_path="u1.base", test_path="u9.test")
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(ConfigError, match=rf"^split\.train_path={missing} does not exist$"):
        load_dataset(DatasetConfig(name="custom"), PrepareConfig(),
                     SplitConfig(kind="files", train_path=str(missing), test_path=str(missing)),
                     tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"split\.kind=files needs split\.test_path"):
        validate(compose_config("dataset=ml100k", "split.kind=files",
                                "split.train_path=u1.base", fast=False))
    with pytest.raises(ConfigError, match=r"split\.train_path=u1\.base is read only by "
                                          r"split\.kind=files, not split\.kind=ratings"):
        validate(compose_config("split.train_path=u1.base"))
    with pytest.raises(ConfigError, match=r"split\.leave_last=0 must be an integer >= 1"):
        validate(compose_config("split.leave_last=0"))
