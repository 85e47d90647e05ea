"""Which structure makes a bf16 training epoch slow on a GPU: aerec's resident epoch on a
random rating matrix (f32 or bf16 storage, columns stored padded to 128, a model of hidden
width 512, hidden widths of 500 left unaligned (`Objective.pad_hidden=False`), the steps
unrolled in Python, the loss's gradient left to autodiff (`aerec.losses.masked_mse` writes it
out), the batch materialised behind an optimization barrier) against a
hand-written plain-JAX epoch, each timed and profiled per operation. aerec's variants keep
the training state padded between steps as `fit` does (`aerec.train.for_steps`); with the
environment variable STATE_LAYOUT=0 they pad it in every step instead, as before. A diagnosis
tool (experiments/README.md, "GPU"):

    PYTHONPATH=. python experiments/layout_variants.py ROWS INPUTS BATCH DENSITY [NAMES]
    PYTHONPATH=. python experiments/layout_variants.py 10677 69878 4096 0.0134   # ML-10M shape
"""

import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from omegaconf import OmegaConf

import aerec.train
from aerec.losses import masked_errors
from aerec.models.autoencoder import init_members
from aerec.models.scaling import Scaling
from aerec.train import (
    Objective,
    for_steps,
    init_state,
    train_epoch_resident,
    train_step,
)
from experiments.profile_epoch import op_seconds

R, N, B, DENSITY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ONLY = sys.argv[5].split(",") if len(sys.argv) > 5 else None
BF = jnp.bfloat16
CFG = OmegaConf.create({"name": "autoencoder", "layers": 1, "hidden": 500, "latent": 500,
                        "activation": "sigmoid", "output_activation": "linear",
                        "dropout": 0.1, "input_dropout": 0.0, "mirror_decoder": False})
# The same model with hidden widths that are multiples of 128 (tensor-core tiles).
CFG_512 = OmegaConf.merge(CFG, {"hidden": 512, "latent": 512})


@jax.jit
def make_matrix(key):
    k1, k2 = jax.random.split(key)
    mask = jax.random.uniform(k1, (R, N)) < DENSITY
    return jnp.where(mask, jnp.round(jax.random.uniform(k2, (R, N)) * 8) / 2 + 1, 0.0)


def batches(epoch):
    order = np.random.default_rng(epoch).permutation(R)
    nb = -(-R // B)
    padded = np.full(nb * B, -1, np.int32)
    padded[:R] = order
    return jnp.asarray(padded.reshape(nb, B))


# The name loss_fn reads is aerec.train's own (imported from aerec.losses): patch that one.
MASKED_MSE = aerec.train.masked_mse
# STATE_LAYOUT=0: the state in the model's own widths, padded in every step (before for_steps)
STATE_LAYOUT = os.environ.get("STATE_LAYOUT", "1") != "0"


def autodiff_masked_mse(outputs, targets, counted, n_counted):
    # aerec.losses.masked_mse's loss, left to JAX to differentiate (its gradient is written out)
    return masked_errors(outputs, targets, counted, n_counted)[2]


def barrier_epoch(objective, optimizer, state, matrix, matrix_counts, batches):
    def body(state, ids):
        rows = jax.lax.optimization_barrier(matrix[jnp.maximum(ids, 0)])
        counts = jnp.where(ids >= 0, matrix_counts[jnp.maximum(ids, 0)], 0)
        return train_step(objective, optimizer, state, rows, counts)
    return jax.lax.scan(body, state, batches)


def unrolled_epoch(objective, optimizer, state, matrix, matrix_counts, batches):
    # train_epoch_resident's steps in a Python loop: one straight-line program, no while loop
    # (whose condition a GPU sends to the host each iteration).
    losses = []
    for ids in batches:
        rows = matrix[jnp.maximum(ids, 0)]
        counts = jnp.where(ids >= 0, matrix_counts[jnp.maximum(ids, 0)], 0)
        state, loss = train_step(objective, optimizer, state, rows, counts)
        losses.append(loss)
    return state, jnp.stack(losses)


def plain_epoch(state, matrix, matrix_counts, batches):
    params, opt_state = state
    opt = optax.adam(1e-3)
    def loss(p, rows, counts):
        x = rows.astype(BF)
        h = jax.nn.sigmoid(x @ p["w1"].astype(BF) + p["b1"].astype(BF))
        z = jax.nn.sigmoid(h @ p["w2"].astype(BF) + p["b2"].astype(BF))
        out = (z @ p["w3"].astype(BF) + p["b3"].astype(BF)).astype(jnp.float32)
        err = jnp.where(rows > 0, out - rows, 0.0)
        return jnp.sum(err**2) / jnp.maximum(jnp.sum(counts), 1)
    def body(carry, ids):
        p, s = carry
        rows = matrix[jnp.maximum(ids, 0)]
        counts = jnp.where(ids >= 0, matrix_counts[jnp.maximum(ids, 0)], 0)
        value, g = jax.value_and_grad(loss)(p, rows, counts)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), value
    return jax.lax.scan(body, (params, opt_state), batches)


def time_variant(name, epoch_fn, state, matrix, counts, flops):
    def run(state, epoch):
        state, losses = epoch_fn(state, matrix, counts, batches(epoch))
        jax.block_until_ready(losses)
        return state, losses

    t = time.perf_counter()
    state, losses = run(state, 1)
    compile_s = time.perf_counter() - t
    times = []
    for e in range(2, 5):
        t = time.perf_counter()
        state, losses = run(state, e)
        times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            state, losses = run(state, 9)
        ops = op_seconds(Path(folder))
    epoch = statistics.median(times)
    total = sum(ops.values())
    print(f"== {name}: epoch {epoch * 1e3:.1f} ms, {flops / epoch / 1e12:.0f} TFLOP/s, "
          f"first {compile_s:.1f} s, loss {float(losses[-1]):.4f}, "
          f"device ops {total * 1e3:.1f} ms", flush=True)
    for op, s in ops.most_common(8):
        print(f"   {s/total:6.1%} {s*1e3:8.2f} ms {op[:80]}", flush=True)
    del state


def main():
    matrix = make_matrix(jax.random.key(0))
    counts = jnp.sum(matrix > 0, axis=1, dtype=jnp.int32)
    nb = -(-R // B)
    flops = 5 * 2 * B * N * 500 * nb  # the wide matmuls; hidden 512's are 2.4% more
    print(f"R={R} N={N} B={B} density={float(jnp.mean(counts)) / N:.4f} "
          f"device={jax.devices()[0].device_kind}")
    opt = optax.adam(1e-3)
    def aerec_variant(mat, n_inputs, epoch_impl=train_epoch_resident, cfg=CFG, pad_hidden=True):
        graphdef, params = init_members(cfg, n_inputs, 0, 1)
        objective = Objective(graphdef, Scaling(0.0, 1.0), l2=5e-5, compute_dtype=BF,
                              pad_hidden=pad_hidden)
        if STATE_LAYOUT:  # as `fit` trains: the state kept padded between steps
            objective, state = for_steps(objective, opt, init_state(params, opt, 0))
        else:
            state = init_state(params, opt, 0)
        fn = jax.jit(partial(epoch_impl, objective, opt), donate_argnums=0)
        return fn, state
    padded = -(-N // 128) * 128
    def widened():
        return jnp.pad(matrix, ((0, 0), (0, padded - N)))

    variants = {
        "aerec_f32matrix": lambda: (*aerec_variant(matrix, N), matrix),
        "aerec_bf16matrix": lambda: (*aerec_variant(matrix.astype(BF), N), matrix.astype(BF)),
        "aerec_padded128": lambda: (*aerec_variant(widened(), padded), widened()),
        "aerec_barrier": lambda: (*aerec_variant(matrix, N, barrier_epoch), matrix),
        "aerec_bf16_hidden512": lambda: (*aerec_variant(matrix.astype(BF), N, cfg=CFG_512),
                                         matrix.astype(BF)),
        "aerec_bf16_padded128": lambda: (*aerec_variant(widened().astype(BF), padded),
                                         widened().astype(BF)),
        "aerec_bf16_hidden500": lambda: (*aerec_variant(matrix.astype(BF), N, pad_hidden=False),
                                         matrix.astype(BF)),
        "aerec_bf16_unrolled": lambda: (*aerec_variant(matrix.astype(BF), N, unrolled_epoch),
                                        matrix.astype(BF)),
    }
    variants["aerec_bf16_autodiff_loss"] = variants["aerec_bf16matrix"]
    for name, make in variants.items():
        if ONLY and name not in ONLY:
            continue
        fn, state, mat = make()
        if name.endswith("autodiff_loss"):  # traced (at the first call) with the plain loss
            aerec.train.masked_mse = autodiff_masked_mse
        time_variant(name, fn, state, mat, counts, flops)
        aerec.train.masked_mse = MASKED_MSE
    if not ONLY or "plain" in ONLY:
        k = jax.random.split(jax.random.key(1), 3)
        p = {"w1": jax.random.normal(k[0], (N, 500)) * 0.01, "b1": jnp.zeros(500),
             "w2": jax.random.normal(k[1], (500, 500)) * 0.04, "b2": jnp.zeros(500),
             "w3": jax.random.normal(k[2], (500, N)) * 0.04, "b3": jnp.zeros(N)}
        time_variant("plain", jax.jit(plain_epoch, donate_argnums=0), (p, opt.init(p)), matrix,
                     counts, flops)


main()
