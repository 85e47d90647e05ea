"""The prepared data and split of a configuration, as counts: interactions (or ratings), users,
items, each role's rows and users, and the preparation's accounting. Nothing is trained.

Recipe (docs/data.md, "Protocols on ML-1M"):

    PYTHONPATH=. python experiments/split_counts.py dataset=ml1m \
        dataset.ratings_file=ratings_notime.dat paths.data_dir=../shared/data \
        dataset.feedback=implicit dataset.implicit_min_rating=3 prepare.min_user_ratings=10 \
        prepare.min_item_ratings=10 prepare.repeat_filters=true split.kind=recbole \
        split.valid_fraction=0.1 split.test_fraction=0.1

Runtime on 2 CPU cores: a few seconds for ML-1M.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.split import FOLD_IN, TEST, TRAIN, VALID
from aerec.matrices import data_dir_of

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ROLES = {"train": TRAIN, "valid": VALID, "test": TEST, "fold_in": FOLD_IN}


def main(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths),
                           progress=False)
    kind = "interactions" if dataset.implicit else "ratings"
    print(f"{dataset.source}: {dataset.rating.size:,} {kind}, {dataset.n_users:,} users, "
          f"{dataset.n_items:,} items")
    for name, role in ROLES.items():
        rows = dataset.role == role
        users = np.unique(dataset.user_index[rows]).size
        print(f"  {name}: {int(rows.sum()):,} {kind} of {users:,} users")
    print("  accounting: " + ", ".join(f"{key} {value:,}"
                                       for key, value in dataset.accounting.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
