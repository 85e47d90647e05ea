"""The paper metric of a model that knows nothing: predict 'missing' (0 on [0, 1]) everywhere.

Recipe (experiments/README.md, "Reproducing the paper"; paper_tables.sh's part floor):

    PYTHONPATH=. python experiments/paper_metric_floor.py experiment=paper \
        paths.data_dir=../shared/data dataset.ratings_file=ratings_notime.dat

Runtime: 7 s on 2 busy CPU cores (2026-12-06).
Reproduces: paper_rmse 0.1681 with experiment=paper, 0.1706 with experiment=paper_standard
(both re-run 2026-12-06).

It prints paper_rmse of the all-zero prediction on the same held-out users and cells that
`python run.py` with the same overrides evaluates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from hydra import compose, initialize_config_dir

from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.evaluation import paper_weights
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.scaling import paper_scaling
from aerec.rating_metrics import Evaluator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main(overrides: list[str]) -> None:
    """Compose the configuration, then evaluate the all-zero predictor."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, "train.data_path=streamed"])
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir_of(run.paths))
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
    zero = paper_scaling(dataset.rating_min, dataset.rating_max).shift  # raw value of 0 on [0,1]
    evaluator = Evaluator(lambda params, rows, inputs: jnp.full(inputs.shape, zero),
                          rating_min=dataset.rating_min, rating_max=dataset.rating_max,
                          fallback=zero, row_known=np.ones(matrices.train.shape[0], bool),
                          col_known=np.ones(matrices.train.shape[1], bool))
    rows, cols = paper_weights(dataset, cfg.model.orientation)
    result = evaluator.evaluate(None, matrices.paper_input, matrices.everything,
                                paper_rows=rows, paper_cols=cols)
    print(f"all-zero prediction: paper_rmse={result['paper_rmse']:.4f} "
          f"(users evaluated: {int((rows if cfg.model.orientation == 'user' else cols).sum())})")


if __name__ == "__main__":
    main(sys.argv[1:])
