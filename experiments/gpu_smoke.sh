#!/usr/bin/env bash
# GPU smoke check of the core pipeline: device, fast test suite, and the ML-1M runs whose
# figures experiments/README.md quotes. Usage: bash experiments/gpu_smoke.sh DATA_DIR OUT_DIR
# (DATA_DIR holds ml-1m/ratings_notime.dat, e.g. ../shared/data).
set -uo pipefail
status=0
data_dir=${1:-../shared/data}
out_dir=${2:-gpu_smoke}
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1
python3 -c "import jax; print('devices:', jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pytest -q -p no:cacheprovider || status=$?
common=(paths.data_dir="$data_dir" dataset.ratings_file=ratings_notime.dat train.progress=false)
python3 run.py experiment=best_ml1m "${common[@]}" hydra.run.dir="$out_dir/best_ml1m" || status=$?
python3 run.py model=svd "${common[@]}" hydra.run.dir="$out_dir/svd" || status=$?
exit "$status"
