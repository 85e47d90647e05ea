"""Shared fixtures: real Hydra composition of the project's configs, and the shared data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import settings
from omegaconf import DictConfig

from aerec.config_files import compose_config as compose_from_configs

# Property tests draw the same examples on every run (deterministic seeds, as everywhere), with
# no per-example deadline: a loaded 2-core machine is slow, not wrong.
settings.register_profile("aerec", derandomize=True, deadline=None)
settings.load_profile("aerec")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small and quick: a synthetic matrix and a narrow model, a few epochs, no progress bars.
# Checkpoints at every epoch (the tests of resuming interrupt runs a few epochs in).
FAST_TRAIN = ["train.epochs=3", "train.batch_size=16", "train.progress=false",
              "checkpoint.every_seconds=0"]
FAST_DATA = ["dataset=synthetic", "dataset.n_users=120", "dataset.n_items=80",
             "dataset.n_ratings=3000", *FAST_TRAIN]
FAST_MODEL = ["model.hidden=16", "model.latent=8", "optimizer.learning_rate=0.01"]
FAST = FAST_DATA + FAST_MODEL


def cli_env() -> dict[str, str]:
    """Environment for a `run.py` subprocess: this checkout first on the import path."""
    inherited = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), inherited]))}


@pytest.fixture(autouse=True)
def isolated_checkpoints(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and its subprocesses) checkpoints into its own temporary directory."""
    root = tmp_path_factory.mktemp("checkpoints")
    monkeypatch.setenv("AEREC_CHECKPOINT_DIR", str(root))
    return root


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """compose_config(*overrides) -> the real composed config (FAST overrides first), as the
    command composes it (aerec.config_files: this checkout's configs/, CONFIGS)."""

    def _compose(*overrides: str, fast: bool = True) -> DictConfig:
        return compose_from_configs([*(FAST if fast else []), *overrides])

    return _compose


@pytest.fixture
def shared_ml1m() -> Path:
    """The shared ML-1M copy; skips the test where it is not present."""
    if not (SHARED_DATA / "ml-1m" / "ratings_notime.dat").is_file():
        pytest.skip(f"shared ML-1M copy not found under {SHARED_DATA}")
    return SHARED_DATA


def assert_same_draws(a: np.ndarray, b: np.ndarray) -> None:
    """Random draws made by two compiled programs are the same: bit for bit on a CPU; within
    2 units in the last place on an accelerator, whose compiler fuses the arithmetic turning
    random bits into floats differently in each program (an H200 gave 1-ulp differences
    between a compiled and an eager initialisation)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    else:
        np.testing.assert_array_max_ulp(a, b, maxulp=2)


@pytest.fixture(scope="session")
def small_svd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 SVD trained once per session on a tiny ML-1M-format release with titles
    (`tests.small_models`); its model directory, which tests only read."""
    from tests.small_models import train_small_model

    return train_small_model(tmp_path_factory.mktemp("small_svd"), "model=svd", "model.rank=4")
