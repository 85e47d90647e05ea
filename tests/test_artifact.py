"""Trained-model artifacts: save at the end of a run, load in a fresh process, same predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import aerec
from aerec.cli import run_task
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.errors import ConfigError, DataError
from aerec.matrices import build_matrices, data_dir_of
from aerec.model_files import restore_here
from tests.conftest import FAST_DATA, cli_env

PAIRS = {"users": [1, 5, 17, 42, 99], "items": [3, 3, 10, 7, 50]}


# One combination in the fast suite (a fresh process each: 10-25 s); all with pytest -m slow.
@pytest.mark.parametrize(("orientation", "model"), [
    ("user", "svd"),
    pytest.param("item", "svd", marks=pytest.mark.slow),
    pytest.param("item", "autoencoder", marks=pytest.mark.slow),
    pytest.param("user", "autoencoder", marks=pytest.mark.slow)])
def test_round_trip_in_a_fresh_process(compose_config, tmp_path: Path, model: str,
                                       orientation: str) -> None:
    overrides = ["model.rank=3"] if model == "svd" else ["model.hidden=16", "model.latent=8",
                                                         "model.ensemble=2"]
    cfg = compose_config(*FAST_DATA, f"model={model}", f"model.orientation={orientation}",
                         *overrides, fast=False)
    run_task(cfg, tmp_path / "run")
    here = aerec.load(tmp_path / "run" / "model").predict(PAIRS["users"], PAIRS["items"])
    assert here.shape == (5,)
    assert np.all((here >= 1.0) & (here <= 5.0))
    script = ("import json, sys, aerec; m = aerec.load(sys.argv[1]); "
              "print(json.dumps(m.predict(json.loads(sys.argv[2]), json.loads(sys.argv[3]))"
              ".tolist()))")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run" / "model"),
                           json.dumps(PAIRS["users"]), json.dumps(PAIRS["items"])],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.float32(json.loads(done.stdout)), here)


def test_unknown_ids_and_bad_paths(compose_config, tmp_path: Path) -> None:
    run_task(compose_config(), tmp_path / "run")
    model = aerec.load(tmp_path / "run" / "model")
    with pytest.raises(KeyError, match="unknown user 999999"):
        model.predict([999999], [1])
    with pytest.raises(DataError, match=r"not an aerec model directory \(no model\.json\)$"):
        aerec.load(tmp_path)
    with pytest.raises(DataError, match=f"; the run's model is {tmp_path / 'run' / 'model'}$"):
        aerec.load(tmp_path / "run")  # the run's directory for its model/


def test_task_evaluate_reproduces_the_training_runs_figures(compose_config,
                                                             tmp_path: Path) -> None:
    trained = run_task(compose_config(), tmp_path / "run")
    cfg = compose_config("task=evaluate", f"checkpoint.path={tmp_path / 'run' / 'model'}")
    evaluated = run_task(cfg, tmp_path / "evaluate")
    for key in ("test_rmse", "test_mae", "paper_rmse", "n_test"):
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-6), key
    assert json.loads((tmp_path / "evaluate" / "results.json").read_text())["test_rmse"] == (
        pytest.approx(trained["test_rmse"], rel=1e-6))


def test_task_evaluate_refuses_ratings_that_split_differently(compose_config,
                                                              tmp_path: Path) -> None:
    # Ratings added, removed or changed since training split differently: the test ratings
    # would hold some the model trained on, and its figures would look better than they are.
    # The same ratings in another line order split as they did.
    rng = np.random.default_rng(0)
    cells = rng.choice(60 * 40, size=1200, replace=False)
    lines = [f"{cell // 40 + 1},{cell % 40 + 1},{rng.integers(1, 6)}" for cell in cells]
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("\n".join(lines) + "\n")
    custom = ["dataset=custom", f"dataset.path={ratings}", "train.epochs=2",
              "train.batch_size=16", "train.progress=false", "model.hidden=16",
              "model.latent=8", "ranking.enabled=false"]
    trained = run_task(compose_config(*custom, fast=False), tmp_path / "run")
    evaluate = compose_config(*custom, "task=evaluate",
                              f"checkpoint.path={tmp_path / 'run' / 'model'}", fast=False)
    assert run_task(evaluate, tmp_path / "same")["test_rmse"] == pytest.approx(
        trained["test_rmse"], rel=1e-6)
    ratings.write_text("\n".join(lines[::-1]) + "\n")  # the same ratings, in another order
    assert run_task(evaluate, tmp_path / "reordered")["test_rmse"] == pytest.approx(
        trained["test_rmse"], rel=1e-6)
    ratings.write_text("\n".join(lines[1:]) + "\n")  # one rating fewer
    with pytest.raises(DataError, match="were added, removed or changed"):
        run_task(evaluate, tmp_path / "changed")


def test_cells_without_training_data_predict_the_training_mean(compose_config,
                                                              tmp_path: Path) -> None:
    # As in evaluation: an output column that no training rating reached is not the network's
    # (untrained) output but the training mean.
    run_task(compose_config(), tmp_path / "run")
    model = aerec.load(tmp_path / "run" / "model")
    assert model.trained_columns.any()
    users, items = PAIRS["users"][:2], PAIRS["items"][:2]
    trained = model.predict(users, items)
    column = model.users.index(users[:1])[0]  # item rows (the default): users are columns
    model.trained_columns[column] = False
    low, high = model.description["rating_range"]
    fallback = np.clip(model.description["fallback"], low, high)
    np.testing.assert_allclose(model.predict(users, items), [fallback, trained[1]], rtol=1e-6)
    # a row without input ratings (an item nobody rated in training) too
    row = model.items.index(items[1:])[0]
    inputs = model.inputs.tolil()
    inputs[row, :] = 0
    model.inputs = inputs.tocsr()
    model.inputs.eliminate_zeros()
    np.testing.assert_allclose(model.predict(users, items), [fallback, fallback], rtol=1e-6)


@pytest.mark.parametrize("kind", ["autoencoder", "svd"])
def test_a_pair_predicts_the_same_alone_and_in_any_request(compose_config, tmp_path: Path,
                                                           kind: str) -> None:
    # Requests are padded to a power of two of rows (one compilation per size class), and
    # large ones go in chunks: neither may leak into, or reorder, the requested predictions.
    # The autoencoder's rows are items (the default), the SVD's users.
    cfg = (compose_config() if kind == "autoencoder" else compose_config(
        *FAST_DATA, "model=svd", "model.rank=3", "model.orientation=user", fast=False))
    run_task(cfg, tmp_path / "run")
    model = aerec.load(tmp_path / "run" / "model")
    users, items = PAIRS["users"] + PAIRS["users"][:2], PAIRS["items"] + [60, 61]  # repeats
    together = model.predict(users, items)
    for start in range(len(users)):
        for stop in range(start + 1, len(users) + 1):
            np.testing.assert_allclose(model.predict(users[start:stop], items[start:stop]),
                                       together[start:stop], rtol=1e-5, atol=1e-5)
    assert model.predict_rows._cache_size() == 1  # all padded to the smallest class, 16
    np.testing.assert_allclose(model.predict(users, items, chunk_rows=2), together,
                               rtol=1e-5, atol=1e-5)  # 3 or 4 blocks of 2 rows
    # against the network's own output for the whole rows
    rows, cols = ((model.users.index(users), model.items.index(items)) if kind == "svd"
                  else (model.items.index(items), model.users.index(users)))
    whole = np.asarray(model.predict_rows(model.params, rows, model.inputs[rows].toarray()))
    low, high = model.description["rating_range"]
    np.testing.assert_allclose(together, np.clip(whole[np.arange(len(rows)), cols], low, high),
                               rtol=1e-5, atol=1e-5)
    # one user with many items
    np.testing.assert_allclose(model.predict(users[0], items), model.predict(
        [users[0]] * len(items), items), rtol=1e-6)
    empty = model.predict([], [])
    assert empty.shape == (0,) and empty.dtype == together.dtype
    with pytest.raises(DataError, match="2 user ids and 3 item ids"):
        model.predict(users[:2], items[:3])
    with pytest.raises(DataError, match="chunk_rows=0 must be at least 1"):
        model.predict(users, items, chunk_rows=0)


def test_the_saved_trained_columns_are_the_training_matrix_columns(compose_config,
                                                                     tmp_path: Path) -> None:
    cfg = compose_config()
    run_task(cfg, tmp_path / "run")
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           data_dir_of(run.paths), progress=False)
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
    trained = matrices.train.nonempty_columns()
    np.testing.assert_array_equal(aerec.load(tmp_path / "run" / "model").trained_columns,
                                  trained)


def test_task_evaluate_needs_a_path(compose_config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"checkpoint\.path"):
        run_task(compose_config("task=evaluate"), tmp_path)


# Saves parameters from the second of two (forced) CPU devices: a topology this process lacks,
# as a GPU-written model is to a CPU-only process.
OTHER_TOPOLOGY_CHILD = """
import sys
import jax, jax.numpy as jnp, orbax.checkpoint as ocp
params = {"w": jax.device_put(jnp.arange(6.0).reshape(2, 3), jax.devices()[1])}
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(sys.argv[1], params)
checkpointer.wait_until_finished()
"""


def test_parameters_written_on_another_topology_load_on_this_device(tmp_path: Path) -> None:
    env = {**cli_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", OTHER_TOPOLOGY_CHILD, str(tmp_path / "p")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    params = restore_here(tmp_path / "p")
    np.testing.assert_array_equal(params["w"], np.arange(6.0).reshape(2, 3))
    assert params["w"].devices() == {jax.devices()[0]}
