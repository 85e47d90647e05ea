"""RecVAE (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N Recommendations
with Implicit Feedback", WSDM 2020), as the authors' code (github.com/ilya-shenbin/RecVAE)
has it. A top-N family: it ranks items and predicts no ratings.

- Encoder: the row of interactions x (every stored cell counts 1), L2-normalised, dropout
  (training's encoder phase only), then five dense-connected layers
  h_i = LayerNorm_i(swish(W_i h_{i-1} + b_i + h_1 + ... + h_{i-1})) (LayerNorm eps 0.1),
  and the heads mu(h_5), logvar(h_5). Decoder: one linear layer, latent -> item logits.
- Loss: the negative ELBO, -(sum_i x_i log softmax(logits)_i) + β_u KL, per user, averaged
  over the batch's users. The KL is the one-sample estimate log q(z|x) - log p(z|x) at the
  reparameterised z, summed over the latent dimensions, against the composite prior
  p(z|x) = w_1 N(z; 0, I) + w_2 q_old(z|x) + w_3 N(z; 0, e^10 I), where q_old is the posterior
  of the encoder as the last encoder phase left it (`prior_encoder`, run without dropout).
  β_u = gamma x the user's number of interactions, or a fixed `beta`.
- Training alternates: each epoch is `enc_passes` passes over the users updating the encoder
  alone (input dropout), then `dec_passes` passes updating the decoder alone (no dropout),
  with the prior's encoder set to the encoder in between.
- Scores: the decoder's logits at the posterior mean of the row (no sampling, no dropout);
  a new user's history is such a row.

Parameters are one pytree {"encoder", "decoder", "prior_encoder"} in the shared `TrainState`,
trained by the shared epoch loop through the objective's own `train_step`. What differs from
the authors' code: see docs/models.md ("RecVAE").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from aerec.checks import (
    fraction,
    is_number,
    one_of,
    positive_int,
    positive_int_problem,
    user_rows_problem,
)
from aerec.errors import ConfigError
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.models.scaling import Scaling
from aerec.rankers import InteractionRanker, Ranker

if TYPE_CHECKING:
    from aerec.data.device_rows import DeviceRows
    from aerec.train import FitResult, TrainState

ENCODER_LAYERS = 5
LAYER_NORM_EPS = 0.1  # the authors' LayerNorm epsilon
NORM_EPS = 1e-10  # added to a row's L2 norm: an empty row stays 0 instead of 0 / 0
UNIFORM_LOGVAR = 10.0  # the wide mixture component N(0, e^10 I)
LOG_2PI = math.log(2.0 * math.pi)
PARTS = ("encoder", "decoder", "prior_encoder")  # the parameters' top-level keys
SERVED = ("encoder", "decoder")  # what scoring reads, and what a saved model holds


# The network.

def dense(n_in: int, n_out: int, rngs: nnx.Rngs, dtype: Any = None) -> nnx.Linear:
    """A linear layer (its values are drawn by `init_params`); `dtype`: the matmul's (None:
    the inputs')."""
    return nnx.Linear(n_in, n_out, dtype=dtype, rngs=rngs)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout with an explicit key; identity when `key` is None or `rate` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class Encoder(nnx.Module):
    """x -> (mu, logvar): the authors' dense-connected encoder (module docstring)."""

    def __init__(self, n_items: int, hidden: int, latent: int, *, rngs: nnx.Rngs,
                 input_dtype: Any = None):
        # input_dtype: the first (items x hidden) matmul's dtype (train.dtype=bfloat16)
        self.dense = nnx.List([dense(n_items, hidden, rngs, input_dtype)]
                              + [dense(hidden, hidden, rngs) for _ in range(ENCODER_LAYERS - 1)])
        self.norms = nnx.List([nnx.LayerNorm(hidden, epsilon=LAYER_NORM_EPS, rngs=rngs)
                               for _ in range(ENCODER_LAYERS)])
        self.mu = dense(hidden, latent, rngs)
        self.logvar = dense(hidden, latent, rngs)

    def __call__(self, x: jax.Array, rate: float = 0.0, key: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
        """The posterior's (mu, logvar) of interaction rows `x` (float32); dropout of `rate`
        on the normalised input with `key` (None: none)."""
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + NORM_EPS
        h = dropout(x / norm, rate, key)
        earlier = jnp.zeros((), jnp.float32)  # h_1 + ... + h_{i-1}
        for layer, norm_layer in zip(self.dense, self.norms, strict=True):
            h = norm_layer(nnx.swish(layer(h).astype(jnp.float32) + earlier))
            earlier = earlier + h
        return self.mu(h), self.logvar(h)


class RecVAENetwork(nnx.Module):
    """The encoder, the decoder and the prior's encoder (initialised on its own, as the
    authors' `encoder_old`: it is the encoder's copy only from the first decoder phase on)."""

    def __init__(self, n_items: int, hidden: int, latent: int, *, rngs: nnx.Rngs,
                 input_dtype: Any = None):
        self.encoder = Encoder(n_items, hidden, latent, rngs=rngs, input_dtype=input_dtype)
        self.prior_encoder = Encoder(n_items, hidden, latent, rngs=rngs)
        self.decoder = dense(latent, n_items, rngs)


def init_params(hidden: int, latent: int, n_items: int, seed: int) -> dict[str, Any]:
    """The parameters {"encoder", "decoder", "prior_encoder"} as the authors' PyTorch code
    draws them: every linear layer's kernel and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    LayerNorm scale 1 and bias 0. To trace (`aerec.train.new_state` builds them in its
    program); one uniform draw, from fold_in(key(seed), 0), for all of them: each random call
    is one more part of the program to compile."""
    shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(
        lambda: RecVAENetwork(n_items, hidden, latent, rngs=nnx.Rngs(0)))))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    fan_ins = jax.tree.leaves(_fan_ins(shapes))  # 0: a LayerNorm's
    sizes = [leaf.size if fan_in else 0 for (_, leaf), fan_in in zip(leaves, fan_ins,
                                                                     strict=True)]
    uniform = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), 0), (sum(sizes),),
                                 jnp.float32, -1.0, 1.0)
    ends = np.cumsum(sizes).tolist()
    values = [uniform[end - size:end].reshape(leaf.shape) / math.sqrt(fan_in) if fan_in
              else jnp.full(leaf.shape, float(path[-1].key == "scale"), leaf.dtype)
              for (path, leaf), fan_in, size, end in zip(leaves, fan_ins, sizes, ends,
                                                         strict=True)]
    return jax.tree.unflatten(treedef, values)


def _fan_ins(node: dict) -> dict:
    """`node`'s tree with each leaf replaced by its layer's fan-in (0 for a LayerNorm's)."""
    fan_in = node["kernel"].shape[0] if "kernel" in node else 0
    return {key: _fan_ins(child) if isinstance(child, dict) else fan_in
            for key, child in node.items()}


def encoder_graph(hidden: int, latent: int, n_items: int, input_dtype: Any = None
                  ) -> nnx.GraphDef:
    """The encoder's graph alone, without allocating parameters."""
    abstract = nnx.eval_shape(lambda: Encoder(n_items, hidden, latent, rngs=nnx.Rngs(0),
                                              input_dtype=input_dtype))
    return nnx.split(abstract)[0]


def interactions(rows: jax.Array) -> jax.Array:
    """Rows of stored cells (any value, bfloat16 or float32) as float32 0/1 interactions."""
    return (rows > 0).astype(jnp.float32)


def encode(graph: nnx.GraphDef, encoder: Any, x: jax.Array, rate: float = 0.0,
           key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(mu, logvar) of interaction rows `x` by the encoder parameters `encoder`."""
    mu, logvar = nnx.merge(graph, encoder)(x, rate, key)
    return mu.astype(jnp.float32), logvar.astype(jnp.float32)


def decode(decoder: Any, z: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
    """Item logits (float32) of latent codes `z`; the matmul in `dtype`."""
    logits = jnp.matmul(z.astype(dtype), decoder["kernel"].astype(dtype))
    return logits.astype(jnp.float32) + decoder["bias"]


# The loss.

def log_normal(z: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mu, diag(exp(logvar))), per dimension."""
    return -0.5 * (logvar + LOG_2PI + (z - mu) ** 2 * jnp.exp(-logvar))


def composite_prior(z: jax.Array, prior_mu: jax.Array, prior_logvar: jax.Array,
                    weights: tuple[float, float, float]) -> jax.Array:
    """log p(z|x) per dimension: the mixture w_1 N(0, I) + w_2 N(prior_mu, exp(prior_logvar))
    + w_3 N(0, e^10 I)."""
    components = jnp.stack([log_normal(z, 0.0, 0.0), log_normal(z, prior_mu, prior_logvar),
                            log_normal(z, 0.0, UNIFORM_LOGVAR)], axis=-1)
    return jax.nn.logsumexp(components + jnp.log(jnp.asarray(weights, jnp.float32)), axis=-1)


def negative_elbo(x: jax.Array, counts: jax.Array, logits: jax.Array, z: jax.Array,
                  mu: jax.Array, logvar: jax.Array, prior_mu: jax.Array,
                  prior_logvar: jax.Array, *, gamma: float, beta: float | None,
                  weights: tuple[float, float, float]) -> jax.Array:
    """The batch's loss: per user, -(multinomial log-likelihood) + β_u KL, averaged over the
    users whose `counts` > 0 (batch padding, count 0, contributes nothing). β_u = `beta`
    when set, else `gamma` x the user's interactions (`counts`)."""
    log_likelihood = jnp.sum(jax.nn.log_softmax(logits, axis=-1) * x, axis=-1)
    kl = jnp.sum(log_normal(z, mu, logvar) - composite_prior(z, prior_mu, prior_logvar,
                                                              weights), axis=-1)
    kl_weight = (jnp.full(counts.shape, beta, jnp.float32) if beta is not None
                 else gamma * counts.astype(jnp.float32))
    valid = counts > 0
    per_user = jnp.where(valid, kl_weight * kl - log_likelihood, 0.0)
    return jnp.sum(per_user) / jnp.maximum(jnp.sum(valid), 1)


# Training: the objective and its alternating step.

def _is_parts(node: Any) -> bool:
    """Whether `node` is a tree of the model's parameters (or of its optimizer moments)."""
    return isinstance(node, dict) and set(node) == set(PARTS)


def _is_selected(node: Any) -> bool:
    return isinstance(node, optax.ScaleByAdamState) or _is_parts(node)


def part_state(opt_state: Any, part: str, count: jax.Array) -> Any:
    """The optimizer state of the parameters `part` alone: every parameter-shaped tree cut
    to `part`, Adam's step count set to `count` (the updates `part` has had), the rest (a
    learning-rate schedule's count: the run's step) as it is."""
    def cut(node: Any) -> Any:
        if isinstance(node, optax.ScaleByAdamState):
            return node._replace(count=count.astype(node.count.dtype), mu=node.mu[part],
                                 nu=node.nu[part])
        return node[part] if _is_parts(node) else node

    return jax.tree.map(cut, opt_state, is_leaf=_is_selected)


def merge_part_state(opt_state: Any, updated: Any, part: str) -> Any:
    """`opt_state` with `part`'s cut (`part_state`) replaced by `updated`; Adam's stored count
    stays the run's step count (each part's own is derived from the step)."""
    def put(node: Any, new: Any) -> Any:
        if isinstance(node, optax.ScaleByAdamState):
            return node._replace(count=node.count + 1, mu={**node.mu, part: new.mu},
                                 nu={**node.nu, part: new.nu})
        return {**node, part: new} if _is_parts(node) else new

    return jax.tree.map(put, opt_state, updated, is_leaf=_is_selected)


WHY_USER_ROWS = "RecVAE's rows are users"  # why model.orientation must be user


@dataclass(frozen=True)
class RecVAEObjective:
    """RecVAE's training for the shared epoch loop (`aerec.train.TrainingObjective`): an epoch
    is `passes` passes of `n_batches` batches each, the first `enc_passes` updating the
    encoder, the rest the decoder."""

    encoder_graph: nnx.GraphDef
    n_batches: int  # batches per pass (`aerec.train.steps_per_epoch`)
    enc_passes: int
    dec_passes: int
    dropout: float
    gamma: float
    beta: float | None
    prior_weights: tuple[float, float, float]
    compute_dtype: Any = jnp.float32

    @property
    def passes(self) -> int:
        """Passes over the training rows per epoch."""
        return self.enc_passes + self.dec_passes

    def phase(self, step: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """At optimizer step `step`: whether it updates the encoder, and the updates the
        encoder and the decoder have had before it."""
        encoder_steps, decoder_steps = (self.enc_passes * self.n_batches,
                                        self.dec_passes * self.n_batches)
        epoch, within = jnp.divmod(step, encoder_steps + decoder_steps)
        return (within < encoder_steps,
                epoch * encoder_steps + jnp.minimum(within, encoder_steps),
                epoch * decoder_steps + jnp.maximum(within - encoder_steps, 0))

    def loss(self, encoder: Any, decoder: Any, prior_encoder: Any | None, rows: jax.Array,
             counts: jax.Array, key: jax.Array, rate: float) -> jax.Array:
        """The negative ELBO of a batch with input dropout `rate`. `prior_encoder` None: the
        prior's encoder is `encoder` itself (the decoder phase, without dropout), whose
        posterior is the one just computed."""
        x = interactions(rows)
        dropout_key, noise_key = jax.random.split(key)
        mu, logvar = encode(self.encoder_graph, encoder, x, rate, dropout_key)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(noise_key, mu.shape)
        if prior_encoder is None:
            prior_mu, prior_logvar = mu, logvar
        else:  # a constant of the step: the prior is never trained
            prior_mu, prior_logvar = jax.lax.stop_gradient(
                encode(self.encoder_graph, prior_encoder, x))
        logits = decode(decoder, z, self.compute_dtype)
        return negative_elbo(x, counts, logits, z, mu, logvar, prior_mu, prior_logvar,
                             gamma=self.gamma, beta=self.beta, weights=self.prior_weights)

    def step_loss(self, params: Any, rows: jax.Array, counts: jax.Array,
                  key: jax.Array | None, step: jax.Array) -> jax.Array:
        """The loss the step `step` minimises (its phase's dropout and prior)."""
        encoding = self.phase(step)[0]
        key = jax.random.key(0) if key is None else key
        return jax.lax.cond(
            encoding,
            lambda: self.loss(params["encoder"], params["decoder"], params["prior_encoder"],
                              rows, counts, key, self.dropout),
            lambda: self.loss(params["encoder"], params["decoder"], None, rows, counts, key,
                              0.0))

    def train_step(self, optimizer: optax.GradientTransformation, state: TrainState,
                   rows: jax.Array, counts: jax.Array) -> tuple[TrainState, jax.Array]:
        """One update of the encoder or of the decoder, as the step's phase says; the other
        part's parameters and optimizer state are left as they are (not computed: one
        branch of a `lax.cond` runs). Each part's Adam bias correction counts the part's own
        updates, as the authors' two optimizers do."""
        from aerec.train import TrainState, step_key  # it imports the model families

        params, key = state.params, step_key(state)
        encoding, encoder_updates, decoder_updates = self.phase(state.step)

        def encoder_step() -> tuple[Any, Any, jax.Array]:
            loss, grads = jax.value_and_grad(
                lambda encoder: self.loss(encoder, params["decoder"], params["prior_encoder"],
                                          rows, counts, key, self.dropout))(params["encoder"])
            return (*self._update(optimizer, state.opt_state, params, "encoder", grads,
                                  encoder_updates), loss)

        def decoder_step() -> tuple[Any, Any, jax.Array]:
            # The authors set the prior's encoder to the encoder after the encoder passes.
            # The decoder passes leave the encoder as it is, so setting it at every decoder
            # step is the same copy; the encoder passes that follow read it.
            current = {**params, "prior_encoder": params["encoder"]}
            loss, grads = jax.value_and_grad(
                lambda decoder: self.loss(current["encoder"], decoder, None, rows, counts,
                                          key, 0.0))(current["decoder"])
            return (*self._update(optimizer, state.opt_state, current, "decoder", grads,
                                  decoder_updates), loss)

        new_params, opt_state, loss = jax.lax.cond(encoding, encoder_step, decoder_step)
        return TrainState(state.step + 1, new_params, opt_state, state.rng), loss

    @staticmethod
    def _update(optimizer: optax.GradientTransformation, opt_state: Any, params: Any,
                part: str, grads: Any, count: jax.Array) -> tuple[Any, Any]:
        """`params` and `opt_state` after the optimizer's update of `part` by `grads`;
        `count`: the updates `part` has had."""
        updates, updated = optimizer.update(grads, part_state(opt_state, part, count),
                                            params[part])
        return ({**params, part: optax.apply_updates(params[part], updates)},
                merge_part_state(opt_state, updated, part))


# Scoring.

def score_rows(graph: nnx.GraphDef, params: Any, row_ids: jax.Array | None, inputs: jax.Array
               ) -> jax.Array:
    """Every item's score (logit) for whole rows: the decoder at the posterior mean."""
    del row_ids  # a new user is scored as a known one
    mu, _ = encode(graph, params["encoder"], interactions(inputs))
    return decode(params["decoder"], mu)


# Compiled once per process and graph (equal graphs hash alike): the validation of every
# epoch builds a ranker of its own.
_score_rows = jax.jit(score_rows, static_argnums=0)
_score_new_rows = jax.jit(lambda graph, params, inputs: score_rows(graph, params, None, inputs),
                          static_argnums=0)


# The family on the model interface (`aerec.models.base`).

@dataclass(frozen=True)
class RecVAEConfig:
    """configs/model/recvae.yaml, typed (its comments explain each key)."""

    name: str = "recvae"
    hidden: int = 600
    latent: int = 200
    dropout: float = 0.5
    gamma: float = 0.005
    beta: float | None = None
    enc_passes: int = 3
    dec_passes: int = 1
    prior_weights: tuple[float, ...] = (0.15, 0.75, 0.1)
    orientation: str = "user"
    scaling: str = "none"



def _check_weights(weights: Any) -> None:
    """Three positive mixture weights that sum to 1."""
    listed = None if isinstance(weights, str) or not isinstance(weights, Sequence) else list(
        weights)
    if (listed is None or len(listed) != 3 or not all(is_number(w) and w > 0 for w in listed)
            or abs(sum(listed) - 1.0) > 1e-6):
        raise ConfigError(f"model.prior_weights={weights!r} must be three numbers > 0 that "
                          "sum to 1: the weights of N(0, I), the previous encoder's posterior "
                          "and N(0, e^10 I) (the authors': [0.15, 0.75, 0.1])")


def _check_kl_weight(gamma: Any, beta: Any) -> None:
    if not is_number(gamma) or gamma < 0:
        raise ConfigError(f"model.gamma={gamma!r} must be a number >= 0")
    if beta is None:
        if gamma == 0:
            raise ConfigError("model.gamma=0 with model.beta=null leaves the KL term without "
                              "a weight: set model.gamma > 0 (β = gamma x the user's "
                              "interactions) or a fixed model.beta")
    elif not is_number(beta) or beta < 0:
        raise ConfigError(f"model.beta={beta!r} must be null (β = gamma x the user's "
                          "interactions) or a number >= 0")


class RecVAEFamily:
    """RecVAE: trained in epochs by the shared loop, alternating encoder and decoder passes."""

    name = "recvae"
    config_type = RecVAEConfig
    iterative = True
    predicts_ratings = False  # top-N: its scores rank items, they are no ratings
    # The graph reads the widths; the orientation is checked by saved_problem.
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {
        "hidden": positive_int_problem, "latent": positive_int_problem}

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        positive_int("model.hidden", model["hidden"])
        positive_int("model.latent", model["latent"])
        fraction("model.dropout", model["dropout"])
        _check_kl_weight(model["gamma"], model["beta"])
        positive_int("model.enc_passes", model["enc_passes"])
        positive_int("model.dec_passes", model["dec_passes"])
        _check_weights(model["prior_weights"])
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        if problem is not None:
            raise ConfigError(f"model.orientation={model['orientation']!r} {problem} (it "
                              "encodes a user's interactions): set model.orientation=user")
        one_of("model.scaling", model["scaling"], ("none",))

    def from_mapping(self, model: Mapping[str, Any]) -> RecVAEConfig:
        """The typed config of a checked `model` section."""
        return config_from_mapping(RecVAEConfig, model)

    def objective(self, config: RecVAEConfig, n_items: int, n_batches: int,
                  compute_dtype: Any = jnp.float32) -> RecVAEObjective:
        """The training objective for `n_batches` batches per pass over the users."""
        graph = encoder_graph(config.hidden, config.latent, n_items, compute_dtype)
        return RecVAEObjective(
            graph, n_batches, config.enc_passes, config.dec_passes, float(config.dropout),
            float(config.gamma), None if config.beta is None else float(config.beta),
            tuple(float(w) for w in config.prior_weights), compute_dtype)

    def fit(self, config: RecVAEConfig, train: DeviceRows, scaling: Scaling,
            trainer: Trainer) -> tuple[Predictor, FitResult]:
        """The alternating training by the shared epoch loop; the kept parameters are the
        encoder and the decoder (the prior's encoder only trains)."""
        from aerec.train import steps_per_epoch  # it imports the model families

        n_items = train.shape[1]
        objective = self.objective(config, n_items, steps_per_epoch(train, trainer.batch_size),
                                   trainer.compute_dtype)
        predict = self.predictor(config, n_items, scaling)
        result = trainer.epochs(
            objective, partial(init_params, config.hidden, config.latent, n_items,
                               trainer.seed), predict)
        result.best_params = {part: result.best_params[part] for part in SERVED}
        return predict, result

    def predictor(self, config: RecVAEConfig, n_inputs: int, scaling: Scaling) -> Predictor:
        """`score_rows`: item logits, not ratings."""
        del scaling  # the input is interactions
        return partial(score_rows, encoder_graph(config.hidden, config.latent, n_inputs))

    def ranker(self, config: RecVAEConfig, params: Any, inputs: DeviceRows, *,
               scaling: Scaling, chunk_rows: int, fold_in_prior: float) -> Ranker:
        """A row's interactions through the encoder's mean and the decoder; a new user's
        history likewise."""
        del scaling, chunk_rows, fold_in_prior
        graph = encoder_graph(config.hidden, config.latent, inputs.shape[1])
        return InteractionRanker(partial(_score_rows, graph), partial(_score_new_rows, graph),
                                 params, inputs)

    def item_vectors(self, config: RecVAEConfig, params: Any, inputs: DeviceRows, *,
                     scaling: Scaling, chunk_rows: int) -> np.ndarray:
        """The decoder's column of each item: a user's logit of item j is the latent mean
        dotted with it (plus a bias)."""
        del config, inputs, scaling, chunk_rows
        return np.ascontiguousarray(np.asarray(params["decoder"]["kernel"], np.float32).T)

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """A saved RecVAE model's rows are users."""
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        return None if problem is None else ("model.orientation", problem)

    def param_shapes(self, config: RecVAEConfig, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """The encoder's and the decoder's, traced from the constructor training uses."""
        del rows, n_items
        shapes = jax.eval_shape(partial(init_params, config.hidden, config.latent, n_inputs, 0))
        return {part: shapes[part] for part in SERVED}, set()


RECVAE = RecVAEFamily()
