"""A race trial (experiments/README.md, "Against the peer"): the race's autoencoder with its
test RMSE after every epoch measured both for the trained parameters and for exponential
moving averages of them across epochs (ema = beta * ema + (1 - beta) * params). Not part of
the package.

    PYTHONPATH=. python experiments/ema_race.py BETAS [OVERRIDES...]
    PYTHONPATH=. python experiments/ema_race.py 0.5,0.7,0.85 train.epochs=20 train.patience=20
"""

import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from aerec.data.dataset import load_dataset
from aerec.evaluation import evaluator_factory
from aerec.experiment import train_autoencoder
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.scaling import make_scaling
from experiments.peer import RACE, compose_ml1m


def main() -> None:
    betas = [float(beta) for beta in sys.argv[1].split(",")]
    cfg = compose_ml1m(Path("../shared/data"), RACE + sys.argv[2:])
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir_of(cfg), progress=False)
    matrices = build_matrices(dataset, cfg)
    evaluator_of = evaluator_factory(dataset, matrices, int(cfg.train.eval_chunk_rows))
    scaling = make_scaling(cfg.model.scaling, dataset.rating_min, dataset.rating_max,
                           dataset.train_mean())
    averages: dict[float, Any] = {}
    started, evaluating, epoch = time.perf_counter(), 0.0, 0

    def validate_with(predict: Any, inputs: Any) -> Any:
        test = evaluator_of(predict, row_known=matrices.eval_input.nonempty_rows())

        def rmse(params: Any) -> float:
            return test.evaluate(params, matrices.eval_input, matrices.test)["rmse"]

        def measure(params: Any) -> float:
            nonlocal evaluating, epoch
            began = time.perf_counter()
            epoch += 1
            raw = rmse(params)
            line = [f"epoch {epoch} train {began - started - evaluating:.1f} s: {raw:.4f}"]
            for beta in betas:  # copies: the next step donates `params`' buffers
                averages[beta] = (jax.tree.map(jnp.copy, params) if beta not in averages else
                                  jax.tree.map(lambda a, p, b=beta: b * a + (1 - b) * p,
                                               averages[beta], params))
                line.append(f"ema {beta}: {rmse(averages[beta]):.4f}")
            print(" | ".join(line), flush=True)
            evaluating += time.perf_counter() - began
            return raw

        return measure

    train_autoencoder(cfg, matrices, scaling, validate_with, on_epoch=None)


if __name__ == "__main__":
    main()
