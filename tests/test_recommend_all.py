"""Recommendations for many users: one table for a list of users, every user's lists into a
CSV or Parquet file (whole or not at all), and the errors of bad requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import aerec
import aerec.saved_model
from aerec.cli import main, run_task
from aerec.errors import ConfigError, DataError, UnknownIdError
from aerec.rankers import PopularityRanker
from aerec.recommend import format_recommendations
from aerec.saved_model import TrainedModel
from aerec.top_items import ranked_chunks
from tests.conftest import FAST_DATA, ROOT, cli_env

SMALL = ["dataset.n_users=60", "dataset.n_items=40", "dataset.n_ratings=1000",
         "ranking.enabled=false", "checkpoint.enabled=false"]


@pytest.fixture(scope="module")
def svd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 SVD of a small synthetic matrix (fitted in one call); its model directory."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONFIGS

    root = tmp_path_factory.mktemp("recommend_all")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*FAST_DATA, *SMALL, "model=svd",
                                                              "model.rank=4"])
    run_task(cfg, root / "run")
    return root / "run" / "model"


@pytest.fixture(scope="module")
def model(svd_model: Path) -> TrainedModel:
    """The SVD loaded once: its compiled programs serve every test."""
    return aerec.load(svd_model)


def expected_lists(model: TrainedModel, k: int) -> pd.DataFrame:
    """Every user's list, ranked on the host (a stable sort of each user's unseen items)."""
    scores = np.asarray(model.ranker.user_scores(np.arange(len(model.users))), np.float32)
    rows = []
    for user in range(len(model.users)):
        unseen = np.setdiff1d(np.arange(len(model.items)), model.seen[user].indices)
        order = unseen[np.argsort(-scores[user, unseen], kind="stable")][:k]
        rows += [(model.users.raw[user], rank, model.items.raw[item], scores[user, item])
                 for rank, item in enumerate(order, start=1)]
    return pd.DataFrame(rows, columns=["user", "rank", "item", "score"]).astype(
        {"rank": np.int32, "score": np.float32})


def test_a_list_of_users_gets_each_users_own_list(model: TrainedModel) -> None:
    users = [5, 1, 5, 60]  # in the order given, a repeated one twice
    table = model.recommend(users, k=4)
    assert list(table.columns) == ["user", "rank", "item", "score", "predicted_rating",
                                   "title", "year", "genres"]
    assert list(table["user"]) == [user for user in users for _ in range(4)]
    for user in set(users):
        alone = model.recommend(user, k=4)
        mine = table[table["user"] == user].drop_duplicates().reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    np.testing.assert_allclose(table["score"], model.predict(table["user"], table["item"]),
                               rtol=1e-5)  # an SVD's scores are its predicted ratings
    history = model.recommend_for_history({1: 5.0, 2: 3.0}, k=3)
    assert list(history.columns) == list(table.columns)[1:]
    assert model.recommend(np.array([], np.int64), k=3).empty


def test_every_users_lists_to_csv_and_parquet(model: TrainedModel, tmp_path: Path) -> None:
    k = 30  # more than some users have unseen items: their lists are shorter
    expected = expected_lists(model, k)
    unseen = len(model.items) - np.diff(model.seen.indptr)
    assert (unseen < k).any() and len(expected) == np.minimum(unseen, k).sum()
    csv, parquet = tmp_path / "recs.csv", tmp_path / "recs.parquet"
    assert model.write_recommendations(csv, k=k, chunk_users=16) == len(expected)
    assert model.write_recommendations(parquet, k=k, chunk_users=16) == len(expected)
    from_csv = pd.read_csv(csv, dtype={"rank": np.int32, "score": np.float32})
    pd.testing.assert_frame_equal(from_csv, expected)
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), expected)
    assert sorted(os.listdir(tmp_path)) == ["recs.csv", "recs.parquet"]  # no leftovers
    table = model.recommend(list(model.users.raw), k=k, chunk_users=16)  # as a table
    pd.testing.assert_frame_equal(table[["user", "rank", "item"]],
                                  expected[["user", "rank", "item"]].astype({"rank": int}))


def test_equal_scores_rank_the_lower_item_first() -> None:
    counts = np.array([3, 5, 3, 5, 3, 1], np.float32)
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.float32))
    chunks = list(ranked_chunks(PopularityRanker(counts), seen, np.array([0, 1]), k=8))
    (_, items, scores), = chunks
    assert items.shape == (2, 6)  # k beyond the catalogue: every item, once
    assert list(items[0][:5]) == [3, 0, 2, 4, 5] and scores[0][5] == -np.inf
    assert list(items[1]) == [1, 3, 0, 2, 4, 5]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_write_stopped_midway_leaves_nothing(model: TrainedModel, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               failure: type[BaseException]) -> None:
    def broken(*args, **kwargs):
        for number, chunk in enumerate(ranked_chunks(*args, **kwargs)):
            if number == 2:
                raise failure("stopped")
            yield chunk

    monkeypatch.setattr(aerec.saved_model, "ranked_chunks", broken)
    output = tmp_path / "recs.csv"
    output.write_text("an earlier file\n")
    with pytest.raises(failure):
        model.write_recommendations(output, k=5, chunk_users=8)
    assert output.read_text() == "an earlier file\n" and os.listdir(tmp_path) == ["recs.csv"]


@pytest.mark.slow  # a process of its own: JAX and Hydra imported again
@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "interrupted"),
                                              (signal.SIGTERM, "interrupted (SIGTERM)")])
def test_a_stopped_command_line_leaves_no_partial_file(svd_model: Path, tmp_path: Path,
                                                       signum: int, said: str) -> None:
    output = tmp_path / "out" / "recs.csv"
    output.parent.mkdir()
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "recommend_interrupt_worker.py"),
         "task=recommend", f"checkpoint.path={svd_model}", "users=all", "k=5",
         f"output={output}", "ranking.chunk_users=8", f"hydra.run.dir={tmp_path / 'run'}"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "first chunk ranked\n", worker.stderr.read()
        assert len(list(output.parent.iterdir())) == 1  # the partial file, written to
        worker.send_signal(signum)
        _, stderr = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 128 + signum, stderr
    assert f"{said}: output={output} was not written" in stderr
    assert list(output.parent.iterdir()) == []


def test_unwritable_output_is_one_line_before_any_work(compose_config, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere" / "recs.csv"
    # the model does not exist either: the output is checked first
    cfg = compose_config("task=recommend", f"checkpoint.path={tmp_path / 'no_model'}",
                         "users=all", f"output={missing}")
    with pytest.raises(SystemExit) as stop:
        main(cfg, tmp_path / "run")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == (f"error: output={missing}: the directory {missing.parent} does not "
                   "exist\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"folder\.csv is a directory; give a file name"):
        run_task(compose_config("task=recommend", "checkpoint.path=x", "users=all",
                                f"output={folder}"), tmp_path / "run")


def test_parquet_without_pyarrow_says_how_to_install(model: TrainedModel, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow fails
    with pytest.raises(DataError, match=r"needs pyarrow: pip install 'aerec\[parquet\]'"):
        model.write_recommendations(tmp_path / "recs.parquet")
    assert list(tmp_path.iterdir()) == []


def test_unknown_users_are_named_and_counted(model: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(UnknownIdError, match=r"^user 424242 and 2 more of the 4 users asked "
                                             r"for are not known to this model \(60 users, "
                                             r"ids 1\.\.60\); recommend from a rating"):
        model.recommend([1, 424242, 0, 2.5], k=3)
    with pytest.raises(UnknownIdError, match=r"^user True is not known"):
        model.recommend([True, 2])
    with pytest.raises(UnknownIdError, match=r"^user 99 is not known"):
        model.write_recommendations(tmp_path / "unused.csv", users=[99])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="k=0 must be an integer >= 1"):
        model.recommend([1], k=0)


def test_the_command_line_prints_or_writes(svd_model: Path, compose_config,
                                           tmp_path: Path) -> None:
    payload = run_task(compose_config("task=recommend", f"checkpoint.path={svd_model}",
                                      "users=[3,4]", "k=2"), tmp_path / "a")
    assert payload["users"] == [3, 4]
    text = format_recommendations(payload)
    assert text.splitlines()[:2] == ["top 2 for 2 users:",
                                     " user  rank  item predicted_rating"]
    output = tmp_path / "recs.parquet"
    summary = run_task(compose_config("task=recommend", f"checkpoint.path={svd_model}",
                                      "users=all", "k=3", f"output={output}"), tmp_path / "b")
    assert summary["rows"] == 180 == len(pd.read_parquet(output))
    assert format_recommendations(summary).startswith(
        f"wrote 180 rows (top 3 of 60 users) to {output} in ")
    one = run_task(compose_config("task=recommend", f"checkpoint.path={svd_model}", "users=7",
                                  "k=2", f"output={tmp_path / 'one.csv'}"), tmp_path / "c")
    assert one["users"] == [7] and list(pd.read_csv(tmp_path / "one.csv")["user"]) == [7, 7]


@pytest.mark.parametrize(("overrides", "message"), [
    (["users=all"], r"users=all writes every user's list to a file: give output="),
    (["users=all", "output=recs.txt"], r"output='recs.txt' must be a file name ending in "),
    (["users=[1,2]", "user=1"], r"exactly one of .*\(got user, users\)"),
    (["users=[]"], r"users=\[\] must be all, or a list of integer user ids"),
    (["users=[1,true]"], r"users=\[1, True\] must be all"),
    (["users=some"], r"users='some' must be all"),
    (["ratings='1:5'", "output=recs.csv"], r"output= writes the lists of known users"),
])
def test_bad_requests_are_refused(compose_config, tmp_path: Path, overrides: list[str],
                                  message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_task(compose_config("task=recommend", "checkpoint.path=x", *overrides), tmp_path)


def test_popularity_scores_are_counts_beside_damped_means(compose_config,
                                                          tmp_path: Path) -> None:
    run_task(compose_config(*FAST_DATA, *SMALL, "model=popularity", fast=False),
             tmp_path / "run")
    model = aerec.load(tmp_path / "run" / "model")
    table = model.recommend([1, 2], k=40)
    items = model.items.index(table["item"])
    np.testing.assert_array_equal(table["score"], np.asarray(model.params["count"])[items])
    np.testing.assert_allclose(table["predicted_rating"], model.predict(1, table["item"]))
    assert (np.diff(table["score"][table["user"] == 1]) <= 0).all()


def test_a_model_without_ratings_shows_its_scores() -> None:
    payload = {"user": 1, "k": 2, "recommendations": [
        {"user": 1, "rank": 1, "item": 10, "score": 0.123456, "title": "A", "year": 1999,
         "genres": "Drama"},
        {"user": 1, "rank": 2, "item": 11, "score": -2.5, "title": "B", "year": 0,
         "genres": ""}]}
    assert format_recommendations(payload).splitlines() == [
        "top 2 for user 1:", " rank  item  score title year genres",
        "    1    10 0.1235     A 1999  Drama", "    2    11   -2.5     B            "]
