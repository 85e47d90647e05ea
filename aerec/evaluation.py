"""Held-out evaluation of a trained model: RMSE/MAE, the paper's metric, top-k ranking;
and task=evaluate for a saved model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import Dataset, load_dataset
from aerec.data.split import TEST, VALID
from aerec.errors import ConfigError, DataError
from aerec.identity import data_fingerprint
from aerec.logs import brief
from aerec.matrices import Matrices, build_matrices, data_dir_of, model_data
from aerec.models.base import ModelConfig
from aerec.models.registry import family_of
from aerec.models.scaling import Scaling
from aerec.monitor import Monitor
from aerec.rankers import Ranker, build_ranker, unknown_items
from aerec.rating_metrics import Evaluator
from aerec.run_config import (
    DatasetConfig,
    PathsConfig,
    PrepareConfig,
    RankingConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
    section,
)
from aerec.saved_model import load
from aerec.topk_metrics import evaluate_ranking, ranking_targets


def paper_weights(dataset: Dataset, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column weights selecting every cell of the users that have test ratings."""
    evaluated = np.zeros(dataset.n_users, np.float32)
    evaluated[dataset.user_index[dataset.role == TEST]] = 1.0
    if orientation == "user":
        return evaluated, np.ones(dataset.n_items, np.float32)
    return np.ones(dataset.n_items, np.float32), evaluated


def relevance_threshold(ranking_cfg: RankingConfig, dataset: Dataset) -> float | None:
    """The rating a held-out item needs to be relevant: ranking.threshold; None (every held-out
    interaction) for implicit feedback."""
    return None if dataset.implicit else float(ranking_cfg.threshold)


def check_ranking_threshold(ranking_cfg: RankingConfig, dataset: Dataset) -> None:
    """Refuse a relevance threshold no rating reaches (every ranking figure would be empty);
    checked as soon as the data is loaded, before any training."""
    threshold = relevance_threshold(ranking_cfg, dataset)
    if ranking_cfg.enabled and threshold is not None and threshold > dataset.rating_max:
        raise ConfigError(
            f"ranking.threshold={ranking_cfg.threshold} is above the highest rating "
            f"({dataset.rating_max:g}): no held-out rating could be relevant; lower it, or set "
            "ranking.enabled=false")


def ranking_figures(ranking_cfg: RankingConfig, chunk_rows: int, model: ModelConfig,
                    params: Any, dataset: Dataset, matrices: Matrices, scaling: Scaling
                    ) -> dict[str, float]:
    """Top-k figures of a trained model (`model`: its typed config) on the held-out ratings
    (empty when ranking is off); the model scores `chunk_rows` rows at a time."""
    if not ranking_cfg.enabled:
        return {}
    check_ranking_threshold(ranking_cfg, dataset)
    exclude, relevant = ranking_targets(dataset, relevance_threshold(ranking_cfg, dataset))
    return evaluate_ranking(run_ranker(model, params, matrices, scaling, chunk_rows), exclude,
                            relevant, list(ranking_cfg.k), int(ranking_cfg.chunk_users))


def run_ranker(model: ModelConfig, params: Any, matrices: Matrices, scaling: Scaling,
               chunk_rows: int) -> Ranker:
    """The ranker of a run's model, reading the evaluation inputs (training and fold-in) as
    what is known of every user; items it learned nothing of ranked last."""
    unknown = unknown_items(model.orientation == "user", matrices.train.nonempty_columns(),
                            matrices.eval_input.nonempty_rows())
    return build_ranker(model, params, matrices.eval_input, scaling=scaling,
                        chunk_rows=chunk_rows, unknown=unknown)


def ranking_validator(ranking_cfg: RankingConfig, monitor: Monitor, chunk_rows: int,
                      model: ModelConfig, dataset: Dataset, matrices: Matrices, scaling: Scaling
                      ) -> Callable[[Any], Callable[[Any], float]]:
    """predict -> params -> the monitored ranking figure on the validation interactions
    (relevant as in the test; the model's inputs excluded). NaN without validation data."""
    exclude, relevant = ranking_targets(dataset, relevance_threshold(ranking_cfg, dataset),
                                        held_out=VALID)
    ks = [monitor.k]

    def validate(params: Any) -> float:
        ranker = run_ranker(model, params, matrices, scaling, chunk_rows)
        figures = evaluate_ranking(ranker, exclude, relevant, ks, int(ranking_cfg.chunk_users))
        return figures[monitor.metric]

    return lambda predict: validate


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


def no_rating_figures() -> tuple[dict[str, float], dict[str, float]]:
    """The rating figures of a run without ratings to predict: not numbers (with a note)."""
    nan = float("nan")
    return {"rmse": nan, "mae": nan}, {"paper_rmse": nan}


def rating_figures_reason(family: Any, dataset: Dataset, name: str) -> str | None:
    """Why the run has no rating figures (None when it has them)."""
    if not family.predicts_ratings:
        return f"model={name} ranks items: it predicts no ratings"
    if dataset.implicit:
        return "implicit feedback: there are no ratings to predict"
    return None


def figure_notes(results: dict[str, Any], split_cfg: SplitConfig, ranking_cfg: RankingConfig,
                 no_ratings: str | None = None) -> dict[str, str]:
    """Why each figure of `results` that is not a number (NaN, written as null) is missing:
    results.json carries these as `notes`, {figure: reason}, so that no null goes unexplained.
    `no_ratings`: why the run has no rating figures, if it has none."""
    reasons: dict[str, str] = {}
    if no_ratings:
        reasons.update(dict.fromkeys(("test_rmse", "test_mae", "paper_rmse"), no_ratings))
    monitored = f"valid_{results.get('monitor', 'rmse')}"
    if results.get("n_valid") == 0:
        reasons[monitored] = (f"no validation ratings (split.valid_fraction="
                              f"{split_cfg.valid_fraction:g} left none): no early stopping, "
                              "the last epoch's model is kept")
    elif monitored != "valid_rmse":
        reasons.setdefault(monitored, "no validation user has a relevant held-out item")
    if results.get("n_test") == 0:  # refused when the data is loaded; here for completeness
        reasons.update(dict.fromkeys(("test_rmse", "test_mae", "paper_rmse"), "no test ratings"))
    if results.get("ranking_users") == 0:
        reasons.update(dict.fromkeys(
            (key for key in results if "@" in key and not key.startswith("valid_")),
            f"no user has a test rating >= ranking.threshold={ranking_cfg.threshold:g} (no "
            "relevant item to rank)"))
    return {key: reasons.get(key, "not defined for this run (unexpected: please report it)")
            for key, value in results.items()
            if isinstance(value, float) and not math.isfinite(value)}


def same_ratings(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Whether two rating matrices hold the same ratings at the same cells."""
    return a.shape == b.shape and a.nnz == b.nnz and (a != b).nnz == 0


def trained_data_dir(paths: PathsConfig, description: dict[str, Any]) -> Path:
    """Where task=evaluate reads the data: paths.data_dir when given, else the data directory
    the model was trained with (recorded in its model.json), else the default one."""
    if paths.data_dir or not description.get("data_dir"):
        return data_dir_of(paths)
    return Path(description["data_dir"])


@dataclass(frozen=True)
class TrainedRun:
    """The sections of a saved model's run configuration (model.json's `config`) that
    task=evaluate reads again."""

    dataset: DatasetConfig
    prepare: PrepareConfig
    split: SplitConfig
    train: TrainConfig

    @classmethod
    def of(cls, config: dict[str, Any]) -> TrainedRun:
        """The sections of a saved configuration (keys it lacks at their defaults)."""
        return cls(section(DatasetConfig, config["dataset"]),
                   section(PrepareConfig, config.get("prepare")),
                   section(SplitConfig, config.get("split")),
                   section(TrainConfig, config.get("train")))


def load_trained_data(cfg: RunConfig, model: Any) -> tuple[TrainedRun, Dataset]:
    """The run configuration and the dataset a saved model was trained on, read again; a
    DataError naming the file read when its ratings are not those the model was trained on."""
    description = model.description
    try:
        run = TrainedRun.of(description["config"])
    except (KeyError, TypeError, ValueError) as error:  # a model.json edited by hand
        raise DataError(f"{Path(str(cfg.checkpoint.path)) / 'model.json'}: config: the saved "
                        f"run configuration cannot be read ({brief(error)}); train the model "
                        "again") from None
    source = description.get("data_source", "")
    if run.dataset.name == "custom" and source and not Path(
            str(run.dataset.path)).expanduser().is_file():
        # a relative dataset.path, given from another directory
        run = dataclasses.replace(run, dataset=dataclasses.replace(run.dataset, path=source))
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           trained_data_dir(cfg.paths, description), progress=cfg.train.progress)
    saved, current = description.get("data_fingerprint"), data_fingerprint(dataset)
    if saved is not None and saved != current:
        raise DataError(
            f"{dataset.source}: these are not the ratings the model in {cfg.checkpoint.path} "
            f"was trained on (data fingerprint {current[:12]}, trained on "
            f"{saved[:12]} from {source or 'its file'}): ratings were added, removed or "
            "changed since; evaluate on the ratings it was trained on")
    if not (np.array_equal(dataset.users.raw, model.users.raw)
            and np.array_equal(dataset.items.raw, model.items.raw)):
        raise DataError(f"{dataset.source}: its ratings do not give the users and items the "
                        f"model in {cfg.checkpoint.path} was trained on")
    return run, dataset


def evaluate_artifact(cfg: RunConfig) -> dict[str, Any]:
    """task=evaluate: the test figures of a saved model (checkpoint.path) on its own split.

    The dataset, preparation and split come from the configuration saved with the model, and
    the data directory too unless paths.data_dir is given; the ratings read must be those the
    model was trained on (its data fingerprint), so the figures are those of the run.
    """
    model = load(cfg.checkpoint.path)
    run, dataset = load_trained_data(cfg, model)
    family = family_of(model.config)
    learned = model_data(dataset, family, run.dataset.implicit_min_rating)
    matrices = build_matrices(learned, run.train, model.config.orientation, run.split.kind)
    if not same_ratings(matrices.eval_input.matrix, model.inputs):
        # Models saved before data fingerprints: ratings added, removed or changed split
        # differently (the split is drawn over the ratings in (user, item) order).
        raise DataError(f"{dataset.source}: its ratings do not split into the training "
                        f"ratings the model in {cfg.checkpoint.path} was trained on: ratings "
                        "were added, removed or changed since, or it was trained by an older "
                        "aerec that split in the file's line order; evaluate on the ratings it "
                        "was trained on")
    no_ratings = rating_figures_reason(family, dataset, model.config.name)
    evaluator_of = evaluator_factory(learned, matrices, int(cfg.train.eval_chunk_rows))
    test, paper = (no_rating_figures() if no_ratings else evaluate_held_out(
        evaluator_of, model.predictor, model.params, dataset, matrices,
        model.config.orientation))
    ranking = ranking_figures(cfg.ranking, int(run.train.eval_chunk_rows), model.config,
                              model.params, dataset, matrices,
                              Scaling(*model.description["scaling"]))
    results = {"dataset": run.dataset.name, "model": model.config.name,
               "layers": int(getattr(model.config, "layers", 0)), "checkpoint_path": str(
                   cfg.checkpoint.path), "n_test": dataset.count(TEST), "test_rmse": test["rmse"],
               "test_mae": test["mae"], "paper_rmse": paper["paper_rmse"], **ranking}
    return {**results, "notes": figure_notes(results, run.split, cfg.ranking, no_ratings)}
