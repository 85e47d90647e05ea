"""A model=svd trial (experiments/README.md, "Against the peer"): the randomized SVD with its
products in JAX but its QR and small SVD factorisations in numpy on the host, so that a fresh
process compiles only the products and the residuals. Prints four fits of ML-1M in one process
(the first one compiles). Not part of the package.

    PYTHONPATH=. python experiments/svd_host_factorisations.py [CACHE_DIR | off]
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aerec.cli import enable_compile_cache
from aerec.data.dataset import load_dataset
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.svd import fit_biases, transposed_product
from experiments.peer import compose_ml1m


@jax.jit
def residuals(rows: jax.Array, cols: jax.Array, ratings: jax.Array, dense: jax.Array
              ) -> jax.Array:
    mean, row_bias, col_bias = fit_biases(rows, cols, ratings, dense.shape, 5.0)
    return jnp.where(dense > 0, dense - mean - row_bias[:, None] - col_bias[None, :], 0.0)


times = jax.jit(lambda matrix, block: matrix @ block)
transposed_times = jax.jit(transposed_product)


def orthonormal(block: jax.Array) -> np.ndarray:
    return np.linalg.qr(np.asarray(block, np.float64))[0].astype(np.float32)


def main() -> None:
    enable_compile_cache(sys.argv[1] if len(sys.argv) > 1 else "off")
    cfg = compose_ml1m(Path("../shared/data"), ["model=svd"])
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir_of(cfg), progress=False)
    train = build_matrices(dataset, cfg).train
    jax.block_until_ready(train.dense)

    def fit(seed: int = 0, rank: int = 20, width: int = 30, iterations: int = 4) -> np.ndarray:
        coo = train.matrix.tocoo()
        with jax.default_matmul_precision("highest"):
            matrix = residuals(*jax.device_put((coo.row, coo.col, coo.data)), train.dense)
            sketch = np.random.default_rng(seed).standard_normal(
                (matrix.shape[1], width)).astype(np.float32)
            basis = orthonormal(times(matrix, sketch))
            for _ in range(iterations):
                basis = orthonormal(times(matrix, orthonormal(transposed_times(matrix, basis))))
            small = np.asarray(transposed_times(matrix, basis), np.float64).T
        return np.linalg.svd(small, full_matrices=False)[2][:rank]

    for attempt in range(4):
        started = time.perf_counter()
        fit()
        print(f"fit {attempt + 1}: {time.perf_counter() - started:.3f} s", flush=True)


if __name__ == "__main__":
    main()
