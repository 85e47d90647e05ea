"""One run end to end: data -> matrices -> model -> fit -> evaluation -> results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from omegaconf import OmegaConf

from aerec.artifact import load, save_artifact
from aerec.checkpoint import open_checkpoint
from aerec.data.catalog import align_catalog, load_catalog
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.locate import default_data_dir
from aerec.data.matrix import DeviceRows, dense_bytes, rating_matrix
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.errors import DataError
from aerec.metrics import Evaluator
from aerec.models.autoencoder import graphdef_of, init_members, predict_ratings
from aerec.models.popularity import fit_popularity, predict_popularity
from aerec.models.scaling import Scaling, make_scaling
from aerec.models.svd import fit_svd, predict_svd
from aerec.optim import build_optimizer
from aerec.ranking import evaluate_ranking, ranking_targets
from aerec.scoring import build_ranker
from aerec.train import FitResult, Objective, data_mesh, fit, init_state


@dataclass
class Matrices:
    """The rating matrices a run needs, in the model's orientation."""

    train: DeviceRows
    valid: DeviceRows
    eval_input: DeviceRows  # what a model may read at test time: train + fold-in ratings
    test: DeviceRows
    paper_input: DeviceRows  # the paper metric's input: held-out users' whole rows on `users`
    everything: DeviceRows  # every rating: the paper metric's targets


def data_dir_of(cfg: Any) -> Path:
    """paths.data_dir, or $AEREC_DATA_DIR / the per-user cache when it is null."""
    return Path(cfg.paths.data_dir).expanduser() if cfg.paths.data_dir else default_data_dir()


def choose_resident(cfg_train: Any, train: sp.csr_matrix) -> bool:
    """Keep train and validation matrices dense on the device when they fit the budget."""
    if jax.process_count() > 1:  # each process densifies only its own share of every batch
        return False
    if cfg_train.data_path in ("resident", "streamed"):
        return cfg_train.data_path == "resident"
    if cfg_train.data_path != "auto":
        raise ValueError(f"train.data_path={cfg_train.data_path!r}; valid: auto, resident, "
                         "streamed")
    budget = float(cfg_train.resident_max_bytes)
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:  # accelerators report their memory; leave room to compute
        budget = min(budget, 0.5 * stats["bytes_limit"])
    return 2 * dense_bytes(train) <= budget


def build_matrices(dataset: Dataset, cfg: Any) -> Matrices:
    """CSR matrices for every role the run reads; train/valid resident when they fit."""
    orientation = cfg.model.orientation

    def matrix(*roles: int) -> sp.csr_matrix:
        return rating_matrix(dataset, roles, orientation)

    train = matrix(TRAIN)
    resident = choose_resident(cfg.train, train)
    eval_input = matrix(TRAIN, FOLD_IN)
    held_out_whole = cfg.split.kind == "users"
    paper_input = matrix(TRAIN, FOLD_IN, TEST) if held_out_whole else train
    return Matrices(
        train=DeviceRows(train, resident),
        valid=DeviceRows(matrix(VALID), resident),
        eval_input=DeviceRows(eval_input, False),
        test=DeviceRows(matrix(TEST), False),
        paper_input=DeviceRows(paper_input, False),
        everything=DeviceRows(matrix(TRAIN, VALID, TEST, FOLD_IN), False),
    )


def paper_weights(dataset: Dataset, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column weights selecting every cell of the users that have test ratings."""
    evaluated = np.zeros(dataset.n_users, np.float32)
    evaluated[dataset.user_index[dataset.role == TEST]] = 1.0
    if orientation == "user":
        return evaluated, np.ones(dataset.n_items, np.float32)
    return np.ones(dataset.n_items, np.float32), evaluated


def train_autoencoder(cfg: Any, matrices: Matrices, scaling: Scaling,
                      validate_with: Callable[[Callable, Any], Callable[[Any], float]],
                      on_epoch: Callable[[dict[str, float]], None] | None
                      ) -> tuple[Callable, FitResult]:
    """Build, fit and return (predict, fit result) for the autoencoder."""
    model_cfg = cfg.model
    n_inputs = matrices.train.shape[1]
    graphdef, params = init_members(model_cfg, n_inputs, cfg.seed, int(model_cfg.ensemble))
    objective = Objective(graphdef, scaling, all_cells=model_cfg.loss == "all_cells",
                          l2=float(model_cfg.l2), compute_dtype=jnp.dtype(cfg.train.dtype))
    rows_with_data = int(np.count_nonzero(matrices.train.nonempty_rows()))
    steps_per_epoch = -(-rows_with_data // int(cfg.train.batch_size))
    optimizer = build_optimizer(cfg.optimizer, steps_per_epoch * int(cfg.train.epochs))

    predict = partial(predict_ratings, graphdef, scaling)
    state = init_state(params, optimizer, cfg.seed)
    checkpointer, resumed = open_checkpoint(cfg, {"train": state, "best_params": params})
    try:
        result = fit(objective, optimizer, state, matrices.train,
                     validate_with(predict, matrices.train), epochs=cfg.train.epochs,
                     batch_size=cfg.train.batch_size, patience=cfg.train.patience,
                     seed=cfg.seed, on_epoch=on_epoch, progress=cfg.train.progress,
                     checkpointer=checkpointer, resumed=resumed,
                     mesh=data_mesh(cfg.train.mesh))
    finally:
        if checkpointer is not None:
            checkpointer.close()
    result.resumed_from_epoch = resumed.epoch if resumed is not None else 0
    return predict, result


def train_svd(cfg: Any, matrices: Matrices, scaling: Scaling, validate_with: Callable
              ) -> tuple[Callable, FitResult]:
    """Fit the SVD baseline (one 'epoch') and return (predict, fit result)."""
    started = time.perf_counter()
    params = fit_svd(matrices.train.matrix, int(cfg.model.rank), bias_reg=cfg.model.bias_reg,
                     seed=cfg.seed, scaling=scaling, center=bool(cfg.model.center),
                     power_iterations=int(cfg.model.power_iterations))
    jax.block_until_ready(params)
    seconds = time.perf_counter() - started
    predict = partial(predict_svd, scaling=scaling)
    valid_rmse = validate_with(predict, matrices.train)(params)
    record = {"epoch": 1, "train_loss": float("nan"), "valid_rmse": valid_rmse,
              "epoch_seconds": seconds}
    return predict, FitResult(params, 1, valid_rmse, 1, seconds, [record])


def train_popularity(cfg: Any, matrices: Matrices, validate_with: Callable
                     ) -> tuple[Callable, FitResult]:
    """Count each item's training ratings (the popularity baseline); (predict, fit result)."""
    started = time.perf_counter()
    params = fit_popularity(matrices.train.matrix, cfg.model.orientation,
                            float(cfg.model.damping))
    seconds = time.perf_counter() - started
    predict = partial(predict_popularity, orientation=cfg.model.orientation)
    valid_rmse = validate_with(predict, matrices.train)(params)
    record = {"epoch": 1, "train_loss": float("nan"), "valid_rmse": valid_rmse,
              "epoch_seconds": seconds}
    return predict, FitResult(params, 1, valid_rmse, 1, seconds, [record])


def ranking_figures(cfg: Any, params: Any, dataset: Dataset, matrices: Matrices,
                    scaling: Scaling) -> dict[str, float]:
    """Top-k figures of a trained model on the held-out ratings (empty when ranking is off)."""
    if not cfg.ranking.enabled:
        return {}
    graphdef = (graphdef_of(cfg.model, matrices.eval_input.shape[1])
                if cfg.model.name == "autoencoder" else None)
    ranker = build_ranker(cfg.model, params, matrices.eval_input, scaling=scaling,
                          graphdef=graphdef, chunk_rows=int(cfg.train.eval_chunk_rows))
    exclude, relevant = ranking_targets(dataset, float(cfg.ranking.threshold))
    ks = [cfg.ranking.k] if isinstance(cfg.ranking.k, int) else list(cfg.ranking.k)
    return evaluate_ranking(ranker, exclude, relevant, ks,
                            int(cfg.ranking.chunk_users))


def evaluator_factory(dataset: Dataset, matrices: Matrices, chunk_rows: int) -> Callable:
    """evaluator_of(predict, row_known=...) -> an Evaluator bound to this dataset."""
    return partial(Evaluator, rating_min=dataset.rating_min, rating_max=dataset.rating_max,
                   fallback=dataset.train_mean(),
                   col_known=np.diff(matrices.train.matrix.tocsc().indptr) > 0,
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
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))
    test, paper = evaluate_held_out(evaluator_of, model.predict_rows, model.params, dataset,
                                    matrices, run_cfg.model.orientation)
    run_cfg.ranking = cfg.ranking
    ranking = ranking_figures(run_cfg, model.params, dataset, matrices,
                              Scaling(*model.description["scaling"]))
    return {"dataset": run_cfg.dataset.name, "model": run_cfg.model.name,
            "layers": int(run_cfg.model.get("layers", 0)), "checkpoint_path": str(
                cfg.checkpoint.path), "n_test": dataset.count(TEST), "test_rmse": test["rmse"],
            "test_mae": test["mae"], "paper_rmse": paper["paper_rmse"], **ranking}


def run_experiment(cfg: Any, on_epoch: Callable[[dict[str, float]], None] | None = None,
                   artifact_dir: Path | None = None) -> tuple[dict[str, Any], Dataset]:
    """Run the configured training and evaluation; returns the results and the dataset.

    With `artifact_dir`, the trained model is saved there for `aerec.load`.
    """
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir_of(cfg),
                           progress=cfg.train.progress)
    matrices = build_matrices(dataset, cfg)
    orientation = cfg.model.orientation
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))

    def validate_with(predict: Callable, inputs: DeviceRows) -> Callable[[Any], float]:
        evaluator = evaluator_of(predict, row_known=inputs.nonempty_rows())
        return lambda params: evaluator.evaluate(params, inputs, matrices.valid)["rmse"]

    # One scaling for training, prediction and the saved model (both models read model.scaling).
    scaling = make_scaling(cfg.model.scaling, dataset.rating_min, dataset.rating_max,
                           dataset.train_mean())
    if cfg.model.name == "autoencoder":
        predict, result = train_autoencoder(cfg, matrices, scaling, validate_with, on_epoch)
    elif cfg.model.name == "svd":
        predict, result = train_svd(cfg, matrices, scaling, validate_with)
    elif cfg.model.name == "popularity":
        predict, result = train_popularity(cfg, matrices, validate_with)
    else:
        raise ValueError(f"model.name={cfg.model.name!r}; valid: autoencoder, svd, popularity")
    if cfg.model.name != "autoencoder" and on_epoch is not None:
        on_epoch(result.history[0])

    test, paper = evaluate_held_out(evaluator_of, predict, result.best_params, dataset,
                                    matrices, orientation)
    if artifact_dir is not None and jax.process_count() == 1:
        save_artifact(artifact_dir, result.best_params, config=cfg,
                      scaling=scaling,
                      rating_range=(dataset.rating_min, dataset.rating_max),
                      fallback=dataset.train_mean(), users=dataset.users, items=dataset.items,
                      inputs=matrices.eval_input.matrix,
                      seen=rating_matrix(dataset, (TRAIN, VALID, TEST, FOLD_IN), "user"),
                      catalog=align_catalog(load_catalog(cfg.dataset, data_dir_of(cfg)),
                                            dataset.items.raw))
    results = {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "layers": int(cfg.model.get("layers", 0)),
        "ensemble": int(cfg.model.get("ensemble", 1)),
        "orientation": orientation,
        "split": cfg.split.kind,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_train": dataset.count(TRAIN),
        "n_valid": dataset.count(VALID),
        "n_test": dataset.count(TEST),
        "n_fold_in": dataset.count(FOLD_IN),
        **dataset.accounting,
        "test_rmse": test["rmse"],
        "test_mae": test["mae"],
        "paper_rmse": paper["paper_rmse"],
        **ranking_figures(cfg, result.best_params, dataset, matrices, scaling),
        "valid_rmse": result.best_valid_rmse,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.train_seconds,
        "resumed_from_epoch": result.resumed_from_epoch,
        "resident": matrices.train.resident,
        "seed": int(cfg.seed),
        "split_seed": int(cfg.split.seed),
        "device": jax.devices()[0].device_kind,
        "history": result.history,
    }
    return results, dataset
