#!/usr/bin/env bash
# Recipe: the CPU speed table (experiments/README.md, "Speed on 2 CPU cores"). Run it on an
# otherwise idle machine.
#
#     bash experiments/bench_cpu.sh [DATA_DIR (../shared/data)] [OUT (experiments/results/bench_cpu)]
#
# Runtime on 2 CPU cores: about 6 minutes, estimated from the recorded epochs; the ML-20M
# line alone took 2 min 32 s (results/bench_cpu/ml20m.txt).
# Reproduces results/bench_cpu/ (2 CPU cores, fp32): ML-1M resident 0.93 s an epoch at
# batch 256 and 0.86 s at 1024 (78% and 90% of the same matmuls), streamed 0.96 s and
# 0.90 s; ML-10M shape 46.6 s and ML-20M shape 248.7 s an epoch (extrapolated), ML-20M at
# 9.35 GiB peak host memory. The Netflix shape is left out (11 minutes):
#     /usr/bin/time -v python experiments/bench.py --shapes netflix --epochs 1 \
#         --batch-size 256 --max-batches 2        # 896 s an epoch, 18.28 GiB peak
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
