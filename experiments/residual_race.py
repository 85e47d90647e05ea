"""A race trial (experiments/README.md, "Against the peer"): the race's autoencoder trained on
the residuals of the SVD baseline's ridge biases instead of centred ratings; the test RMSE
(biases added back) after every epoch. Not part of the package.

    PYTHONPATH=. python experiments/residual_race.py HIDDEN LR BATCH DROPOUT BIAS_REG [EPOCHS]
    PYTHONPATH=. python experiments/residual_race.py 300 3e-3 256 0.2 5 15
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from aerec.data.dataset import load_dataset
from aerec.data.matrix import DeviceRows
from aerec.matrices import build_matrices, data_dir_of
from aerec.models.autoencoder import apply_members, init_members
from aerec.models.scaling import Scaling
from aerec.models.svd import fit_biases
from aerec.optim import build_optimizer
from aerec.train import Objective, fit, init_state
from experiments.peer import compose_ml1m

SHIFT = 10.0  # stored residual + SHIFT is positive, so 0 still marks a missing cell


def main() -> None:
    hidden, lr, batch = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    dropout, reg = float(sys.argv[4]), float(sys.argv[5])
    epochs = int(sys.argv[6]) if len(sys.argv) > 6 else 15
    cfg = compose_ml1m(Path("../shared/data"), [
        "experiment=best_ml1m", f"model.hidden={hidden}", f"model.latent={hidden}",
        f"model.dropout={dropout}", "optimizer.schedule=constant",
        f"optimizer.learning_rate={lr}", f"train.batch_size={batch}"])
    dataset = load_dataset(cfg.dataset, cfg.prepare, cfg.split, data_dir_of(cfg), progress=False)
    matrices = build_matrices(dataset, cfg)
    mean, row_bias, col_bias = fit_biases(matrices.train.matrix, reg)

    def residual(csr: sp.csr_matrix) -> sp.csr_matrix:
        c = csr.tocoo()
        values = c.data - mean - row_bias[c.row] - col_bias[c.col] + SHIFT
        return sp.csr_matrix((values.astype(np.float32), (c.row, c.col)), shape=c.shape)

    train = DeviceRows(residual(matrices.train.matrix), True)
    inputs = jnp.asarray(residual(matrices.eval_input.matrix).toarray())
    test = matrices.test.matrix.tocoo()
    baseline = mean + row_bias[test.row] + col_bias[test.col]
    scaling = Scaling(SHIFT, 1.0)
    graphdef, params = init_members(cfg.model, train.shape[1], 0, 1)
    optimizer = build_optimizer(cfg.optimizer, 1)

    @jax.jit
    def test_rmse(params: dict) -> jax.Array:
        out = apply_members(graphdef, params, scaling.encode(inputs))[0]
        prediction = jnp.clip(out[test.row, test.col] + baseline, 1, 5)
        return jnp.sqrt(jnp.mean((prediction - test.data) ** 2))

    bias_only = np.sqrt(np.mean((np.clip(baseline, 1, 5) - test.data) ** 2))
    print(f"bias-only test RMSE {bias_only:.4f}")
    curve: list[str] = []
    started, evaluating = time.perf_counter(), 0.0

    def validate(params: dict) -> float:
        nonlocal evaluating
        began = time.perf_counter()
        rmse = float(test_rmse(params))
        curve.append(f"{rmse:.4f}@{began - started - evaluating:.1f}s")
        evaluating += time.perf_counter() - began
        return rmse

    fit(Objective(graphdef, scaling, l2=float(cfg.model.l2)), optimizer,
        init_state(params, optimizer, 0), train, validate, epochs=epochs, batch_size=batch,
        patience=epochs, seed=0, progress=False)
    print(" ".join(sys.argv[1:]), "|", " ".join(curve))


if __name__ == "__main__":
    main()
