#!/usr/bin/env bash
# GPU run 6 (experiments/README.md, "Speed and scale on one GPU"), under 9.5 minutes on one GPU:
# the hidden widths padded to multiples of 128 in the training step (Objective.pad_hidden)
# against left at 500, on the ML-10M and ML-20M shapes in bf16, batches 4096 and 8192; where
# an ML-10M bf16 epoch's device time goes, with XLA's optimised HLO of the epoch; the
# GPU-marked tests and the train-step tests; experiments/gpu_variants.sh.
# Usage, from the repository's root with the wheels in .whl/ (experiments/README.md):
#     bash experiments/gpu_run6.sh OUT
# The files are packed into OUT/run6.tgz after each stage (experiments/lent_gpu.sh).
set -uo pipefail
dest=${1:?usage: gpu_run6.sh OUT}
source "$(dirname "$0")/lent_gpu.sh"
lent_gpu_start run6 "$dest"

started=$SECONDS
timeout 200 python3 experiments/bench.py --shapes ml10m ml20m --data-path resident \
    --dtypes bfloat16 --batch-size 4096 8192 --pad-hidden no yes --epochs 3 \
    --json "$out/pad_hidden.json" > "$out/pad_hidden.txt" 2>&1
stage "bench bf16, hidden 500 against padded" $?

started=$SECONDS
profile_with_hlo profile_ml10m.txt --shape ml10m --dtype bfloat16 --batch-size 4096
stage "profile ML-10M bf16 4096 (+HLO)" $?

started=$SECONDS
timeout 150 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_gpu.py \
    tests/test_train.py > "$out/pytest.log" 2>&1
stage "pytest -m gpu + tests/test_train.py" $?

started=$SECONDS
timeout 170 bash experiments/gpu_variants.sh "$out/variants" > "$out/variants.log" 2>&1
stage "gpu_variants.sh" $?
