"""Mult-VAE / Mult-DAE: the loss against a NumPy reference, padding, β annealing, the keys, and
a real-Hydra run that resumes exactly, saves, loads and recommends."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import aerec
from aerec.cli import run_task
from aerec.errors import ConfigError, TrainingInterrupted
from aerec.models.multvae import (
    MultDAEConfig,
    MultObjective,
    MultVAEConfig,
    graphdef_of,
    kl_weight,
    loss_terms,
    params_fn,
    row_scores,
)
from tests.conftest import CONFIGS, FAST_DATA
from tests.test_checkpoint import stop_after

N_ITEMS = 7
# Four users (any stored value counts 1) and two batch padding rows (count 0) holding data, as
# the resident path's padding does (it reads row 0): they must not count.
ROWS = np.array([[1, 0, 1, 1, 0, 0, 0],
                 [0, 1, 0, 0, 0, 1, 0],
                 [1, 1, 1, 0, 1, 1, 1],
                 [0, 0, 0, 0, 3, 0, 0],
                 [1, 0, 1, 1, 0, 0, 0],
                 [0, 1, 1, 1, 1, 1, 1]], np.float32)
COUNTS = np.array([3, 2, 6, 1, 0, 0], np.int32)
USERS = 4
STEPS = np.array([0, 4, 40, 5000], np.int32)  # β = min(0.2, step / 40): 0, 0.1, 0.2, 0.2
L2 = 0.01


def random_params(config, seed: int):
    """Parameters of the network's shapes drawn by NumPy: no compiled initialisation."""
    generator = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: generator.normal(0.0, 0.5, leaf.shape).astype(np.float32),
                        jax.eval_shape(params_fn(config, N_ITEMS, 0)))


@partial(jax.jit, static_argnums=(0, 1))
def evaluated(objective, latent, params, rows, counts, key, steps):
    """The loss terms, the losses at `steps`, the dropout mask and noise the step draws (the
    key split as the loss splits it) and the gradient at steps[1]: one compiled program per
    objective."""
    dropout_key, noise_key = jax.random.split(key)
    keep = jax.random.bernoulli(dropout_key, 1.0 - objective.dropout, rows.shape)
    noise = jax.random.normal(noise_key, (rows.shape[0], latent))
    losses = jax.vmap(lambda step: objective.step_loss(params, rows, counts, key, step))(steps)
    gradient = jax.grad(objective.step_loss)(params, rows, counts, key, steps[1])
    return loss_terms(objective, params, rows, counts, key), losses, keep, noise, gradient


def layers(params, side: str) -> list[tuple[np.ndarray, np.ndarray]]:
    part = params[side]
    return [(np.asarray(part[i]["kernel"], np.float64), np.asarray(part[i]["bias"], np.float64))
            for i in sorted(part)]


def reference(params, keep, noise, dropout: float, variational: bool):
    """NumPy (float64) mean NLL, mean KL (None for the DAE) and Σ W² over the real users."""
    clicks = (ROWS[:USERS] > 0).astype(np.float64)
    h = clicks / np.sqrt(clicks.sum(axis=1, keepdims=True))
    h = np.where(keep[:USERS], h / (1.0 - dropout), 0.0)
    encoder, decoder = layers(params, "encoder"), layers(params, "decoder")
    for kernel, bias in encoder[:-1]:
        h = np.tanh(h @ kernel + bias)
    out = h @ encoder[-1][0] + encoder[-1][1]
    kl = None
    if variational:
        latent = out.shape[1] // 2
        mean, logvar = out[:, :latent], out[:, latent:]
        z = mean + noise[:USERS] * np.exp(0.5 * logvar)
        kl = np.mean(0.5 * np.sum(-logvar + np.exp(logvar) + mean**2 - 1.0, axis=1))
    else:
        z = np.tanh(out)
    for kernel, bias in decoder[:-1]:
        z = np.tanh(z @ kernel + bias)
    logits = z @ decoder[-1][0] + decoder[-1][1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = np.mean(-np.sum(log_softmax * clicks, axis=1))
    squares = sum(np.sum(kernel**2) for kernel, _ in encoder + decoder)
    return nll, kl, squares


def test_the_vae_loss_is_the_numpy_elbo_with_the_annealed_beta() -> None:
    config = MultVAEConfig(hidden=(5,), latent=3)
    params = random_params(config, 0)
    objective = MultObjective(graphdef_of(config, N_ITEMS), dropout=0.5, beta_cap=0.2,
                              anneal_steps=40, l2=L2)
    (nll, kl), losses, keep, noise, _ = evaluated(objective, 3, params, ROWS, COUNTS,
                                                  jax.random.key(11), STEPS)
    want_nll, want_kl, squares = reference(params, np.asarray(keep), np.asarray(noise), 0.5,
                                           variational=True)
    assert 0 < np.asarray(keep)[:USERS].mean() < 1  # dropout acted
    np.testing.assert_allclose(float(nll), want_nll, rtol=1e-5)
    np.testing.assert_allclose(float(kl), want_kl, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses),
                               want_nll + np.array([0.0, 0.1, 0.2, 0.2]) * want_kl
                               + L2 * squares, rtol=1e-5)


def test_the_dae_loss_is_the_numpy_reference() -> None:
    config = MultDAEConfig(latent=4)
    params = random_params(config, 1)
    assert [kernel.shape for kernel, _ in layers(params, "encoder") + layers(params, "decoder")
            ] == [(N_ITEMS, 4), (4, N_ITEMS)]  # Liang's [I -> 200 -> I], narrower
    objective = MultObjective(graphdef_of(config, N_ITEMS), dropout=0.5, l2=L2)
    (nll, kl), losses, keep, _, _ = evaluated(objective, 4, params, ROWS, COUNTS,
                                              jax.random.key(5), STEPS)
    want_nll, _, squares = reference(params, np.asarray(keep), None, 0.5, variational=False)
    assert kl is None
    np.testing.assert_allclose(float(nll), want_nll, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses), want_nll + L2 * squares, rtol=1e-5)


def test_what_padding_rows_hold_changes_neither_loss_nor_gradient() -> None:
    config = MultVAEConfig(hidden=(5,), latent=3)
    params = random_params(config, 2)
    objective = MultObjective(graphdef_of(config, N_ITEMS), dropout=0.5, beta_cap=0.2,
                              anneal_steps=40, l2=L2)  # the program of the VAE test above
    other = ROWS.copy()
    other[USERS:] = [[0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]
    first, second = (evaluated(objective, 3, params, rows, COUNTS, jax.random.key(3), STEPS)
                     for rows in (ROWS, other))
    assert any(np.abs(np.asarray(leaf)).sum() > 0 for leaf in jax.tree.leaves(first[4]))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 first[:2] + first[4:], second[:2] + second[4:])


def test_beta_grows_linearly_per_step_to_its_cap() -> None:
    np.testing.assert_allclose(kl_weight(jnp.array([0, 1, 100, 200, 5000]), 0.2, 1000),
                               [0.0, 0.001, 0.1, 0.2, 0.2], rtol=1e-6)
    assert float(kl_weight(jnp.asarray(0), 0.3, 0)) == pytest.approx(0.3)  # no annealing


def test_model_training_defaults_are_liangs_and_overridable(compose_config) -> None:
    for name in ("multvae", "multdae"):
        cfg = compose_config(f"model={name}", fast=False)
        assert (cfg.train.batch_size, cfg.train.epochs, cfg.optimizer.learning_rate) == (
            500, 200, 1e-3)
        assert compose_config(f"model={name}", "train.batch_size=7",
                              fast=False).train.batch_size == 7
    # other models keep the shared defaults
    cfg = compose_config("model=autoencoder", fast=False)
    assert (cfg.train.batch_size, cfg.optimizer.learning_rate) == (64, 1e-4)


@pytest.mark.parametrize(("override", "key"), [
    ("model.orientation=item", "model.orientation"),
    ("model.hidden=wide", "model.hidden"),
    ("model.hidden=[0]", "model.hidden"),
    ("model.latent=0", "model.latent"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.beta_cap=-0.1", "model.beta_cap"),
    ("model.anneal_steps=1.5", "model.anneal_steps"),
    ("model.l2=-1", "model.l2"),
    ("model.activation=swish", "model.activation"),
    ("model.scaling=minmax", "model.scaling"),
])
def test_invalid_keys_are_refused_by_name(compose_config, tmp_path: Path, override: str,
                                          key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_task(compose_config("model=multvae", override), tmp_path)


@pytest.mark.parametrize(("field", "value"), [("orientation", "item"), ("hidden", [0]),
                                            ("hidden", "wide"), ("latent", 0),
                                            ("activation", "swish")])
def test_a_saved_models_keys_are_checked(field: str, value: object) -> None:
    from aerec.model_json import Invalid, check_model_section

    saved = {"name": "multvae", "orientation": "user", "hidden": [600], "latent": 200,
             "activation": "tanh"}
    check_model_section(saved)
    check_model_section({**saved, "name": "multdae", "hidden": []})
    with pytest.raises(Invalid) as raised:
        check_model_section({**saved, field: value})
    assert raised.value.field == f"model.{field}"


RUN = (*FAST_DATA, "model=multvae", "model.hidden=[16]", "model.latent=8",
       "model.anneal_steps=20", "optimizer.learning_rate=0.01", "train.epochs=4",
       "train.patience=100")
COMPARED = ("ndcg@10", "recall@10", "valid_ndcg@10", "best_epoch", "epochs_run")


def compose_run(*overrides: str):
    """The real composed config of a small Mult-VAE run."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=[*RUN, *overrides])


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 4-epoch run's output directory (shared by the tests below)."""
    directory = tmp_path_factory.mktemp("multvae")
    run_task(compose_run(f"checkpoint.dir={directory / 'ckpt'}"), directory / "run")
    return directory / "run"


def train_losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"]
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_trains_saves_loads_and_recommends(full_run: Path, tmp_path: Path) -> None:
    results = json.loads((full_run / "results.json").read_text())
    assert results["model"] == "multvae" and results["monitor"] == "ndcg@10"
    assert results["test_rmse"] is None and "predicts no ratings" in results["notes"]["test_rmse"]
    assert results["ndcg@10"] > 0.0 and results["epochs_run"] == 4
    losses = train_losses(full_run)
    assert losses[-1] < losses[0]

    model = aerec.load(full_run / "model")
    # a known user: the logits of the row, the user's items left out
    graphdef = graphdef_of(MultVAEConfig(hidden=(16,), latent=8), model.inputs.shape[1])
    row = int(model.users.index([5])[0])
    scores = np.asarray(row_scores(graphdef, model.params, model.inputs[row].toarray()))[0]
    candidates = np.setdiff1d(np.arange(scores.size), model.seen[row].indices)
    best = candidates[np.argsort(-scores[candidates], kind="stable")][:10]
    table = model.recommend(5, k=10)
    assert list(table["item"]) == list(model.items.raw[best])
    assert "predicted_rating" not in table  # a top-N model predicts no rating
    # a new user: each history item counts 1, whatever its rating
    items = model.items.raw[[2, 7, 11]].tolist()
    ones = model.recommend_for_history(dict.fromkeys(items, 1.0), k=5)
    rated = model.recommend_for_history(dict(zip(items, [5.0, 3.0, 4.0], strict=True)), k=5)
    assert list(ones["item"]) == list(rated["item"])
    history_row = np.zeros((1, scores.size), np.float32)
    history_row[0, [2, 7, 11]] = 1.0
    new_scores = np.array(row_scores(graphdef, model.params, history_row))[0]
    new_scores[[2, 7, 11]] = -np.inf
    assert list(ones["item"]) == list(model.items.raw[np.argsort(-new_scores,
                                                                 kind="stable")[:5]])
    payload = run_task(compose_run("task=recommend", "user=5", "k=3",
                                   f"checkpoint.path={full_run / 'model'}"), tmp_path)
    assert [entry["item"] for entry in payload["recommendations"]] == list(table["item"][:3])


@pytest.mark.slow
def test_a_run_stopped_after_epoch_2_resumes_exactly(full_run: Path, tmp_path: Path) -> None:
    cfg = compose_run(f"checkpoint.dir={tmp_path / 'ckpt'}")
    with pytest.raises(TrainingInterrupted):
        run_task(cfg, tmp_path / "cut", interruptible=stop_after(2))
    resumed = run_task(cfg, tmp_path / "resumed")
    full = json.loads((full_run / "results.json").read_text())
    assert resumed["resumed_from_epoch"] == 2
    assert {key: resumed[key] for key in COMPARED} == {key: full[key] for key in COMPARED}
    assert train_losses(tmp_path / "resumed") == train_losses(full_run)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 aerec.load(full_run / "model").params,
                 aerec.load(tmp_path / "resumed" / "model").params)
