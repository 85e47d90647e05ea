"""Held-out evaluation of a trained model: RMSE/MAE, the paper's metric, top-k ranking;
and task=evaluate for a saved model."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from omegaconf import OmegaConf

from aerec.artifact import load
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.split import TEST
from aerec.errors import ConfigError, DataError
from aerec.matrices import Matrices, build_matrices, data_dir_of
from aerec.metrics import Evaluator
from aerec.models.scaling import Scaling
from aerec.ranking import evaluate_ranking, ranking_targets
from aerec.scoring import build_ranker, unknown_items


def paper_weights(dataset: Dataset, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column weights selecting every cell of the users that have test ratings."""
    evaluated = np.zeros(dataset.n_users, np.float32)
    evaluated[dataset.user_index[dataset.role == TEST]] = 1.0
    if orientation == "user":
        return evaluated, np.ones(dataset.n_items, np.float32)
    return np.ones(dataset.n_items, np.float32), evaluated


def check_ranking_threshold(ranking_cfg: Any, dataset: Dataset) -> None:
    """Refuse a relevance threshold no rating reaches (every ranking figure would be empty);
    checked as soon as the data is loaded, before any training."""
    if ranking_cfg.enabled and float(ranking_cfg.threshold) > dataset.rating_max:
        raise ConfigError(
            f"ranking.threshold={ranking_cfg.threshold} is above the highest rating "
            f"({dataset.rating_max:g}): no held-out rating could be relevant; lower it, or set "
            "ranking.enabled=false")


def ranking_figures(cfg: Any, params: Any, dataset: Dataset, matrices: Matrices,
                    scaling: Scaling) -> dict[str, float]:
    """Top-k figures of a trained model on the held-out ratings (empty when ranking is off)."""
    if not cfg.ranking.enabled:
        return {}
    check_ranking_threshold(cfg.ranking, dataset)
    unknown = unknown_items(cfg.model.orientation == "user", matrices.train.nonempty_columns(),
                            matrices.eval_input.nonempty_rows())
    ranker = build_ranker(cfg.model, params, matrices.eval_input, scaling=scaling,
                          chunk_rows=int(cfg.train.eval_chunk_rows), unknown=unknown)
    exclude, relevant = ranking_targets(dataset, float(cfg.ranking.threshold))
    ks = [cfg.ranking.k] if isinstance(cfg.ranking.k, int) else list(cfg.ranking.k)
    return evaluate_ranking(ranker, exclude, relevant, ks,
                            int(cfg.ranking.chunk_users))


def evaluator_factory(dataset: Dataset, matrices: Matrices, chunk_rows: int) -> Callable:
    """evaluator_of(predict, row_known=...) -> an Evaluator bound to this dataset."""
    return partial(Evaluator, rating_min=dataset.rating_min, rating_max=dataset.rating_max,
                   fallback=dataset.train_mean(),
                   col_known=matrices.train.nonempty_columns(),
                   chunk_rows=chunk_rows)


def evaluate_held_out(evaluator_of: Callable, predict: Callable, params: Any, dataset: Dataset,
                      matrices: Matrices, orientation: str
                      ) -> tuple[dict[str, float], dict[str, float]]:
    """The test figures (observed test ratings) and the paper-metric figures."""
    test_evaluator = evaluator_of(predict, row_known=matrices.eval_input.nonempty_rows())
    test = test_evaluator.evaluate(params, matrices.eval_input, matrices.test)
    paper_rows, paper_cols = paper_weights(dataset, orientation)
    paper_evaluator = evaluator_of(predict, row_known=matrices.paper_input.nonempty_rows())
    paper = paper_evaluator.evaluate(params, matrices.paper_input, matrices.everything,
                                     paper_rows=paper_rows, paper_cols=paper_cols)
    return test, paper


def figure_notes(results: dict[str, Any], split_cfg: Any, ranking_cfg: Any) -> dict[str, str]:
    """Why each figure of `results` that is not a number (NaN, written as null) is missing:
    results.json carries these as `notes`, {figure: reason}, so that no null goes unexplained."""
    reasons: dict[str, str] = {}
    if results.get("n_valid") == 0:
        reasons["valid_rmse"] = (f"no validation ratings (split.valid_fraction="
                                 f"{split_cfg.valid_fraction:g} left none): no early stopping, "
                                 "the last epoch's model is kept")
    if results.get("n_test") == 0:  # refused when the data is loaded; here for completeness
        reasons.update(dict.fromkeys(("test_rmse", "test_mae", "paper_rmse"), "no test ratings"))
    if results.get("ranking_users") == 0:
        reasons.update(dict.fromkeys(
            (key for key in results if "@" in key),
            f"no user has a test rating >= ranking.threshold={ranking_cfg.threshold:g} (no "
            "relevant item to rank)"))
    return {key: reasons.get(key, "not defined for this run (unexpected: please report it)")
            for key, value in results.items()
            if isinstance(value, float) and not math.isfinite(value)}


def same_ratings(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Whether two rating matrices hold the same ratings at the same cells."""
    return a.shape == b.shape and a.nnz == b.nnz and (a != b).nnz == 0


def evaluate_artifact(cfg: Any) -> dict[str, Any]:
    """task=evaluate: the test figures of a saved model (checkpoint.path) on its own split.

    The dataset, preparation and split come from the configuration saved with the model; only
    paths come from `cfg`, so the figures are those of the run that trained it.
    """
    model = load(cfg.checkpoint.path)
    run_cfg = OmegaConf.create(model.description["config"])
    run_cfg.paths = cfg.paths
    dataset = load_dataset(run_cfg.dataset, run_cfg.prepare, run_cfg.split, data_dir_of(cfg),
                           progress=cfg.train.progress)
    if not (np.array_equal(dataset.users.raw, model.users.raw)
            and np.array_equal(dataset.items.raw, model.items.raw)):
        raise DataError(f"the ratings under {data_dir_of(cfg)} do not give the users and items "
                        f"the model in {cfg.checkpoint.path} was trained on")
    matrices = build_matrices(dataset, run_cfg)
    if not same_ratings(matrices.eval_input.matrix, model.inputs):
        # Ratings added, removed or changed split differently (the split is drawn over the
        # ratings in (user, item) order), and the test ratings would include training ones.
        raise DataError(f"the ratings under {data_dir_of(cfg)} do not split into the training "
                        f"ratings the model in {cfg.checkpoint.path} was trained on: ratings "
                        "were added, removed or changed since, or it was trained by an older "
                        "aerec that split in the file's line order; evaluate on the ratings it "
                        "was trained on")
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))
    test, paper = evaluate_held_out(evaluator_of, model.predictor, model.params, dataset,
                                    matrices, run_cfg.model.orientation)
    run_cfg.ranking = cfg.ranking
    ranking = ranking_figures(run_cfg, model.params, dataset, matrices,
                              Scaling(*model.description["scaling"]))
    results = {"dataset": run_cfg.dataset.name, "model": run_cfg.model.name,
               "layers": int(run_cfg.model.get("layers", 0)), "checkpoint_path": str(
                   cfg.checkpoint.path), "n_test": dataset.count(TEST), "test_rmse": test["rmse"],
               "test_mae": test["mae"], "paper_rmse": paper["paper_rmse"], **ranking}
    return {**results, "notes": figure_notes(results, run_cfg.split, cfg.ranking)}
