"""An ensemble of two saved top-N models, scores blended after standardising each user's row:
w x A + (1 - w) x B, w chosen on validation NDCG@10 (experiments/README.md, "Top-N on ML-1M").

    PYTHONPATH=. python experiments/blend_topn.py ../shared/data RUN_A RUN_B [SPLIT_SEED (42)]

RUN_A, RUN_B: runs of `experiment=recbole_ml1m` on the same split (e.g. topn_ml1m.sh's
best_topn/0 and recvae/0, split seed 42); each one's model/ is loaded. Not yet a model
family: the figure it prints is measured, not what `experiment=best_topn_ml1m` trains.
Runtime: about 1 minute on 2 CPU cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import aerec
from aerec.config import run_config
from aerec.config_files import compose_config
from aerec.data.dataset import load_dataset
from aerec.data.split import VALID
from aerec.topk_metrics import evaluate_ranking, ranking_targets


class Scores:
    """A ranker over precomputed scores (every user's row)."""

    scores_are_ratings = False

    def __init__(self, scores: np.ndarray):
        self.scores, self.n_items = scores, scores.shape[1]

    def user_scores(self, users: np.ndarray) -> jnp.ndarray:
        return jnp.asarray(self.scores[np.maximum(users, 0)])


def standardised(model) -> np.ndarray:
    """Every user's scores, each row standardised (mean 0, standard deviation 1)."""
    users = np.arange(len(model.users), dtype=np.int32)
    rows = np.concatenate([np.asarray(model.ranker.user_scores(users[start:start + 1024]))
                           for start in range(0, users.size, 1024)])[:users.size]
    return (rows - rows.mean(1, keepdims=True)) / (rows.std(1, keepdims=True) + 1e-9)


def main(data: Path, first: Path, second: Path, split_seed: int) -> None:
    run = run_config(compose_config([
        "experiment=recbole_ml1m", f"paths.data_dir={data}", f"split.seed={split_seed}",
        "dataset.ratings_file=ratings_notime.dat"]))
    dataset = load_dataset(run.dataset, run.prepare, run.split, data, progress=False)
    a, b = aerec.load(first / "model"), aerec.load(second / "model")
    fingerprint = a.description.get("data_fingerprint")
    if fingerprint != b.description.get("data_fingerprint") or not np.array_equal(
            a.users.raw, dataset.users.raw):
        raise SystemExit("the two runs were not trained on this split's data")
    score_a, score_b = standardised(a), standardised(b)
    valid_targets = ranking_targets(dataset, None, held_out=VALID)
    test_targets = ranking_targets(dataset, None)
    best = None
    for weight in np.round(np.arange(0.0, 1.01, 0.1), 1):
        blended = Scores(weight * score_a + (1 - weight) * score_b)
        valid = evaluate_ranking(blended, *valid_targets, [10])["ndcg@10"]
        print(f"w={weight:.1f} valid ndcg@10 {valid:.4f}", flush=True)
        if best is None or valid > best[1]:
            best = (weight, valid, blended)
    weight, valid, blended = best
    test = evaluate_ranking(blended, *test_targets, [10])
    print(f"chosen w={weight:.1f} (valid {valid:.4f}): test " + ", ".join(
        f"{name}@10 {test[f'{name}@10']:.4f}"
        for name in ("ndcg", "recall", "mrr", "hit_rate", "precision")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]),
         int(sys.argv[4]) if len(sys.argv) > 4 else 42)
