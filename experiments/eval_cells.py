"""The autoencoder's held-out RMSE computed at the held-out cells alone against the whole
rows' predictions: seconds per evaluation of the validation ratings, alternating the two in
one process (medians after a first, compiling, call), and the figures they give.

Recipe (experiments/README.md, "Validation at the held-out cells"):

    PYTHONPATH=. python experiments/eval_cells.py --data-dir ../shared/data \
        --overrides experiment=best_ml1m
    PYTHONPATH=. python experiments/eval_cells.py --shape ml10m --repeats 1

Runtime on 2 CPU cores: about 20 s for ML-1M; about 2 minutes for the ML-10M shape
(estimated from the recorded times).
Reproduces (2 CPU cores): best_ml1m 0.410 s whole rows against 0.290 s at the cells; its
ensemble of 3 0.825 against 0.813 s; the ML-10M shape 27.8 against 9.4 s. Not yet
measured on a GPU (gpu_check.sh's stage eval_cells_ml10m).

`--shape ml10m` (or ml20m) evaluates the benchmark's shape instead (`experiments/bench.py`:
real files under --data-dir when present, else the synthetic shape), with `best_ml1m`'s model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.evaluation import evaluator_factory
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.autoencoder import AutoEncoderPredictor, init_members, predict_ratings
from aerec.models.scaling import make_scaling
from experiments.bench import SHAPES, compose_for
from experiments.peer import compose_ml1m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--overrides", nargs="*", default=["experiment=best_ml1m"],
                        help="ML-1M run overrides (the model evaluated: its initialisation)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shape", default=None, choices=sorted(SHAPES),
                        help="the benchmark's shape instead of the shared ML-1M file")
    args = parser.parse_args()
    if args.shape is None:
        cfg = compose_ml1m(args.data_dir, args.overrides)
    else:
        cfg, source = compose_for(args.shape, args.data_dir, args.overrides)
        print(f"{args.shape}: {source}")
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           data_dir_of(run.paths), progress=False)
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
    scaling = make_scaling(cfg.model.scaling, dataset.rating_min, dataset.rating_max,
                           dataset.train_mean())
    graphdef, params = init_members(cfg.model, matrices.train.shape[1], cfg.seed,
                                    int(cfg.model.ensemble))
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))
    known = matrices.train.nonempty_rows()
    evaluators = {
        "whole rows": evaluator_of(partial(predict_ratings, graphdef, scaling), row_known=known),
        "cells": evaluator_of(AutoEncoderPredictor(graphdef, scaling,
                                                   cfg.model.output_activation), row_known=known)}
    seconds: dict[str, list[float]] = {name: [] for name in evaluators}
    figures = {}
    for _ in range(args.repeats + 1):
        for name, evaluator in evaluators.items():
            started = time.perf_counter()
            figures[name] = evaluator.evaluate(params, matrices.train, matrices.valid)
            seconds[name].append(time.perf_counter() - started)
    print(" ".join(args.overrides))
    for name in evaluators:
        print(f"{name:>10}: first {seconds[name][0]:.3f} s, then median "
              f"{statistics.median(seconds[name][1:]):.3f} s "
              f"({' '.join(f'{s:.3f}' for s in seconds[name][1:])}); validation RMSE "
              f"{figures[name]['rmse']:.10f}, MAE {figures[name]['mae']:.10f}")


if __name__ == "__main__":
    main()
