"""model=svd's randomized-SVD settings on ML-1M: test RMSE and compiled fit time for each.

Recipe (experiments/README.md, "SVD settings"):

    PYTHONPATH=. python experiments/svd_sweep.py --data-dir ../shared/data \
        --settings 4:10 3:10 2:10 2:20 2:40 1:40 1:70 0:70

Runtime on 2 CPU cores: about 1.5 minutes (one setting took 10.6 s, busy host, 2026-12-06).
Reproduces (2 CPU cores, at an earlier commit whose sketch was drawn by jax.random): test
RMSE 0.8771 / 0.8778 / 0.8790 / 0.8782 / 0.8771 / 0.8791 / 0.8779 / 0.8847 for the settings
above; the defaults stay 4:10 (0.8774 at today's code, re-run 2026-12-06).

Each setting is fitted twice in one process (the second fit is the compiled one timed);
`--repeats` more compiled fits give the median.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from aerec.config import run_config
from aerec.experiment import run_experiment
from experiments.peer import compose_ml1m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--settings", nargs="+", default=["4:10"],
                        help="power_iterations:oversample pairs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| power iterations | oversample | test RMSE | compiled fit s (median) |")
    print("|---|---|---|---|")
    for setting in args.settings:
        iterations, oversample = (int(part) for part in setting.split(":"))
        cfg = compose_ml1m(args.data_dir, ["model=svd", f"model.power_iterations={iterations}",
                                           f"model.oversample={oversample}"])
        first, _ = run_experiment(run_config(cfg))
        seconds = [run_experiment(run_config(cfg))[0]["train_seconds"] for _ in range(args.repeats)]
        print(f"| {iterations} | {oversample} | {first['test_rmse']:.4f} | "
              f"{statistics.median(seconds):.3f} |", flush=True)


if __name__ == "__main__":
    main()
