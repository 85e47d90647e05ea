"""The training objective: masked MSE on the observed cells (or all cells, the paper's) + L2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from aerec.models.autoencoder import apply_members
from aerec.models.scaling import Scaling


@dataclass(frozen=True)
class Objective:
    """What the loss needs besides arrays: the model's graph, the scaling, the loss options."""

    graphdef: Any
    scaling: Scaling
    all_cells: bool = False
    l2: float = 0.0
    compute_dtype: Any = jnp.float32  # bfloat16: matmuls in bf16, parameters and Adam in fp32
    pad_hidden: bool = True  # on an accelerator, hidden widths aligned too (aerec.accelerate)

    def step_loss(self, params: Any, rows: jax.Array, counts: jax.Array,
                  key: jax.Array | None, step: jax.Array) -> jax.Array:
        """`loss_fn` as a training step computes it (`aerec.accelerate.step_loss`: at aligned
        widths on an accelerator); the step number plays no part."""
        del step
        from aerec import accelerate  # it wraps this module's loss

        return accelerate.step_loss(self, params, rows, counts, key)


def loss_fn(objective: Objective, params: Any, rows: jax.Array, counts: jax.Array,
            key: jax.Array | None) -> jax.Array:
    """Masked MSE: squared error on observed cells / number of observed cells (+ L2).

    With `objective.all_cells` every cell of a row counts, missing ones as zero targets (the
    paper). `counts` holds each row's number of observed cells and 0 for batch padding,
    which never contributes. With several ensemble members the loss is their mean. `rows`
    may be stored bfloat16 (exact for half-star ratings): they are widened where used.
    """
    targets = objective.scaling.encode(rows.astype(jnp.float32))
    outputs = apply_members(objective.graphdef, cast(params, objective.compute_dtype),
                            targets.astype(objective.compute_dtype), key)
    return reconstruction_loss(objective, params, outputs, targets, rows, counts, rows.shape[1])


def reconstruction_loss(objective: Objective, params: Any, outputs: jax.Array,
                        targets: jax.Array, rows: jax.Array, counts: jax.Array, n_inputs: int
                        ) -> jax.Array:
    """The masked (or all-cells) MSE of `outputs` against `targets`, + L2 on `params`.

    `rows` may be wider than the model's `n_inputs` (padding columns, `aerec.accelerate`):
    those columns never count. `counts`: see `loss_fn`.
    """
    valid = counts > 0
    if objective.all_cells:
        counted = valid[:, None]
        if rows.shape[1] != n_inputs:
            counted = counted & (jnp.arange(rows.shape[1]) < n_inputs)
        # In float: batch x inputs may pass 2**31 (16,384 rows of ML-20M's 138,493 users).
        n_counted = jnp.sum(valid, dtype=jnp.float32) * n_inputs
    else:
        counted, n_counted = valid[:, None] & (rows > 0), jnp.sum(counts)
    loss = masked_mse(outputs, targets, counted, n_counted)
    if objective.l2:
        # Averaged over members like the error: each member sees the balance of a model
        # trained alone.
        loss = loss + objective.l2 * l2_penalty(params) / outputs.shape[0]
    return loss


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


def masked_errors(outputs: jax.Array, targets: jax.Array, counted: jax.Array,
                  n_counted: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The masked errors (fp32), the number of cells they count (at least 1) and the loss:
    the members' mean of the sum of squared errors, per counted cell."""
    # A select, not a product with a 0/1 weight: no float weight array to materialise.
    errors = jnp.where(counted, outputs.astype(jnp.float32) - targets, 0.0)
    cells = jnp.maximum(n_counted.astype(jnp.float32), 1.0)
    return errors, cells, jnp.mean(jnp.sum(errors**2, axis=(1, 2))) / cells


@jax.custom_vjp
def masked_mse(outputs: jax.Array, targets: jax.Array, counted: jax.Array,
               n_counted: jax.Array) -> jax.Array:
    """Squared error of `outputs` (members, batch, width; any float dtype) against `targets`
    on the `counted` cells, summed per member, averaged over members, divided by
    `n_counted`; differentiable in `outputs` only.

    Its gradient is written out (2 x error / (members x cells), in the outputs' dtype, made
    by the pass that computes the loss) so that the step passes over the (batch x width)
    errors once; differentiated automatically, XLA made two passes and stored the mask
    between them (experiments/README.md, GPU run 7).
    """
    return masked_errors(outputs, targets, counted, n_counted)[2]


def _masked_mse_forward(outputs: jax.Array, targets: jax.Array, counted: jax.Array,
                        n_counted: jax.Array) -> tuple[jax.Array, jax.Array]:
    errors, cells, loss = masked_errors(outputs, targets, counted, n_counted)
    gradient = (errors * (2.0 / (outputs.shape[0] * cells))).astype(outputs.dtype)
    return loss, gradient


def _masked_mse_backward(gradient: jax.Array, cotangent: jax.Array) -> tuple:
    # The targets, the mask and the count are data: no gradient.
    return cotangent.astype(gradient.dtype) * gradient, None, None, None


masked_mse.defvjp(_masked_mse_forward, _masked_mse_backward)
