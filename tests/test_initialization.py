"""The compiled initialisation draws Flax's default kernels, bit for bit (on a CPU)."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from flax import nnx
from omegaconf import OmegaConf

from aerec.models.autoencoder import build_autoencoder, init_members
from tests.conftest import assert_same_draws

N_INPUTS = 37


def model_cfg(**changes: object) -> object:
    cfg = {"layers": 1, "hidden": 16, "latent": 8, "activation": "tanh",
           "output_activation": "linear", "dropout": 0.0, "input_dropout": 0.0,
           "mirror_decoder": False}
    return OmegaConf.create({**cfg, **changes})


def flax_params(cfg: object, seed: int) -> dict:
    """The parameters of the module as Flax builds it, each kernel drawn on its own."""
    return jax.jit(lambda: nnx.to_pure_dict(nnx.split(build_autoencoder(cfg, N_INPUTS, seed))[1]))()


def assert_bitwise_equal(stacked: dict, member: int, expected: dict) -> None:
    got = jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x[member]), stacked))
    want = jax.tree.leaves(jax.tree.map(np.asarray, expected))
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert_same_draws(a, b)


@pytest.mark.parametrize("changes", [
    {},
    pytest.param({"layers": 2, "hidden": [24, 12], "mirror_decoder": True},
                 marks=pytest.mark.slow),
    pytest.param({"layers": 3, "hidden": 20, "latent": 5}, marks=pytest.mark.slow),
])
def test_initialisation_is_flaxs_default_bit_for_bit(changes: dict) -> None:
    cfg = model_cfg(**changes)
    _, stacked = init_members(cfg, N_INPUTS, seed=11, members=3)
    for member in range(3):
        assert_bitwise_equal(stacked, member, flax_params(cfg, 11 + member))


def test_parameters_are_those_of_bare_flax_linear_layers() -> None:
    # The reference without aerec's code path: nnx.Linear layers with Flax's own defaults,
    # built from one Rngs as the autoencoder builds its layers.
    cfg = model_cfg(layers=2, hidden=[24, 12])
    sizes = [N_INPUTS, 24, 12, 8, N_INPUTS]

    def bare() -> dict:
        rngs = nnx.Rngs(9)
        layers = [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        return {i: {"kernel": layer.kernel[...], "bias": layer.bias[...]}
                for i, layer in enumerate(layers)}

    _, stacked = init_members(cfg, N_INPUTS, seed=9, members=1)
    assert_bitwise_equal({"layers": stacked["layers"]}, 0, {"layers": jax.jit(bare)()})


def test_without_partitionable_threefry_flax_draws_each_kernel() -> None:
    cfg = model_cfg()
    with jax.threefry_partitionable(False):
        _, stacked = init_members(cfg, N_INPUTS, seed=2, members=1)
        expected = flax_params(cfg, 2)
    assert_bitwise_equal(stacked, 0, expected)


def test_new_state_is_init_members_then_init_state() -> None:
    # Training builds the parameters and the optimizer state in one program (start-up time).
    import optax

    from aerec.models.autoencoder import member_params_fn
    from aerec.train import init_state, new_state

    cfg, optimizer = model_cfg(layers=2, hidden=[24, 12]), optax.adam(1e-3)
    together = new_state(member_params_fn(cfg, N_INPUTS, 4, 2), optimizer, seed=4)
    apart = init_state(init_members(cfg, N_INPUTS, 4, 2)[1], optimizer, seed=4)
    for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(apart), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
