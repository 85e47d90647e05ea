"""Device meshes for training: batches split along `data`, the wide layers along `wide`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from aerec.data.device_rows import DeviceRows
from aerec.errors import ConfigError

DATA_AXIS = "data"
WIDE_AXIS = "wide"


def data_mesh(devices: int | None, wide_shards: int = 1) -> Mesh | None:
    """A (data, wide) mesh over the first `devices` devices (-1: all); None: off.

    Batches are split along `data`; the wide layers (the input and output layers, as wide as
    a row) are split along `wide` over `wide_shards` devices, and replicated along `data`.
    """
    if devices is None:
        return None
    available = jax.devices()
    devices = len(available) if devices == -1 else devices
    if devices > len(available):
        raise ConfigError(f"train.mesh={devices} devices requested, {len(available)} present")
    if devices % wide_shards:
        raise ConfigError(f"train.wide_shards={wide_shards} must divide the {devices} devices "
                          "of train.mesh")
    chosen = available[:devices]
    feeding = {device.process_index for device in chosen}
    if len(feeding) < jax.process_count():  # the others could feed no batch and would fail
        raise ConfigError(f"train.mesh={devices} devices hold only processes "
                          f"{sorted(feeding)} of {jax.process_count()}: use train.mesh=-1")
    grid = np.array(chosen).reshape(devices // wide_shards, wide_shards)
    return Mesh(grid, (DATA_AXIS, WIDE_AXIS))


def any_process(flag: int) -> int:
    """The largest of the processes' `flag`s (itself when alone; true if any is): a stop asked
    for in one (Ctrl-C on one node; the signal's number) is taken by all, which must leave the
    loop together."""
    if jax.process_count() == 1:
        return flag
    return int(np.asarray(multihost_utils.process_allgather(np.array([flag], np.int32))).max())


def agreed(value: float) -> float:
    """`value` as process 0 computed it, in every process (itself when alone).

    Decisions taken on a figure each process computes on its own devices (the validation
    RMSE: keep these parameters, stop now) must be the same everywhere: accelerators of
    different hosts may differ in the last bit, and a process that stopped while another
    started a new epoch would leave that one waiting in the gradient all-reduce forever.
    """
    if jax.process_count() == 1:
        return value
    # As the float64's two 32-bit halves: JAX without x64 would round it to a float32.
    halves = np.array([value], np.float64).view(np.uint32)
    return float(np.asarray(multihost_utils.broadcast_one_to_all(halves)).view(np.float64)[0])


def state_shardings(tree: Any, mesh: Mesh, width: int) -> Any:
    """Shardings for a pytree of training arrays: every array with a dimension (after the
    ensemble axis) as wide as a row is split along it over the mesh's `wide` axis (the input
    layer's kernel, the output layer's kernel and bias, and their Adam moments); the rest is
    replicated. (A hidden layer exactly as wide as a row would be split too: correct, if
    slower; rows are thousands wide, hidden layers hundreds.)"""
    if width % mesh.shape[WIDE_AXIS]:
        raise ConfigError(f"train.wide_shards={mesh.shape[WIDE_AXIS]} must divide the width of "
                          f"a row ({width} columns) to split the wide layers evenly")

    def one(leaf: Any) -> NamedSharding:
        shape = tuple(np.shape(leaf))
        if mesh.shape[WIDE_AXIS] == 1 or width not in shape[1:]:
            return NamedSharding(mesh, PartitionSpec())
        spec = [None] * len(shape)
        spec[1 + shape[1:].index(width)] = WIDE_AXIS
        return NamedSharding(mesh, PartitionSpec(*spec))

    return jax.tree.map(one, tree)


def batch_shardings(mesh: Mesh, batch_size: int) -> tuple[NamedSharding, NamedSharding]:
    """Shardings of a batch's rows and of its observed-cell counts, split along `data`."""
    batch_devices = mesh.shape[DATA_AXIS]
    if batch_size % batch_devices:
        raise ConfigError(f"train.batch_size={batch_size} must be a multiple of the "
                         f"{batch_devices} devices the batch is split over (train.mesh / "
                         "train.wide_shards)")
    return (NamedSharding(mesh, PartitionSpec(DATA_AXIS, None)),
            NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def sharded_batch(train_rows: DeviceRows, ids: np.ndarray,
                  shardings: tuple[NamedSharding, NamedSharding]) -> tuple[jax.Array, jax.Array]:
    """The batch of rows `ids` (and their counts) split over the mesh; each process densifies
    only its own devices' rows, so with several processes (jax.distributed) each feeds its own
    shard."""
    rows_sharding, counts_sharding = shardings
    rows = jax.make_array_from_callback(
        (ids.size, train_rows.shape[1]), rows_sharding,
        lambda index: train_rows.host_rows(ids[index[0]]))
    counts = jax.make_array_from_callback(
        (ids.size,), counts_sharding, lambda index: train_rows.row_counts(ids[index[0]]))
    return rows, counts


def local_copy(tree: Any, mesh: Mesh | None) -> Any:
    """A copy of `tree` on one of this process's devices: of a replicated array its local
    copy, of a split one (the wide layers) the whole array gathered."""
    if mesh is None:  # a copy without compiling one per leaf shape
        return jax.device_put(tree, may_alias=False)
    return jax.tree.map(
        lambda leaf: jnp.copy(leaf.addressable_data(0)) if leaf.is_fully_replicated
        else jax.device_put(leaf, jax.local_devices()[0]), tree)


def local_value(array: jax.Array, mesh: Mesh | None) -> jax.Array:
    """A replicated result (a loss) as an array of this process: its local copy."""
    return array if mesh is None else array.addressable_data(0)
