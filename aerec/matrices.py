"""The rating matrices a run reads, in the model's orientation, resident or streamed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import Dataset
from aerec.data.device_rows import DeviceRows, dense_bytes, dense_dtype, rating_matrix
from aerec.data.locate import default_data_dir
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.run_config import PathsConfig, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Matrices:
    """The rating matrices a run needs, in the model's orientation."""

    train: DeviceRows
    valid: DeviceRows
    eval_input: DeviceRows  # what a model may read at test time: train + fold-in ratings
    test: DeviceRows
    paper_input: DeviceRows  # the paper metric's input: held-out users' whole rows on `users`
    # and `heldout_users`
    everything: DeviceRows  # every rating: the paper metric's targets


def data_dir_of(paths: PathsConfig) -> Path:
    """paths.data_dir, or $AEREC_DATA_DIR / the per-user cache when it is null."""
    return Path(paths.data_dir).expanduser() if paths.data_dir else default_data_dir()


HOST_RESIDENT_BYTES = 4_000_000_000  # train.resident_max_bytes=null on a CPU


def resident_budget(max_bytes: float | None, device_stats: dict[str, Any]) -> float:
    """Bytes the dense training and validation matrices may take on the device.

    An accelerator reports its memory (`bytes_limit`): half of it, leaving the rest to compute
    with, and no more than `max_bytes` when that is set. The CPU's device memory is the host's:
    `max_bytes`, or 4 GB when it is null.
    """
    if "bytes_limit" in device_stats:
        half = 0.5 * float(device_stats["bytes_limit"])
        return half if max_bytes is None else min(float(max_bytes), half)
    return float(HOST_RESIDENT_BYTES if max_bytes is None else max_bytes)


def choose_resident(cfg_train: TrainConfig, train: sp.csr_matrix, dtype: Any = np.float32
                    ) -> bool:
    """Keep train and validation matrices dense on the device (in `dtype`) when they fit the
    budget."""
    if jax.process_count() > 1:  # each process densifies only its own share of every batch
        return False
    if cfg_train.data_path in ("resident", "streamed"):
        return cfg_train.data_path == "resident"
    if cfg_train.data_path != "auto":
        raise ValueError(f"train.data_path={cfg_train.data_path!r}; valid: auto, resident, "
                         "streamed")
    budget = resident_budget(cfg_train.resident_max_bytes,
                             jax.devices()[0].memory_stats() or {})
    return 2 * dense_bytes(train, dtype) <= budget


def build_matrices(dataset: Dataset, train_cfg: TrainConfig, orientation: str,
                   split_kind: str) -> Matrices:
    """CSR matrices for every role the run reads, rows per `orientation` (the model's);
    train/valid resident when they fit."""

    def matrix(*roles: int) -> sp.csr_matrix:
        return rating_matrix(dataset, roles, orientation)

    train = matrix(TRAIN)
    dtype = dense_dtype(train_cfg.dense_dtype, dataset.rating)
    resident = choose_resident(train_cfg, train, dtype)
    eval_input = matrix(TRAIN, FOLD_IN)
    # Held-out users' whole rows: fold-in and targets (validation users' too on heldout_users,
    # where their rows hold no training rating).
    paper_input = (matrix(TRAIN, FOLD_IN, TEST) if split_kind == "users" else
                   matrix(TRAIN, FOLD_IN, VALID, TEST) if split_kind == "heldout_users" else
                   train)
    train_rows = DeviceRows(train, resident, dtype)
    return Matrices(
        train=train_rows,
        valid=DeviceRows(matrix(VALID), resident, dtype),
        eval_input=DeviceRows(eval_input, False),
        test=DeviceRows(matrix(TEST), False),
        # The same rows as training's, streamed: one DeviceRows (one copy of the entries on
        # an accelerator).
        paper_input=(train_rows if paper_input is train and not resident
                     else DeviceRows(paper_input, False)),
        everything=DeviceRows(matrix(TRAIN, VALID, TEST, FOLD_IN), False),
    )


def model_data(dataset: Dataset, family: Any, implicit_min_rating: float | None) -> Dataset:
    """What the model learns from: a top-N family learns from interactions, so rated data
    becomes its interactions (every rating, or those >= dataset.implicit_min_rating); the
    evaluation still reads `dataset` (relevance by ranking.threshold, every rating excluded)."""
    if family.predicts_ratings or dataset.implicit:
        return dataset
    interactions = dataset.interactions(implicit_min_rating)
    kept = ("every rating" if implicit_min_rating is None else
            f"the {interactions.rating.size} ratings >= {implicit_min_rating:g} "
            f"(dataset.implicit_min_rating) of {dataset.rating.size}")
    log.info("model=%s learns from interactions: %s counts as one", family.name, kept)
    return interactions
