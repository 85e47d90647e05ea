"""A trained model as a self-contained directory: `aerec.load(path)` needs nothing else.

The directory holds the parameters (orbax), `model.json` (the run's resolved config, scaling,
rating range, fallback) and `data.npz` (numpy without pickle: raw user and item ids; the
ratings the model reads as input, as CSR arrays; which items each user has rated; the items'
titles, years and genres where the dataset has them). Predictions and recommendations do not
depend on the original files or their line order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import scipy.sparse as sp

from aerec.data.device_rows import DeviceRows, nonempty_columns, padded_chunks, padded_size
from aerec.data.prepare import IdMap
from aerec.errors import DataError, UnknownIdError
from aerec.model_files import DIGEST, content_digest, read_model_files
from aerec.models.base import ModelConfig
from aerec.models.registry import family_of, model_config
from aerec.models.scaling import Scaling
from aerec.rankers import Ranker, build_ranker, unknown_items


def save_artifact(directory: Path, params: Any, *, config: Mapping[str, Any], scaling: Scaling,
                  rating_range: tuple[float, float], fallback: float,
                  trained_columns: np.ndarray, users: IdMap,
                  items: IdMap, inputs: sp.csr_matrix, seen: sp.csr_matrix,
                  catalog: dict[str, np.ndarray], data: dict[str, str] | None = None) -> Path:
    """Write the artifact into `directory`, which must not exist yet.

    `inputs`: the ratings the model reads (model orientation); `trained_columns`: the output
    columns that had training ratings (the others predict `fallback`, as in evaluation);
    `seen`: every rating of each
    user (users x items), excluded from their recommendations; `catalog`: titles, years and
    genres aligned with `items`; `data`: what it was trained on (`data_fingerprint`, the
    `data_source` file and `data_dir`), for task=evaluate. Everything is written into a
    temporary sibling that is renamed at the end, so a reader never sees a partial model.
    """
    directory = directory.absolute()
    if directory.exists():
        raise DataError(f"{directory} already exists; a model is never overwritten")
    final, directory = directory, directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(directory, ignore_errors=True)  # the leftover of a killed earlier attempt
    directory.mkdir(parents=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "params", params)
    checkpointer.wait_until_finished()
    resolved = json.loads(json.dumps(config))  # a copy, of plain JSON values
    description = {"model": resolved["model"], "config": resolved,
                   "scaling": [scaling.shift, scaling.scale], "rating_range": list(rating_range),
                   "fallback": fallback, "n_inputs": int(inputs.shape[1]), **(data or {})}
    arrays = {"users": users.raw, "items": items.raw, "indptr": inputs.indptr,
              "indices": inputs.indices, "data": inputs.data,
              "trained_columns": trained_columns, "seen_indptr": seen.indptr,
              "seen_indices": seen.indices, "titles": catalog["titles"],
              "genres": catalog["genres"], "years": catalog["years"]}
    description[DIGEST] = content_digest(description, arrays, params)
    (directory / "model.json").write_text(json.dumps(description, indent=2) + "\n")
    with open(directory / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)
    directory.rename(final)
    return final


@dataclass
class TrainedModel:
    """A loaded model: predictions and recommendations for MovieLens user and item ids."""

    description: dict[str, Any]
    params: Any
    users: IdMap
    items: IdMap
    inputs: sp.csr_matrix
    predict_rows: Any
    seen: sp.csr_matrix  # users x items: every rating each user gave
    trained_columns: np.ndarray  # output columns with training ratings
    # The predictor `predict_rows` compiles, for an evaluator (the autoencoder's can also
    # predict held-out cells alone: `AutoEncoderPredictor`).
    predictor: Any
    catalog: dict[str, np.ndarray] = field(repr=False)

    @cached_property
    def config(self) -> ModelConfig:
        """The model's typed config (its family's), read from model.json."""
        return model_config(self.description["model"])

    @property
    def by_user(self) -> bool:
        """True when the model's rows are users (user orientation)."""
        return self.config.orientation == "user"

    def predict(self, user_ids: Any, item_ids: Any, chunk_rows: int = 1024) -> np.ndarray:
        """Predicted ratings of (user, item) pairs, clipped to the rating scale (one id on a
        side pairs with every id of the other); UnknownIdError (a KeyError) for an id the
        model does not know. As in evaluation, a cell whose row has no input ratings or whose
        column had no training ratings is predicted as the training mean. The model's rows a
        request needs go through the network in blocks of at most `chunk_rows`, a small
        request padded to a power of two (at least 16 rows): a serving process compiles once
        per size class, not per request size, and only the requested cells are kept, so
        memory stays bounded for any request."""
        if chunk_rows < 1:
            raise DataError(f"chunk_rows={chunk_rows} must be at least 1")
        users, items = self.users.index(user_ids, "user"), self.items.index(item_ids, "item")
        if users.size != items.size and 1 not in (users.size, items.size):
            raise DataError(f"{users.size} user ids and {items.size} item ids: predict takes "
                            "(user, item) pairs, as two sequences of the same length (or one "
                            "id on a side)")
        users, items = np.broadcast_arrays(users, items)
        rows, cols = (users, items) if self.by_user else (items, users)
        predictions = self._cell_predictions(rows, cols, chunk_rows)
        row_known = np.diff(self.inputs.indptr)[rows] > 0
        known = row_known & self.trained_columns[cols]
        low, high = self.description["rating_range"]
        return np.clip(np.where(known, predictions, self.description["fallback"]), low, high)

    def _cell_predictions(self, rows: np.ndarray, cols: np.ndarray, chunk_rows: int
                          ) -> np.ndarray:
        """The network's (unclipped) predictions of cells (rows, cols): the model rows they
        need go through it in blocks, and of each block only the requested cells are kept."""
        predictions = np.zeros(rows.size, np.float32)
        unique_rows, position = np.unique(rows, return_inverse=True)
        order = np.argsort(position, kind="stable")  # cells grouped by row, in block order
        sorted_position = position[order]
        inputs = self.input_rows
        size = min(chunk_rows, padded_size(unique_rows.size, 16))
        for start, ids, count in padded_chunks(unique_rows, size):
            safe = np.maximum(ids, 0)  # padding (-1): a zero row of row 0, then not read
            block = np.asarray(self.predict_rows(self.params, jax.device_put(safe),
                                                 inputs.gather(ids)))
            cells = order[np.searchsorted(sorted_position, start):
                          np.searchsorted(sorted_position, start + count)]
            predictions[cells] = block[position[cells] - start, cols[cells]]
        return predictions

    @cached_property
    def input_rows(self) -> DeviceRows:
        """The model's input rows, densified block by block (on an accelerator from a copy of
        the CSR arrays made on the device at the first block, then kept: one per model)."""
        return DeviceRows(self.inputs, False)

    @cached_property
    def ranker(self) -> Ranker:
        """Scores of every item for a user (built once: item codes for item orientation)."""
        unknown = unknown_items(self.by_user, self.trained_columns,
                                np.diff(self.inputs.indptr) > 0)
        return build_ranker(self.config, self.params, self.input_rows,
                            scaling=Scaling(*self.description["scaling"]), unknown=unknown)

    def recommend(self, user_id: int, k: int = 10) -> pd.DataFrame:
        """The user's top `k` items they have not rated, best first (see `_top_items`)."""
        try:
            user = int(self.users.index([user_id], "user")[0])
        except UnknownIdError:
            raise UnknownIdError(
                f"user {user_id} is not known to this model ({len(self.users)} users, ids "
                f"{self.users.raw[0]}..{self.users.raw[-1]}); recommend from a rating history "
                "instead (recommend_for_history, or ratings=... on the command line)") from None
        scores = np.asarray(self.ranker.user_scores(np.array([user], np.int32)))[0]
        rated = self.seen.indices[self.seen.indptr[user]:self.seen.indptr[user + 1]]
        return self._top_items(scores, rated, k)

    def recommend_for_history(self, history: Mapping[int, float], k: int = 10
                              ) -> pd.DataFrame:
        """Top `k` items for a new user known only by `history` ({item id: rating}), by a
        forward pass (no retraining); the history's items are not recommended again."""
        # The ids as given, checked by the id map: a cast to int64 first would make item 1.5
        # item 1, and fail on an id beyond int64 with an OverflowError.
        item_ids = np.asarray(list(history), dtype=object)
        ratings = np.asarray(list(history.values()), np.float32)
        low, high = self.description["rating_range"]
        outside = (ratings < low) | (ratings > high) | ~np.isfinite(ratings)
        if outside.any():
            raise DataError(f"rating {ratings[outside][0]} of item {item_ids[outside][0]} is "
                            f"outside the model's rating scale [{low}, {high}]")
        items = self.items.index(item_ids, "item")
        _, first, counts = np.unique(items, return_index=True, return_counts=True)
        if (counts > 1).any():  # 5 and "5": two keys, one item
            twice = item_ids[first[counts > 1][0]]
            raise DataError(f"item {twice} is rated twice in the history")
        scores = self.ranker.history_scores(items, ratings)
        return self._top_items(np.asarray(scores), items, k)

    def _top_items(self, scores: np.ndarray, rated: np.ndarray, k: int) -> pd.DataFrame:
        """Columns rank, item, predicted_rating, title, year, genres: the `k` best-scored
        items outside `rated`; equal scores rank the lower item index first, like the
        ranking evaluation. For the popularity model the order is by rating count and
        predicted_rating is the item's damped mean rating; a top-N model (its family's
        `predicts_ratings` false) predicts no rating: NaN."""
        if k < 1:
            raise DataError(f"k={k} must be at least 1")
        candidates = np.ones(scores.size, bool)
        candidates[rated] = False
        order = np.flatnonzero(candidates)[np.argsort(-scores[candidates], kind="stable")][:k]
        if self.ranker.scores_are_ratings:
            predicted = scores[order]
        elif getattr(family_of(self.config), "predicts_ratings", True):
            predicted = np.asarray(self.params["mean"])[order]
        else:
            predicted = np.full(order.size, np.nan)
        unknown = getattr(self.ranker, "unknown", None)  # learned nothing of: ranked last
        if unknown is not None:  # and shown at the training mean, as predict has them
            predicted = np.where(unknown[order], self.description["fallback"], predicted)
        low, high = self.description["rating_range"]
        return pd.DataFrame({
            "rank": np.arange(1, order.size + 1),
            "item": self.items.raw[order],
            "predicted_rating": np.clip(predicted, low, high).astype(np.float64),
            "title": self.catalog["titles"][order] if self.catalog["titles"].size else "",
            "year": self.catalog["years"][order] if self.catalog["years"].size else 0,
            "genres": self.catalog["genres"][order] if self.catalog["genres"].size else "",
        })


def load(path: str | Path) -> TrainedModel:
    """Load an artifact written by a training run (its output directory's `model/`)."""
    directory = Path(path).absolute()
    if not (directory / "model.json").is_file():
        hint = (f"; the run's model is {directory / 'model'}"
                if (directory / "model" / "model.json").is_file() else "")
        raise DataError(f"{directory} is not an aerec model directory (no model.json){hint}")
    files = read_model_files(directory)  # validated: nothing below reads unchecked data
    description, arrays, params = files.description, files.arrays, files.params
    inputs = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                           shape=(len(arrays["indptr"]) - 1, description["n_inputs"]))
    users, items = IdMap(arrays["users"]), IdMap(arrays["items"])
    if "seen_indptr" in arrays:
        seen = sp.csr_matrix((np.ones(arrays["seen_indices"].size, np.float32),
                              arrays["seen_indices"], arrays["seen_indptr"]),
                             shape=(len(users), len(items)))
    else:  # written before recommendations existed: the model's inputs are all it knows
        seen = inputs if description["model"]["orientation"] == "user" else inputs.T.tocsr()
    # Written before it was stored: the columns of the model's inputs (training and fold-in).
    trained_columns = arrays.get("trained_columns", nonempty_columns(inputs))
    catalog = {key: arrays[key] if key in arrays else np.array([])
               for key in ("titles", "genres", "years")}
    config = model_config(description["model"])
    predictor = family_of(config).predictor(config, description["n_inputs"],
                                            Scaling(*description["scaling"]))
    return TrainedModel(description, params, users, items, inputs, jax.jit(predictor), seen,
                        trained_columns, predictor, catalog)
