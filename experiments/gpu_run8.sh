#!/usr/bin/env bash
# Prepared for the next session with a GPU (experiments/README.md, "Runs 6 and 7": the next
# step), about 7 minutes on one GPU, in this order: the training state kept padded between
# steps (aerec.train.for_steps) against padded in every step, in one process per shape
# (layout_variants.py with STATE_LAYOUT=1 and 0, ML-10M and ML-20M shapes, bf16); the bf16
# benchmark of both shapes at batches 4096, 8192 and the nearly-full 5376 / 6784 (and
# ML-10M's rows in one step, 10752); the GPU-marked tests with the tests corrected after
# run 6 (not yet run on a GPU) and the state-layout tests; an ML-10M bf16 epoch's profile;
# the held-out RMSE at the cells alone against whole rows (experiments/eval_cells.py) on
# ML-1M (when .data/ml-1m is carried) and on the ML-10M shape.
# Usage, from the repository's root with the wheels in .whl/ (experiments/README.md) and the
# ML-1M file in .data/ml-1m/ratings_notime.dat (both carried):
#     bash experiments/gpu_run8.sh OUT
# The files are packed into OUT/run8.tgz after each stage (experiments/lent_gpu.sh).
set -uo pipefail
dest=${1:?usage: gpu_run8.sh OUT}
source "$(dirname "$0")/lent_gpu.sh"
lent_gpu_start run8 "$dest"
variants() {  # NAME ROWS INPUTS BATCH DENSITY
    name=$1; shift
    for layout in 1 0; do
        STATE_LAYOUT=$layout timeout 60 python3 experiments/layout_variants.py "$@" \
            aerec_bf16matrix 2>&1 | sed "s/^== /== STATE_LAYOUT=$layout /"
    done > "$out/$name.txt"
}

started=$SECONDS
variants layout_ml10m 10677 69878 4096 0.0134
stage "state kept padded against padded per step, ML-10M shape" $?
started=$SECONDS
variants layout_ml20m 26744 138493 4096 0.0054
stage "state kept padded against padded per step, ML-20M shape" $?

# ML-10M also at 10752: its 10,677 rows in one step an epoch (one Adam update instead of two).
for shape in "ml10m 4096 5376 8192 10752" "ml20m 4096 6784 8192"; do
    set -- $shape
    name=$1; shift
    started=$SECONDS
    timeout 150 python3 experiments/bench.py --shapes "$name" --data-path resident \
        --dtypes bfloat16 --batch-size "$@" --epochs 3 --json "$out/$name.json" \
        > "$out/$name.txt" 2>&1
    stage "bench $name bf16" $?
done

started=$SECONDS
timeout 150 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_gpu.py \
    tests/test_train.py tests/test_metrics.py -k "gpu or GPU or ensemble or compiled_initialis \
    or step_layout or padded_state or aligned or cells_alone" > "$out/pytest.log" 2>&1
stage "pytest (GPU-marked, corrected after run 6, state layout, held-out cells)" $?

started=$SECONDS
timeout 60 python3 experiments/profile_epoch.py --shape ml10m --dtype bfloat16 \
    --batch-size 4096 > "$out/profile_ml10m.txt" 2>&1
stage "profile ML-10M bf16 4096" $?

if [ -f .data/ml-1m/ratings_notime.dat ]; then
    started=$SECONDS
    for model in experiment=best_ml1m "experiment=best_ml1m model.ensemble=3"; do
        timeout 60 python3 experiments/eval_cells.py --data-dir .data --overrides $model
    done > "$out/eval_cells.txt" 2>&1
    stage "validation at the held-out cells against whole rows, ML-1M" $?
fi
started=$SECONDS
timeout 90 python3 experiments/eval_cells.py --shape ml10m --overrides experiment=best_ml1m \
    --repeats 3 > "$out/eval_cells_ml10m.txt" 2>&1
stage "validation at the held-out cells against whole rows, ML-10M shape" $?
