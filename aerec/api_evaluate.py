"""A trained model's figures on held-out rows given as a table (`Recommender.evaluate`): the
ranking figures of a run, and RMSE/MAE for a rating model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aerec.errors import DataError
from aerec.topk_metrics import evaluate_ranking

log = logging.getLogger(__name__)


def known_rows(model: Any, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         dict[str, int]]:
    """The test rows whose user and item the model knows, as indices (users, items, and
    their ratings: 1 without a rating column), and the count of those it does not."""
    user_known = np.isin(test["user"].to_numpy(), model.users.raw)
    item_known = np.isin(test["item"].to_numpy(), model.items.raw)
    kept = user_known & item_known
    counts = {"n_test_rows": int(kept.size), "n_test_unknown_rows": int((~kept).sum()),
              "n_test_unknown_users": int(test.loc[~user_known, "user"].nunique()),
              "n_test_unknown_items": int(test.loc[~item_known, "item"].nunique())}
    if counts["n_test_unknown_rows"]:
        log.warning("%d of %d test rows are of users (%d) or items (%d) the model does not "
                    "know: left out of the figures and counted in them",
                    counts["n_test_unknown_rows"], kept.size, counts["n_test_unknown_users"],
                    counts["n_test_unknown_items"])
    if not kept.any():
        raise DataError("no test row is of a user and an item the model knows")
    users = model.users.index(test["user"].to_numpy()[kept], "user")
    items = model.items.index(test["item"].to_numpy()[kept], "item")
    ratings = (test["rating"].to_numpy(np.float32)[kept] if "rating" in test
               else np.ones(int(kept.sum()), np.float32))
    return users, items, ratings, counts


def evaluate_frame(model: Any, test: pd.DataFrame, ks: Sequence[int], threshold: float,
                   chunk_users: int) -> dict[str, Any]:
    """Ranking figures at `ks` (every item the user is known by excluded; relevant: the test
    rows rated >= `threshold`, all of them for implicit feedback or rows without ratings), and
    RMSE/MAE where the model predicts ratings and the rows have them."""
    users, items, ratings, counts = known_rows(model, test)
    implicit = model.description["config"]["dataset"].get("feedback") == "implicit"
    relevant_rows = (ratings >= threshold) if not implicit and "rating" in test else (
        np.ones(ratings.size, bool))
    shape = (len(model.users), len(model.items))
    relevant = sp.csr_matrix((np.ones(int(relevant_rows.sum()), np.float32),
                              (users[relevant_rows], items[relevant_rows])), shape=shape)
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    exclude = model.seen.tocsr()
    # a test row the model saw in training would be excluded and never found: say so
    overlap = np.asarray(exclude[users, items]).ravel() > 0
    counts["n_test_rows_seen_in_training"] = int(overlap.sum())
    results: dict[str, Any] = {**counts, **evaluate_ranking(model.ranker, exclude, relevant,
                                                            ks, chunk_users)}
    if model.ranker.scores_are_ratings and "rating" in test and not implicit:
        errors = model.predict(model.users.raw[users], model.items.raw[items]) - ratings
        results["test_rmse"] = float(np.sqrt(np.mean(errors.astype(np.float64) ** 2)))
        results["test_mae"] = float(np.mean(np.abs(errors.astype(np.float64))))
    return results
