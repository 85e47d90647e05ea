"""Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018): two top-N families (`model=multvae`, `model=multdae`).

A user's row of interactions x (binary: every stored cell counts 1) is L2-normalised, dropped
out in training (inverted dropout at rate `dropout` on the normalised row) and encoded by
`hidden` layers; the decoder mirrors them ([latent, *reversed(hidden), n_items]) and ends in
linear logits over every item, whose softmax is the multinomial distribution of the user's
interactions. The loss of a batch is the mean over its users of

    -Σ_i x_i · log softmax(logits)_i                       (Mult-DAE: the code is the
                                                            encoder's last layer, activated)
    -Σ_i x_i · log softmax(logits(z))_i + β · KL(q(z|x) ‖ N(0, I))      (Mult-VAE)

plus `l2` · Σ W² over the weight matrices (Liang's 2 · lam/2 · ‖W‖²; biases are free). The
VAE's encoder ends in a linear layer of 2 · latent units, the mean and the log-variance of the
diagonal Gaussian q(z|x); training decodes z = μ + ε · exp(logvar / 2), ε ~ N(0, I), and β =
min(beta_cap, step / anneal_steps) grows with the optimizer step (β = beta_cap throughout when
anneal_steps is 0). Batch padding rows (count 0) are left out of every sum and of the number
of users. The step key (`aerec.train.step_key`) is split once: dropout, then ε.

A user's scores are the logits of the normalised row without dropout, decoded from the mean
for the VAE; a new user's history is such a row, 1 at each item. Weights start as Glorot
(Xavier) uniform, as in Liang's code, and biases at 0 (Liang: a normal of deviation 0.001
truncated at two deviations; zeros spare the compiled initialisation four random draws, for
biases that training moves far more).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aerec.checks import (
    count,
    fraction,
    is_integer,
    is_number,
    one_of,
    one_of_problem,
    positive_int,
    positive_int_problem,
    user_rows_problem,
)
from aerec.errors import ConfigError
from aerec.losses import cast, l2_penalty
from aerec.models.autoencoder import ACTIVATIONS, dropout
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.rankers import InteractionRanker, Ranker

if TYPE_CHECKING:
    from aerec.data.device_rows import DeviceRows
    from aerec.models.scaling import Scaling
    from aerec.train import FitResult


class MultNetwork(nnx.Module):
    """Encoder [n_items, *hidden, latent (x2 for the VAE)] and mirrored decoder [latent,
    *reversed(hidden), n_items]; `activation` after every layer but the VAE's mean and
    log-variance and the output logits."""

    def __init__(self, n_items: int, hidden: Sequence[int], latent: int, *, variational: bool,
                 activation: str, rngs: nnx.Rngs):
        code = 2 * latent if variational else latent
        encoder = [n_items, *hidden, code]
        decoder = [latent, *reversed(hidden), n_items]

        def linear(a: int, b: int) -> nnx.Linear:
            return nnx.Linear(a, b, kernel_init=nnx.initializers.xavier_uniform(), rngs=rngs)

        self.encoder = nnx.List([linear(a, b) for a, b in itertools.pairwise(encoder)])
        self.decoder = nnx.List([linear(a, b) for a, b in itertools.pairwise(decoder)])
        self.variational = variational
        self.activation = activation
        self.latent = latent

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """The code of normalised rows `x`: (mean, log-variance) for the VAE, (code, None)
        for the DAE."""
        act = ACTIVATIONS[self.activation]
        for layer in self.encoder[:-1]:
            x = act(layer(x))
        out = self.encoder[-1](x)
        if not self.variational:
            return act(out), None
        return out[:, :self.latent], out[:, self.latent:]

    def decode(self, z: jax.Array) -> jax.Array:
        """Logits over every item of codes `z`."""
        act = ACTIVATIONS[self.activation]
        for layer in self.decoder[:-1]:
            z = act(layer(z))
        return self.decoder[-1](z)


def build_network(config: Any, n_items: int, seed: int) -> MultNetwork:
    """The network of a typed config (`variational` for model=multvae)."""
    return MultNetwork(n_items, hidden_widths(config.hidden), int(config.latent),
                       variational=is_variational(config), activation=config.activation,
                       rngs=nnx.Rngs(seed))


def hidden_widths(hidden: int | Sequence[int]) -> tuple[int, ...]:
    """`model.hidden` as a tuple of widths: one width given alone, or a list of them."""
    return (int(hidden),) if isinstance(hidden, int) else tuple(int(w) for w in hidden)


def is_variational(config: Any) -> bool:
    """Whether a typed config is Mult-VAE's (a Gaussian code with a KL weight)."""
    return isinstance(config, MultVAEConfig)


def params_fn(config: Any, n_items: int, seed: int) -> Callable[[], Any]:
    """A function, to trace, that builds the parameters drawn from `seed`."""
    return lambda: nnx.to_pure_dict(nnx.split(build_network(config, n_items, seed))[1])


def graphdef_of(config: Any, n_items: int) -> nnx.GraphDef:
    """The network's graph alone, without allocating parameters."""
    return nnx.split(nnx.eval_shape(lambda: build_network(config, n_items, 0)))[0]


# The loss.

def normalised_rows(rows: jax.Array) -> jax.Array:
    """Binary rows (float32), each divided by its L2 norm (an empty row stays 0)."""
    x = (rows > 0).astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x, axis=1, keepdims=True), 1e-12))


def multinomial_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Each row's -Σ_i x_i log softmax(logits)_i."""
    return -jnp.sum(jax.nn.log_softmax(logits.astype(jnp.float32), axis=1) * x, axis=1)


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Each row's KL(N(mean, exp(logvar)) ‖ N(0, I))."""
    return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=1)


def kl_weight(step: jax.Array, beta_cap: float, anneal_steps: int) -> jax.Array:
    """β at optimizer step `step` (0 first): min(beta_cap, step / anneal_steps)."""
    if anneal_steps == 0:
        return jnp.asarray(beta_cap, jnp.float32)
    return jnp.minimum(beta_cap, jnp.asarray(step, jnp.float32) / anneal_steps)


WHY_USER_ROWS = "the model encodes a user's whole row"  # why model.orientation must be user


@dataclass(frozen=True)
class MultObjective:
    """What the loss needs besides arrays (`aerec.train.TrainingObjective`)."""

    graphdef: Any
    dropout: float = 0.5
    beta_cap: float = 0.0  # the VAE's; the DAE has no KL term
    anneal_steps: int = 0
    l2: float = 0.0
    compute_dtype: Any = jnp.float32  # bfloat16: matmuls in bf16, parameters and Adam in fp32

    def step_loss(self, params: Any, rows: jax.Array, counts: jax.Array,
                  key: jax.Array | None, step: jax.Array) -> jax.Array:
        """The batch's loss (module docstring); `key` None: no dropout, the VAE's mean."""
        nll, kl = loss_terms(self, params, rows, counts, key)
        loss = nll
        if kl is not None:
            loss = loss + kl_weight(step, self.beta_cap, self.anneal_steps) * kl
        if self.l2:
            loss = loss + self.l2 * l2_penalty(params)
        return loss


def loss_terms(objective: MultObjective, params: Any, rows: jax.Array, counts: jax.Array,
               key: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
    """The batch's mean multinomial NLL and mean KL (None for the DAE) over its users (rows
    of count > 0)."""
    dropout_key, noise_key = (None, None) if key is None else jax.random.split(key)
    network = nnx.merge(objective.graphdef, cast(params, objective.compute_dtype))
    clicks = (rows > 0).astype(jnp.float32)
    dropped = dropout(normalised_rows(clicks), objective.dropout, dropout_key)
    code, logvar = network.encode(dropped.astype(objective.compute_dtype))
    z = code
    if logvar is not None and noise_key is not None:  # reparameterisation
        z = code + jax.random.normal(noise_key, code.shape, code.dtype) * jnp.exp(0.5 * logvar)
    users = counts > 0
    n_users = jnp.maximum(jnp.sum(users, dtype=jnp.float32), 1.0)

    def mean(per_user: jax.Array) -> jax.Array:  # padding rows out of the sum (where: no NaN)
        return jnp.sum(jnp.where(users, per_user, 0.0)) / n_users

    nll = mean(multinomial_nll(network.decode(z), clicks))
    if logvar is None:
        return nll, None
    return nll, mean(gaussian_kl(code.astype(jnp.float32), logvar.astype(jnp.float32)))


# Scores.

def row_scores(graphdef: nnx.GraphDef, params: Any, inputs: jax.Array) -> jax.Array:
    """Every item's score (logit) for whole user rows: the decoded code of the normalised
    row, without dropout (the VAE's mean)."""
    network = nnx.merge(graphdef, params)
    return network.decode(network.encode(normalised_rows(inputs))[0])


@partial(jax.jit, static_argnums=0)
def _known_scores(graphdef: nnx.GraphDef, params: Any, row_ids: jax.Array, inputs: jax.Array
                  ) -> jax.Array:
    del row_ids  # a user is scored from the row alone
    return row_scores(graphdef, params, inputs)


@partial(jax.jit, static_argnums=0)
def _new_scores(graphdef: nnx.GraphDef, params: Any, inputs: jax.Array) -> jax.Array:
    return row_scores(graphdef, params, inputs)


@dataclass(frozen=True)
class MultScorer:
    """The family's predictor: scores of whole user rows (not ratings). Hashable: equal
    scorers share compiled programs."""

    graphdef: nnx.GraphDef

    def __call__(self, params: Any, row_ids: jax.Array, inputs: jax.Array) -> jax.Array:
        del row_ids  # a user is scored from the row alone
        return row_scores(self.graphdef, params, inputs)


# The families on the model interface (`aerec.models.base`).

@dataclass(frozen=True)
class MultVAEConfig:
    """configs/model/multvae.yaml, typed (its comments explain each key)."""

    name: str = "multvae"
    hidden: int | tuple[int, ...] = (600,)  # one width, or a list of widths
    latent: int = 200
    dropout: float = 0.5
    beta_cap: float = 0.2
    anneal_steps: int = 200_000
    l2: float = 0.0
    activation: str = "tanh"
    orientation: str = "user"
    scaling: str = "none"


@dataclass(frozen=True)
class MultDAEConfig:
    """configs/model/multdae.yaml, typed (its comments explain each key)."""

    name: str = "multdae"
    hidden: int | tuple[int, ...] = ()  # one width, or a list of widths
    latent: int = 200
    dropout: float = 0.5
    l2: float = 2.0e-5
    activation: str = "tanh"
    orientation: str = "user"
    scaling: str = "none"


def widths_problem(value: Any) -> str | None:
    """A layer width >= 1, or a list of them (empty: no hidden layer)."""
    listed = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if all(is_integer(width) and width >= 1 for width in listed):
        return None
    return "must be an integer >= 1 or a list of them, e.g. [600] ([] for no hidden layer)"



def check_number(key: str, value: Any) -> None:
    """A finite number >= 0."""
    if not is_number(value) or value < 0:
        raise ConfigError(f"{key}={value!r} must be a finite number >= 0")


class MultFamily:
    """Mult-VAE or Mult-DAE: trained in epochs by the shared loop; top-N (no ratings)."""

    iterative = True
    predicts_ratings = False  # its scores rank items; they are no ratings
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {
        "hidden": widths_problem, "latent": positive_int_problem,
        "activation": one_of_problem(tuple(ACTIVATIONS))}

    def __init__(self, name: str, config_type: type):
        self.name = name
        self.config_type = config_type

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        problem = widths_problem(model["hidden"])
        if problem:
            raise ConfigError(f"model.hidden={model['hidden']!r} {problem}")
        positive_int("model.latent", model["latent"])
        fraction("model.dropout", model["dropout"])
        if self.config_type is MultVAEConfig:  # the KL's keys
            check_number("model.beta_cap", model["beta_cap"])
            count("model.anneal_steps", model["anneal_steps"])
        check_number("model.l2", model["l2"])
        one_of("model.activation", model["activation"], tuple(ACTIVATIONS))
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        if problem:
            raise ConfigError(f"model.orientation={model['orientation']!r} {problem} (a "
                              "multinomial over every item): set model.orientation=user")
        if model["scaling"] != "none":
            raise ConfigError(f"model.scaling={model['scaling']!r} must be none: model="
                              f"{self.name} reads interactions, which are not scaled")

    def from_mapping(self, model: Mapping[str, Any]) -> Any:
        """The typed config of a checked `model` section."""
        return config_from_mapping(self.config_type, model)

    def fit(self, config: Any, train: DeviceRows, scaling: Scaling, trainer: Trainer
            ) -> tuple[Predictor, FitResult]:
        """The multinomial loss (with the annealed KL for the VAE) by the shared epoch loop."""
        del scaling  # interactions are read as they are
        n_items = train.shape[1]
        graphdef = graphdef_of(config, n_items)
        objective = MultObjective(graphdef, float(config.dropout),
                                  float(getattr(config, "beta_cap", 0.0)),
                                  int(getattr(config, "anneal_steps", 0)), float(config.l2),
                                  trainer.compute_dtype)
        predict = MultScorer(graphdef)
        return predict, trainer.epochs(objective, params_fn(config, n_items, trainer.seed),
                                       predict)

    def predictor(self, config: Any, n_inputs: int, scaling: Scaling) -> MultScorer:
        """Scores of whole user rows (`row_scores`)."""
        del scaling
        return MultScorer(graphdef_of(config, n_inputs))

    def ranker(self, config: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
               chunk_rows: int, fold_in_prior: float) -> Ranker:
        """A forward pass of each user's row; a new user's history likewise, 1 per item."""
        del scaling, chunk_rows, fold_in_prior
        graphdef = graphdef_of(config, inputs.shape[1])
        return InteractionRanker(partial(_known_scores, graphdef), partial(_new_scores, graphdef),
                                 params, inputs)

    def item_vectors(self, config: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
                     chunk_rows: int) -> np.ndarray:
        """The decoder's output column of each item: a user's logit of item j is the last
        hidden layer dotted with it (plus a bias)."""
        del config, inputs, scaling, chunk_rows
        decoder = params["decoder"]
        kernel = decoder[max(decoder, key=int)]["kernel"]
        return np.ascontiguousarray(np.asarray(kernel, np.float32).T)

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """A saved model's rows are users."""
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        return None if problem is None else ("model.orientation", problem)

    def param_shapes(self, config: Any, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """Traced from the constructor training uses (nothing allocated)."""
        del rows, n_items
        return jax.eval_shape(params_fn(config, n_inputs, 0)), set()


MULTVAE = MultFamily("multvae", MultVAEConfig)
MULTDAE = MultFamily("multdae", MultDAEConfig)
