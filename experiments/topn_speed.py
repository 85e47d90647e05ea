"""Speed of the top-N path (experiments/README.md, "Top-N speed"):

    PYTHONPATH=. python experiments/topn_speed.py --data-dir ../shared/data   # ML-1M, RecBole
    PYTHONPATH=. python experiments/topn_speed.py --shape ml20m --steps 20    # Mult-VAE epoch

ML-1M (RecBole's protocol, `experiment=recbole_ml1m`): the EASE fit (lambda 1000) and the full
ranking of every test user (6,033 users x 3,123 items, training and validation items
excluded), each compiled once and then timed (median of 3). The ML-20M shape (138,493 users x
20,720 items): Mult-VAE training steps of 500 rows at Liang's density (0.35%), timed
after one compiling step, and an epoch (277 steps) extrapolated from them. Runtime: about 1
minute each on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax


def timed(call, repeats: int = 3) -> tuple[float, float]:
    """(first call's seconds, median of `repeats` later calls), each run to completion."""
    started = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


def ml1m(data_dir: Path) -> None:
    """The EASE fit and a full-ranking evaluation on RecBole's ML-1M protocol."""
    from aerec.config import run_config
    from aerec.config_files import compose_config
    from aerec.data.dataset import load_dataset
    from aerec.evaluation import run_ranker
    from aerec.matrices import build_matrices
    from aerec.models.ease import fit_ease
    from aerec.models.registry import family_of
    from aerec.models.scaling import Scaling
    from aerec.topk_metrics import evaluate_ranking, ranking_targets

    run = run_config(compose_config([
        "experiment=recbole_ml1m", "model=ease", "model.l2=1000", f"paths.data_dir={data_dir}",
        "dataset.ratings_file=ratings_notime.dat", "train.progress=false"]))
    dataset = load_dataset(run.dataset, run.prepare, run.split, data_dir, progress=False)
    matrices = build_matrices(dataset, run.train, "user", run.split.kind)
    first, warm = timed(lambda: fit_ease(matrices.train, l2=1000.0, dropout=0.0,
                                         zero_diagonal=True))
    print(f"EASE fit, 3,123 items: first {first:.2f} s, compiled {warm:.2f} s")
    params = fit_ease(matrices.train, l2=1000.0, dropout=0.0, zero_diagonal=True)
    exclude, relevant = ranking_targets(dataset, None)
    assert family_of(run.model).name == "ease"

    def evaluate():
        ranker = run_ranker(run.model, params, matrices, Scaling(0.0, 1.0), 1024)
        return evaluate_ranking(ranker, exclude, relevant, [10, 20, 50], 1024)["ndcg@10"]

    first, warm = timed(evaluate)
    print(f"full ranking of {int((np.diff(relevant.indptr) > 0).sum()):,} users "
          f"(NDCG@10 {evaluate():.4f}): first {first:.2f} s, compiled {warm:.2f} s")


def ml20m_multvae(steps: int) -> None:
    """Mult-VAE training steps at the ML-20M shape, and the epoch they extrapolate to."""
    from aerec.models.multvae import MultObjective, MultVAEConfig, graphdef_of, params_fn
    from aerec.train import new_state, train_step

    n_users, n_items, batch = 138_493, 20_720, 500
    config = MultVAEConfig()
    graphdef = graphdef_of(config, n_items)
    objective = MultObjective(graphdef, config.dropout, config.beta_cap, config.anneal_steps,
                              config.l2)
    optimizer = optax.adam(1e-3)
    state = new_state(params_fn(config, n_items, 0), optimizer, 0)
    step = jax.jit(partial(train_step, objective, optimizer), donate_argnums=0)
    rows = jax.device_put((np.random.default_rng(0).random((batch, n_items)) < 0.0035)
                          .astype(np.float32))
    counts = jnp.sum(rows > 0, axis=1, dtype=jnp.int32)
    started = time.perf_counter()
    state, loss = step(state, rows, counts)
    jax.block_until_ready(loss)
    print(f"first step (compiling) {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    for _ in range(steps):
        state, loss = step(state, rows, counts)
    jax.block_until_ready(loss)
    per_step = (time.perf_counter() - started) / steps
    per_epoch = per_step * -(-n_users // batch)
    print(f"Mult-VAE at 138,493 x 20,720, batch {batch}: {per_step * 1000:.0f} ms a step, "
          f"an epoch of {-(-n_users // batch)} steps about {per_epoch:.0f} s "
          f"(batches made once, not gathered; {jax.devices()[0].device_kind})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--shape", choices=("ml1m", "ml20m"), default="ml1m")
    parser.add_argument("--steps", type=int, default=20)
    arguments = parser.parse_args()
    if arguments.shape == "ml1m":
        ml1m(arguments.data_dir)
    else:
        ml20m_multvae(arguments.steps)
