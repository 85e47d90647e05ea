"""The Python surface: train on a DataFrame, recommend, evaluate, save; the same configuration,
defaults and checks as the command line (`aerec.Recommender`).

    import aerec
    rec = aerec.Recommender("multvae", epochs=50)   # a model + settings by key
    rec.fit(ratings)                                 # columns user, item[, rating][, timestamp]
    rec.recommend([1, 2, 3], k=10)
    rec.save("my_model"); aerec.load("my_model")     # the command line's saved-model format

Settings are the command line's keys: `"train.epochs": 50` (in `overrides`, or as keyword
arguments with `__` for the dot: `train__epochs=50`), or a key's last part where it names one
key only (`epochs=50`, `hidden=[600]`). `experiment="recbole_ml1m"` picks an experiment.
"""

from __future__ import annotations

import difflib
import json
import logging
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aerec.config import flat_keys, run_config
from aerec.errors import ConfigError, DataError

log = logging.getLogger(__name__)
GROUPS = ("model", "dataset", "experiment", "optimizer", "logger")  # config groups by name
COLUMNS = ("user", "item", "rating", "timestamp")


def compose(overrides: Sequence[str]) -> Any:
    """The composed configuration of `overrides`, as the command line composes it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from aerec.config_files import compose_config

    try:
        return compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(str(error).splitlines()[0]) from None


def override_text(key: str, value: Any) -> str:
    """`key=value` as a Hydra override (lists, strings, booleans and None as the command line
    writes them)."""
    if isinstance(value, tuple):
        value = list(value)
    elif isinstance(value, np.generic):
        value = value.item()
    return f"{key}={json.dumps(value)}"


def full_key(name: str, keys: Sequence[str]) -> str:
    """The configuration key a setting's `name` means: itself, with `__` read as `.`; or the
    one key whose last part it is; ConfigError for an unknown or ambiguous name."""
    name = name.replace("__", ".")
    if name in keys:
        return name
    matches = [key for key in keys if key.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"{name} is several keys: {', '.join(matches)}; give the whole key "
                          f"(e.g. overrides={{'{matches[0]}': ...}})")
    leaves = {key.rsplit(".", 1)[-1]: key for key in keys}
    close = difflib.get_close_matches(name, keys, n=1) or [
        leaves[leaf] for leaf in difflib.get_close_matches(name, leaves, n=1)]
    raise ConfigError(f"aerec has no key {name}" + (f"; did you mean {close[0]}?" if close
                                                     else ""))


def frame_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """A DataFrame of ratings (or interactions) as the table a ratings file is read into:
    user and item (whole numbers), rating (a finite number) and timestamp when present; a
    DataError naming the column and row of the first bad value."""
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"fit needs a pandas DataFrame, got {type(ratings).__name__}")
    missing = [name for name in ("user", "item") if name not in ratings.columns]
    if missing:
        raise DataError(f"the DataFrame has no {' and no '.join(map(repr, missing))} column "
                        f"(its columns: {', '.join(map(str, ratings.columns))}); it needs user, "
                        "item and, for ratings, rating (timestamp optional)")
    if ratings.empty:
        raise DataError("the DataFrame has no rows")
    table = {}
    for name in (column for column in COLUMNS if column in ratings.columns):
        values = ratings[name].to_numpy()
        if name == "rating":
            number = pd.to_numeric(ratings[name], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(number)
            converted = number.astype(np.float32)
        else:
            number = pd.to_numeric(ratings[name], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(number) | (np.floor(number) != number) | (np.abs(number) >= 2**53)
            converted = (values.astype(np.int64) if values.dtype.kind in "iu" and not bad.any()
                         else np.where(bad, 0, number).astype(np.int64))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            kind = "a finite number" if name == "rating" else "a whole number"
            value = values[row].item() if isinstance(values[row], np.generic) else values[row]
            raise DataError(f"the DataFrame's {name} column: row {ratings.index[row]!r} holds "
                            f"{value!r}, not {kind}")
        table[name] = converted
    return pd.DataFrame(table)


class Recommender:
    """A model to train on a DataFrame and ask for recommendations (see the module
    docstring). Its configuration is composed and checked when it is made: a mistake is a
    ConfigError naming the key, before any data is read."""

    def __init__(self, model: str = "autoencoder", *, experiment: str | None = None,
                 overrides: Mapping[str, Any] | None = None, progress: bool = True,
                 **settings: Any):
        groups = [f"model={model}"] + ([f"experiment={experiment}"] if experiment else [])
        base = compose(groups)
        explicit = "dataset" in settings or experiment is not None
        keys = flat_keys(base)
        chosen = {full_key(name, keys): value for name, value in settings.items()
                  if name not in GROUPS}
        chosen.update({full_key(name, keys): value for name, value in (overrides or {}).items()})
        groups += [f"{name}={settings[name]}" for name in GROUPS
                   if name in settings and name not in ("model", "experiment")]
        if not explicit:
            groups.append("dataset=custom")  # the DataFrame's ratings: their scale, no file
        chosen.setdefault("train.progress", progress)
        self.overrides = groups + [override_text(key, value) for key, value in chosen.items()]
        self.config = compose(self.overrides)
        self.run = run_config(self.config)  # checked now: errors before any data is read
        self.model: Any = None
        self.results: dict[str, Any] | None = None
        self._directory: Path | None = None  # the trained model's, removed with the object

    def fit(self, ratings: pd.DataFrame, items: pd.DataFrame | None = None) -> Recommender:
        """Train on `ratings` (columns user, item[, rating][, timestamp]; without ratings they
        are implicit feedback) split as configured, evaluate on its held-out part
        (`self.results`, as a run's results.json) and keep the model. `items`: titles for
        recommendations (columns item, title[, year][, genres])."""
        import dataclasses

        from aerec.data.dataset import dataset_from_table
        from aerec.data.read import rating_scale
        from aerec.experiment import run_experiment
        from aerec.saved_model import load

        table = frame_table(ratings)
        run = self.run
        if "rating" not in table and run.dataset.feedback != "implicit":
            log.info("the DataFrame has no rating column: its rows are implicit feedback "
                     "(dataset.feedback=implicit)")
            run = dataclasses.replace(run, dataset=dataclasses.replace(run.dataset,
                                                                       feedback="implicit"))
        origin = "the DataFrame"
        scale = rating_scale(run.dataset, [(table, origin)], origin)
        dataset = dataset_from_table(table, scale, origin, run.dataset, run.prepare, run.split)
        directory = Path(tempfile.mkdtemp(prefix="aerec-"))
        weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self._directory = directory
        results, _ = run_experiment(run, artifact_dir=directory / "model", dataset=dataset,
                                    catalog=None if items is None else catalog_of(items))
        results.pop("history", None)
        self.results, self.model = results, load(directory / "model")
        return self

    def _trained(self) -> Any:
        if self.model is None:
            raise DataError("this Recommender is not trained yet: call fit(ratings) first")
        return self.model

    def recommend(self, users: Any, k: int = 10) -> pd.DataFrame:
        """Each user's top `k` items outside what they rated (one DataFrame)."""
        return self._trained().recommend(users, k=k)

    def recommend_for_history(self, history: Mapping[Any, float], k: int = 10) -> pd.DataFrame:
        """The top `k` items for a new user known only by `history` ({item: rating})."""
        return self._trained().recommend_for_history(history, k=k)

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings of (user, item) pairs (rating models)."""
        return self._trained().predict(users, items)

    def similar_items(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The `k` items most similar to each of `items`."""
        return self._trained().similar_items(items, k=k)

    def evaluate(self, test: pd.DataFrame, k: Sequence[int] | None = None) -> dict[str, Any]:
        """The run's figures on held-out `test` rows: ranking at `k` (ranking.k by default)
        and, for a rating model, RMSE/MAE (`aerec.api_evaluate`)."""
        from aerec.api_evaluate import evaluate_frame

        ranking = self.run.ranking
        return evaluate_frame(self._trained(), frame_table(test), list(k or ranking.k),
                              float(ranking.threshold), int(ranking.chunk_users))

    def save(self, path: str | Path) -> Path:
        """Save the trained model to `path` (a new directory), as a run's `model/`."""
        target = Path(path)
        if target.exists():
            raise DataError(f"{target} exists: save into a new directory")
        self._trained()
        assert self._directory is not None  # set by fit
        shutil.copytree(self._directory / "model", target)
        return target


def catalog_of(items: pd.DataFrame) -> pd.DataFrame:
    """Titles given with `fit` as a catalogue (item, title, year, genres)."""
    if "item" not in items.columns:
        raise DataError("items needs an item column (and title, year, genres as it has them)")
    return items.assign(item=frame_table(items.assign(user=0))["item"].to_numpy())
