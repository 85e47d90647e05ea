#!/usr/bin/env bash
# Next steps toward issue 6's GPU target (>= 50% of the bf16 peak on the ML-10M shape), in
# about 2 minutes on one GPU: experiments/layout_variants.py on the ML-10M shape (random
# matrix, batch 4096) for aerec's bf16 epoch as it is (hidden widths padded to 512), with
# the hidden widths left at 500, with the epoch's steps unrolled instead of scanned, and a
# hand-written plain-JAX epoch; each under XLA's default GEMM choice and with Triton GEMMs
# for every matmul (which can fuse the error pass into the output matmul). Each line prints
# epoch ms, TFLOP/s (the 500-wide model's FLOPs) and the top device operations.
# Usage: bash experiments/gpu_variants.sh [OUT (gpu_variants)]
# (SHAPE="ROWS INPUTS BATCH DENSITY" runs another shape, e.g. a small one to try the script.)
set -uo pipefail
status=0
out_dir=${1:-gpu_variants}
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
variants=aerec_bf16matrix,aerec_bf16_hidden500,aerec_bf16_unrolled,plain
for flags in "" "--xla_gpu_triton_gemm_any=true"; do
    name=${flags:-default}; name=${name#--}; name=${name%%=*}
    echo "### XLA_FLAGS='$flags'" | tee "$out_dir/$name.txt"
    # shellcheck disable=SC2086  # SHAPE is four words
    XLA_FLAGS="$flags" timeout 150 python3 experiments/layout_variants.py \
        ${SHAPE:-10677 69878 4096 0.0134} "$variants" 2>&1 | tee -a "$out_dir/$name.txt" \
        || status=$?
done
exit "$status"
