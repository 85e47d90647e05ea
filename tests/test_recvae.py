"""model=recvae: the loss against NumPy, the alternating updates, padding, the run end to end
with exact resume, and the saved model."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental.compilation_cache import compilation_cache
from scipy.special import log_softmax, logsumexp

import aerec
from aerec.cli import enable_compile_cache, run_task
from aerec.errors import ConfigError, TrainingInterrupted
from aerec.models import recvae as rv
from aerec.models.recvae import RECVAE, RecVAEConfig
from aerec.train import TrainState, new_state
from tests.test_checkpoint import assert_same_arrays, final_arrays, stop_after

HIDDEN, LATENT, ITEMS = 6, 3, 7


def numpy_negative_elbo(x, counts, logits, z, mu, logvar, prior_mu, prior_logvar, *, gamma,
                        beta, weights):
    """The authors' loss, written out in float64."""
    def log_normal(value, mean, log_variance):
        return -0.5 * (log_variance + np.log(2 * np.pi)
                       + (value - mean) ** 2 / np.exp(log_variance))

    prior = logsumexp(np.stack([log_normal(z, 0.0, 0.0) + np.log(weights[0]),
                                log_normal(z, prior_mu, prior_logvar) + np.log(weights[1]),
                                log_normal(z, 0.0, 10.0) + np.log(weights[2])]), axis=0)
    kl = (log_normal(z, mu, logvar) - prior).sum(axis=1)
    log_likelihood = (log_softmax(logits, axis=1) * x).sum(axis=1)
    kl_weight = gamma * x.sum(axis=1) if beta is None else np.full(len(x), beta)
    users = counts > 0
    return np.mean((kl_weight * kl - log_likelihood)[users])


@pytest.mark.parametrize("beta", [None, 0.3])
def test_the_loss_is_the_authors_negative_elbo(beta) -> None:
    generator = np.random.default_rng(0)
    x = (generator.random((5, ITEMS)) < 0.5).astype(np.float32)
    x[4] = x[0]  # batch padding: a copy of a row, count 0
    counts = np.append(x[:4].sum(axis=1), 0).astype(np.int32)
    logits, z, mu, prior_mu = (generator.normal(size=shape).astype(np.float32)
                               for shape in ((5, ITEMS), (5, LATENT), (5, LATENT), (5, LATENT)))
    logvar, prior_logvar = (generator.normal(scale=0.5, size=(5, LATENT)).astype(np.float32)
                            for _ in range(2))
    options = {"gamma": 0.05, "beta": beta, "weights": (0.15, 0.75, 0.1)}
    arrays = (x, counts, logits, z, mu, logvar, prior_mu, prior_logvar)
    got = jax.jit(partial(rv.negative_elbo, **options))(*arrays)
    want = numpy_negative_elbo(*map(np.float64, arrays), **options)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def numpy_encoder(params, x):
    """The authors' Encoder.forward without dropout, in float64."""
    def linear(layer, h):
        return h @ np.float64(layer["kernel"]) + np.float64(layer["bias"])

    def layer_norm(layer, h):
        centred = h - h.mean(axis=1, keepdims=True)
        normed = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 0.1)
        return normed * np.float64(layer["scale"]) + np.float64(layer["bias"])

    h = x / (np.sqrt((x**2).sum(axis=1, keepdims=True)) + 1e-10)
    outputs = []
    for index in range(5):
        pre = linear(params["dense"][index], h) + sum(outputs, np.zeros(1))
        h = layer_norm(params["norms"][index], pre / (1 + np.exp(-pre)))
        outputs.append(h)
    return linear(params["mu"], h), linear(params["logvar"], h)


def test_the_encoder_and_the_scores_are_the_authors() -> None:
    params = jax.jit(partial(rv.init_params, HIDDEN, LATENT, ITEMS, 0))()
    x = np.array([[1, 0, 1, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]],
                 np.float32)
    graph = rv.encoder_graph(HIDDEN, LATENT, ITEMS)
    (mu, logvar), scores = jax.jit(lambda p, x: (rv.encode(graph, p["encoder"], x),
                                                 rv.score_rows(graph, p, None, 3.0 * x)))(
        params, x)  # scores read interactions: any stored value counts 1
    want_mu, want_logvar = numpy_encoder(params["encoder"], np.float64(x))
    np.testing.assert_allclose(mu, want_mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, want_logvar, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, want_mu @ np.float64(params["decoder"]["kernel"])
                               + params["decoder"]["bias"], rtol=1e-4, atol=1e-5)
    # PyTorch's default initialisation: U(±1/sqrt(fan_in)); the two encoders drawn apart
    kernel = np.asarray(params["encoder"]["dense"][0]["kernel"])
    assert 0.8 / np.sqrt(ITEMS) < np.abs(kernel).max() <= 1 / np.sqrt(ITEMS)
    assert not np.array_equal(kernel, params["prior_encoder"]["dense"][0]["kernel"])


# The alternating updates: 2 batches per pass, 3 encoder passes and 1 decoder pass per epoch.
N_BATCHES, LEARNING_RATE = 2, 0.01


@pytest.fixture(scope="module")
def training():
    """A fresh state, the objective's compiled step (shared: compiling it is most of these
    tests' time), and a batch of 4 users."""
    objective = RECVAE.objective(RecVAEConfig(hidden=HIDDEN, latent=LATENT), ITEMS, N_BATCHES)
    optimizer = optax.adam(LEARNING_RATE)
    state = new_state(partial(rv.init_params, HIDDEN, LATENT, ITEMS, 0), optimizer, 0)
    rows = (np.random.default_rng(1).random((4, ITEMS)) < 0.5).astype(np.float32)
    rows[:, 0] = 1.0
    step = jax.jit(partial(objective.train_step, optimizer))
    return objective, step, state, jnp.asarray(rows), jnp.asarray(rows.sum(axis=1))


def part_moments(state: TrainState, part: str):
    adam = state.opt_state[0]
    return adam.mu[part], adam.nu[part]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                      strict=True))


def test_each_phase_updates_its_part_alone_and_the_prior_follows_the_encoder(training) -> None:
    objective, step, state, rows, counts = training
    assert objective.passes == 4
    first_prior = state.params["prior_encoder"]
    encoder_steps = 3 * N_BATCHES
    for index in range(2 * 4 * N_BATCHES):  # two epochs
        before = state
        state, loss = step(state, rows, counts)
        assert np.isfinite(loss) and int(state.step) == index + 1
        encoding = index % (4 * N_BATCHES) < encoder_steps
        active, frozen = ("encoder", "decoder") if encoding else ("decoder", "encoder")
        assert not same(state.params[active], before.params[active])
        assert same(state.params[frozen], before.params[frozen])
        assert same(part_moments(state, frozen), part_moments(before, frozen))
        assert not same(part_moments(state, active), part_moments(before, active))
        # the prior's encoder: its own initialisation until the first decoder step, then the
        # encoder as the encoder passes left it; never trained, no optimizer moments
        if index < encoder_steps:
            assert same(state.params["prior_encoder"], first_prior)
        elif not encoding:
            assert same(state.params["prior_encoder"], state.params["encoder"])
        else:
            assert same(state.params["prior_encoder"], before.params["prior_encoder"])
            assert not same(state.params["prior_encoder"], state.params["encoder"])
        assert all(not np.any(m) for m in jax.tree.leaves(part_moments(state,
                                                                       "prior_encoder")))
        if index in (0, encoder_steps):
            # each part's first update is Adam's first step (its own count): lr x sign(g)
            def kernel(params, encoding=encoding):
                return np.asarray(params["mu"]["kernel"] if encoding else params["kernel"])

            change = np.abs(kernel(state.params[active]) - kernel(before.params[active]))
            np.testing.assert_allclose(change.max(), LEARNING_RATE, rtol=1e-3)


def test_the_phase_follows_the_step() -> None:
    objective = RECVAE.objective(RecVAEConfig(enc_passes=2, dec_passes=3), ITEMS, 5)
    encoding, encoder_updates, decoder_updates = map(np.asarray, jax.jit(objective.phase)(
        np.arange(3 * 25)))
    within = np.arange(75) % 25
    np.testing.assert_array_equal(encoding, within < 10)
    np.testing.assert_array_equal(encoder_updates[[0, 9, 10, 24, 25, 35]], [0, 9, 10, 10, 10, 20])
    np.testing.assert_array_equal(decoder_updates[[0, 10, 11, 24, 25, 35, 36]],
                                  [0, 0, 1, 14, 15, 15, 16])


def test_padding_rows_change_nothing(training) -> None:
    _, step, state, rows, counts = training
    rows, counts = np.array(rows), np.array(counts)
    counts[2:] = 0
    copies, others = rows.copy(), rows.copy()
    copies[2:] = rows[0]  # as the epoch pads a batch: row 0, count 0
    others[2], others[3] = 1.0, 0.0
    for phase_step in (0, 3 * N_BATCHES):  # an encoder step and a decoder step
        start = state._replace(step=jnp.asarray(phase_step, jnp.int32))
        a_state, a_loss = step(start, copies, counts)
        b_state, b_loss = step(start, others, counts)
        assert float(a_loss) == float(b_loss)
        assert same(a_state, b_state)


def test_bad_keys_are_refused(compose_config) -> None:
    model = compose_config("model=recvae", fast=False).model
    for key, value, message in (
            ("orientation", "item", r"model\.orientation='item' must be user"),
            ("prior_weights", [0.5, 0.5], r"model\.prior_weights=.*three numbers > 0"),
            ("prior_weights", [0.2, 0.2, 0.2], r"sum to 1"),
            ("gamma", 0, r"model\.gamma=0 with model\.beta=null"),
            ("beta", -1, r"model\.beta=-1"),
            ("dec_passes", 0, r"model\.dec_passes=0"),
            ("scaling", "minmax", r"model\.scaling='minmax'")):
        with pytest.raises(ConfigError, match=message):
            RECVAE.check_config({**model, key: value})
    RECVAE.check_config({**model, "gamma": 0, "beta": 0.2})  # a fixed β instead


def test_the_model_training_defaults_are_the_authors(compose_config) -> None:
    cfg = compose_config("model=recvae", fast=False)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.optimizer.learning_rate) == (
        500, 50, 5e-4)
    assert compose_config("model=recvae", "train.batch_size=7", fast=False).train.batch_size == 7


@pytest.fixture
def compile_cache(tmp_path: Path):
    """JAX's persistent compilation cache in `tmp_path` for the test: a run after the first
    loads the programs that the first compiled (the same programs: the same shapes)."""
    saved = {name: getattr(jax.config, name) for name in (
        "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")}
    enable_compile_cache(str(tmp_path / "jax-cache"))
    compilation_cache.reset_cache()
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.mark.slow  # three runs, two compilations of the epoch: 30 s of CPU on a loaded machine
@pytest.mark.usefixtures("compile_cache")
def test_a_run_resumes_exactly_and_its_saved_model_recommends(compose_config,
                                                               tmp_path: Path) -> None:
    overrides = ("model=recvae", "train.epochs=3", "train.patience=100")
    full = run_task(compose_config(*overrides, f"checkpoint.dir={tmp_path / 'full'}"),
                    tmp_path / "out_full")
    cut = compose_config(*overrides, f"checkpoint.dir={tmp_path / 'cut'}")
    with pytest.raises(TrainingInterrupted):
        run_task(cut, tmp_path / "out_stopped", interruptible=stop_after(2))
    resumed = run_task(cut, tmp_path / "out_cut")
    assert resumed["resumed_from_epoch"] == 2
    compared = ("valid_ndcg@10", "ndcg@10", "recall@10", "best_epoch", "epochs_run")
    assert {key: resumed[key] for key in compared} == {key: full[key] for key in compared}
    assert full["monitor"] == "ndcg@10" and np.isnan(full["test_rmse"])
    history = [json.loads(line)["train_loss"] for line in
               (tmp_path / "out_cut" / "metrics.jsonl").read_text().splitlines()]
    assert history == [json.loads(line)["train_loss"] for line in
                       (tmp_path / "out_full" / "metrics.jsonl").read_text().splitlines()]
    assert_same_arrays(final_arrays(tmp_path / "full")[1], final_arrays(tmp_path / "cut")[1])

    model = aerec.load(tmp_path / "out_full" / "model")
    assert set(model.params) == {"encoder", "decoder"}  # the prior's encoder only trains
    user = int(model.users.raw[0])
    top = model.recommend(user, k=5)
    assert len(top) == 5 and "predicted_rating" not in top
    seen = model.seen.indices[model.seen.indptr[0]:model.seen.indptr[1]]
    assert not set(top["item"]) & set(model.items.raw[seen])
    scores = np.array(model.ranker.user_scores(np.array([0], np.int32))[0])
    scores[seen] = -np.inf
    assert list(top["item"]) == list(model.items.raw[np.argsort(-scores, kind="stable")[:5]])
    # a new user: a history of the known user's items, whatever the ratings, scores as the
    # user's own row
    history_items = model.inputs.indices[model.inputs.indptr[0]:model.inputs.indptr[1]]
    new = model.ranker.history_scores(history_items, np.full(history_items.size, 2.0))
    np.testing.assert_allclose(new, model.ranker.user_scores(np.array([0], np.int32))[0],
                               rtol=1e-5, atol=1e-5)
    assert len(model.recommend_for_history(
        {model.items.raw[i]: 5.0 for i in history_items}, k=3)) == 3
