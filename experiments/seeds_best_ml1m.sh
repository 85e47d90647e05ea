#!/usr/bin/env bash
# ML-1M standard protocol, three seeds (model init, dropout, batch order AND the 90/10 split all
# change with the seed), single model and 3-model ensemble of experiment=best_ml1m, then the
# aggregated table. Usage: bash experiments/seeds_best_ml1m.sh DATA_DIR OUT_DIR [ENSEMBLES]
# ENSEMBLES defaults to "1,3". Run on 2 CPU cores and on one H200 (experiments/README.md).
set -euo pipefail
data_dir=${1:-../shared/data}
out_dir=${2:-multirun/seeds_best_ml1m}
ensembles=${3:-1,3}
python3 run.py -m experiment=best_ml1m seed=0,1,2 'split.seed=${seed}' \
    model.ensemble="$ensembles" paths.data_dir="$data_dir" \
    dataset.ratings_file=ratings_notime.dat train.progress=false hydra.sweep.dir="$out_dir"
python3 -m aerec.report "$out_dir"
