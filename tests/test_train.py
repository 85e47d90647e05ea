"""The train step and the fit loop on small synthetic matrices."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.sparse as sp
from flax import nnx

import aerec.data.device_rows
from aerec.accelerate import layer_sizes, scan_unroll, step_loss, step_sizes
from aerec.data.device_rows import DeviceRows, dense_bytes, dense_dtype, densify, rows_on_device
from aerec.errors import ConfigError, TrainingDivergedError
from aerec.losses import Objective, loss_fn, masked_mse
from aerec.matrices import resident_budget
from aerec.models.autoencoder import AutoEncoder
from aerec.models.scaling import Scaling
from aerec.train import (
    epoch_batches,
    fit,
    init_state,
    steps_per_epoch,
    train_step,
    training_key,
)
from tests.conftest import assert_same_draws


def count_observed(rows: jax.Array) -> jax.Array:
    """Observed (non-zero) cells per dense row: the `counts` of a batch of `rows`, as the
    data path gives them (`DeviceRows.row_counts`) without reading the rows."""
    return jnp.sum(rows > 0, axis=1, dtype=jnp.int32)


N_COLS = 12


def make(seed: int = 0, **model_options) -> tuple[Objective, dict]:
    model = AutoEncoder(N_COLS, [8], 4, rngs=nnx.Rngs(seed), **model_options)
    graphdef, state = nnx.split(model)
    single = nnx.to_pure_dict(state)
    return Objective(graphdef, Scaling(2.5, 1.0)), jax.tree.map(lambda x: x[None], single)


def low_rank_matrix(n_rows: int = 40, density: float = 0.4, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_rows, 2)) @ rng.normal(size=(2, N_COLS))
    ratings = np.clip(np.round(3 + scores), 1, 5)
    return sp.csr_matrix(np.where(rng.random(ratings.shape) < density, ratings, 0.0)
                         .astype(np.float32))


@pytest.mark.parametrize(("all_cells", "dropout", "pad_hidden"),
                         [(False, 0.0, True), (True, 0.0, True), (False, 0.3, True),
                          (True, 0.3, False)])
def test_aligned_dummy_columns_change_neither_loss_nor_gradients(
        monkeypatch: pytest.MonkeyPatch, all_cells: bool, dropout: float, pad_hidden: bool
        ) -> None:
    # What an accelerator runs (inputs, and hidden widths with pad_hidden, padded to a
    # multiple of 128), checked on the CPU, with a sigmoid output so that the dummy outputs are
    # not zero; with dropout, on the input too, the padded step must drop the same units.
    objective, params = make(dropout=dropout, input_dropout=dropout,
                             output_activation="sigmoid")
    objective = dataclasses.replace(objective, all_cells=all_cells, l2=1e-3,
                                    pad_hidden=pad_hidden)
    rows = jnp.asarray(low_rank_matrix(6).toarray())
    key = jax.random.key(7) if dropout else None
    args = (objective, params, rows, count_observed(rows), key)
    loss, grads = jax.value_and_grad(loss_fn, argnums=1)(*args)
    monkeypatch.setattr("aerec.accelerate.aligned_width", lambda n: -(-n // 128) * 128)
    hidden = [128, 128] if pad_hidden else [8, 4]
    assert step_sizes(layer_sizes(params), pad_hidden) == [128, *hidden, 128]
    padded_loss, padded_grads = jax.value_and_grad(step_loss, argnums=1)(*args)
    np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)
    for padded, plain in zip(jax.tree.leaves(padded_grads), jax.tree.leaves(grads), strict=True):
        assert padded.shape == plain.shape
        np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_the_written_out_loss_gradient_is_autodiffs(dtype) -> None:
    # masked_mse's hand-written gradient against JAX differentiating the same formula, for
    # two members, in float32 and bfloat16 outputs, and for a batch with no counted cell.
    keys = jax.random.split(jax.random.key(3), 3)
    outputs = jax.random.normal(keys[0], (2, 5, 7)).astype(dtype)
    targets = jax.random.normal(keys[1], (5, 7))
    for counted in (jax.random.bernoulli(keys[2], 0.4, (5, 7)), jnp.zeros((5, 7), bool)):
        n_counted = jnp.sum(counted)

        def plain(outputs, counted=counted, n_counted=n_counted):
            errors = jnp.where(counted, outputs.astype(jnp.float32) - targets, 0.0)
            return (jnp.mean(jnp.sum(errors**2, axis=(1, 2)))
                    / jnp.maximum(n_counted.astype(jnp.float32), 1.0))

        value, grad = jax.value_and_grad(masked_mse)(outputs, targets, counted, n_counted)
        expected_value, expected_grad = jax.value_and_grad(plain)(outputs)
        assert grad.dtype == dtype
        np.testing.assert_allclose(value, expected_value, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(grad, np.float32),
                                   np.asarray(expected_grad, np.float32), rtol=1e-6, atol=1e-9)
        assert np.any(np.asarray(grad) != 0) == bool(n_counted)


def pad_to_128(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train as an accelerator does: every width padded to a multiple of 128."""
    monkeypatch.setattr("aerec.accelerate.aligned_width", lambda n: -(-n // 128) * 128)


def test_a_padded_step_keeps_the_models_own_widths(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a CPU the step computes the paper's loss itself; padded (as on an accelerator) it
    # pads inside the step, and the state it returns keeps the model's own widths.
    objective, params = make(0)
    rows = jnp.asarray(low_rank_matrix().toarray())
    counts = count_observed(rows)
    if jax.default_backend() == "cpu":
        assert step_loss(objective, params, rows, counts, None) == loss_fn(
            objective, params, rows, counts, None)
    optimizer = optax.adam(1e-2)
    state = init_state(params, optimizer, 0)
    shapes = [leaf.shape for leaf in jax.tree.leaves(state)]
    pad_to_128(monkeypatch)
    assert step_sizes(layer_sizes(params)) == [128, 128, 128, 128]
    for _ in range(5):
        state, _ = train_step(objective, optimizer, state, rows, counts)
    assert [leaf.shape for leaf in jax.tree.leaves(state)] == shapes


@pytest.mark.parametrize("resident", [True, False])
def test_a_padded_state_trains_as_the_models_own(monkeypatch: pytest.MonkeyPatch,
                                                 resident: bool) -> None:
    # Widths padded to 128 in each step (`fit` on an accelerator),
    # with dropout on the input and hidden layers, L2 and two members: the same losses and
    # best parameters as training in the model's own widths, up to the order of float sums.
    def run() -> object:
        objective, first = make(0, input_dropout=0.1)
        _, second = make(1, input_dropout=0.1)
        params = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second)
        optimizer = optax.adam(1e-2)
        return fit(dataclasses.replace(objective, l2=1e-3), optimizer,
                   init_state(params, optimizer, 0), DeviceRows(low_rank_matrix(), resident),
                   lambda p: 1.0, epochs=4, batch_size=8, patience=10, seed=0, progress=False)

    own = run()
    pad_to_128(monkeypatch)
    padded = run()
    np.testing.assert_allclose([r["train_loss"] for r in padded.history],
                               [r["train_loss"] for r in own.history], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(padded.best_params), jax.tree.leaves(own.best_params),
                    strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_masked_cells_get_zero_gradient() -> None:
    objective, params = make(dropout=0.0)
    rows = jnp.array([[5.0, 0.0, 3.0] + [0.0] * (N_COLS - 3),
                      [1.0, 0.0, 0.0] + [0.0] * (N_COLS - 3)])
    grads = jax.grad(loss_fn, argnums=1)(objective, params, rows, count_observed(rows), None)
    output = jax.tree.map(lambda g: g[0], grads["layers"][len(grads["layers"]) - 1])
    observed_cols = [0, 2]
    missing_cols = [c for c in range(N_COLS) if c not in observed_cols]
    # the output unit of a column never observed in the batch gets no gradient at all
    assert np.all(np.asarray(output["bias"])[missing_cols] == 0.0)
    assert np.all(np.asarray(output["kernel"])[:, missing_cols] == 0.0)
    assert np.all(np.asarray(output["bias"])[observed_cols] != 0.0)
    # ... whereas the paper's all-cells loss trains them towards zero
    all_cells = Objective(objective.graphdef, objective.scaling, all_cells=True)
    grads = jax.grad(loss_fn, argnums=1)(all_cells, params, rows, count_observed(rows), None)
    assert np.all(np.asarray(grads["layers"][len(grads["layers"]) - 1]["bias"][0]) != 0.0)


def test_padding_rows_do_not_change_the_loss() -> None:
    objective, params = make(dropout=0.0)
    rows = jnp.asarray(low_rank_matrix(4).toarray())
    padded = jnp.concatenate([rows, jnp.full((3, N_COLS), 4.0)])
    counts = jnp.concatenate([count_observed(rows), jnp.zeros(3, jnp.int32)])
    expected = loss_fn(objective, params, rows, count_observed(rows), None)
    assert float(loss_fn(objective, params, padded, counts, None)) == pytest.approx(
        float(expected))


def test_train_step_lowers_the_loss() -> None:
    objective, params = make()
    optimizer = optax.adam(1e-2)
    state = init_state(params, optimizer, seed=0)
    rows = jnp.asarray(low_rank_matrix().toarray())
    counts = count_observed(rows)
    step = jax.jit(lambda s: train_step(objective, optimizer, s, rows, counts))
    before = float(loss_fn(objective, state.params, rows, counts, None))
    for _ in range(100):
        state, _ = step(state)
    after = float(loss_fn(objective, state.params, rows, counts, None))
    assert after < 0.5 * before
    assert int(state.step) == 100


def test_epoch_batches_cover_each_row_once_and_depend_on_seed_and_epoch() -> None:
    rows = np.arange(3, 40, dtype=np.int32)
    batches = epoch_batches(rows, 8, seed=1, epoch=2)
    assert batches.shape == (5, 8)
    assert sorted(batches[batches >= 0].tolist()) == rows.tolist()
    np.testing.assert_array_equal(batches, epoch_batches(rows, 8, seed=1, epoch=2))
    assert not np.array_equal(batches, epoch_batches(rows, 8, seed=1, epoch=3))
    assert not np.array_equal(batches, epoch_batches(rows, 8, seed=2, epoch=2))
    # (seed, epoch) is not folded into one number: seed 1 epoch 3 is not seed 2 epoch 2 etc.
    assert not np.array_equal(epoch_batches(rows, 8, seed=1, epoch=3),
                              epoch_batches(rows, 8, seed=2, epoch=2))


def test_steps_per_epoch_counts_the_batches_of_rows_with_ratings() -> None:
    # The cosine schedule is sized by steps_per_epoch; fit runs epoch_batches' batches.
    matrix = low_rank_matrix().tolil()
    matrix[list(range(0, 40, 4)), :] = 0  # ten of the 40 rows without a training rating
    rows = DeviceRows(sp.csr_matrix(matrix), resident=True)
    assert steps_per_epoch(rows, 8) == 4  # 30 rows: 4 batches, not the 5 of 40 rows
    with_data = np.flatnonzero(rows.nonempty_rows()).astype(np.int32)
    assert epoch_batches(with_data, 8, seed=0, epoch=1).shape[0] == 4


def run_fit(resident: bool, seed: int = 0, dtype=np.float32):
    objective, params = make(seed)
    optimizer = optax.adam(1e-2)
    matrix = low_rank_matrix()
    return fit(objective, optimizer, init_state(params, optimizer, seed),
               DeviceRows(matrix, resident, dtype), lambda p: 1.0, epochs=4, batch_size=8,
               patience=10, seed=seed, progress=False)


def test_the_data_path_counts_the_observed_cells_of_each_row() -> None:
    matrix = low_rank_matrix()
    ids = np.array([3, 0, -1, 39, 7, -1], np.int32)
    for resident in (True, False):
        rows = DeviceRows(matrix, resident)
        given = rows.row_counts(ids)
        assert given.dtype == np.int32 and list(given[ids < 0]) == [0, 0]
        np.testing.assert_array_equal(given, count_observed(rows.gather(ids)))
        assert np.array_equal(rows.counts, np.count_nonzero(matrix.toarray(), axis=1))


def test_the_accelerators_device_side_densification_matches_the_hosts() -> None:
    matrix = low_rank_matrix()  # CSR, as the data path holds it
    every_row = np.arange(matrix.shape[0], dtype=np.int32)  # what densify scatters there
    np.testing.assert_array_equal(np.asarray(rows_on_device(matrix, every_row)),
                                  matrix.toarray())
    np.testing.assert_array_equal(np.asarray(densify(matrix)), matrix.toarray())
    ids = np.array([3, 0, -1, 39, 7, -1], np.int32)  # a streamed batch, padded
    np.testing.assert_array_equal(np.asarray(rows_on_device(matrix, ids)),
                                  DeviceRows(matrix, False).host_rows(ids))


def test_streamed_rows_densified_on_the_device_match_the_hosts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An accelerator's streamed path: the CSR arrays live on the device, the host sends ids.
    matrix = low_rank_matrix().tolil()
    matrix[5] = 0  # an empty row
    matrix = sp.csr_matrix(matrix)
    monkeypatch.setattr(aerec.data.device_rows, "stream_on_device", lambda: True)
    rows = DeviceRows(matrix, False)
    for ids in ([3, 0, -1, 39, 7, -1], [5, -1], [-1, -1], list(range(40)), [39, 39, 0], []):
        ids = np.array(ids, np.int32)
        np.testing.assert_array_equal(np.asarray(rows.gather(ids)), rows.host_rows(ids))
    empty = DeviceRows(sp.csr_matrix(matrix.shape, dtype=np.float32), False)  # no entries
    np.testing.assert_array_equal(empty.gather(np.array([0, -1], np.int32)),
                                  np.zeros((2, N_COLS)))
    gathered = aerec.data.device_rows.rows_from_entries(
        *rows.device_entries, np.array([1, 2], np.int32), width=N_COLS, capacity=4096)
    np.testing.assert_array_equal(gathered, matrix[[1, 2]].toarray())  # a roomy capacity


def test_the_resident_budget_is_half_an_accelerators_memory_or_the_hosts() -> None:
    gib = 2**30
    assert resident_budget(None, {"bytes_limit": 80 * gib}) == 40 * gib
    assert resident_budget(4e9, {"bytes_limit": 80 * gib}) == 4e9  # an explicit cap holds
    assert resident_budget(1e12, {"bytes_limit": 80 * gib}) == 40 * gib
    assert resident_budget(None, {}) == 4e9  # the CPU: its memory is the host's
    assert resident_budget(1e9, {}) == 1e9
    # ML-10M's item rows (train and validation dense: 6 GB) fit an 80 GB GPU, not the default
    # host budget.
    ml10m_both = 2 * 10_677 * 69_878 * 4
    assert ml10m_both <= resident_budget(None, {"bytes_limit": 80 * gib})
    assert ml10m_both > resident_budget(None, {})


def test_a_bfloat16_resident_matrix_trains_as_a_float32_one() -> None:
    # Whole-star ratings are exact in bfloat16 and batches are float32 once gathered: the same
    # inputs. On a CPU the same program too, bit for bit; an H200 fused the conversion into
    # its reductions differently (losses equal to 1e-7).
    as_float32, as_bfloat16 = run_fit(True), run_fit(True, dtype=jnp.bfloat16)
    on_cpu = jax.default_backend() == "cpu"
    tolerance = {"rtol": 0, "atol": 0} if on_cpu else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose([r["train_loss"] for r in as_bfloat16.history],
                               [r["train_loss"] for r in as_float32.history], **tolerance)
    for a, b in zip(jax.tree.leaves(as_float32.best_params),
                    jax.tree.leaves(as_bfloat16.best_params), strict=True):
        np.testing.assert_allclose(b, a, **tolerance)


def test_bfloat16_storage_holds_the_same_cells_in_half_the_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = low_rank_matrix()
    matrix.data[::7] += 0.5  # half stars too
    monkeypatch.setattr(aerec.data.device_rows, "BLOCK_CELLS", 3 * N_COLS)  # 14 blocks on the host
    on_host = np.asarray(densify(matrix, jnp.bfloat16))
    scattered = np.asarray(rows_on_device(matrix, np.arange(40, dtype=np.int32), jnp.bfloat16))
    for dense in (on_host, scattered):  # the CPU's densification, and an accelerator's
        assert dense.dtype == jnp.bfloat16
        np.testing.assert_array_equal(dense.astype(np.float32), matrix.toarray())
    ids = np.array([3, 0, -1, 39], np.int32)
    gathered = DeviceRows(matrix, True, jnp.bfloat16).gather(ids)
    assert gathered.dtype == jnp.float32
    np.testing.assert_array_equal(gathered, DeviceRows(matrix, False).gather(ids))
    assert dense_bytes(matrix, jnp.bfloat16) * 2 == dense_bytes(matrix) == 40 * N_COLS * 4


def test_the_dense_dtype_is_bfloat16_only_where_it_is_exact() -> None:
    half_stars, inexact = np.array([0.5, 3.0, 4.5, 127.5]), np.array([1.0, 3.3])
    on_cpu = jax.default_backend() == "cpu"
    assert dense_dtype("auto", half_stars) == (np.float32 if on_cpu else jnp.bfloat16)
    assert dense_dtype("auto", inexact) == np.float32
    assert dense_dtype("bfloat16", half_stars) == jnp.bfloat16
    assert dense_dtype("float32", half_stars) == np.float32
    with pytest.raises(ConfigError, match=r"train.dense_dtype=bfloat16: .*not exact"):
        dense_dtype("bfloat16", inexact)
    with pytest.raises(ConfigError, match=r"train\.dense_dtype='float16'"):
        dense_dtype("float16", half_stars)


def test_fit_is_deterministic_and_paths_agree() -> None:
    first, second = run_fit(resident=True), run_fit(resident=True)
    streamed = run_fit(resident=False)
    losses = [record["train_loss"] for record in first.history]
    assert losses == [record["train_loss"] for record in second.history]
    assert losses[-1] < losses[0]
    for a, b in zip(jax.tree.leaves(first.best_params), jax.tree.leaves(second.best_params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(first.best_params), jax.tree.leaves(streamed.best_params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_unrolled_epoch_trains_as_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # An accelerator runs the epoch's steps unrolled, up to four per loop iteration
    # (scan_unroll); with 5 batches that is one iteration of four and one step left over.
    if jax.default_backend() == "cpu":
        assert scan_unroll(5) == 1  # a CPU keeps the loop
    monkeypatch.setattr("aerec.accelerate.on_accelerator", lambda: True)
    assert [scan_unroll(n) for n in (1, 3, 5, 58)] == [1, 3, 4, 4]
    monkeypatch.undo()
    looped = run_fit(resident=True)
    monkeypatch.setattr("aerec.accelerate.scan_unroll", lambda n: min(n, 4))
    unrolled = run_fit(resident=True)
    np.testing.assert_allclose([r["train_loss"] for r in unrolled.history],
                               [r["train_loss"] for r in looped.history], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(unrolled.best_params), jax.tree.leaves(looped.best_params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_early_stopping_keeps_the_best_epoch() -> None:
    objective, params = make()
    optimizer = optax.adam(1e-2)
    scores = iter([0.9, 0.8, 0.85, 0.86, 0.87, 0.5])
    seen = []  # the parameters validated after each epoch, copied to the host

    def validate(params: dict) -> float:
        seen.append(jax.tree.map(np.array, params))
        return next(scores)

    result = fit(objective, optimizer, init_state(params, optimizer, 0),
                 DeviceRows(low_rank_matrix(), True), validate, epochs=6,
                 batch_size=8, patience=2, seed=0, progress=False)
    assert result.best_epoch == 2
    assert result.best_valid == 0.8
    assert result.epochs_run == 4
    # The kept copy outlives the later epochs, which donate the training state.
    for a, b in zip(jax.tree.leaves(result.best_params), jax.tree.leaves(seen[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert not np.array_equal(jax.tree.leaves(seen[1])[0], jax.tree.leaves(seen[3])[0])


def test_a_first_epoch_without_a_finite_score_is_kept() -> None:
    # The state the first epoch started from has been donated, so it cannot be the result.
    objective, params = make()
    optimizer = optax.adam(1e-2)
    result = fit(objective, optimizer, init_state(params, optimizer, 0),
                 DeviceRows(low_rank_matrix(), True), lambda p: float("inf"), epochs=3,
                 batch_size=8, patience=1, seed=0, progress=False)
    assert (result.best_epoch, result.epochs_run) == (1, 2)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result.best_params))


def test_non_finite_loss_stops_training() -> None:
    objective, params = make()
    optimizer = optax.adam(1e30)
    with pytest.raises(TrainingDivergedError, match="training loss"):
        fit(objective, optimizer, init_state(params, optimizer, 0),
            DeviceRows(low_rank_matrix(), True), lambda p: 1.0, epochs=50, batch_size=8,
            patience=100, seed=0, progress=False)


@pytest.mark.parametrize("l2", [pytest.param(0.0, marks=pytest.mark.slow), 1e-2])
def test_ensemble_members_train_like_independent_models(l2: float) -> None:
    # Stacked members share batches but not weights; Adam's element-wise, scale-free update
    # makes each member's trajectory that of a model trained alone (dropout off here, since
    # members draw their own dropout keys), with or without the L2 penalty.
    objective, first = make(0, dropout=0.0)
    objective = Objective(objective.graphdef, objective.scaling, l2=l2)
    _, second = make(1, dropout=0.0)
    optimizer = optax.adam(1e-2)
    rows = jnp.asarray(low_rank_matrix().toarray())
    counts = count_observed(rows)

    def train(params):
        state = init_state(params, optimizer, seed=0)
        for _ in range(20):
            state, _ = train_step(objective, optimizer, state, rows, counts)
        return state.params

    # Full float32 matmuls: a GPU's default TF32 rounds the stacked and the lone programs'
    # products differently, and 20 Adam steps made that 2.5e-5 on an H200.
    with jax.default_matmul_precision("highest"):
        together = train(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second))
        alone = [train(first), train(second)]
    for member in range(2):
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x, m=member: x[m], together)),
                        jax.tree.leaves(alone[member]), strict=True):
            np.testing.assert_allclose(a, b[0], rtol=1e-4, atol=1e-5)


def test_compiled_initialisation_draws_each_members_eager_parameters() -> None:
    # init_members builds all members in one compiled program (start-up time); the values must
    # be those of each member's module built eagerly with its own seed, bit for bit on a CPU.
    from omegaconf import OmegaConf

    from aerec.models.autoencoder import build_autoencoder, init_members

    cfg = OmegaConf.create({"layers": 1, "hidden": 8, "latent": 4, "activation": "sigmoid",
                            "output_activation": "linear", "dropout": 0.1,
                            "input_dropout": 0.0, "mirror_decoder": False})
    _, stacked = init_members(cfg, N_COLS, seed=3, members=2)
    for member in range(2):
        eager = nnx.to_pure_dict(nnx.split(build_autoencoder(cfg, N_COLS, 3 + member))[1])
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x, m=member: x[m], stacked)),
                        jax.tree.leaves(eager), strict=True):
            assert_same_draws(a, b)


def test_dropout_keys_are_not_the_parameter_initialisation_keys() -> None:
    # nnx.Rngs(seed) draws the parameters with fold_in(key(seed), c), c = 0, 1, ...; the
    # dropout key of step s is fold_in(training key, s) and must be none of them.
    from flax import nnx

    rngs = nnx.Rngs(3)
    init_keys = {tuple(np.asarray(jax.random.key_data(rngs.params()))) for _ in range(64)}
    dropout_keys = {tuple(np.asarray(jax.random.key_data(jax.random.fold_in(training_key(3), s))))
                    for s in range(64)}
    assert len(dropout_keys) == 64 and not init_keys & dropout_keys
    _, params = make()
    state = init_state(params, optax.adam(1e-3), seed=3)  # what training really starts from
    np.testing.assert_array_equal(state.rng, jax.random.key_data(training_key(3)))
