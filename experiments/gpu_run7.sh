#!/usr/bin/env bash
# GPU run 7 (experiments/README.md, "Speed and scale on one GPU"), under 8 minutes on one GPU,
# in this order (should the call run out of time): the bf16 benchmark of the ML-10M and ML-20M
# shapes at batches 4096 and 8192 and at a batch that splits the rows into nearly full
# batches (ML-10M 5376: 2 x 5376 for 10,677 rows; ML-20M 6784: 4 x 6784 for 26,744); the
# GPU-marked, initialisation and changed train-step tests; the same bf16 benchmark at 4096 and
# 8192 with run 6's code (BASE, a copy of commit 676f99a: hidden widths padded, the output
# bias summed apart, the epoch's steps in a loop, the loss differentiated by JAX); the
# written-out loss gradient against JAX's in one process (layout_variants.py, ML-10M shape);
# where an ML-10M bf16 epoch's device time goes, with XLA's optimised HLO; fp32 at 8192.
# Usage, from the repository's root with the wheels in .whl/ (experiments/README.md) and
# BASE made by `git archive 676f99a | tar -x -C .base`:
#     bash experiments/gpu_run7.sh OUT [BASE (.base)]
# The files are packed into OUT/run7.tgz after each stage (experiments/lent_gpu.sh).
set -uo pipefail
dest=${1:?usage: gpu_run7.sh OUT [BASE]}
base=${2:-.base}
source "$(dirname "$0")/lent_gpu.sh"
lent_gpu_start run7 "$dest"
bench() {  # NAME SHAPE BATCHES...
    name=$1 shape=$2; shift 2
    timeout 120 python3 experiments/bench.py --shapes "$shape" --data-path resident \
        --dtypes bfloat16 --batch-size "$@" --epochs 3 --json "$out/$name.json" \
        > "$out/$name.txt" 2>&1
}

started=$SECONDS
bench ml10m ml10m 4096 5376 8192
stage "bench ML-10M bf16" $?
started=$SECONDS
bench ml20m ml20m 4096 6784 8192
stage "bench ML-20M bf16" $?

started=$SECONDS
timeout 130 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_gpu.py \
    tests/test_initialization.py tests/test_train.py -k "gpu or GPU or initialis or Flax \
    or flax or kernels or draws or new_state or ensemble or aligned or bfloat16 or densif \
    or written_out or unrolled or deterministic" \
    > "$out/pytest.log" 2>&1
stage "pytest (GPU-marked, initialisation, changed train-step tests)" $?

started=$SECONDS
(cd "$base" && PYTHONPATH=/tmp/site:$PWD && export PYTHONPATH && timeout 120 python3 \
    experiments/bench.py --shapes ml10m ml20m --data-path resident --dtypes bfloat16 \
    --batch-size 4096 8192 --epochs 3 --json "$out/base.json" > "$out/base.txt" 2>&1)
stage "bench run 6's code (BASE), bf16" $?

started=$SECONDS
timeout 60 python3 experiments/layout_variants.py 10677 69878 4096 0.0134 \
    aerec_bf16matrix,aerec_bf16_autodiff_loss > "$out/variants.txt" 2>&1
stage "layout_variants: the loss gradient written out against autodiff's" $?

started=$SECONDS
profile_with_hlo profile_ml10m.txt --shape ml10m --dtype bfloat16 --batch-size 4096
stage "profile ML-10M bf16 4096 (+HLO)" $?

started=$SECONDS
timeout 60 python3 experiments/bench.py --shapes ml10m ml20m --data-path resident \
    --dtypes float32 --batch-size 8192 --epochs 3 --json "$out/fp32.json" \
    > "$out/fp32.txt" 2>&1
stage "bench fp32 8192" $?
