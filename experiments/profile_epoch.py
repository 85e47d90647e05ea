"""Where a training epoch's device time goes: the benchmark's epoch under JAX's profiler,
summed per operation, for one shape, dtype and batch size.

Recipe (experiments/README.md, "Speed"; gpu_check.sh's stage profile_ml10m):

    PYTHONPATH=. python experiments/profile_epoch.py --shape ml10m --dtype bfloat16 \
        --batch-size 4096

Runtime: 16-21 s on an NVIDIA H200.
Reproduces (H200, results/gpu_h200/run7.md): 10.2 ms of device time per ML-10M bf16 epoch,
matmuls 50%, the epoch's wall time 12.0 ms.

It prints the share of the device's time spent in matmuls and the operations that take most
of it (each with its share of the total), so that an efficiency figure of bench.py can be
explained. On a GPU the device plane's "XLA Ops" line holds one event per executed HLO
operation; on a CPU the host plane's XLA thunks are counted instead.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import jax

from aerec.data.device_rows import DENSE_DTYPES
from experiments.bench import SHAPES, epoch_runner, load_shape

# XLA's own matmul fusions (gemm_fusion_dot), cuBLAS kernels (nvjet_..., cutlass_..._gemm_...),
# the CPU's dots.
MATMUL_MARKERS = ("dot", "gemm", "matmul", "cublas", "nvjet", "convolution")


def op_seconds(trace_dir: Path, details: dict[str, str] | None = None
               ) -> collections.Counter[str]:
    """Seconds per operation name in the profile written under `trace_dir`; into `details`,
    if given, each operation's longest text statistic (on a GPU its HLO instruction, whose
    shapes tell which matmul of the step a `gemm_fusion` is)."""
    totals: collections.Counter[str] = collections.Counter()
    for path in trace_dir.rglob("*.xplane.pb"):
        profile = jax.profiler.ProfileData.from_file(str(path))
        device_planes = [p for p in profile.planes if p.name.startswith("/device:")]
        for plane in device_planes or [p for p in profile.planes if p.name.startswith("/host")]:
            lines = list(plane.lines)
            ops = [line for line in lines if line.name == "XLA Ops"] or lines
            for line in ops:
                for event in line.events:
                    if not event.name.startswith(("$", "ThunkExecutor")):  # Python, wrappers
                        totals[event.name] += event.duration_ns * 1e-9
                        if details is not None and event.name not in details:
                            texts = [v for k, v in event.stats
                                     if isinstance(v, str) and not k.startswith("_")]
                            details[event.name] = max(texts, key=len, default="")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="ml10m", choices=sorted(SHAPES))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--data-path", default="resident",
                        choices=["auto", "resident", "streamed"])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--dense-dtype", default="auto", choices=DENSE_DTYPES,
                        help="a resident matrix's storage (train.dense_dtype)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--max-batches", type=int, default=0)
    parser.add_argument("--pad-hidden", default="yes", choices=["yes", "no"],
                        help="hidden widths aligned on an accelerator (Objective.pad_hidden)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    loaded = load_shape(args.shape, args, args.data_path, args.dense_dtype)
    state, run_epoch, _, _ = epoch_runner(loaded, args.dtype, args.batch_size, args.max_batches,
                                          args.pad_hidden == "yes")
    state, losses = run_epoch(state, 1)  # compile outside the profile
    jax.block_until_ready(losses)
    walls = []
    for epoch in (2, 3, 4):  # the epoch's wall time, against which the device time is seen
        started = time.perf_counter()
        state, losses = run_epoch(state, epoch)
        jax.block_until_ready(losses)
        walls.append(time.perf_counter() - started)
    details: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            state, losses = run_epoch(state, 5)
            jax.block_until_ready(losses)
        totals = op_seconds(Path(folder), details)
    total = sum(totals.values())
    matmul = sum(t for name, t in totals.items()
                 if any(marker in name.lower() for marker in MATMUL_MARKERS))
    storage = loaded["matrices"].train.dense
    storage = f"stored {storage.dtype}" if storage is not None else "streamed"
    print(f"{args.shape} {args.dtype} batch {args.batch_size} ({storage}): "
          f"{total * 1e3:.1f} ms of device "
          f"operations in one epoch, matmuls {matmul / max(total, 1e-12):.0%}; "
          f"the epoch's wall time {statistics.median(walls) * 1e3:.1f} ms (median of 3)")
    for name, seconds in totals.most_common(args.top):
        print(f"{seconds / max(total, 1e-12):6.1%} {seconds * 1e3:9.2f} ms  {name[:110]}")
    print("operations' HLO (where the profile holds it):")
    for name, _ in totals.most_common(args.top):
        if "[" in details.get(name, ""):  # an instruction with shapes, not a module name
            print(f"  {name}: {details[name][:300]}")


if __name__ == "__main__":
    main()
