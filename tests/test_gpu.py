"""Checks that need a GPU (pytest -m gpu; skipped elsewhere): training on the accelerator, and
models written on the CPU loading on the GPU and the other way round."""

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
from tests.conftest import cli_env

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(jax.devices()[0].platform != "gpu", reason="needs a GPU"),
]
PAIRS = ([1, 5, 17, 42, 99], [3, 3, 10, 7, 50])
ON_CPU = {"JAX_PLATFORMS": "cpu"}

# Train (when asked) and predict in a CPU-only child process; prints the predictions as JSON.
CPU_CHILD = """
import json, sys
from pathlib import Path
import aerec
from hydra import compose, initialize_config_dir
from aerec.cli import run_task
from tests.conftest import CONFIGS, FAST
if sys.argv[2] == "train":
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*FAST, "model.ensemble=2"])
    run_task(cfg, Path(sys.argv[1]))
model = aerec.load(sys.argv[1] + "/model")
print(json.dumps(model.predict(json.loads(sys.argv[3]), json.loads(sys.argv[4])).tolist()))
"""


def cpu_predictions(run_dir: Path, train: bool) -> np.ndarray:
    done = subprocess.run([sys.executable, "-c", CPU_CHILD, str(run_dir),
                           "train" if train else "load", json.dumps(PAIRS[0]),
                           json.dumps(PAIRS[1])], env={**cli_env(), **ON_CPU},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))


def test_training_runs_on_the_gpu(compose_config, tmp_path: Path) -> None:
    for dtype in ("float32", "bfloat16"):
        results = run_task(compose_config(f"train.dtype={dtype}"), tmp_path / dtype)
        assert results["device"] == jax.devices()[0].device_kind
        assert np.isfinite(results["test_rmse"]) and results["test_rmse"] < 2.5


def test_a_model_written_on_the_cpu_loads_on_the_gpu(tmp_path: Path) -> None:
    on_cpu = cpu_predictions(tmp_path / "cpu", train=True)
    on_gpu = aerec.load(tmp_path / "cpu" / "model").predict(*PAIRS)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3)  # TF32 matmuls on the GPU


def test_a_model_written_on_the_gpu_loads_on_the_cpu(compose_config, tmp_path: Path) -> None:
    run_task(compose_config("model.ensemble=2"), tmp_path / "gpu")
    on_gpu = aerec.load(tmp_path / "gpu" / "model").predict(*PAIRS)
    np.testing.assert_allclose(cpu_predictions(tmp_path / "gpu", train=False), on_gpu, rtol=1e-3)


# The sparse path's products on a GPU: cuSPARSE's when it takes them, XLA's otherwise (which
# JAX warns about, and the test suite turns warnings into errors): this test is about results.
@pytest.mark.filterwarnings("ignore::jax.experimental.sparse.CuSparseEfficiencyWarning")
def test_svd_fits_the_same_model_on_the_gpu_as_on_the_cpu() -> None:
    # model=svd's products run on the matrix's device, its thin factorisations on the host.
    import jax.numpy as jnp
    import scipy.sparse as sp

    from aerec.models.svd import fit_svd, predict_svd

    rng = np.random.default_rng(0)
    ratings = np.where(rng.random((300, 200)) < 0.2, rng.integers(1, 6, (300, 200)),
                       0).astype(np.float32)
    gpu, cpu = jax.devices()[0], jax.devices("cpu")[0]

    def predictions(device: jax.Device, dense: bool) -> np.ndarray:
        with jax.default_device(device):
            params = fit_svd(sp.csr_matrix(ratings), rank=5, bias_reg=2.0, seed=0,
                             dense=jax.device_put(ratings, device) if dense else None)
            assert params["basis"].devices() == {device}
            return np.asarray(predict_svd(params, jnp.arange(300), jnp.asarray(ratings)))

    for dense in (True, False):
        np.testing.assert_allclose(predictions(gpu, dense), predictions(cpu, dense), atol=1e-3)


def test_the_kept_best_parameters_outlive_donated_epochs_on_the_gpu() -> None:
    # The copy of the best epoch's parameters must not be overwritten when later epochs
    # donate the training state (on a GPU the copy and the donation are device operations).
    from tests.test_train import (
        test_a_first_epoch_without_a_finite_score_is_kept,
        test_early_stopping_keeps_the_best_epoch,
    )

    test_early_stopping_keeps_the_best_epoch()
    test_a_first_epoch_without_a_finite_score_is_kept()
