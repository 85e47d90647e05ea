#!/usr/bin/env bash
# GPU check (issue 6, and issue 4's CPU <-> GPU model loading), under 5 minutes on one GPU:
# the GPU-marked tests, then the benchmark for the ML-1M, ML-10M and ML-20M shapes in fp32
# and bf16. Usage: bash experiments/gpu_check.sh [DATA_DIR (../shared/data)] [OUT (gpu_check)]
set -uo pipefail
status=0
data_dir=${1:-../shared/data}
out_dir=${2:-gpu_check}
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
python3 -c "import jax; print('devices:', jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pytest -q -p no:cacheprovider -m gpu 2>&1 | tee "$out_dir/pytest_gpu.log" || status=$?
python3 experiments/bench.py --shapes ml1m ml10m ml20m --dtypes float32 bfloat16 \
    --data-dir "$data_dir" --epochs 3 --batch-size 1024 --json "$out_dir/bench_gpu.json" \
    2>&1 | tee "$out_dir/bench_gpu.txt" || status=$?
exit "$status"
