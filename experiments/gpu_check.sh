#!/usr/bin/env bash
# Every GPU check, one call, at most 8 minutes on one GPU.
#
#     bash experiments/gpu_check.sh OUT [DATA_DIR]
#
# Run from the repository's root. OUT receives summary.md (machine, stages, test outcomes,
# benchmark tables) and one log per stage; it is rewritten after every stage, so a cut call
# still leaves one. DATA_DIR (optional) holds ml-1m/ratings_notime.dat for the ML-1M runs.
#
# Stages, in order (each under a timeout; the whole under GPU_CHECK_SECONDS, default 480):
#   setup     the package's missing pure-Python dependencies installed from .whl/
#   tests     pytest -m gpu: training, CPU <-> GPU model loading, SVD, kept best parameters
#   resume    kill-and-resume: tests/test_checkpoint.py -k "sigkill or in_process"
#   bench     bf16 epochs of the ML-10M and ML-20M shapes (synthetic, resident)
#   profile   where an ML-10M bf16 epoch's device time goes
#   then, while time is left: ML-1M runs (best_ml1m, svd; with DATA_DIR), the held-out
#   evaluation at the cells against whole rows (ML-10M shape), the Netflix shape.
# A stage that no longer fits the budget is skipped and marked so in summary.md.
#
# Expected on an NVIDIA H200 (results/gpu_h200/run3.md, run4.md, run7.md): tests, the five
# GPU-marked tests pass (four took 55 s in run 4); resume 2 passed in 73 s; bench 59 s and
# 73 s, ML-10M epochs of 11.9-15.7 ms and ML-20M epochs of 46.6-53.7 ms (46-55% and 57-64%
# of the 8192^3 bf16 matmul); profile 16-21 s, 10.2 ms of device time per ML-10M epoch,
# matmuls 50%. About 5 minutes for these. On a lent machine, carry .whl/ and
# .data/ml-1m/ratings_notime.dat with the working tree and pass .data as DATA_DIR.
#
# A lent machine (Python 3.12, jax 0.11 with CUDA, flax, optax, orbax, numpy, scipy, pandas,
# pytest, hypothesis) lacks hydra-core and a few others. Carry their wheels in .whl/, made on
# a machine with network access:
#     pip wheel --no-deps -w .whl "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" \
#         antlr4-python3-runtime==4.9.3 platformdirs threadpoolctl filelock
# (pip wheel, not pip download: antlr4-python3-runtime 4.9.3 comes as a source archive.)
# GPU_CHECK_ALLOW_CPU=1 runs the stages on a CPU (to try the script; no figure is valid).
set -uo pipefail

out=${1:?usage: bash experiments/gpu_check.sh OUT [DATA_DIR]}
data_dir=${2:-}
budget=${GPU_CHECK_SECONDS:-480}
work=${GPU_CHECK_WORK:-/tmp/aerec_gpu_check}
site=$work/site
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
stages=$out/stages.md
summary=$out/summary.md
export PYTHONUNBUFFERED=1 PYTHONPATH=$site:$PWD${PYTHONPATH:+:$PYTHONPATH}
status=0
: > "$stages"

# missing_dependencies: the distributions of pyproject.toml (and its dev extra) that do not
# import, one name a line.
missing_dependencies() {
    python3 - <<'PY'
import importlib.util, re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
names = [*project["dependencies"], *project.get("optional-dependencies", {}).get("dev", [])]
modules = {"hydra-core": "hydra", "orbax-checkpoint": "orbax.checkpoint",
           "antlr4-python3-runtime": "antlr4"}
for spec in names:
    name = re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]
    if name == "ruff":
        continue
    module = modules.get(name, name.replace("-", "_"))
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        print(name)
PY
}

# summarise: summary.md from the stage table and the logs written so far.
summarise() {
    {
        echo "# GPU check"
        echo
        cat "$out/machine.txt" 2>/dev/null
        echo
        echo "| stage | exit status (124: timed out) | seconds |"
        echo "|---|---|---|"
        cat "$stages"
        for name in tests resume; do
            [ -f "$out/$name.log" ] || continue
            echo
            echo "$name: $(grep -E '(passed|failed|error|skipped|deselected)' "$out/$name.log" \
                | tail -1)"
            grep -E '^(FAILED|ERROR) ' "$out/$name.log"
        done
        for name in bench_ml10m bench_ml20m netflix; do
            [ -f "$out/$name.log" ] || continue
            echo
            echo "$name:"
            echo
            # bench.py prints each row as it is measured, then the whole table: rows once.
            grep -E '^\| ' "$out/$name.log" | awk '!seen[$0]++'
        done
        if [ -f "$out/profile_ml10m.log" ]; then
            echo
            echo "profile_ml10m:"
            echo
            grep -v Warning "$out/profile_ml10m.log" | grep -v '^ *texts' | head -9 \
                | sed 's/^/    /'
        fi
        for name in ml1m_best_ml1m ml1m_svd; do
            [ -f "$out/$name.json" ] || continue
            echo
            python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2] \
+ ':', ', '.join(f'{k} {r[k]:.4f}' for k in ('test_rmse', 'test_mae', 'ndcg@10', \
'train_seconds') if k in r))" "$out/$name.json" "$name"
        done
        if [ -f "$out/eval_cells_ml10m.log" ]; then
            echo
            echo "eval_cells_ml10m:"
            echo
            sed 's/^/    /' "$out/eval_cells_ml10m.log" | tail -8
        fi
    } > "$summary"
}

# stage NAME LIMIT LEAST COMMAND...: COMMAND's output in OUT/NAME.log, under a timeout of
# LIMIT seconds cut to the budget left; skipped when fewer than LEAST seconds are left.
stage() {
    local name=$1 limit=$2 least=$3 left rc=0 begun=$SECONDS
    shift 3
    left=$((budget - SECONDS - 10))
    if ((left < least)); then
        echo "| $name | skipped: $left s of the budget left, $least needed | - |" >> "$stages"
        summarise
        return 0
    fi
    ((limit > left)) && limit=$left
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1 || rc=$?
    echo "| $name | $rc | $((SECONDS - begun)) |" >> "$stages"
    ((rc == 0)) || status=1
    summarise
}

# setup: wheels from .whl/ where a dependency is missing; the machine named.
begun=$SECONDS
missing=$(missing_dependencies)
if [ -n "$missing" ]; then
    echo "missing: $(paste -sd ' ' <<< "$missing")"
    if compgen -G ".whl/*.whl" > /dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" .whl/*.whl
    fi
    missing=$(missing_dependencies)
fi
{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no git)')"
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
        2>/dev/null | head -1)"
    echo "- $(python3 -c 'import sys, jax; print(f"Python {sys.version.split()[0]}, jax \
{jax.__version__}, devices {jax.devices()}")' 2>&1 | tail -1)"
    echo "- budget: $budget s"
} > "$out/machine.txt"
if [ -n "$missing" ]; then
    missing=$(paste -sd ' ' <<< "$missing")
    echo "| setup | missing: $missing; carry their wheels in .whl/ | - |" >> "$stages"
    summarise
    echo "error: missing $missing: carry their wheels in .whl/ (see this script's header)" >&2
    exit 1
fi
if [ "$(python3 -c 'import jax; print(jax.default_backend())')" != gpu ] \
        && [ "${GPU_CHECK_ALLOW_CPU:-0}" != 1 ]; then
    echo "| setup | no GPU visible to JAX | - |" >> "$stages"
    summarise
    echo "error: JAX sees no GPU (GPU_CHECK_ALLOW_CPU=1 runs the stages anyway)" >&2
    exit 1
fi
echo "| setup | 0 | $((SECONDS - begun)) |" >> "$stages"
summarise

# Tests start processes of their own: JAX takes GPU memory as it needs it, not 75% at once.
tests_env=(env XLA_PYTHON_CLIENT_PREALLOCATE=false)
stage tests 150 60 "${tests_env[@]}" python3 -m pytest -q -p no:cacheprovider -m gpu tests
stage resume 150 80 "${tests_env[@]}" python3 -m pytest -q -p no:cacheprovider \
    tests/test_checkpoint.py -k "sigkill or in_process"
stage bench_ml10m 120 60 python3 experiments/bench.py --shapes ml10m --data-path resident \
    --dtypes bfloat16 --batch-size 4096 5376 8192 --epochs 3 --json "$out/bench_ml10m.json"
stage bench_ml20m 120 75 python3 experiments/bench.py --shapes ml20m --data-path resident \
    --dtypes bfloat16 --batch-size 4096 6784 8192 --epochs 3 --json "$out/bench_ml20m.json"
stage profile_ml10m 60 25 python3 experiments/profile_epoch.py --shape ml10m \
    --dtype bfloat16 --batch-size 4096

if [ -n "$data_dir" ] && [ -f "$data_dir/ml-1m/ratings_notime.dat" ]; then
    for run in "best_ml1m experiment=best_ml1m" "svd model=svd"; do
        read -r name overrides <<< "$run"
        # The run folder (with its model) stays in the work folder; its results.json comes back.
        stage "ml1m_$name" 120 40 python3 run.py "$overrides" paths.data_dir="$data_dir" \
            dataset.ratings_file=ratings_notime.dat train.progress=false \
            checkpoint.dir="$work/ckpt_$name" hydra.run.dir="$work/ml1m_$name"
        cp "$work/ml1m_$name/results.json" "$out/ml1m_$name.json" 2>/dev/null && summarise
    done
fi
stage eval_cells_ml10m 90 60 python3 experiments/eval_cells.py --shape ml10m \
    --overrides experiment=best_ml1m --repeats 3
# JAX held to 76 GiB of any card: the Netflix shape must fit one 80 GB GPU.
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null \
    | head -1)
fraction=$(python3 -c "print(f'{min(0.95, 76 * 1024 / ${total_mib:-81920}):.3f}')")
stage netflix 240 150 env XLA_PYTHON_CLIENT_MEM_FRACTION="$fraction" python3 \
    experiments/bench.py --shapes netflix --dtypes bfloat16 --batch-size 1024 --epochs 2 \
    --data-path auto streamed --json "$out/netflix.json"

echo "whole check: $SECONDS s" >> "$out/machine.txt"
summarise
cat "$summary"
exit "$status"
