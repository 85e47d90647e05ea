"""task=recommend and the Python API: titles, new users, JSON output, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.cli import quote_ratings_argument, run_task
from aerec.data.catalog import read_movies
from aerec.data.sources import SOURCES
from aerec.errors import ConfigError, DataError, UnknownIdError
from aerec.recommend import parse_history, read_history
from tests.conftest import FAST_MODEL, FAST_TRAIN, ROOT, cli_env

MOVIES_DAT = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "2::Misérables, Les (1995)::Drama|Musical\n")


def write_small_ml1m(directory: Path, n_users: int = 60, n_items: int = 40) -> Path:
    """A tiny ML-1M-format release (ratings.dat with timestamps, Latin-1 movies.dat)."""
    folder = directory / "ml-1m"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, n_users + 1):
        for item in rng.choice(np.arange(1, n_items + 1), size=15, replace=False):
            lines.append(f"{user}::{item}::{rng.integers(1, 6)}::978300760")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    movies = [f"{item}::Movie {item} (19{50 + item})::Drama" for item in range(3, n_items + 1)]
    (folder / "movies.dat").write_bytes((MOVIES_DAT + "\n".join(movies) + "\n").encode("latin-1"))
    return directory


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An autoencoder trained on the tiny ML-1M-format release; its model directory."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONFIGS

    root = tmp_path_factory.mktemp("recommend")
    data = write_small_ml1m(root / "data")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "dataset=ml1m", f"paths.data_dir={data}", "dataset.download=false", *FAST_TRAIN,
            *FAST_MODEL, f"checkpoint.dir={root / 'checkpoints'}"])
    run_task(cfg, root / "run")
    return root / "run" / "model"


def run_cli(*overrides: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as run_dir:  # not a fixed path other runs share
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides,
                               f"hydra.run.dir={run_dir}"],
                              env=cli_env(), capture_output=True, text=True, timeout=300)


def test_known_user_gets_titled_unrated_items(small_model: Path) -> None:
    model = aerec.load(small_model)
    table = model.recommend(7, k=5)
    assert list(table.columns) == ["user", "rank", "item", "score", "predicted_rating",
                                   "title", "year", "genres"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5] and set(table["user"]) == {7}
    assert table["score"].is_monotonic_decreasing
    assert table["predicted_rating"].is_monotonic_decreasing  # the scores are ratings here
    user = int(model.users.index([7])[0])
    assert not set(table["item"]) & set(model.items.raw[model.seen[user].indices])
    titles = dict(zip(model.items.raw, model.catalog["titles"], strict=True))
    assert titles[2] == "Misérables, Les (1995)"  # Latin-1 decoded
    for _, row in table.iterrows():
        assert row["title"] == titles[row["item"]]
        if row["item"] >= 3:
            assert row["year"] == 1950 + row["item"] and row["genres"] == "Drama"



def test_several_users_get_one_table_of_every_list(small_model: Path) -> None:
    # Once, recommend([3, 4]) returned user 3's list alone, without a word.
    model = aerec.load(small_model)
    table = model.recommend([3, 4], k=3)
    assert list(table.columns[:4]) == ["user", "rank", "item", "score"]
    assert list(table["user"]) == [3, 3, 3, 4, 4, 4]
    for user in (3, 4):
        alone = model.recommend(user, k=3)
        assert list(alone["user"]) == [user] * 3
        pd.testing.assert_frame_equal(table[table["user"] == user].reset_index(drop=True),
                                      alone)

def test_cli_json_output_parses(small_model: Path) -> None:
    done = run_cli("task=recommend", f"checkpoint.path={small_model}", "user=7", "k=4",
                   "format=json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["user"] == 7 and payload["k"] == 4 and len(payload["recommendations"]) == 4
    assert payload["recommendations"] == json.loads(
        aerec.load(small_model).recommend(7, k=4).to_json(orient="records"))


@pytest.mark.slow  # one of the longest tests: CI's 2 cores run it with -m slow
def test_new_user_by_history_is_deterministic(small_model: Path) -> None:
    history = {1: 5.0, 2: 1.0, 10: 4.0}
    model = aerec.load(small_model)
    first = model.recommend_for_history(history, k=6)
    assert not set(first["item"]) & set(history)
    assert first.equals(aerec.load(small_model).recommend_for_history(history, k=6))
    done = run_cli("task=recommend", f"checkpoint.path={small_model}", "ratings=1:5,2:1,10:4",
                   "k=6", "format=json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["history"] == {"1": 5.0, "2": 1.0, "10": 4.0}
    assert [row["item"] for row in payload["recommendations"]] == list(first["item"])
    text = run_cli("task=recommend", f"checkpoint.path={small_model}", "ratings=1:5,2:1,10:4",
                   "k=6")
    assert text.returncode == 0 and "a new user with 3 ratings" in text.stdout


def test_history_file_matches_inline_history(small_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("item,rating\n1,5\n# a comment\n2,1\n\n10,4\n")
    assert read_history(path) == {1: 5.0, 2: 1.0, 10: 4.0}
    model = aerec.load(small_model)
    assert model.recommend_for_history(read_history(path), k=3).equals(
        model.recommend_for_history(parse_history("1:5,2:1,10:4"), k=3))


def test_errors_are_clear(small_model: Path, tmp_path: Path) -> None:
    model = aerec.load(small_model)
    with pytest.raises(UnknownIdError, match=r"user 424242 is not known.*ratings="):
        model.recommend(424242)
    with pytest.raises(UnknownIdError, match="unknown item 9999"):
        model.recommend_for_history({9999: 4.0})
    with pytest.raises(DataError, match=r"rating 7.0 of item 1 is outside"):
        model.recommend_for_history({1: 7.0})
    with pytest.raises(DataError, match="entry 2: expected 'item:rating'"):
        parse_history("1:5,oops")
    with pytest.raises(DataError, match="item 1 is rated twice"):
        parse_history("1:5,1:4")
    bad = tmp_path / "bad.txt"
    bad.write_text("1:5\n2:x\n")
    with pytest.raises(DataError, match=r"bad.txt, line 2: rating 'x' is not a number"):
        read_history(bad)
    done = run_cli("task=recommend", f"checkpoint.path={small_model}", "user=424242")
    assert done.returncode == 1 and "error: user 424242 is not known" in done.stderr
    assert "Traceback" not in done.stderr
    # ids that are no item: a fraction (once cut to item 1), one beyond int64 (once an
    # OverflowError), one item under two keys
    with pytest.raises(UnknownIdError, match=r"unknown item 1\.5"):
        model.recommend_for_history({1.5: 4.0})
    with pytest.raises(DataError, match="item 1 is rated twice in the history"):
        model.recommend_for_history({1: 5.0, "1": 3.0})
    done = run_cli("task=recommend", f"checkpoint.path={small_model}",
                   "ratings=99999999999999999999:4")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: ratings: unknown item 99999999999999999999" in done.stderr


def test_a_history_file_may_open_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("# my ratings\n\nitem,rating\n1,5\n2,1\n")
    assert read_history(path) == {1: 5.0, 2: 1.0}
    path.write_text("1,5\nitem,rating\n")  # a header only before the first rating
    with pytest.raises(DataError, match="line 2: expected 'item:rating'"):
        read_history(path)


def test_a_history_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes("\ufeffitem,rating\r\n1,5\r\n".encode() + b"2,1 # caf\xe9 noir\r")
    with pytest.raises(DataError, match=r"mine\.csv, line 3: not UTF-8 text \(invalid "
                                        r"continuation byte: b'2,1 # caf\\xe9 noir'\); save"):
        read_history(path)  # was a UnicodeDecodeError
    path.write_bytes("\ufeffitem,rating\r\n1,5\r\n2,1 # café\n".encode())
    assert read_history(path) == {1: 5.0, 2: 1.0}  # a byte-order mark and CRLF are fine
    with pytest.raises(DataError, match=f"ratings_file={tmp_path} is a directory, not a file"):
        read_history(tmp_path)


def test_recommend_config_is_validated(compose_config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task=recommend needs checkpoint.path"):
        run_task(compose_config("task=recommend", "user=1"), tmp_path)
    with pytest.raises(ConfigError, match="exactly one of user"):
        run_task(compose_config("task=recommend", "checkpoint.path=x"), tmp_path)
    with pytest.raises(ConfigError, match=r"exactly one of.*got user, ratings"):
        run_task(compose_config("task=recommend", "checkpoint.path=x", "user=1",
                                "ratings='1:5'"), tmp_path)
    with pytest.raises(ConfigError, match="k=0 must be an integer >= 1"):
        run_task(compose_config("task=recommend", "checkpoint.path=x", "user=1", "k=0"),
                 tmp_path)
    with pytest.raises(ConfigError, match="format='xml'"):
        run_task(compose_config("task=recommend", "checkpoint.path=x", "user=1",
                                "format=xml"), tmp_path)
    with pytest.raises(ConfigError, match=r"ranking.k=0"):
        run_task(compose_config("ranking.k=[10,0]"), tmp_path)


def test_ratings_argument_is_quoted_for_hydra() -> None:
    assert quote_ratings_argument(["ratings=1:5,2:3", "k=3"]) == ["ratings='1:5,2:3'", "k=3"]
    assert quote_ratings_argument(["ratings='1:5,2:3'"]) == ["ratings='1:5,2:3'"]
    assert quote_ratings_argument(["ratings=1:5"]) == ["ratings=1:5"]


def test_movie_files_of_every_format(tmp_path: Path) -> None:
    csv = tmp_path / "movies.csv"
    csv.write_text('movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n'
                   '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                   '99,No Year Known,(no genres listed)\n')
    table = read_movies(csv, SOURCES["ml20m"])
    assert table["title"][1] == "American President, The (1995)"
    assert list(table["year"]) == [1995, 1995, 0]
    item = tmp_path / "u.item"
    flags = ["0"] * 19
    flags[1] = flags[5] = "1"
    item.write_bytes(("1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags)
                      + "\n").encode("latin-1"))
    table = read_movies(item, SOURCES["ml100k"])
    assert table["genres"][0] == "Action|Comedy" and table["year"][0] == 1995
    broken = tmp_path / "movies.dat"
    broken.write_bytes(b"1::Toy Story (1995)::Comedy\n2::Jumanji (1995)\n")
    with pytest.raises(DataError, match=r"movies.dat, line 2: expected 3 fields"):
        read_movies(broken, SOURCES["ml1m"])


def test_shared_ml1m_titles(shared_ml1m: Path) -> None:
    table = read_movies(shared_ml1m / "ml-1m" / "movies.dat", SOURCES["ml1m"])
    assert len(table) == 3883
    titles = dict(zip(table["item"], table["title"], strict=True))
    assert titles[1193] == "One Flew Over the Cuckoo's Nest (1975)"
    assert titles[73] == "Misérables, Les (1995)"


@pytest.mark.parametrize("orientation", ["user", "item"])
def test_recommendations_score_unlearned_items_as_predict_does(compose_config, tmp_path: Path,
                                                              orientation: str) -> None:
    # Items rated once: some of those ratings are held out, so the model learns nothing of
    # those items. They are recommended after every other item, shown at the training mean
    # that predict gives them (their network output is untrained).
    rng = np.random.default_rng(0)
    lines = [f"{user},{item},{rng.integers(1, 6)}" for user in range(1, 61)
             for item in rng.choice(np.arange(1, 41), size=15, replace=False)]
    lines += [f"{item - 40},{item},{rng.integers(1, 6)}" for item in range(41, 81)]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = compose_config("dataset=custom", f"dataset.path={path}", *FAST_TRAIN, *FAST_MODEL,
                         f"model.orientation={orientation}", "ranking.enabled=false",
                         fast=False)
    run_task(cfg, tmp_path / "run")
    model = aerec.load(tmp_path / "run" / "model")
    unlearned = ~(model.trained_columns if model.by_user
                  else np.diff(model.inputs.indptr) > 0)
    assert unlearned.sum() >= 2  # this seed holds out some single ratings
    user = 1
    table = model.recommend(user, k=len(model.items))
    np.testing.assert_allclose(table["predicted_rating"],
                               model.predict(user, table["item"].to_numpy()), atol=1e-5)
    mean = model.description["fallback"]
    unlearned_ids = set(model.items.raw[unlearned])
    shown = table[table["item"].isin(unlearned_ids)]
    assert len(shown) and np.allclose(shown["predicted_rating"], mean)
    assert list(table["rank"][-len(shown):]) == list(shown["rank"])  # last
