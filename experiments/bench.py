"""Training speed against the machine's own matmul peak, for MovieLens-shaped problems.

Recipe (from the repository's root; experiments/README.md, "Speed"):

    PYTHONPATH=. python experiments/bench.py --shapes ml1m --data-dir ../shared/data \
        --epochs 9 --batch-size 1024
    bash experiments/bench_cpu.sh             # the whole CPU table
    bash experiments/gpu_check.sh OUT         # the GPU table (stages bench_ml10m, bench_ml20m)
    python experiments/bench.py --shapes ml1m --surprise   # + the scikit-surprise comparison

Runtime: the ML-1M line above 52 s on 2 busy CPU cores (2026-12-06); on an NVIDIA H200
59 s for ML-10M and 73 s for ML-20M at three batch sizes (results/gpu_h200/run7.md).
Reproduces: ML-1M on 2 CPU cores, fp32, batch 1024: 0.86 s an epoch, 90% of the same
matmuls (results/bench_cpu/ml1m_b1024.txt); on an H200, bf16: ML-10M epochs of
11.9-15.7 ms and ML-20M epochs of 46.6-53.7 ms (results/gpu_h200/run7.md).

For each shape (ml1m, ml10m, ml20m, netflix: the real ratings when present under --data-dir,
otherwise the `synthetic` dataset with the same users, items, ratings and a MovieLens-like
popularity skew) and each dtype, it measures with aerec's own training functions:
compile time, steady-state epoch time (median over --epochs timed epochs, after a warm-up),
ratings per second, achieved FLOP/s of the model's matmuls, peak host and device memory, and
the practical peak: the FLOP/s of plain dense matmuls of exactly the shapes a training step
multiplies, timed one by one in the same process and dtype (efficiency = their time / the
epoch's; on an accelerator at the widths the step pads to, `aerec.accelerate.step_sizes`), with a
square matmul for reference (2048 on a CPU, 8192 on an accelerator, where smaller ones fall
short of its peak).
Large shapes on a CPU can time the first --max-batches batches of each epoch; the epoch time
is then extrapolated to the full epoch (marked `partial` in the table).

The model is experiment=best_ml1m's (item rows; encoder 500, latent 500, sigmoid; batch 256).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hydra import compose, initialize_config_dir

from aerec.accelerate import step_sizes
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.device_rows import DENSE_DTYPES
from aerec.data.split import TRAIN
from aerec.devices import on_accelerator
from aerec.losses import Objective
from aerec.matrices import build_matrices
from aerec.models.autoencoder import init_members
from aerec.models.scaling import make_scaling
from aerec.optim import build_optimizer
from aerec.train import (
    epoch_batches,
    init_state,
    train_epoch_resident,
    train_step,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# users, items, ratings of the official releases
SHAPES = {"ml1m": (6040, 3706, 1_000_209), "ml10m": (69_878, 10_677, 10_000_054),
          "ml20m": (138_493, 26_744, 20_000_263), "netflix": (480_189, 17_770, 100_480_507)}
REAL = {"ml1m": ("ml-1m", "ratings_notime.dat"), "ml10m": ("ml-10M100K", "ratings.dat"),
        "ml20m": ("ml-20m", "ratings.csv")}


def compose_for(shape: str, data_dir: Path | None, overrides: list[str]) -> tuple[Any, str]:
    """The run configuration for a shape: real files when present, else synthetic."""
    base = ["experiment=best_ml1m", "train.progress=false", "checkpoint.enabled=false",
            *overrides]
    source = "synthetic"
    if data_dir is not None and shape in REAL:
        folder, name = REAL[shape]
        if (data_dir / folder / name).is_file():
            base += [f"dataset={shape}", f"paths.data_dir={data_dir}",
                     f"dataset.ratings_file={name}", "dataset.download=false"]
            source = f"{data_dir / folder / name}"
    if source == "synthetic":
        users, items, ratings = SHAPES[shape]
        base += ["dataset=synthetic", f"dataset.n_users={users}", f"dataset.n_items={items}",
                 f"dataset.n_ratings={ratings}", "dataset.rating_step=0.5"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=base), source


def step_matmuls(sizes: list[int], batch: int) -> list[tuple[int, int, int]]:
    """The (m, k, n) matmuls of one training step: per layer a -> b, the forward (batch, a, b),
    the weight gradient (a, batch, b) and, except for the first layer, whose input needs no
    gradient, the input gradient (batch, b, a)."""
    shapes = []
    for position, (a, b) in enumerate(itertools.pairwise(sizes)):
        shapes += [(batch, a, b), (a, batch, b)]
        if position > 0:
            shapes.append((batch, b, a))
    return shapes


class MatmulReference:
    """Plain jit-compiled dense matmuls of given (m, k, n) shapes, ready to be timed.

    On an accelerator each timing covers `launches` back-to-back products, so that the
    host's dispatch and the final synchronisation do not pass for matmul time (a batch-1024
    product of the ML-10M shape takes about 0.1 ms there).
    """

    def __init__(self, shapes: list[tuple[int, int, int]], dtype: Any):
        key = jax.random.key(0)
        self.flops = sum(2 * m * k * n for m, k, n in shapes)
        self.operands = [(jax.random.normal(key, (m, k), dtype),
                          jax.random.normal(key, (k, n), dtype)) for m, k, n in shapes]
        self.product = jax.jit(lambda x, y: x @ y)
        self.launches = 10 if on_accelerator() else 1
        self.seconds()  # compile every shape once

    def seconds(self, repeats: int = 3) -> float:
        """Sum over the shapes of each matmul's median time."""
        total = 0.0
        for a, b in self.operands:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                for _ in range(self.launches):
                    out = self.product(a, b)
                out.block_until_ready()
                times.append((time.perf_counter() - started) / self.launches)
            total += statistics.median(times)
        return total


def data_options(data_path: str, dense_dtype: str) -> list[str]:
    """The overrides of a data path and a resident matrix's storage."""
    return [f"train.data_path={data_path}", f"train.dense_dtype={dense_dtype}"]


def data_variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (data path, dense dtype) pairs to time, in order: every --data-path with every
    --dense-dtype, except that a streamed path stores nothing dense and runs once."""
    pairs: list[tuple[str, str]] = []
    for data_path, dense in itertools.product(args.data_path, args.dense_dtype):
        pair = (data_path, args.dense_dtype[0] if data_path == "streamed" else dense)
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def load_shape(shape: str, args: argparse.Namespace, data_path: str, dense_dtype: str
               ) -> dict[str, Any]:
    """The configuration, dataset and matrices of one shape (loaded once for all its runs)."""
    cfg, source = compose_for(shape, args.data_dir, data_options(data_path, dense_dtype))
    run = run_config(cfg)
    started = time.perf_counter()
    dataset = load_dataset(run.dataset, run.prepare, run.split, Path(run.paths.data_dir or "."),
                           progress=False)
    matrices = build_matrices(dataset, run.train, run.model.orientation, run.split.kind)
    return {"shape": shape, "cfg": run, "source": source, "dataset": dataset,
            "matrices": matrices, "load_seconds": time.perf_counter() - started}


def on_data_path(loaded: dict[str, Any], data_path: str, dense_dtype: str,
                 args: argparse.Namespace) -> dict[str, Any]:
    """The same loaded shape with its matrices rebuilt for another data path or storage."""
    cfg, _ = compose_for(loaded["shape"], args.data_dir, data_options(data_path, dense_dtype))
    run = run_config(cfg)
    loaded["matrices"] = None  # the previous path's device matrices go first
    return {**loaded, "cfg": run, "matrices": build_matrices(
        loaded["dataset"], run.train, run.model.orientation, run.split.kind)}


def epoch_runner(loaded: dict[str, Any], dtype: str, batch_size: int, max_batches: int,
                 pad_hidden: bool = True
                 ) -> tuple[Any, Callable[[Any, int], tuple[Any, jax.Array]], int, int]:
    """A fresh training state and `run_epoch(state, epoch) -> (state, losses)` on the run's
    data path (the first `max_batches` batches of the epoch, if not 0), with the epoch's
    batch count and the count run."""
    cfg, dataset, train = loaded["cfg"], loaded["dataset"], loaded["matrices"].train
    n_inputs = train.shape[1]
    graphdef, params = init_members(cfg.model, n_inputs, 0, 1)
    scaling = make_scaling(cfg.model.scaling, dataset.rating_min, dataset.rating_max,
                           dataset.train_mean())
    objective = Objective(graphdef, scaling, l2=float(cfg.model.l2),
                          compute_dtype=jnp.dtype(dtype), pad_hidden=pad_hidden)
    optimizer = build_optimizer(cfg.optimizer, 1000)
    state = init_state(params, optimizer, 0)  # on an accelerator each step pads it
    rows = np.flatnonzero(train.nonempty_rows()).astype(np.int32)
    all_batches = epoch_batches(rows, batch_size, 0, 1)
    timed = all_batches[:max_batches] if max_batches else all_batches

    if train.resident:
        epoch_fn = jax.jit(partial(train_epoch_resident, objective, optimizer), donate_argnums=0)
        counts = jnp.asarray(train.counts)

        def run_epoch(state, epoch):
            batches = epoch_batches(rows, batch_size, 0, epoch)[: len(timed)]
            state, losses = epoch_fn(state, train.dense, counts, jnp.asarray(batches))
            return state, losses
    else:
        step_fn = jax.jit(partial(train_step, objective, optimizer), donate_argnums=0)

        def run_epoch(state, epoch):
            losses = []
            for ids in epoch_batches(rows, batch_size, 0, epoch)[: len(timed)]:
                state, loss = step_fn(state, train.gather(ids), train.row_counts(ids))
                losses.append(loss)
            return state, jnp.stack(losses)

    return state, run_epoch, len(all_batches), len(timed)


def bench_shape(loaded: dict[str, Any], dtype: str, batch_size: int,
                args: argparse.Namespace, pad_hidden: bool = True) -> dict[str, Any]:
    """Time training epochs of one loaded shape in one dtype and batch size."""
    cfg, dataset, train = loaded["cfg"], loaded["dataset"], loaded["matrices"].train
    n_rows, n_inputs = train.shape
    state, run_epoch, n_batches, n_timed = epoch_runner(loaded, dtype, batch_size,
                                                        args.max_batches, pad_hidden)
    fraction = n_timed / n_batches
    started = time.perf_counter()
    state, losses = run_epoch(state, 1)  # compiles, then runs once
    jax.block_until_ready(losses)
    first_epoch = time.perf_counter() - started
    sizes = [n_inputs, *([int(cfg.model.hidden)] * int(cfg.model.layers)),
             int(cfg.model.latent), n_inputs]
    # The model's FLOPs count its own widths; the reference times the matmuls the step runs,
    # at the widths it pads to on an accelerator (`step_sizes`).
    model_flops = sum(2 * m * k * n for m, k, n in step_matmuls(sizes, batch_size))
    run_sizes = step_sizes(sizes, pad_hidden)
    reference = MatmulReference(step_matmuls(run_sizes, batch_size), jnp.dtype(dtype))
    side = 8192 if on_accelerator() else 2048
    square = MatmulReference([(side, side, side)], jnp.dtype(dtype))
    # Epochs and the reference matmuls alternate, so that a noisy machine slows both alike;
    # the efficiency is the median of the per-epoch ratios.
    epoch_times, ratios = [], []
    for epoch in range(2, args.epochs + 2):
        started = time.perf_counter()
        state, losses = run_epoch(state, epoch)
        jax.block_until_ready(losses)
        epoch_times.append(time.perf_counter() - started)
        ratios.append(reference.seconds() * n_timed / epoch_times[-1])
    timed_seconds = statistics.median(epoch_times)
    epoch_seconds = timed_seconds / fraction
    # Padding rows of the last batch are computed too, so every batch counts in full; the
    # real rows' share of that work is reported beside it (`of_square_real_rows`).
    flops = model_flops * n_batches
    real_rows = int(np.count_nonzero(train.nonempty_rows()))
    real_share = real_rows / (n_batches * batch_size)
    achieved = flops / epoch_seconds
    efficiency = statistics.median(ratios)  # a ratio of times: the reference's own FLOPs
    peak = reference.flops * n_batches / epoch_seconds / efficiency
    square_flops = square.flops / square.seconds()
    device_stats = jax.devices()[0].memory_stats() or {}
    return {
        "shape": loaded["shape"], "source": loaded["source"], "dtype": dtype, "rows": n_rows,
        "inputs": n_inputs, "train_ratings": dataset.count(TRAIN), "resident": train.resident,
        "dense_dtype": str(train.dense.dtype) if train.resident else None,
        "batch_size": batch_size, "step_sizes": run_sizes, "batches_timed": n_timed,
        "batches_per_epoch": n_batches, "partial": fraction < 1.0,
        "load_seconds": loaded["load_seconds"],
        "compile_seconds": max(first_epoch - timed_seconds, 0.0),
        "epoch_seconds": epoch_seconds, "epoch_seconds_all": [t / fraction for t in epoch_times],
        "ratings_per_second": dataset.count(TRAIN) / epoch_seconds,
        "model_flops_per_epoch": flops, "achieved_flops": achieved, "matmul_peak_flops": peak,
        "square_side": side, "square_matmul_flops": square_flops, "efficiency": efficiency,
        "of_square": achieved / square_flops, "real_rows": real_rows,
        "real_row_share": real_share, "of_square_real_rows": real_share * achieved / square_flops,
        "peak_host_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_device_gib": device_stats.get("peak_bytes_in_use", float("nan")) / 2**30,
        "device": jax.devices()[0].device_kind, "host": platform.node(),
    }


def data_path_label(record: dict[str, Any]) -> str:
    """'resident (bfloat16)', 'resident (float32)' or 'streamed'."""
    if not record["resident"]:
        return "streamed"
    return f"resident ({record.get('dense_dtype') or 'float32'})"


def format_rows(records: list[dict[str, Any]]) -> str:
    """One markdown table of the records."""
    lines = ["| shape | source | dtype | batch | step widths | path | compile s | epoch s "
             "| ratings/s | model TFLOP/s | same matmuls TFLOP/s | efficiency "
             "| square matmul TFLOP/s | of square | of square, real rows | peak host GiB "
             "| peak device GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        source = "real" if r["source"] != "synthetic" else "synthetic"
        epoch = f"{r['epoch_seconds']:.2f}" + (" (partial)" if r["partial"] else "")
        lines.append(
            f"| {r['shape']} | {source} | {r['dtype']} | {r['batch_size']} | "
            f"{'-'.join(map(str, r.get('step_sizes', [])))} | "
            f"{data_path_label(r)} | {r['compile_seconds']:.1f} | "
            f"{epoch} | {r['ratings_per_second']:,.0f} | {r['achieved_flops'] / 1e12:.3f} | "
            f"{r['matmul_peak_flops'] / 1e12:.3f} | {r['efficiency']:.0%} | "
            f"{r['square_matmul_flops'] / 1e12:.3f} ({r['square_side']}³) | "
            f"{r['of_square']:.0%} | {r['of_square_real_rows']:.0%} | "
            f"{r['peak_host_gib']:.2f} | {r['peak_device_gib']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["ml1m"], choices=sorted(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=["float32"],
                        choices=["float32", "bfloat16"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--data-path", nargs="+", default=["auto"],
                        choices=["auto", "resident", "streamed"],
                        help="each in turn, on the same loaded data")
    parser.add_argument("--dense-dtype", nargs="+", default=["auto"],
                        choices=DENSE_DTYPES,
                        help="a resident matrix's storage (train.dense_dtype), each in turn")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256])
    parser.add_argument("--pad-hidden", nargs="+", default=["yes"], choices=["yes", "no"],
                        help="hidden widths aligned on an accelerator (Objective.pad_hidden), "
                        "each in turn")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up")
    parser.add_argument("--max-batches", type=int, default=0,
                        help="time only this many batches per epoch (0: all)")
    parser.add_argument("--surprise", action="store_true",
                        help="also compare with scikit-surprise's SVD on ML-1M")
    parser.add_argument("--json", type=Path, default=None, help="write the records here")
    parser.add_argument("--load-only", action="store_true",
                        help="only time loading each shape (data to the run's matrices)")
    args = parser.parse_args()
    records = []
    variants = data_variants(args)
    for shape in args.shapes:
        loaded = load_shape(shape, args, *variants[0])
        if args.load_only:  # the process's peak so far: load the largest shape alone
            records.append({"shape": shape, "source": loaded["source"],
                            "ratings": int(loaded["dataset"].rating.size),
                            "load_seconds": loaded["load_seconds"],
                            "peak_host_gib": resource.getrusage(
                                resource.RUSAGE_SELF).ru_maxrss / 2**20})
            del loaded
            print(f"{shape} ({records[-1]['source']}): {records[-1]['ratings']:,} ratings "
                  f"loaded in {records[-1]['load_seconds']:.1f} s; peak host memory so far "
                  f"{records[-1]['peak_host_gib']:.2f} GiB", flush=True)
            continue
        for position, (data_path, dense_dtype) in enumerate(variants):
            if position:  # the same ratings; load_seconds stays the first load's
                loaded = on_data_path(loaded, data_path, dense_dtype, args)
            for dtype, batch_size, pad in itertools.product(args.dtypes, args.batch_size,
                                                            args.pad_hidden):
                records.append(bench_shape(loaded, dtype, batch_size, args, pad == "yes"))
                print(format_rows(records[-1:]).splitlines()[-1], flush=True)
        del loaded  # the next shape's matrices take its place
    if args.load_only:
        if args.json:
            args.json.write_text(json.dumps({"loads": records}, indent=2) + "\n")
        return
    print(f"device: {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")
    print(format_rows(records))
    output: dict[str, Any] = {"records": records}
    if args.surprise:
        from experiments.peer import compare_with_surprise

        output["surprise"] = compare_with_surprise(args.data_dir)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
