"""One run end to end: data -> matrices -> model -> fit -> evaluation -> results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from aerec.checkpoint import open_checkpoint
from aerec.data.catalog import align_catalog, load_catalog
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.device_rows import DeviceRows, rating_matrix
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
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
from aerec.models.registry import family_of
from aerec.models.scaling import make_scaling
from aerec.optim import build_optimizer
from aerec.run_config import RunConfig
from aerec.saved_model import save_artifact
from aerec.sharding import data_mesh
from aerec.train import FitResult, Objective, fit, new_state, steps_per_epoch


@dataclass
class RunTrainer:
    """The run's `aerec.models.base.Trainer`: the shared epoch loop with this run's training
    settings, checkpoints (resumed only for the same data, `data_fingerprint`) and stop
    requests, or one timed call; each validated on the validation ratings."""

    cfg: RunConfig
    matrices: Matrices
    validate_with: Callable[[Callable, Any], Callable[[Any], float]]
    on_epoch: Callable[[dict[str, float]], None] | None = None
    interruptible: Interruptible = never
    data_fingerprint: str = ""

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.cfg.seed)

    @property
    def compute_dtype(self) -> Any:
        """The training step's dtype (train.dtype)."""
        return jnp.dtype(self.cfg.train.dtype)

    def epochs(self, objective: Objective, init_params: Callable[[], Any], predict: Callable
               ) -> FitResult:
        """`aerec.train.fit` from the parameters `init_params` builds (or a checkpoint)."""
        cfg, train = self.cfg, self.matrices.train
        optimizer = build_optimizer(cfg.optimizer, steps_per_epoch(
            train, int(cfg.train.batch_size)) * int(cfg.train.epochs))
        state = new_state(init_params, optimizer, cfg.seed)
        checkpointer, resumed = open_checkpoint(
            cfg, {"train": state, "best_params": state.params}, self.data_fingerprint)
        try:
            result = fit(objective, optimizer, state, train,
                         self.validate_with(predict, train), epochs=cfg.train.epochs,
                         batch_size=cfg.train.batch_size, patience=cfg.train.patience,
                         seed=cfg.seed, on_epoch=self.on_epoch, progress=cfg.train.progress,
                         checkpointer=checkpointer, resumed=resumed,
                         mesh=data_mesh(cfg.train.mesh, int(cfg.train.wide_shards)),
                         interruptible=self.interruptible)
        finally:
            if checkpointer is not None:
                checkpointer.close()
        result.resumed_from_epoch = resumed.epoch if resumed is not None else 0
        return result

    def once(self, fit_params: Callable[[], Any], predict: Callable) -> FitResult:
        """A model fitted in one shot (no epochs): time it, validate it, report it as one
        epoch."""
        started = time.perf_counter()
        params = jax.block_until_ready(fit_params())
        seconds = time.perf_counter() - started
        valid_rmse = self.validate_with(predict, self.matrices.train)(params)
        record = {"epoch": 1, "train_loss": float("nan"), "valid_rmse": valid_rmse,
                  "epoch_seconds": seconds}
        if self.on_epoch is not None:
            self.on_epoch(record)
        return FitResult(params, 1, valid_rmse, 1, seconds, [record])


def run_experiment(cfg: RunConfig, on_epoch: Callable[[dict[str, float]], None] | None = None,
                   artifact_dir: Path | None = None, interruptible: Interruptible = never
                   ) -> tuple[dict[str, Any], Dataset]:
    """Run the configured training and evaluation; returns the results and the dataset.

    With `artifact_dir`, the trained model is saved there for `aerec.load`; `interruptible`
    (`aerec.interrupt`): how the autoencoder's epoch loop learns of a requested stop.
    """
    data_dir = data_dir_of(cfg.paths)
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir,
                           progress=cfg.train.progress)
    check_ranking_threshold(cfg.ranking, dataset)
    fingerprint = data_fingerprint(dataset)
    model = cfg.model
    orientation = model.orientation
    matrices = build_matrices(dataset, cfg.train, orientation, cfg.split.kind)
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))

    def validate_with(predict: Callable, inputs: DeviceRows) -> Callable[[Any], float]:
        evaluator = evaluator_of(predict, row_known=inputs.nonempty_rows())
        return lambda params: evaluator.evaluate(params, inputs, matrices.valid)["rmse"]

    # One scaling for training, prediction and the saved model (every model reads
    # model.scaling).
    scaling = make_scaling(model.scaling, dataset.rating_min, dataset.rating_max,
                           dataset.train_mean())
    trainer = RunTrainer(cfg, matrices, validate_with, on_epoch, interruptible, fingerprint)
    predict, result = family_of(model).fit(model, matrices.train, scaling, trainer)

    test, paper = evaluate_held_out(evaluator_of, predict, result.best_params, dataset,
                                    matrices, orientation)
    if artifact_dir is not None and jax.process_count() == 1:
        save_artifact(artifact_dir, result.best_params, config=cfg.resolved,
                      scaling=scaling,
                      rating_range=(dataset.rating_min, dataset.rating_max),
                      fallback=dataset.train_mean(),
                      trained_columns=matrices.train.nonempty_columns(),
                      users=dataset.users, items=dataset.items,
                      inputs=matrices.eval_input.matrix,
                      seen=rating_matrix(dataset, (TRAIN, VALID, TEST, FOLD_IN), "user"),
                      catalog=align_catalog(load_catalog(cfg.dataset, data_dir),
                                            dataset.items.raw),
                      data={"data_fingerprint": fingerprint, "data_source": dataset.source,
                            "data_dir": str(data_dir.absolute())})
    results = {
        "dataset": cfg.dataset.name,
        "model": model.name,
        "layers": int(getattr(model, "layers", 0)),
        "ensemble": int(getattr(model, "ensemble", 1)),
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
        **ranking_figures(cfg.ranking, int(cfg.train.eval_chunk_rows), model,
                          result.best_params, dataset, matrices, scaling),
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
