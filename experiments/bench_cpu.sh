#!/usr/bin/env bash
# The CPU benchmark tables of experiments/README.md (run on an otherwise idle machine).
# usage: bash experiments/bench_cpu.sh [DATA_DIR (../shared/data)] [OUT (experiments/results/bench_cpu)]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-experiments/results/bench_cpu}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
bench() { name=$1; shift; python experiments/bench.py "$@" --json "$OUT/$name.json" | tee "$OUT/$name.txt"; }
bench ml1m_b256 --shapes ml1m --data-dir "$DATA" --epochs 9 --batch-size 256 --dtypes float32 bfloat16
bench ml1m_b1024 --shapes ml1m --data-dir "$DATA" --epochs 9 --batch-size 1024
bench ml1m_b256_streamed --shapes ml1m --data-dir "$DATA" --epochs 9 --batch-size 256 --data-path streamed
bench ml1m_b1024_streamed --shapes ml1m --data-dir "$DATA" --epochs 9 --batch-size 1024 --data-path streamed
bench ml10m --shapes ml10m --epochs 2 --batch-size 1024 --max-batches 3
/usr/bin/time -v python experiments/bench.py --shapes ml20m --epochs 2 --batch-size 1024 --max-batches 2 \
    --json "$OUT/ml20m.json" 2>&1 | tee "$OUT/ml20m.txt"
