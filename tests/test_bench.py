"""The benchmark's FLOP accounting, its shapes and its profile; what the checkpoint identity
leaves out."""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp

from aerec.config import run_config
from aerec.identity import run_identity
from experiments.bench import SHAPES, data_variants, load_shape, on_data_path, step_matmuls
from experiments.profile_epoch import op_seconds


def test_step_matmuls_count_forward_and_both_gradients() -> None:
    # 10 -> 4 -> 3 -> 10, batch 2: the first layer needs no input gradient.
    assert step_matmuls([10, 4, 3, 10], 2) == [
        (2, 10, 4), (10, 2, 4),
        (2, 4, 3), (4, 2, 3), (2, 3, 4),
        (2, 3, 10), (3, 2, 10), (2, 10, 3),
    ]


def test_shapes_are_the_official_releases() -> None:
    assert SHAPES["ml1m"] == (6040, 3706, 1_000_209)
    assert SHAPES["netflix"] == (480_189, 17_770, 100_480_507)


def test_evaluation_and_serving_keys_do_not_change_the_checkpoint_identity(
        compose_config) -> None:
    base = run_identity(run_config(compose_config()).resolved)
    assert run_identity(run_config(compose_config("ranking.k=[5]", "ranking.threshold=3.5", "k=3",
                                       "format=json", "paths.compile_cache_dir=off",
                                       "train.dense_dtype=bfloat16")).resolved) == base
    assert run_identity(run_config(compose_config("train.dtype=bfloat16")).resolved) != base


def test_profile_sums_the_time_of_the_operations_run(tmp_path: Path) -> None:
    product = jax.jit(lambda a: (a @ a).sum())
    a = jnp.ones((256, 256))
    product(a).block_until_ready()
    with jax.profiler.trace(str(tmp_path)):
        product(a).block_until_ready()
    totals = op_seconds(tmp_path)
    assert totals and all(seconds >= 0 for seconds in totals.values())
    assert sum(totals.values()) > 0
    assert not any(name.startswith("$") for name in totals)  # Python frames left out


def test_each_data_path_and_storage_is_timed_once_on_one_load() -> None:
    args = argparse.Namespace(data_dir=None, data_path=["resident", "streamed"],
                              dense_dtype=["float32", "bfloat16"])
    assert data_variants(args) == [("resident", "float32"), ("resident", "bfloat16"),
                                   ("streamed", "float32")]
    loaded = load_shape("ml1m", args, *data_variants(args)[0])  # synthetic: no --data-dir
    assert loaded["matrices"].train.resident and loaded["source"] == "synthetic"
    for data_path, dense in data_variants(args)[1:]:
        rebuilt = on_data_path(loaded, data_path, dense, args)
        assert rebuilt["dataset"] is loaded["dataset"]
        assert rebuilt["cfg"].train.data_path == data_path
        assert rebuilt["matrices"].train.resident == (data_path == "resident")
        if data_path == "resident":
            assert rebuilt["matrices"].train.dense.dtype == jnp.bfloat16
        loaded = rebuilt
