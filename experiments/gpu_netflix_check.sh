#!/usr/bin/env bash
# The Netflix shape (480,189 users x 17,770 items, 100 million synthetic ratings; item rows, so
# the wide layers are 480,189 wide) training on one GPU held to 80 GB, whatever the card: JAX
# may take only 76 GiB of it. The data path is chosen automatically: train + validation dense
# need 68 GB as float32, more than half the budget, but 34 GB in bfloat16 (the synthetic half
# stars are exact in it; train.dense_dtype=auto), so they stay resident; then the same data
# streamed (each batch densified on the device from a copy of the CSR arrays kept there) for
# comparison, in the same process. Full epochs
# in bf16, batch 1024; loading the shape (generating the ratings, the matrices) takes ~1 minute
# of host time (61 s on 2 cores: `python experiments/bench.py --shapes netflix --load-only`).
# Usage: bash experiments/gpu_netflix_check.sh [OUT (gpu_netflix)]
set -euo pipefail
out_dir=${1:-gpu_netflix}
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(f'{min(0.95, 76 * 1024 / $total_mib):.3f}')")
echo "GPU memory ${total_mib} MiB; JAX may use a fraction ${XLA_PYTHON_CLIENT_MEM_FRACTION}"
python3 experiments/bench.py --shapes netflix --dtypes bfloat16 --batch-size 1024 --epochs 2 \
    --data-path auto streamed --json "$out_dir/netflix.json" 2>&1 | tee "$out_dir/netflix.txt"
