#!/usr/bin/env bash
# GPU check (issue 6, and issue 4's CPU <-> GPU model loading), under 5 minutes on one GPU:
# the GPU-marked tests, the benchmark for the ML-1M, ML-10M and ML-20M shapes in fp32 and bf16
# (device-resident; ML-10M and ML-20M at batch 4096 and 8192), and where an ML-10M bf16 epoch's
# device time goes. Usage: bash experiments/gpu_check.sh [DATA_DIR (../shared/data)] [OUT (gpu_check)]
set -uo pipefail
status=0
data_dir=${1:-../shared/data}
out_dir=${2:-gpu_check}
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
python3 -c "import jax; print('devices:', jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pytest -q -p no:cacheprovider -m gpu 2>&1 | tee "$out_dir/pytest_gpu.log" || status=$?
bench() { name=$1; shift; python3 experiments/bench.py --data-dir "$data_dir" --epochs 3 \
    --data-path resident --dtypes float32 bfloat16 --json "$out_dir/$name.json" "$@" 2>&1 \
    | tee "$out_dir/$name.txt" || status=$?; }
bench bench_ml1m --shapes ml1m --batch-size 1024
bench bench_ml10m --shapes ml10m --batch-size 4096 8192
python3 experiments/profile_epoch.py --shape ml10m --dtype bfloat16 --batch-size 4096 2>&1 \
    | tee "$out_dir/profile_ml10m.txt" || status=$?
bench bench_ml20m --shapes ml20m --batch-size 4096 8192
exit "$status"
