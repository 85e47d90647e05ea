# Shared by the scripts run on a lent GPU machine (experiments/gpu_run*.sh); source it, then
# call `lent_gpu_start NAME OUT` once. That machine returns few files, so each script writes
# to a work folder (GPU_RUN_WORK, default /tmp/NAME) and `stage` packs it into OUT/NAME.tgz
# after each stage, with OUT/stages.txt.

# lent_gpu_start NAME OUT: the wheels carried in .whl/ installed (hydra-core and the rest the
# machine lacks; experiments/README.md), the import path set, the GPU named in gpu.txt.
lent_gpu_start() {
    run_name=$1 dest=$2
    out=${GPU_RUN_WORK:-/tmp/$run_name}
    mkdir -p "$dest" "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
        | tee "$out/gpu.txt"
}

# stage LABEL RC: the stage's exit status and seconds since $started, and the files packed.
stage() {
    echo "## $1: rc $2, $((SECONDS - started)) s" | tee -a "$out/stages.txt"
    cp "$out/stages.txt" "$dest/" && tar -czf "$dest/$run_name.tgz" -C "$out" .
}

# profile_with_hlo FILE ARGS...: experiments/profile_epoch.py ARGS into $out/FILE, with XLA's
# optimised HLO of the epoch kept in $out/hlo.tgz (the dump's other files are many and large).
profile_with_hlo() {
    local file=$1 status
    shift
    XLA_FLAGS="--xla_dump_to=$out/hlo --xla_dump_hlo_module_re=.*train_epoch.*" \
        timeout 60 python3 experiments/profile_epoch.py "$@" > "$out/$file" 2>&1
    status=$?
    find "$out/hlo" -type f ! -name '*after_optimizations.txt' -delete 2>/dev/null
    tar -czf "$out/hlo.tgz" -C "$out" hlo 2>/dev/null && rm -rf "$out/hlo"
    return $status
}
