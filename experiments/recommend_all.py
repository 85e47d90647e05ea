"""Recommendations for every user (task=recommend users=all): users per second, by stage.

Recipe (from the repository's root):

    # ML-1M: any saved model, e.g. the SVD baseline (trained in about a minute on a CPU)
    PYTHONPATH=. python run.py dataset=ml1m dataset.ratings_file=ratings_notime.dat \
        paths.data_dir=../shared/data model=svd ranking.enabled=false \
        hydra.run.dir=/tmp/recs_ml1m
    PYTHONPATH=. python experiments/recommend_all.py --model /tmp/recs_ml1m/model
    # the ML-20M shape: 138,493 users x 20,720 items, 20,000,263 ratings drawn by
    # aerec.data.synthetic (MovieLens-like popularity, seed 0), a random rank-20 SVD
    PYTHONPATH=. python experiments/recommend_all.py --shape ml20m

Runtime on 2 busy CPU cores (2026-12-06): ML-1M 30 s; the ML-20M shape 8 min (the three
passes of 2.2-2.4 min each). Reproduces (results/recommend_all/cpu_2core.txt), k=100: ML-1M
SVD, 4,093 users/s ranking alone, 1,519 to CSV, 3,574 to Parquet (604,000 rows); the ML-20M
shape, 947 users/s ranking alone, 976 to CSV, 1,050 to Parquet (13,849,300 rows; the CPU's
top-k over 20,720 items dominates, and the machine's load blurs differences under ~10%).

For each output (`rank`: the top k brought to the host and dropped, no file; `csv`;
`parquet`), it times `TrainedModel.write_recommendations`' path over every user (or the first
--users), k=100, `--chunk-users` users per device pass, after one untimed pass over a
chunk that compiles the programs; it prints users per second, rows, and the file's size. The
`rank` line is the device's share (scores, mask, top-k); csv and parquet add the host's
formatting and writing.

The synthetic model: a random orthonormal basis (rank 20), biases N(0, 0.3), mean 3.5, on
the drawn matrix, as `fit_svd` returns its parameters (the work per user is the fitted
model's: a dense row, two products with the basis, the mask and top-k).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import scipy.sparse as sp

import aerec
from aerec.data.device_rows import nonempty_columns
from aerec.data.prepare import IdMap
from aerec.data.synthetic import synthetic_ratings
from aerec.models.registry import family_of, model_config
from aerec.models.scaling import Scaling
from aerec.saved_model import TrainedModel
from aerec.top_items import ranked_chunks

SHAPES = {"ml20m": (138_493, 20_720, 20_000_263)}


def random_svd(shape: str, rank: int = 20, seed: int = 0) -> TrainedModel:
    """A rank-`rank` SVD with random parameters on a synthetic matrix of `shape`'s size."""
    n_users, n_items, n_ratings = SHAPES[shape]
    started = time.perf_counter()
    ratings = synthetic_ratings(n_users, n_items, n_ratings, seed=seed)
    users, items = ratings["user"].to_numpy() - 1, ratings["item"].to_numpy() - 1  # ids from 1
    matrix = sp.csr_matrix((ratings["rating"].to_numpy(np.float32), (users, items)),
                           shape=(n_users, n_items))
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(n_items, rank)))
    params = {"mean": np.float32(3.5), "row_bias": rng.normal(0, 0.3, n_users),
              "col_bias": rng.normal(0, 0.3, n_items), "basis": basis,
              "row_count": np.diff(matrix.indptr)}
    params = {key: jax.numpy.asarray(value, np.float32) for key, value in params.items()}
    model = {"name": "svd", "rank": rank, "bias_reg": 5.0, "center": True, "scaling": "none",
             "power_iterations": 4, "oversample": 10, "orientation": "user"}
    description = {"model": model, "config": {"model": model}, "scaling": [0.0, 1.0],
                   "rating_range": [1.0, 5.0], "fallback": 3.5, "n_inputs": n_items}
    config = model_config(model)
    predictor = family_of(config).predictor(config, n_items, Scaling(0.0, 1.0))
    catalog = {key: np.array([]) for key in ("titles", "genres", "years")}
    print(f"{shape}: {n_users:,} users x {n_items:,} items, {matrix.nnz:,} ratings, random "
          f"rank-{rank} SVD, built in {time.perf_counter() - started:.0f} s", flush=True)
    return TrainedModel(description, params, IdMap(np.arange(1, n_users + 1)),
                        IdMap(np.arange(1, n_items + 1)), matrix, jax.jit(predictor), matrix,
                        nonempty_columns(matrix), predictor, catalog)


def time_output(model: TrainedModel, kind: str, users: int, k: int, chunk_users: int,
                directory: Path) -> str:
    """One timed pass over the first `users` users: a line of figures."""
    ids = model.users.raw[:users]
    started = time.perf_counter()
    if kind == "rank":
        rows = 0
        for _, _, scores in ranked_chunks(model.ranker, model.seen, np.arange(users), k,
                                          chunk_users):
            rows += int((scores > -np.inf).sum())
        size = ""
    else:
        path = directory / f"recs.{kind}"
        rows = model.write_recommendations(path, k, ids if users < len(model.users) else None,
                                           chunk_users=chunk_users)
        size = f", {os.path.getsize(path) / 1e6:,.0f} MB"
    seconds = time.perf_counter() - started
    return (f"{kind:8s} {users:,} users in {seconds:6.1f} s: {users / seconds:9,.0f} users/s, "
            f"{rows:,} rows{size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a saved model directory (a run's model/)")
    source.add_argument("--shape", choices=sorted(SHAPES), help="a random SVD of this shape")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--users", type=int, default=0, help="the first N users (0: all)")
    parser.add_argument("--outputs", nargs="+", default=["rank", "csv", "parquet"],
                        choices=["rank", "csv", "parquet"])
    args = parser.parse_args()
    model = aerec.load(args.model) if args.model else random_svd(args.shape)
    users = args.users or len(model.users)
    started = time.perf_counter()  # compile: one untimed chunk
    next(iter(ranked_chunks(model.ranker, model.seen, np.arange(min(users, args.chunk_users)),
                            args.k, args.chunk_users)))
    print(f"device: {jax.devices()[0].device_kind}; model {model.description['model']['name']}"
          f", {len(model.users):,} users x {len(model.items):,} items; k={args.k}, "
          f"chunk_users={args.chunk_users}; first chunk (compiles) "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        for kind in args.outputs:
            print(time_output(model, kind, users, args.k, args.chunk_users, Path(directory)),
                  flush=True)


if __name__ == "__main__":
    main()
