"""The layout a training step computes a model in: on an accelerator the input and output
widths aligned (and the hidden ones, with `pad_hidden`) by zero-weight padding units, and the
training state kept so between steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import optax

from aerec.devices import on_accelerator
from aerec.models.autoencoder import layer_sizes, pad_layers, unpad_layers

if TYPE_CHECKING:
    from aerec.train import TrainState


@dataclass(frozen=True)
class StepLayout:
    """Parameters padded for a training step (`pad_layers`): the model's layer widths and the
    step's, input first. Training keeps its state so between steps (`to_step_layout`)."""

    sizes: tuple[int, ...]
    padded: tuple[int, ...]


def aligned_width(width: int) -> int:
    """A layer width as a training step computes with it (`step_sizes`): on an accelerator
    rounded up to a multiple of 128, so that the matmuls have aligned shapes (an H200 ran
    ML-10M's 69,878 columns in slower fallback kernels, and padded each operand first; and
    width-500 matmuls at 413-483 TFLOP/s against 622-669 at 512); on a CPU `width` itself."""
    align = 128 if on_accelerator() else 1
    return -(-width // align) * align


def step_sizes(sizes: Sequence[int], pad_hidden: bool = True) -> list[int]:
    """The layer widths a training step computes with for a model of `sizes` (`layer_sizes`):
    the inputs and outputs `aligned_width`, the hidden widths too with `pad_hidden` (500 ->
    512 on an accelerator: tensor-core tiles of 128 then cover them exactly)."""
    inner = [aligned_width(size) if pad_hidden else size for size in sizes[1:-1]]
    return [aligned_width(sizes[0]), *inner, aligned_width(sizes[-1])]


def step_layout(params: Any, pad_hidden: bool = True) -> StepLayout | None:
    """The layout a training step computes `params` in, or None where it is their own (on a
    CPU, or where every width is aligned already)."""
    sizes = layer_sizes(params)
    padded = step_sizes(sizes, pad_hidden)
    return None if padded == sizes else StepLayout(tuple(sizes), tuple(padded))


def _map_state(state: TrainState, optimizer: optax.GradientTransformation,
               params_map: Callable[[Any], Any]) -> TrainState:
    """`state` with `params_map` applied to its parameters and to every copy of their tree
    in the optimizer state (Adam's moments)."""
    opt_state = optax.tree_map_params(optimizer, params_map, state.opt_state,
                                      is_leaf=lambda tree: isinstance(tree, dict)
                                      and "layers" in tree)
    return state._replace(params=params_map(state.params), opt_state=opt_state)


def to_step_layout(state: TrainState, optimizer: optax.GradientTransformation,
                   layout: StepLayout) -> TrainState:
    """A training state (parameters and Adam's moments) padded to `layout`."""
    return _map_state(state, optimizer, partial(pad_layers, sizes=layout.padded))


def from_step_layout(state: TrainState, optimizer: optax.GradientTransformation,
                     layout: StepLayout) -> TrainState:
    """The model's own training state from one in `layout` (what checkpoints hold)."""
    return _map_state(state, optimizer, partial(unpad_layers, sizes=layout.sizes))
