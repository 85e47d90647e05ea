"""The Python API against the command line: Mult-VAE on ML-1M (RecBole's protocol) trained from
a pandas DataFrame gives the command line's figures for the same seeds.

    PYTHONPATH=. python experiments/api_check.py ../shared/data RUN_DIR

RUN_DIR: the command line's run, e.g. multirun/topn_ml1m/multvae/0 of topn_ml1m.sh (seed 0,
split seed 42). Runtime: one Mult-VAE training, about 2.5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

import aerec

data, run = Path(sys.argv[1]), Path(sys.argv[2])
ratings = pd.read_csv(data / "ml-1m" / "ratings_notime.dat", sep="::", engine="python",
                      names=["user", "item", "rating"])
rec = aerec.Recommender("multvae", experiment="recbole_ml1m", seed=0, progress=False,
                        overrides={"split.seed": 42, "checkpoint.enabled": False})
rec.fit(ratings)
cli = json.loads((run / "results.json").read_text())
for key in ("data_fingerprint", "n_train", "best_epoch", "ndcg@10", "recall@10", "mrr@10"):
    print(f"{key:16} api {rec.results[key]!s:>20}  cli {cli[key]!s:>20}  "
          f"{'same' if rec.results[key] == cli[key] else 'DIFFERENT'}")
