"""One run end to end: data -> matrices -> model -> fit -> evaluation -> results."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from aerec.artifact import save_artifact
from aerec.checkpoint import open_checkpoint
from aerec.data.catalog import align_catalog, load_catalog
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.matrix import DeviceRows, rating_matrix
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.errors import ConfigError
from aerec.evaluation import (
    check_ranking_threshold,
    evaluate_held_out,
    evaluator_factory,
    figure_notes,
    ranking_figures,
)
from aerec.identity import data_fingerprint
from aerec.interrupt import Interruptible, never
from aerec.matrices import Matrices, build_matrices, data_dir_of
from aerec.models.autoencoder import AutoEncoderPredictor, graphdef_of, member_params_fn
from aerec.models.popularity import fit_popularity, predict_popularity
from aerec.models.scaling import Scaling, make_scaling
from aerec.models.svd import fit_svd, svd_predictor
from aerec.optim import build_optimizer
from aerec.sharding import data_mesh
from aerec.train import FitResult, Objective, fit, new_state, steps_per_epoch


def train_autoencoder(cfg: Any, matrices: Matrices, scaling: Scaling,
                      validate_with: Callable[[Callable, Any], Callable[[Any], float]],
                      on_epoch: Callable[[dict[str, float]], None] | None,
                      interruptible: Interruptible = never, data_fingerprint: str = ""
                      ) -> tuple[Callable, FitResult]:
    """Build, fit and return (predict, fit result) for the autoencoder; its checkpoints are
    resumed only for the same data (`data_fingerprint`)."""
    model_cfg = cfg.model
    n_inputs = matrices.train.shape[1]
    graphdef = graphdef_of(model_cfg, n_inputs)
    objective = Objective(graphdef, scaling, all_cells=model_cfg.loss == "all_cells",
                          l2=float(model_cfg.l2), compute_dtype=jnp.dtype(cfg.train.dtype))
    optimizer = build_optimizer(cfg.optimizer, steps_per_epoch(
        matrices.train, int(cfg.train.batch_size)) * int(cfg.train.epochs))

    predict = AutoEncoderPredictor(graphdef, scaling, model_cfg.output_activation)
    members = int(model_cfg.ensemble)
    state = new_state(member_params_fn(model_cfg, n_inputs, cfg.seed, members), optimizer,
                      cfg.seed)
    checkpointer, resumed = open_checkpoint(cfg, {"train": state, "best_params": state.params},
                                            data_fingerprint)
    try:
        result = fit(objective, optimizer, state, matrices.train,
                     validate_with(predict, matrices.train), epochs=cfg.train.epochs,
                     batch_size=cfg.train.batch_size, patience=cfg.train.patience,
                     seed=cfg.seed, on_epoch=on_epoch, progress=cfg.train.progress,
                     checkpointer=checkpointer, resumed=resumed,
                     mesh=data_mesh(cfg.train.mesh, int(cfg.train.wide_shards)),
                     interruptible=interruptible)
    finally:
        if checkpointer is not None:
            checkpointer.close()
    result.resumed_from_epoch = resumed.epoch if resumed is not None else 0
    return predict, result


def fit_once(fit_params: Callable[[], Any], predict: Callable, matrices: Matrices,
             validate_with: Callable) -> tuple[Callable, FitResult]:
    """A model fitted in one shot (no epochs): time it, validate it, report it as one epoch."""
    started = time.perf_counter()
    params = jax.block_until_ready(fit_params())
    seconds = time.perf_counter() - started
    valid_rmse = validate_with(predict, matrices.train)(params)
    record = {"epoch": 1, "train_loss": float("nan"), "valid_rmse": valid_rmse,
              "epoch_seconds": seconds}
    return predict, FitResult(params, 1, valid_rmse, 1, seconds, [record])


def train_svd(cfg: Any, matrices: Matrices, scaling: Scaling, validate_with: Callable
              ) -> tuple[Callable, FitResult]:
    """Fit the SVD baseline and return (predict, fit result)."""
    most = min(matrices.train.shape)
    if int(cfg.model.rank) > most:  # a factorisation has at most that many factors
        raise ConfigError(f"model.rank={cfg.model.rank} is more than the {matrices.train.shape[0]}"
                          f" x {matrices.train.shape[1]} training matrix allows: at most {most}")
    return fit_once(
        lambda: fit_svd(matrices.train.matrix, int(cfg.model.rank), bias_reg=cfg.model.bias_reg,
                        seed=cfg.seed, scaling=scaling, center=bool(cfg.model.center),
                        power_iterations=int(cfg.model.power_iterations),
                        oversample=int(cfg.model.oversample),
                        dense=matrices.train.dense),
        svd_predictor(cfg.model, scaling), matrices, validate_with)


def train_popularity(cfg: Any, matrices: Matrices, validate_with: Callable
                     ) -> tuple[Callable, FitResult]:
    """Count each item's training ratings (the popularity baseline); (predict, fit result)."""
    return fit_once(
        lambda: fit_popularity(matrices.train.matrix, cfg.model.orientation,
                               float(cfg.model.damping)),
        partial(predict_popularity, orientation=cfg.model.orientation), matrices,
        validate_with)


def run_experiment(cfg: Any, on_epoch: Callable[[dict[str, float]], None] | None = None,
                   artifact_dir: Path | None = None, interruptible: Interruptible = never
                   ) -> tuple[dict[str, Any], Dataset]:
    """Run the configured training and evaluation; returns the results and the dataset.

    With `artifact_dir`, the trained model is saved there for `aerec.load`; `interruptible`
    (`aerec.interrupt`): how the autoencoder's epoch loop learns of a requested stop.
    """
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir_of(cfg),
                           progress=cfg.train.progress)
    check_ranking_threshold(cfg.ranking, dataset)
    fingerprint = data_fingerprint(dataset)
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
        predict, result = train_autoencoder(cfg, matrices, scaling, validate_with, on_epoch,
                                            interruptible, fingerprint)
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
                      fallback=dataset.train_mean(),
                      trained_columns=matrices.train.nonempty_columns(),
                      users=dataset.users, items=dataset.items,
                      inputs=matrices.eval_input.matrix,
                      seen=rating_matrix(dataset, (TRAIN, VALID, TEST, FOLD_IN), "user"),
                      catalog=align_catalog(load_catalog(cfg.dataset, data_dir_of(cfg)),
                                            dataset.items.raw),
                      data={"data_fingerprint": fingerprint, "data_source": dataset.source,
                            "data_dir": str(data_dir_of(cfg).absolute())})
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
        "data_fingerprint": fingerprint,
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
    results["notes"] = figure_notes(results, cfg.split, cfg.ranking)
    return results, dataset
