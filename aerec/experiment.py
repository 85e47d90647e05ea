"""One run end to end: data -> matrices -> model -> fit -> evaluation -> results."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pandas as pd

from aerec.checkpoint import open_checkpoint
from aerec.data.catalog import align_catalog, load_catalog
from aerec.data.dataset import Dataset, load_dataset
from aerec.data.device_rows import rating_matrix
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.errors import ConfigError
from aerec.evaluation import (
    check_ranking_threshold,
    evaluate_held_out,
    evaluator_factory,
    figure_notes,
    no_rating_figures,
    ranking_figures,
    ranking_validator,
    rating_figures_reason,
)
from aerec.identity import data_fingerprint
from aerec.interrupt import Interruptible, never
from aerec.matrices import Matrices, build_matrices, data_dir_of, model_data
from aerec.models.base import Predictor
from aerec.models.registry import family_of
from aerec.models.scaling import make_scaling
from aerec.monitor import Monitor, resolve_monitor
from aerec.optim import build_optimizer
from aerec.run_config import RunConfig
from aerec.saved_model import save_artifact
from aerec.sharding import data_mesh
from aerec.train import (
    FitResult,
    TrainingObjective,
    fit,
    new_state,
    passes_per_epoch,
    steps_per_epoch,
)

log = logging.getLogger(__name__)


@dataclass
class RunTrainer:
    """The run's `aerec.models.base.Trainer`: the shared epoch loop with this run's training
    settings, checkpoints (resumed only for the same data, `data_fingerprint`) and stop
    requests, or one timed call; each validated on the monitored figure (`train.monitor`)."""

    cfg: RunConfig
    matrices: Matrices
    validator: Callable[[Predictor], Callable[[Any], float]]  # predict -> params -> figure
    monitor: Monitor
    on_epoch: Callable[[dict[str, float]], None] | None = None
    interruptible: Interruptible = never
    data_fingerprint: str = ""

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.cfg.seed)

    @property
    def batch_size(self) -> int:
        """Rows per optimizer step (train.batch_size)."""
        return int(self.cfg.train.batch_size)

    @property
    def compute_dtype(self) -> Any:
        """The training step's dtype (train.dtype)."""
        return jnp.dtype(self.cfg.train.dtype)

    def epochs(self, objective: TrainingObjective, init_params: Callable[[], Any],
               predict: Predictor) -> FitResult:
        """`aerec.train.fit` from the parameters `init_params` builds (or a checkpoint)."""
        cfg, train = self.cfg, self.matrices.train
        optimizer = build_optimizer(cfg.optimizer, steps_per_epoch(train, self.batch_size)
                                    * passes_per_epoch(objective) * int(cfg.train.epochs))
        state = new_state(init_params, optimizer, cfg.seed)
        checkpointer, resumed = open_checkpoint(
            cfg, {"train": state, "best_params": state.params}, self.data_fingerprint)
        try:
            result = fit(objective, optimizer, state, train, self.validator(predict),
                         epochs=cfg.train.epochs, batch_size=self.batch_size,
                         patience=cfg.train.patience, seed=cfg.seed, monitor=self.monitor,
                         on_epoch=self.on_epoch, progress=cfg.train.progress,
                         checkpointer=checkpointer, resumed=resumed,
                         mesh=data_mesh(cfg.train.mesh, int(cfg.train.wide_shards)),
                         interruptible=self.interruptible)
        finally:
            if checkpointer is not None:
                checkpointer.close()
        result.resumed_from_epoch = resumed.epoch if resumed is not None else 0
        return result

    def once(self, fit_params: Callable[[], Any], predict: Predictor) -> FitResult:
        """A model fitted in one shot (no epochs): time it, validate it, report it as one
        epoch."""
        started = time.perf_counter()
        params = jax.block_until_ready(fit_params())
        seconds = time.perf_counter() - started
        valid = self.validator(predict)(params)
        record = {"epoch": 1, "train_loss": float("nan"), self.monitor.key: valid,
                  "epoch_seconds": seconds}
        if self.on_epoch is not None:
            self.on_epoch(record)
        return FitResult(params, 1, valid, 1, seconds, [record])


def run_experiment(cfg: RunConfig, on_epoch: Callable[[dict[str, float]], None] | None = None,
                   artifact_dir: Path | None = None, interruptible: Interruptible = never,
                   dataset: Dataset | None = None, catalog: pd.DataFrame | None = None
                   ) -> tuple[dict[str, Any], Dataset]:
    """Run the configured training and evaluation; returns the results and the dataset.

    With `artifact_dir`, the trained model is saved there for `aerec.load`; `interruptible`
    (`aerec.interrupt`): how the epoch loop learns of a requested stop. `dataset` (with its
    `catalog` of titles, if any): data prepared by the caller (`aerec.api`), instead of the
    configured dataset's file and movies file.
    """
    data_dir = data_dir_of(cfg.paths)
    given = dataset is not None
    if dataset is None:
        dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir,
                               progress=cfg.train.progress)
    check_ranking_threshold(cfg.ranking, dataset)
    fingerprint = data_fingerprint(dataset)
    model, family = cfg.model, family_of(cfg.model)
    check_learns_from(model, dataset)
    monitor = resolve_monitor(cfg.train.monitor, predicts_ratings=family.predicts_ratings,
                              implicit=dataset.implicit, model_name=model.name)
    learned = model_data(dataset, family, cfg.dataset.implicit_min_rating)
    matrices = build_matrices(learned, cfg.train, model.orientation, cfg.split.kind)
    evaluator_of = evaluator_factory(learned, matrices, int(cfg.train.eval_chunk_rows))
    # One scaling for training, prediction and the saved model (every model reads
    # model.scaling).
    scaling = make_scaling(model.scaling, learned.rating_min, learned.rating_max,
                           learned.train_mean())
    validator = (ranking_validator(cfg.ranking, monitor, int(cfg.train.eval_chunk_rows), model,
                                   dataset, matrices, scaling) if monitor.ranking
                 else rmse_validator(evaluator_of, matrices))
    trainer = RunTrainer(cfg, matrices, validator, monitor, on_epoch, interruptible, fingerprint)
    predict, result = family.fit(model, matrices.train, scaling, trainer)

    rates = family.predicts_ratings and not dataset.implicit
    test, paper = (evaluate_held_out(evaluator_of, predict, result.best_params, dataset,
                                     matrices, model.orientation) if rates
                   else no_rating_figures())
    if artifact_dir is not None and jax.process_count() == 1:
        save_artifact(artifact_dir, result.best_params, config=cfg.resolved,
                      scaling=scaling,
                      rating_range=(dataset.rating_min, dataset.rating_max),
                      fallback=dataset.train_mean(),
                      trained_columns=matrices.train.nonempty_columns(),
                      users=dataset.users, items=dataset.items,
                      inputs=matrices.eval_input.matrix,
                      seen=rating_matrix(dataset, (TRAIN, VALID, TEST, FOLD_IN), "user"),
                      catalog=align_catalog(catalog if given else load_catalog(
                          cfg.dataset, data_dir), dataset.items.raw),
                      data={"data_fingerprint": fingerprint, "data_source": dataset.source,
                            "data_dir": "" if given else str(data_dir.absolute())})
    results = {
        "dataset": cfg.dataset.name,
        "feedback": "implicit" if dataset.implicit else "explicit",
        "model": model.name,
        "layers": int(getattr(model, "layers", 0)),
        "ensemble": int(getattr(model, "ensemble", 1)),
        "orientation": model.orientation,
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
        "monitor": monitor.metric,
        monitor.key: result.best_valid,
        "chosen_by": chosen_by(monitor, cfg.ranking.enabled),
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
    results["notes"] = figure_notes(results, cfg.split, cfg.ranking, rating_figures_reason(
        family, dataset, model.name))
    return results, dataset


def rmse_validator(evaluator_of: Callable, matrices: Matrices
                   ) -> Callable[[Predictor], Callable[[Any], float]]:
    """predict -> params -> the validation RMSE of the training rows' predictions."""
    def validate_with(predict: Predictor) -> Callable[[Any], float]:
        evaluator = evaluator_of(predict, row_known=matrices.train.nonempty_rows())
        return lambda params: evaluator.evaluate(params, matrices.train, matrices.valid)["rmse"]

    return validate_with


def check_learns_from(model: Any, dataset: Dataset) -> None:
    """Refuse a rating model that would learn nothing from implicit feedback (every observed
    value is 1): the masked loss sees only those, the centred SVD only their residuals 0."""
    if not dataset.implicit:
        return
    top_n = "a top-N model (model=ease, multvae, multdae or recvae)"
    if getattr(model, "loss", None) == "masked":
        raise ConfigError(f"model.loss=masked learns the observed cells only, and with implicit "
                          f"feedback every one is 1: use model.loss=all_cells (the paper's "
                          f"loss), or {top_n}")
    if getattr(model, "center", None) is True:
        raise ConfigError("model.center=true fits what is left of each rating after its "
                          "biases, and with implicit feedback nothing is: use model.center=false "
                          f"(PureSVD of the interaction matrix), or {top_n}")


def chosen_by(monitor: Monitor, ranking: bool) -> str:
    """How the kept epoch was chosen, said in results.json."""
    if monitor.ranking:
        return (f"the epoch with the best validation {monitor.metric} (train.monitor): chosen "
                "for its lists")
    return ("the epoch with the lowest validation RMSE: chosen for rating error, not for its "
            "lists" + (" (train.monitor=ndcg@10 chooses by them)" if ranking else ""))
