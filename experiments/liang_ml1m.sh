#!/usr/bin/env bash
# Recipe: Liang et al.'s strong generalisation on ML-1M (experiment=liang): Mult-VAE, Mult-DAE,
# RecVAE, EASE and aerec's best top-N configuration's model (DLAE), NDCG@100, Recall@20 and
# @50 (Liang's recall, divided by min(k, relevant): capped_recall@k), one seed each
# (experiments/README.md, "Liang et al.'s protocol").
#
#     bash experiments/liang_ml1m.sh [DATA_DIR (../shared/data)] [OUT (multirun/liang_ml1m)]
#
# 600 validation and 600 test users (configs/experiment_dataset/liang_ml1m.yaml); the same
# command with dataset=ml20m (and no ratings_file) runs Liang's own ML-20M setting (10,000
# each). Runtime on 2 CPU cores: about 15 minutes, most of it Mult-VAE and RecVAE.
set -euo pipefail
data=${1:-../shared/data}
out=${2:-multirun/liang_ml1m}
runs=(
    "multvae model=multvae"
    "multdae model=multdae"
    "recvae model=recvae"
    "ease model=ease model.l2=1000"
    "dlae model=ease model.l2=800 model.dropout=0.4 model.zero_diagonal=false"
)
for run in "${runs[@]}"; do
    read -r name overrides <<< "$run"
    # shellcheck disable=SC2086  # overrides holds several words
    /usr/bin/time -f "$name: wall %e s" python run.py experiment=liang $overrides \
        paths.data_dir="$data" dataset.ratings_file=ratings_notime.dat train.progress=false \
        hydra.run.dir="$out/$name"
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
print("| model | NDCG@100 | Recall@20 | Recall@50 | best epoch |")
print("|---|---|---|---|---|")
for folder in sorted(Path(sys.argv[1]).iterdir()):
    run = json.loads((folder / "results.json").read_text())
    print(f"| {folder.name} | {run['ndcg@100']:.4f} | {run['capped_recall@20']:.4f} | "
          f"{run['capped_recall@50']:.4f} | {run['best_epoch']} |")
PY
