"""Training: the state, the jit-compiled step and epoch, and the fit loop in small parts
(resume, one epoch, early stopping, the checkpoint policy, the stop request)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from aerec import accelerate
from aerec.checkpoint import Checkpointer, Resumed
from aerec.data.device_rows import DeviceRows
from aerec.errors import TrainingDivergedError, TrainingInterrupted
from aerec.interrupt import Interruptible, never
from aerec.monitor import VALID_RMSE, Monitor
from aerec.sharding import (
    agreed,
    any_process,
    batch_shardings,
    local_copy,
    local_value,
    sharded_batch,
    state_shardings,
)


class TrainState(NamedTuple):
    """Everything that changes during training: a pytree of arrays only."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array


# The training stream's tag under key(seed). The parameters are drawn from key(seed) by
# nnx.Rngs(seed) as fold_in(key(seed), 0), fold_in(key(seed), 1), ...; dropout keys are
# fold_in(training key, step), so the training key must not be key(seed) itself (step s would
# reuse the s-th initialisation key) nor split(key(seed))[i], which equals fold_in(key(seed), i).
TRAINING_STREAM = 0x7A41_D0E5


def training_key(seed: int) -> jax.Array:
    """The root of a run's dropout keys: independent of its parameter initialisation keys."""
    return jax.random.fold_in(jax.random.key(seed), TRAINING_STREAM)


def mean_loss(losses: Any) -> float:
    """The mean of an epoch's step losses (one array), taken on the host: a compiled mean
    would be one more program for a fresh process to compile."""
    return float(np.mean(np.asarray(jax.device_get(losses), dtype=np.float64)))


def fresh_state_parts(params: Any, optimizer: optax.GradientTransformation, seed: int
                      ) -> tuple[jax.Array, Any, jax.Array]:
    """A fresh `TrainState`'s step, optimizer state and RNG key for `params` (to trace); the
    key is derived from `seed` alone (`training_key`)."""
    return (jnp.zeros((), jnp.int32), optimizer.init(params),
            jax.random.key_data(training_key(seed)))


def init_state(params: Any, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    """A fresh training state for `params` (passed on as they are, not copied)."""
    # The optimizer state and the key in one compiled program: fewer compilations at start.
    step, opt_state, rng = jax.jit(partial(fresh_state_parts, optimizer=optimizer, seed=seed))(
        params)
    return TrainState(step, params, opt_state, rng)


def new_state(make_params: Callable[[], Any], optimizer: optax.GradientTransformation,
              seed: int) -> TrainState:
    """A fresh training state whose parameters `make_params` builds when traced (e.g.
    `member_params_fn`), everything in one compiled program: one compilation less at a
    process's start than `init_members` and `init_state`."""
    def fresh_training_state() -> TrainState:  # the name JAX_LOG_COMPILES shows
        params = make_params()
        step, opt_state, rng = fresh_state_parts(params, optimizer, seed)
        return TrainState(step, params, opt_state, rng)

    return jax.jit(fresh_training_state)()


class TrainingObjective(Protocol):
    """What an iterative family trains: a loss on a batch of dense rows, for the shared step.

    `step_loss(params, rows, counts, key, step)`: the batch's loss (`counts`: each row's
    number of observed cells, 0 for batch padding, which must not contribute; `key`: the
    step's dropout key; `step`: the optimizer step, e.g. for an annealed weight). A family
    whose update is not one gradient step of one loss (RecVAE's alternating encoder and
    decoder updates) also defines `train_step(optimizer, state, rows, counts) -> (state,
    loss)`, used instead of `train_step` below. `passes`: passes over the training rows that
    make one epoch (1 if absent).
    """

    def step_loss(self, params: Any, rows: jax.Array, counts: jax.Array,
                  key: jax.Array | None, step: jax.Array) -> jax.Array: ...


def passes_per_epoch(objective: Any) -> int:
    """The passes over the training rows that one epoch of `objective` makes."""
    return int(getattr(objective, "passes", 1))


def step_key(state: TrainState) -> jax.Array:
    """The step's dropout key: fold_in(training key, step)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def train_step(objective: TrainingObjective, optimizer: optax.GradientTransformation,
               state: TrainState, rows: jax.Array, counts: jax.Array
               ) -> tuple[TrainState, jax.Array]:
    """One optimizer step on a batch of dense rows (`counts`: see `TrainingObjective`), or the
    objective's own `train_step`."""
    own_step = getattr(objective, "train_step", None)
    if own_step is not None:
        return own_step(optimizer, state, rows, counts)
    loss, grads = jax.value_and_grad(partial(objective.step_loss, step=state.step))(
        state.params, rows, counts, step_key(state))
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state, state.rng), loss


def train_epoch_resident(objective: TrainingObjective, optimizer: optax.GradientTransformation,
                         state: TrainState, matrix: jax.Array, matrix_counts: jax.Array,
                         batches: jax.Array,
                         shardings: tuple[NamedSharding, NamedSharding] | None = None
                         ) -> tuple[TrainState, jax.Array]:
    """All batches of an epoch in one compiled scan over a device-resident matrix
    (`matrix_counts`: its observed cells per row).

    With `shardings` (data parallelism over a mesh: `batch_shardings`) each batch's rows and
    counts are split across the devices; XLA inserts the gradient all-reduce.
    """

    def body(state: TrainState, ids: jax.Array) -> tuple[TrainState, jax.Array]:
        # Padding ids read row 0; their count 0 keeps them out of the loss and, as the
        # gradient of every output they produce is exactly zero, out of the update too.
        rows = matrix[jnp.maximum(ids, 0)]  # stored bf16 or float32; `loss_fn` widens
        counts = jnp.where(ids >= 0, matrix_counts[jnp.maximum(ids, 0)], 0)
        if shardings is not None:
            rows, counts = jax.lax.with_sharding_constraint((rows, counts), shardings)
        return train_step(objective, optimizer, state, rows, counts)

    return jax.lax.scan(body, state, batches, unroll=accelerate.scan_unroll(batches.shape[0]))


def steps_per_epoch(train_rows: DeviceRows, batch_size: int) -> int:
    """Optimizer steps in one epoch: the rows with a training rating, in batches (the last
    one padded); what `fit` runs and what a learning-rate schedule is sized by."""
    return -(-int(np.count_nonzero(train_rows.nonempty_rows())) // batch_size)


def epoch_batches(rows: np.ndarray, batch_size: int, seed: int, epoch: int, passes: int = 1
                  ) -> np.ndarray:
    """The epoch's shuffled row ids as (passes x n_batches, batch_size), each pass's last
    batch padded with -1.

    The order depends only on (seed, epoch[, pass]), so a resumed run sees the same batches.
    """
    n_batches = -(-rows.size // batch_size)
    padded = np.full((passes, n_batches * batch_size), -1, dtype=np.int32)
    for index in range(passes):
        generator = np.random.default_rng([seed, epoch] if index == 0 else [seed, epoch, index])
        padded[index, : rows.size] = generator.permutation(rows)
    return padded.reshape(passes * n_batches, batch_size)


@dataclass
class FitResult:
    """Outcome of `fit`: the best parameters by the monitored validation figure (`best_valid`)
    and the per-epoch history."""

    best_params: Any
    best_epoch: int
    best_valid: float
    epochs_run: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0




@dataclass
class EarlyStopping:
    """The best epoch by the monitored validation figure so far (`monitor`), its parameters,
    and the epochs waited since: training stops once `patience` epochs in a row bring no
    improvement."""

    patience: int
    best_params: Any
    best_epoch: int = 0
    best_valid: float = float("nan")
    waited: int = 0
    monitor: Monitor = field(default_factory=Monitor)

    def improves(self, valid: float) -> bool:
        """Whether an epoch of validation figure `valid` becomes the best."""
        # Without validation data (NaN) there is nothing to stop on: keep the last epoch.
        # The first epoch is the best so far whatever its figure (+inf included): the state
        # it started from may have been donated.
        return (self.best_epoch == 0 or bool(np.isnan(valid))
                or self.monitor.better(valid, self.best_valid))

    def update(self, epoch: int, valid: float, params: Callable[[], Any]) -> None:
        """Take the epoch's result; `params` gives a copy of its parameters, made only if
        they are kept (later epochs donate the state)."""
        if self.improves(valid):
            self.best_params, self.best_epoch = params(), epoch
            self.best_valid, self.waited = valid, 0
        else:
            self.waited += 1

    @property
    def exhausted(self) -> bool:
        """Whether `patience` epochs have passed without an improvement."""
        return self.waited >= self.patience


@dataclass
class Progress:
    """Where a run stands: what a checkpoint holds besides the arrays."""

    stopping: EarlyStopping
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    finished: bool = False
    seconds_before: float = 0.0  # training time of the processes before this one


def resume(state: TrainState, patience: int, resumed: Resumed | None, monitor: Monitor
           ) -> tuple[TrainState, Progress]:
    """The state and progress a run goes on from: `resumed`'s (a restored checkpoint), or a
    fresh run's from `state`."""
    if resumed is None:
        return state, Progress(EarlyStopping(patience, state.params, monitor=monitor))
    meta = resumed.meta
    best = meta["best_valid"] if "best_valid" in meta else meta["best_valid_rmse"]  # before 0.2
    stopping = EarlyStopping(patience, resumed.arrays["best_params"], meta["best_epoch"],
                             best, meta["waited"], monitor)
    return resumed.arrays["train"], Progress(stopping, list(meta["history"]), resumed.epoch,
                                             meta["finished"], meta["seconds"])


def save_epoch(checkpointer: Checkpointer, epoch: int, state: TrainState, run: Progress,
               seconds: float) -> None:
    """Checkpoint the epoch: the training state, the best parameters, and what resuming
    needs to go on as if never stopped."""
    stopping = run.stopping
    meta = {"best_epoch": stopping.best_epoch, "best_valid": stopping.best_valid,
            "waited": stopping.waited, "finished": run.finished, "history": run.history,
            "seconds": seconds}
    monitor = stopping.monitor
    checkpointer.save(epoch, {"train": state, "best_params": stopping.best_params}, meta,
                      monitor.loss(run.history[-1][monitor.key]))


def stop_if_asked(signum: int, epoch: int, checkpointer: Checkpointer | None) -> None:
    """End the run after `epoch` if a stop was asked for (`signum`: the signal, 0 if none)."""
    if signum:
        raise TrainingInterrupted(epoch, saved=checkpointer is not None, signum=signum)


def check_finite(train_loss: float, epoch: int) -> None:
    """Refuse a diverged epoch before anything saves it."""
    if not np.isfinite(train_loss):
        raise TrainingDivergedError(
            f"training loss is {train_loss} at epoch {epoch}: lower optimizer.learning_rate or "
            "add regularisation (model.l2); no checkpoint was written for this epoch")


@dataclass(frozen=True)
class EpochTrainer:
    """One epoch on the run's data path: a compiled scan over the device-resident matrix, or
    a compiled step per streamed batch; on one device or over a mesh."""

    train_rows: DeviceRows
    step: Callable
    resident_epoch: Callable
    dense: Any
    dense_counts: Any
    shardings: tuple[NamedSharding, NamedSharding] | None
    mesh: Mesh | None

    def __call__(self, state: TrainState, batches: np.ndarray) -> tuple[TrainState, float]:
        """The state after an epoch over `batches`, and its mean training loss."""
        if self.train_rows.resident:
            state, losses = self.resident_epoch(state, self.dense, self.dense_counts,
                                                jax.device_put(batches))
            return state, mean_loss(local_value(losses, self.mesh))
        losses = []
        for ids in batches:
            state, loss = self.step(state, *self.batch(ids))
            losses.append(local_value(loss, self.mesh))
        return state, mean_loss(jnp.stack(losses))  # one copy to the host, not one a step

    def batch(self, ids: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """The streamed batch of rows `ids` and their observed-cell counts."""
        if self.mesh is None:
            return self.train_rows.gather(ids), self.train_rows.row_counts(ids)
        return sharded_batch(self.train_rows, ids, self.shardings)

    def params(self, state: TrainState) -> Any:
        """The state's parameters on this process's default device."""
        return state.params if self.mesh is None else local_copy(state.params, self.mesh)

    def kept(self, state: TrainState, params: Any) -> Any:
        """A copy of the epoch's parameters to keep: `params` (from `self.params`) is one
        already when gathered from a mesh."""
        return params if self.mesh is not None else local_copy(state.params, None)


def epoch_trainer(objective: TrainingObjective, optimizer: optax.GradientTransformation,
                  state: TrainState, train_rows: DeviceRows, batch_size: int,
                  mesh: Mesh | None) -> tuple[EpochTrainer, TrainState]:
    """The run's compiled epoch, and `state` placed as it expects. With a `mesh` (see
    `data_mesh`), batches are split along its data axis, the wide layers along its wide axis
    (`state_shardings`) and the rest of the state is replicated."""
    shardings, options = None, {}
    if mesh is not None:
        shardings = batch_shardings(mesh, batch_size)
        # Pinned, so that the wide layers stay split from step to step.
        options["out_shardings"] = (state_shardings(state, mesh, train_rows.shape[1]),
                                    NamedSharding(mesh, PartitionSpec()))
        state = jax.device_put(state, options["out_shardings"][0])
    step = jax.jit(partial(train_step, objective, optimizer), donate_argnums=0, **options)
    resident_epoch = jax.jit(partial(train_epoch_resident, objective, optimizer,
                                     shardings=shardings), donate_argnums=0, **options)
    dense = train_rows.dense
    dense_counts = jax.device_put(train_rows.counts) if train_rows.resident else None
    if mesh is not None and dense is not None:  # every device reads its batch rows from it
        dense, dense_counts = jax.device_put((dense, dense_counts),
                                             NamedSharding(mesh, PartitionSpec()))
    return EpochTrainer(train_rows, step, resident_epoch, dense, dense_counts, shardings,
                        mesh), state


def fit(objective: TrainingObjective, optimizer: optax.GradientTransformation, state: TrainState,
        train_rows: DeviceRows, validate: Callable[[Any], float], *, epochs: int,
        batch_size: int, patience: int, seed: int, monitor: Monitor = VALID_RMSE,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        progress: bool = True, checkpointer: Checkpointer | None = None,
        resumed: Resumed | None = None, mesh: Mesh | None = None,
        interruptible: Interruptible = never) -> FitResult:
    """Train up to `epochs` epochs with early stopping on the `monitor` figure that
    `validate(params)` computes (`patience` epochs).

    With a `checkpointer`, the full training state is saved as its policy says
    (`Checkpointer.should_save`) and at the end; `resumed` (a restored checkpoint) continues
    a run exactly where it stopped. With a `mesh`, see `epoch_trainer`; validation and the
    returned parameters live on the default device. `interruptible` (`aerec.interrupt`) says
    whether a stop was asked for: the loop then ends after the epoch, saves it (with a
    checkpointer) and raises TrainingInterrupted; so does a stop asked for while the last
    epoch was saved.
    """
    state, run = resume(state, patience, resumed, monitor)
    for record in run.history:  # the new run's metrics.jsonl holds the whole history
        if on_epoch is not None:
            on_epoch(record)
    trainer, state = epoch_trainer(objective, optimizer, state, train_rows, batch_size, mesh)
    rows_with_data = np.flatnonzero(train_rows.nonempty_rows()).astype(np.int32)
    started = time.perf_counter()
    first_epoch = run.epochs_run + 1
    # Counted by hand after each epoch: iterating over the bar would not count an epoch left
    # by `break`, and a finished run's bar would stop one short.
    bar = tqdm(total=epochs, initial=first_epoch - 1, desc="train", unit="epoch",
               disable=not progress or run.finished)
    with bar, interruptible() as stop_requested:  # the bar closed however the loop ends
        for epoch in range(first_epoch, epochs + 1) if not run.finished else range(0):
            epoch_started = time.perf_counter()
            state, train_loss = trainer(state, epoch_batches(
                rows_with_data, batch_size, seed, epoch, passes_per_epoch(objective)))
            current = trainer.params(state)
            record = {"epoch": epoch, "train_loss": train_loss,
                      monitor.key: agreed(validate(current)),
                      "epoch_seconds": time.perf_counter() - epoch_started}
            log_epoch(record, run.history, on_epoch, bar, monitor)
            check_finite(train_loss, epoch)
            run.stopping.update(epoch, record[monitor.key], partial(trainer.kept, state, current))
            run.epochs_run, run.finished = epoch, run.stopping.exhausted or epoch == epochs
            # the signal that asked for a stop in any process, 0 if none: all stop, or none
            asked = any_process(stop_requested())
            if checkpointer is not None and checkpointer.should_save(
                    epoch, run.finished or bool(asked), record["epoch_seconds"]):
                save_epoch(checkpointer, epoch, state, run,
                           run.seconds_before + time.perf_counter() - started)
            stop_if_asked(asked, epoch, checkpointer)  # even after the last epoch
            if run.finished:
                break
        # asked while the last epoch was being saved: the run ends here too, that save kept
        stop_if_asked(any_process(stop_requested()), run.epochs_run, checkpointer)
    stopping = run.stopping
    return FitResult(stopping.best_params, stopping.best_epoch, stopping.best_valid,
                     run.epochs_run, run.seconds_before + time.perf_counter() - started,
                     run.history)


def log_epoch(record: dict[str, float], history: list[dict[str, float]],
              on_epoch: Callable[[dict[str, float]], None] | None, bar: tqdm,
              monitor: Monitor) -> None:
    """Add the epoch's record to the history, the caller's log and the progress bar."""
    history.append(record)
    if on_epoch is not None:
        on_epoch(record)
    bar.set_postfix({"loss": f"{record['train_loss']:.4f}",
                     monitor.key: f"{record[monitor.key]:.4f}"}, refresh=False)
    bar.update()
