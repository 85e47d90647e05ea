#!/usr/bin/env bash
# The ML-1M top-k ranking table (experiments/README.md): the autoencoders, SVD (biased, and
# plain on the zero-filled matrix), popularity; one run each on the same split, then the report.
# usage: bash experiments/ranking_ml1m.sh [DATA_DIR (../shared/data)] [OUT (multirun/ranking_ml1m)]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-multirun/ranking_ml1m}
D="paths.data_dir=$DATA dataset.ratings_file=ratings_notime.dat train.progress=false"
run() { name=$1; shift; /usr/bin/time -f "$name: wall %e s" python run.py "$@" $D hydra.run.dir="$OUT/$name"; }
run autoencoder experiment=best_ml1m
run paper_autoencoder experiment=paper_standard prepare.min_item_ratings=1 prepare.min_user_ratings=1
run svd model=svd
run puresvd20 model=svd model.center=false model.rank=20
run puresvd50 model=svd model.center=false model.rank=50
run popularity model=popularity
python -m aerec.report "$OUT"
