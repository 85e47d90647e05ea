"""How good are recommendations for a "new" user? Known users replayed as new ones.

Recipe (experiments/README.md, "New users"), for a model of ranking_ml1m.sh:

    PYTHONPATH=. python experiments/fold_in_check.py multirun/ranking_ml1m/autoencoder/model \
        --priors 0.5 1 2 5 inf

Runtime on 2 CPU cores: under a minute (288 users; 9-21 ms a user and prior).
Reproduces results/ranking_ml1m/fold_in_*.txt (NDCG@10, own scores / as new users): best
RMSE autoencoder 0.1044 / 0.1040 (prior 2); the paper's autoencoder 0.2812 / 0.2812; plain
SVD rank 50 0.2606 / 0.2606.

For every `--every`-th user with relevant test items, the user's training ratings are given
as a rating history (`recommend_for_history`'s path: no user identity, no retraining) and
NDCG@10 / Recall@10 on the held-out ratings are compared with the model's own scores for that
user. For item-oriented models this measures the output-column fold-in for each
`--priors` value; `inf` stands for the average user (no personalisation).
"""

from __future__ import annotations

import argparse
import math
import time

import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

import aerec
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.matrices import data_dir_of
from aerec.topk_metrics import METRICS, ranking_targets, top_hits, user_metrics


def figures(scores: np.ndarray, exclude, relevant, users: np.ndarray) -> tuple[float, float]:
    _, hits = top_hits(jnp.asarray(scores), jnp.asarray(exclude[users].toarray() > 0),
                       jnp.asarray(relevant[users].toarray() > 0), 10)
    per_user = user_metrics(np.asarray(hits), np.diff(relevant.indptr)[users], (10,))
    means = per_user.mean(axis=0)[0]
    return means[METRICS.index("ndcg")], means[METRICS.index("recall")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run's model/ directory")
    parser.add_argument("--priors", nargs="+", default=["2"], help="fold_in_prior values")
    parser.add_argument("--every", type=int, default=20, help="evaluate every n-th user")
    parser.add_argument("--data-dir", default=None, help="paths.data_dir of the training run")
    arguments = parser.parse_args()
    model = aerec.load(arguments.model)
    cfg = OmegaConf.create(model.description["config"])
    if arguments.data_dir:
        cfg.paths.data_dir = arguments.data_dir
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           data_dir_of(run.paths), progress=False)
    exclude, relevant = ranking_targets(dataset, float(cfg.ranking.threshold))
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)[:: arguments.every].astype(np.int32)
    known = model.inputs if model.by_user else model.inputs.T.tocsr()  # users x items
    ndcg, recall = figures(np.asarray(model.ranker.user_scores(users)), exclude, relevant, users)
    print(f"{users.size} users; the model's own scores: ndcg@10 {ndcg:.4f} recall@10 {recall:.4f}")
    for prior in arguments.priors:
        if hasattr(model.ranker, "fold_in_prior"):
            model.ranker.fold_in_prior = math.inf if prior == "inf" else float(prior)
        started = time.perf_counter()
        scores = np.stack([model.ranker.history_scores(known[user].indices, known[user].data)
                           for user in users])
        seconds = (time.perf_counter() - started) / users.size
        ndcg, recall = figures(scores, exclude, relevant, users)
        print(f"as new users, fold_in_prior {prior}: ndcg@10 {ndcg:.4f} recall@10 {recall:.4f}"
              f" ({1000 * seconds:.0f} ms per user)")


if __name__ == "__main__":
    main()
