"""Flax's default kernel initialisation, drawn for all of a model's layers at once.

`nnx.Linear` draws each kernel from a truncated normal (LeCun normal) with its own key. Inside
one compiled program every such draw is its own threefry loop, and XLA compiles each one
apart: on ML-1M's three-layer model those draws were most of the initialisation's ~0.65 s of
compilation, paid by every process that has no compilation cache yet. `KernelDraws` records
the keys and shapes while the module is built and then draws the kernels in one vectorised
call per group of similar sizes, with the same values bit for bit: under JAX's partitionable
threefry (the default) the i-th number of a draw depends on its key and on i alone, so a
kernel is the first `size` numbers of a longer draw with its key. When that does not hold
(another PRNG implementation, or `jax_threefry_partitionable` off), `batched_draws_apply`
says so and the module keeps Flax's own per-layer draws.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

# The most numbers a kernel's draw may be lengthened by to share a larger kernel's draw. A
# separate draw costs about 0.2 s of compilation on 2 CPU cores, roughly the time those
# cores take to draw 10 million numbers. So a model's kernels usually share one draw (ML-1M's
# 6040 x 500 and 500 x 500 ones do); only next to input and output layers of more than ~8
# million weights (ML-10M's and wider) do the hidden layers get a draw of their own.
SPARE_NUMBERS = 1 << 23

# `jax.nn.initializers.variance_scaling`'s constant: the standard deviation of a standard
# normal truncated to (-2, 2).
TRUNCATED_STDDEV = .87962566103423978


def batched_draws_apply() -> bool:
    """Whether a kernel equals the head of a longer draw with its key (see the module doc)."""
    # getattr: the option is slated to go once partitionable threefry is JAX's only kind.
    return (bool(getattr(jax.config, "jax_threefry_partitionable", True))
            and jax.config.jax_default_prng_impl == "threefry2x32")


def draw_groups(sizes: list[int], spare: int = SPARE_NUMBERS) -> list[list[int]]:
    """Indices of `sizes` grouped for shared draws, the largest first in each group: a size
    joins the first group whose largest is at most `spare` numbers longer."""
    groups: list[list[int]] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        group = next((g for g in groups if sizes[g[0]] - sizes[index] <= spare), None)
        if group is None:
            groups.append([index])
        else:
            group.append(index)
    return groups


class KernelDraws:
    """A `kernel_init` for `nnx.Linear` that records each request and returns a placeholder;
    `draw` then returns the LeCun-normal kernels Flax's default initialiser would have drawn,
    in the order requested. Use inside one traced function (the placeholders are dropped)."""

    def __init__(self, spare: int = SPARE_NUMBERS) -> None:
        self.spare = spare  # see `draw_groups`
        self.requests: list[tuple[jax.Array, tuple[int, ...], Any]] = []

    def __call__(self, key: jax.Array, shape: tuple[int, ...], dtype: Any,
                 out_sharding: Any = None) -> jax.Array:
        if out_sharding is not None:
            raise ValueError("KernelDraws draws unsharded kernels")
        if len(shape) != 2:
            raise ValueError(f"KernelDraws draws 2-D kernels; got shape {shape}")
        self.requests.append((key, tuple(shape), dtype))
        return jnp.zeros(shape, dtype)

    def draw(self) -> list[jax.Array]:
        """The requested kernels, in the order requested: each the head of its group's
        draw with its own key, scaled as Flax's LeCun normal."""
        sizes = [math.prod(shape) for _, shape, _ in self.requests]
        kernels: list[jax.Array | None] = [None] * len(self.requests)
        for group in draw_groups(sizes, self.spare):
            dtype = self.requests[group[0]][2]
            if any(self.requests[i][2] != dtype for i in group):
                raise ValueError("KernelDraws draws kernels of one parameter dtype together; "
                                 f"got {sorted({str(self.requests[i][2]) for i in group})}")
            keys = jnp.stack([self.requests[i][0] for i in group])
            length = sizes[group[0]]
            numbers = jax.vmap(
                lambda key, n=length, t=dtype: jax.random.truncated_normal(key, -2, 2, (n,), t)
            )(keys)
            for row, index in enumerate(group):
                _, shape, _ = self.requests[index]
                kernels[index] = numbers[row, :sizes[index]].reshape(shape) * lecun_stddev(
                    shape[0], dtype)
        return kernels  # type: ignore[return-value]


def lecun_stddev(fan_in: int, dtype: Any) -> jax.Array:
    """The factor `jax.nn.initializers.lecun_normal` multiplies its truncated normal by,
    computed as it computes it (so that the products agree bit for bit)."""
    variance = jnp.array(1.0 / fan_in, dtype=dtype)
    return jnp.sqrt(variance) / jnp.array(TRUNCATED_STDDEV, dtype)
