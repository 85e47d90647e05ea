"""Device meshes for training: batches split along `data`, the wide layers along `wide`."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

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
    grid = np.array(available[:devices]).reshape(devices // wide_shards, wide_shards)
    return Mesh(grid, (DATA_AXIS, WIDE_AXIS))


def state_shardings(tree: Any, mesh: Mesh, width: int) -> Any:
    """Shardings for a pytree of training arrays: every array with a dimension (after the
    ensemble axis) as wide as a row is split along it over the mesh's `wide` axis (the input
    layer's kernel, the output layer's kernel and bias, and their Adam moments); the rest is
    replicated."""
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
