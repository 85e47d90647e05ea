"""Tiny trained models for tests of saved models: the real training run, on a small
ML-1M-format release with titles (`tests.test_recommend.write_small_ml1m`)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from aerec.cli import run_task
from tests.conftest import CONFIGS, FAST_TRAIN
from tests.test_recommend import write_small_ml1m


def train_small_model(root: Path, *overrides: str) -> Path:
    """Train a model (FAST_TRAIN settings, then `overrides`: an autoencoder wants FAST_MODEL
    too) on a tiny ML-1M-format release under `root`; its model directory."""
    data = root / "data"
    if not data.exists():
        write_small_ml1m(data)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "dataset=ml1m", f"paths.data_dir={data}", "dataset.download=false", *FAST_TRAIN,
            *overrides, f"checkpoint.dir={root / 'checkpoints'}"])
    run_task(cfg, root / "run")
    return root / "run" / "model"
