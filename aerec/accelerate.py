"""What a training step does differently on an accelerator, wrapped around the paper's loss.

Each piece stays for a gain recorded in experiments/README.md ("Speed on one GPU"):
- layer widths aligned to multiples of 128 by zero-weight padding units, inputs and outputs
  (run 2) and hidden widths (run 6): matmuls of aligned shapes;
- each padded layer's bias folded into its first padding unit's kernel row (run 7): its
  gradient comes out of the weight-gradient matmul instead of a pass over the output error;
- the epoch's steps unrolled in the scan (run 6).
On a CPU none applies: a step computes `aerec.losses.loss_fn` as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from aerec.devices import on_accelerator
from aerec.losses import Objective, cast, loss_fn, reconstruction_loss
from aerec.models.autoencoder import ACTIVATIONS, AutoEncoder, member_models

ALIGNMENT = 128  # tensor-core tiles cover a multiple of 128 exactly
UNROLL = 4  # steps an accelerator's epoch program lays out one after another


def aligned_width(width: int) -> int:
    """A layer width as a training step computes with it: on an accelerator rounded up to a
    multiple of `ALIGNMENT`; on a CPU `width` itself."""
    align = ALIGNMENT if on_accelerator() else 1
    return -(-width // align) * align


def step_sizes(sizes: Sequence[int], pad_hidden: bool = True) -> list[int]:
    """The layer widths a step computes with for a model of `sizes` (`layer_sizes`): inputs
    and outputs `aligned_width`, the hidden widths too with `pad_hidden`."""
    inner = [aligned_width(size) if pad_hidden else size for size in sizes[1:-1]]
    return [aligned_width(sizes[0]), *inner, aligned_width(sizes[-1])]


def scan_unroll(n_steps: int) -> int:
    """How many of an epoch's `n_steps` steps one loop iteration runs (`jax.lax.scan`): a CPU
    keeps the loop (shorter compilation, nothing to gain)."""
    return max(1, min(n_steps, UNROLL)) if on_accelerator() else 1


def layer_sizes(params: Any) -> list[int]:
    """The widths of stacked parameters' layers, input first: [n_inputs, hidden..., n_inputs]."""
    layers = params["layers"]
    kernels = [layers[index]["kernel"] for index in sorted(layers)]
    return [kernels[0].shape[-2], *(kernel.shape[-1] for kernel in kernels)]


def bias_folded(kernel: jax.Array, n_in: int) -> bool:
    """Whether a layer of `n_in` real inputs keeps its bias in `kernel`'s row `n_in`: the
    convention of `pad_layers` for every layer whose input is padded."""
    return kernel.shape[-2] > n_in


def pad_layers(params: Any, sizes: Sequence[int]) -> Any:
    """Parameters of the same model computing with layer widths `sizes` (each at least the
    real one; `layer_sizes` order), for `aligned_forward`.

    Added units have zero weights and added outputs zero bias, so the real outputs are
    unchanged (up to the order of float sums) and so are the real parameters' gradients. A
    layer whose input is padded takes its bias as the kernel row of its first padding unit,
    which `with_bias_unit` sets to 1. (Under TF32 a folded bias is rounded like the weights.)
    """
    layers = dict(params["layers"])
    for position, index in enumerate(sorted(layers)):
        kernel, bias = layers[index]["kernel"], layers[index]["bias"]
        n_in = kernel.shape[-2]
        rows, cols = sizes[position] - n_in, sizes[position + 1] - kernel.shape[-1]
        if rows or cols:
            lead = [(0, 0)] * (kernel.ndim - 2)
            kernel = jnp.pad(kernel, [*lead, (0, rows), (0, cols)])
            bias = jnp.pad(bias, [*lead, (0, cols)])
            if bias_folded(kernel, n_in):
                kernel = kernel.at[..., n_in, :].set(bias)
                bias = jnp.zeros_like(bias)
            layers[index] = {"kernel": kernel, "bias": bias}
    return {**params, "layers": layers}


def with_bias_unit(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """`x` with its first padding unit set to 1 where `layer`'s bias is folded; else `x`."""
    if bias_folded(layer.kernel[...], layer.in_features):
        # A select, not `x.at[..., unit].set(1)`: with the wide layers split over a mesh,
        # XLA's CPU partitioner let that in-place update reach the rows the loss reads.
        unit = jnp.arange(x.shape[-1]) == layer.in_features
        return jnp.where(unit, jnp.ones((), x.dtype), x)
    return x


def real_unit_dropout(x: jax.Array, rate: float, key: jax.Array | None, width: int
                      ) -> jax.Array:
    """`aerec.models.autoencoder.dropout` of `x` whose first `width` units are real: the mask
    is drawn for those alone, as the unpadded model draws it; padding units are kept."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, (*x.shape[:-1], width))
    if width < x.shape[-1]:
        keep = jnp.pad(keep, [(0, 0)] * (x.ndim - 1) + [(0, x.shape[-1] - width)],
                       constant_values=True)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def aligned_forward(model: AutoEncoder, x: jax.Array, dropout_key: jax.Array | None
                    ) -> jax.Array:
    """`AutoEncoder.__call__` of a model merged with `pad_layers` parameters (its layers keep
    their declared widths): the same real outputs and dropout masks."""
    keys = [None] * len(model.layers)
    if dropout_key is not None:
        keys = list(jax.random.split(dropout_key, len(model.layers)))
    x = real_unit_dropout(x, model.input_dropout, keys[-1], model.layers[0].in_features)
    hidden_activation = ACTIVATIONS[model.activation]
    for layer, key in zip(model.layers[:-1], keys[:-1], strict=True):
        x = real_unit_dropout(hidden_activation(layer(with_bias_unit(layer, x))),
                              model.dropout_rate, key, layer.out_features)
    last = model.layers[-1]
    return ACTIVATIONS[model.output_activation](last(with_bias_unit(last, x)))


def aligned_members(graphdef: nnx.GraphDef, params: Any, x: jax.Array,
                    dropout_key: jax.Array | None) -> jax.Array:
    """`apply_members` for `pad_layers` parameters: (members, batch, padded width)."""
    models = member_models(graphdef, params)
    keys = ([None] * len(models) if dropout_key is None
            else jax.random.split(dropout_key, len(models)))
    return jnp.stack([aligned_forward(model, x, key)
                      for model, key in zip(models, keys, strict=True)])


def step_loss(objective: Objective, params: Any, rows: jax.Array, counts: jax.Array,
              key: jax.Array | None) -> jax.Array:
    """`loss_fn` as a training step computes it: where the step's widths differ from the
    model's (on an accelerator), on parameters and rows padded inside the step, with the
    padding columns out of the loss; otherwise `loss_fn` itself. Same value and gradients."""
    sizes = layer_sizes(params)
    padded = step_sizes(sizes, objective.pad_hidden)
    if padded == sizes:
        return loss_fn(objective, params, rows, counts, key)
    n_inputs, width = rows.shape[1], padded[0]
    if width != n_inputs:
        rows = jnp.pad(rows, ((0, 0), (0, width - n_inputs)))
    targets = objective.scaling.encode(rows.astype(jnp.float32))
    outputs = aligned_members(objective.graphdef,
                              cast(pad_layers(params, padded), objective.compute_dtype),
                              targets.astype(objective.compute_dtype), key)
    return reconstruction_loss(objective, params, outputs, targets, rows, counts, n_inputs)
