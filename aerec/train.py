"""Training state, the loss, the jit-compiled train step and epoch, and the fit loop."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from aerec.checkpoint import Checkpointer, Resumed
from aerec.data.matrix import DeviceRows
from aerec.devices import on_accelerator
from aerec.errors import TrainingDivergedError, TrainingInterrupted
from aerec.interrupt import Interruptible, never
from aerec.losses import masked_mse
from aerec.models.autoencoder import (
    apply_members,
    outside_model_zeroed,
    pad_layers,
    unpad_layers,
)
from aerec.models.scaling import Scaling
from aerec.sharding import (
    agreed,
    any_process,
    batch_shardings,
    local_copy,
    local_value,
    sharded_batch,
    state_shardings,
)
from aerec.step_layout import (
    StepLayout,
    from_step_layout,
    step_layout,
    to_step_layout,
)


class TrainState(NamedTuple):
    """Everything that changes during training: a pytree of arrays only."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array


@dataclass(frozen=True)
class Objective:
    """What the loss needs besides arrays: the model's graph, the scaling, the loss options."""

    graphdef: Any
    scaling: Scaling
    all_cells: bool = False
    l2: float = 0.0
    compute_dtype: Any = jnp.float32  # bfloat16: matmuls in bf16, parameters and Adam in fp32
    pad_hidden: bool = True  # hidden widths aligned like the inputs (`step_sizes`)
    # The parameters a step receives are already in this layout (`for_steps`); None: the
    # model's own, padded in each step where the step computes with other widths.
    layout: StepLayout | None = None


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
    # The optimizer state and the key in one compiled program: compiled apart (the key's
    # derivation as three small programs), they took 0.21-0.28 s of a fresh process's start on
    # ML-1M, together 0.10-0.13 s.
    step, opt_state, rng = jax.jit(partial(fresh_state_parts, optimizer=optimizer, seed=seed))(
        params)
    return TrainState(step, params, opt_state, rng)


def new_state(make_params: Callable[[], Any], optimizer: optax.GradientTransformation,
              seed: int) -> TrainState:
    """A fresh training state whose parameters `make_params` builds when traced (e.g.
    `member_params_fn`), everything in one compiled program: one compilation less at a
    process's start than `init_members` and `init_state` (ML-1M: 0.54 instead of 0.60 s,
    median of 5)."""
    def fresh_training_state() -> TrainState:  # the name JAX_LOG_COMPILES shows
        params = make_params()
        step, opt_state, rng = fresh_state_parts(params, optimizer, seed)
        return TrainState(step, params, opt_state, rng)

    return jax.jit(fresh_training_state)()


def l2_penalty(params: Any) -> jax.Array:
    """Sum of squared weight-matrix entries (biases are not penalised)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    kernels = [leaf for path, leaf in leaves if "kernel" in jax.tree_util.keystr(path)]
    return sum(jnp.sum(kernel**2) for kernel in kernels)


def cast(tree: Any, dtype: Any) -> Any:
    """`tree` (parameters: floating-point leaves only) with its leaves in `dtype` (a no-op
    for float32); the gradient flows back through the cast to the fp32 parameters."""
    if jnp.dtype(dtype) == jnp.float32:
        return tree
    return jax.tree.map(lambda leaf: leaf.astype(dtype), tree)


def for_steps(objective: Objective, optimizer: optax.GradientTransformation,
              state: TrainState) -> tuple[Objective, TrainState]:
    """The objective and training state that training steps run with, from a state in the
    model's own widths: on an accelerator the state padded to the step's widths once and kept
    so (`Objective.layout`), rather than padded in every step (an H200 updated the ML-10M
    output layer's unaligned [500, 69878] arrays at half the speed of the input layer's; what
    this gains is not measured yet); on a CPU both as given."""
    layout = step_layout(state.params, objective.pad_hidden)
    objective = dataclasses.replace(objective, layout=layout)
    if layout is None:
        return objective, state
    return objective, jax.jit(partial(to_step_layout, optimizer=optimizer, layout=layout))(state)


def loss_fn(objective: Objective, params: Any, rows: jax.Array, counts: jax.Array,
            key: jax.Array | None) -> jax.Array:
    """Masked MSE: squared error on observed cells / number of observed cells (+ L2).

    With `objective.all_cells` every cell counts, missing ones as zero targets (the paper).
    `counts` holds each row's number of observed cells (`DeviceRows.row_counts`: the data
    path knows them without reading the rows) and 0 for batch padding, which never
    contributes. With several ensemble members the loss is their mean; each member's
    gradient comes from its own error only. `rows` may be stored bfloat16 (exact for
    half-star ratings): they are widened where used, so that a bf16 batch is never copied to
    float32 as a whole.
    """
    n_inputs = width = rows.shape[1]
    step_params, own_params = params, params  # computed with; the model's own (for L2)
    if objective.layout is not None:  # padded already, between steps too
        width = objective.layout.padded[0]
        own_params = unpad_layers(params, objective.layout.sizes)
    elif (layout := step_layout(params, objective.pad_hidden)) is not None:
        # padded here, in every step: dummy columns and units, zero weights, out of the loss
        width = layout.padded[0]
        step_params = pad_layers(params, layout.padded)
    if width != n_inputs:
        rows = jnp.pad(rows, ((0, 0), (0, width - n_inputs)))
    targets = objective.scaling.encode(rows.astype(jnp.float32))
    outputs = apply_members(objective.graphdef, cast(step_params, objective.compute_dtype),
                            targets.astype(objective.compute_dtype), key)
    valid = counts > 0
    if objective.all_cells:
        real = jnp.arange(width) < n_inputs
        # In float: batch x inputs may pass 2**31 (16,384 rows of ML-20M's 138,493 users).
        counted, n_counted = valid[:, None] & real, jnp.sum(valid, dtype=jnp.float32) * n_inputs
    else:
        counted, n_counted = valid[:, None] & (rows > 0), jnp.sum(counts)
    loss = masked_mse(outputs, targets, counted, n_counted)
    if objective.l2:
        # Averaged over members like the error, so each member sees the same balance of
        # error and penalty as a model trained alone.
        loss = loss + objective.l2 * l2_penalty(own_params) / outputs.shape[0]
    return loss


def train_step(objective: Objective, optimizer: optax.GradientTransformation,
               state: TrainState, rows: jax.Array, counts: jax.Array
               ) -> tuple[TrainState, jax.Array]:
    """One Adam step on a batch of dense rows (`counts`: see `loss_fn`); dropout key =
    fold_in(rng, step)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    loss, grads = jax.value_and_grad(partial(loss_fn, objective))(
        state.params, rows, counts, key)
    if objective.layout is not None:  # padding units' weights stay zero
        grads = outside_model_zeroed(grads, objective.layout.sizes)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state, state.rng), loss


def train_epoch_resident(objective: Objective, optimizer: optax.GradientTransformation,
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

    return jax.lax.scan(body, state, batches, unroll=scan_unroll(batches.shape[0]))


# Steps an accelerator's epoch program lays out one after another rather than in a loop. An
# H200 ran an ML-10M bf16 epoch (3 steps of 4096) in 13.6 instead of 14.5 ms unrolled: the
# loop's per-iteration synchronisation goes, and XLA schedules across steps. A CPU keeps the
# loop (compile time; nothing to gain there).
ACCELERATOR_UNROLL = 4


def scan_unroll(n_steps: int) -> int:
    """How many of an epoch's `n_steps` steps one loop iteration runs (`jax.lax.scan`)."""
    return max(1, min(n_steps, ACCELERATOR_UNROLL)) if on_accelerator() else 1


def steps_per_epoch(train_rows: DeviceRows, batch_size: int) -> int:
    """Optimizer steps in one epoch: the rows with a training rating, in batches (the last
    one padded); what `fit` runs and what a learning-rate schedule is sized by."""
    return -(-int(np.count_nonzero(train_rows.nonempty_rows())) // batch_size)


def epoch_batches(rows: np.ndarray, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's shuffled row ids as (n_batches, batch_size), padded with -1.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """
    order = np.random.default_rng([seed, epoch]).permutation(rows)
    n_batches = -(-order.size // batch_size)
    padded = np.full(n_batches * batch_size, -1, dtype=np.int32)
    padded[: order.size] = order
    return padded.reshape(n_batches, batch_size)


@dataclass
class FitResult:
    """Outcome of `fit`: the best parameters by validation RMSE and the per-epoch history."""

    best_params: Any
    best_epoch: int
    best_valid_rmse: float
    epochs_run: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0


def fit(objective: Objective, optimizer: optax.GradientTransformation, state: TrainState,
        train_rows: DeviceRows, validate: Callable[[Any], float], *, epochs: int,
        batch_size: int, patience: int, seed: int,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        progress: bool = True, checkpointer: Checkpointer | None = None,
        resumed: Resumed | None = None, mesh: Mesh | None = None,
        interruptible: Interruptible = never) -> FitResult:
    """Train up to `epochs` epochs with early stopping on validation RMSE (`patience` epochs).

    With a `checkpointer`, the full training state is saved every few epochs and at the end;
    `resumed` (a restored checkpoint) continues a run exactly where it stopped. With a `mesh`
    (see `data_mesh`), batches are split along its data axis, the wide layers along its wide
    axis (`state_shardings`) and the rest of the state is replicated; validation and the
    returned parameters live on the default device. `interruptible` (`aerec.interrupt`) says
    whether a stop was asked for: the loop then ends after the epoch, saves it (with a
    checkpointer) and raises TrainingInterrupted; so does a stop asked for while the last
    epoch was saved.
    """
    rows_with_data = np.flatnonzero(train_rows.nonempty_rows()).astype(np.int32)
    best = FitResult(state.params, 0, float("inf"), 0, 0.0)
    waited, first_epoch, finished, seconds_before = 0, 1, False, 0.0
    if resumed is not None:
        state, best.best_params = resumed.arrays["train"], resumed.arrays["best_params"]
        meta = resumed.meta
        best.best_epoch, best.best_valid_rmse = meta["best_epoch"], meta["best_valid_rmse"]
        best.history, best.epochs_run = list(meta["history"]), resumed.epoch
        waited, finished, seconds_before = meta["waited"], meta["finished"], meta["seconds"]
        first_epoch = resumed.epoch + 1
        for record in best.history:  # the new run's metrics.jsonl holds the whole history
            if on_epoch is not None:
                on_epoch(record)
    # On an accelerator the state (given, and resumed, in the model's own layout) stays
    # padded to the step's widths between steps; what leaves the loop (validation,
    # checkpoints, the result) is the model's own.
    objective, state = for_steps(objective, optimizer, state)
    layout = objective.layout
    from_steps, unpad_params = (lambda state: state), None
    if layout is not None:
        from_steps = jax.jit(partial(from_step_layout, optimizer=optimizer, layout=layout))
        unpad_params = jax.jit(partial(unpad_layers, sizes=layout.sizes))
    shardings = None
    step_options: dict[str, Any] = {}
    if mesh is not None:
        shardings = batch_shardings(mesh, batch_size)
        width = train_rows.shape[1] if layout is None else layout.padded[0]
        # Pinned, so that the wide layers stay split from step to step.
        step_options["out_shardings"] = (state_shardings(state, mesh, width),
                                         NamedSharding(mesh, PartitionSpec()))
        state = jax.device_put(state, step_options["out_shardings"][0])
    step = jax.jit(partial(train_step, objective, optimizer), donate_argnums=0, **step_options)
    resident_epoch = jax.jit(partial(train_epoch_resident, objective, optimizer,
                                     shardings=shardings),
                             donate_argnums=0, **step_options)
    dense = train_rows.dense
    dense_counts = jax.device_put(train_rows.counts) if train_rows.resident else None
    if mesh is not None and dense is not None:  # every device reads its batch rows from it
        dense, dense_counts = jax.device_put((dense, dense_counts),
                                             NamedSharding(mesh, PartitionSpec()))
    local = partial(local_copy, mesh=mesh)

    def own_params(state: TrainState) -> Any:
        """The model's parameters, on this process's default device."""
        params = state.params if unpad_params is None else unpad_params(state.params)
        return params if mesh is None else local(params)

    def train_one_epoch(state: TrainState, batches: np.ndarray) -> tuple[TrainState, float]:
        """One epoch over `batches` on the run's data path; the mean training loss."""
        if train_rows.resident:
            state, losses = resident_epoch(state, dense, dense_counts, jax.device_put(batches))
            return state, mean_loss(local_value(losses, mesh))
        losses = []
        for ids in batches:
            if mesh is None:
                rows, counts = train_rows.gather(ids), train_rows.row_counts(ids)
            else:
                rows, counts = sharded_batch(train_rows, ids, shardings)
            state, loss = step(state, rows, counts)
            losses.append(local_value(loss, mesh))
        return state, mean_loss(jnp.stack(losses))  # one copy to the host, not one a step

    def save(checkpointer: Checkpointer, epoch: int, state: TrainState, *, waited: int,
             finished: bool) -> None:
        """Checkpoint the epoch: the state in the model's own widths, the best parameters,
        and what resuming needs to go on as if never stopped."""
        meta = {"best_epoch": best.best_epoch, "best_valid_rmse": best.best_valid_rmse,
                "waited": waited, "finished": finished, "history": best.history,
                "seconds": seconds_before + time.perf_counter() - started}
        checkpointer.save(epoch, {"train": from_steps(state), "best_params": best.best_params},
                          meta, best.history[-1]["valid_rmse"])

    started = time.perf_counter()
    epoch_range = range(first_epoch, epochs + 1) if not finished else range(0)
    # Counted by hand after each epoch: iterating over the bar would not count an epoch left
    # by `break`, and a finished run's bar would stop one short.
    bar = tqdm(total=epochs, initial=first_epoch - 1, desc="train", unit="epoch",
               disable=not progress or finished)
    with bar, interruptible() as stop_requested:  # the bar closed however the loop ends
        for epoch in epoch_range:
            epoch_started = time.perf_counter()
            batches = epoch_batches(rows_with_data, batch_size, seed, epoch)
            state, train_loss = train_one_epoch(state, batches)
            current = own_params(state)
            valid_rmse = agreed(validate(current))
            record = {"epoch": epoch, "train_loss": train_loss, "valid_rmse": valid_rmse,
                      "epoch_seconds": time.perf_counter() - epoch_started}
            best.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            bar.set_postfix(loss=f"{train_loss:.4f}", valid_rmse=f"{valid_rmse:.4f}",
                            refresh=False)
            bar.update()
            if not np.isfinite(train_loss):
                raise TrainingDivergedError(
                    f"training loss is {train_loss} at epoch {epoch}: lower "
                    "optimizer.learning_rate or add regularisation (model.l2); no checkpoint "
                    "was written for this epoch")
            # Without validation ratings (NaN) there is nothing to stop on: keep the last
            # epoch. The first epoch is the best so far whatever its RMSE (+inf included): the
            # state it started from may have been donated.
            if (valid_rmse < best.best_valid_rmse or np.isnan(valid_rmse)
                    or best.best_epoch == 0):
                # A copy, as later epochs donate the state: `current` is one already when it
                # was unpadded or gathered from a mesh.
                copied = unpad_params is not None or mesh is not None
                best.best_params = current if copied else local(state.params)
                best.best_epoch, best.best_valid_rmse, waited = epoch, valid_rmse, 0
            else:
                waited += 1
            best.epochs_run = epoch
            finished = waited >= patience or epoch == epochs
            # the signal that asked for a stop in any process, 0 if none: all stop, or none
            asked = any_process(stop_requested())
            if checkpointer is not None and checkpointer.should_save(
                    epoch, finished or bool(asked), record["epoch_seconds"]):
                save(checkpointer, epoch, state, waited=waited, finished=finished)
            if asked:  # even after the last epoch: the run was asked to end here
                raise TrainingInterrupted(epoch, saved=checkpointer is not None, signum=asked)
            if finished:
                break
        # asked while the last epoch was being saved: the run ends here too, that save kept
        if asked := any_process(stop_requested()):
            raise TrainingInterrupted(best.epochs_run, saved=checkpointer is not None,
                                      signum=asked)
    best.train_seconds = seconds_before + time.perf_counter() - started
    return best
