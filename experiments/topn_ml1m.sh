#!/usr/bin/env bash
# Recipe: the top-N table on ML-1M under RecBole's protocol (experiment=recbole_ml1m), beside
# RecBole's published one (experiments/README.md, "Top-N on ML-1M").
# Each model with 3 seeds (model seed s, split seed 42 + s), then the mean ± std table.
#
#     bash experiments/topn_ml1m.sh [DATA_DIR (../shared/data)] [OUT (multirun/topn_ml1m)] [MODEL ...]
#
# MODEL: any of the names below (all by default). Runtime on 2 idle CPU cores: about 1 minute
# for popularity, EASE and DLAE together; Mult-DAE, Mult-VAE and RecVAE several minutes a
# seed each (experiments/README.md gives each one's time).
# Reproduces (test, mean ± std of 3): see experiments/README.md, "Top-N on ML-1M".
set -euo pipefail
data=${1:-../shared/data}
out=${2:-multirun/topn_ml1m}
shift $(( $# < 2 ? $# : 2 ))
declare -A runs=(
    [popularity]="model=popularity"
    [ease]="model=ease model.l2=1000"
    [best_topn]="experiment=best_topn_ml1m"
    [multdae]="model=multdae"
    [multvae]="model=multvae"
    [recvae]="model=recvae"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(popularity ease best_topn multdae multvae recvae)
for name in "${names[@]}"; do
    for seed in 0 1 2; do
        # shellcheck disable=SC2086  # the overrides are several words
        /usr/bin/time -f "$name seed $seed: wall %e s" python run.py experiment=recbole_ml1m \
            ${runs[$name]} seed=$seed split.seed=$((42 + seed)) paths.data_dir="$data" \
            dataset.ratings_file=ratings_notime.dat train.progress=false \
            hydra.run.dir="$out/$name/$seed"
    done
done
python experiments/topn_table.py "$out"
