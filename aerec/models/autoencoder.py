"""The paper's autoencoder as a Flax NNX module: encoder layers, a latent layer, linear output."""

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
    boolean_problem,
    fraction,
    fraction_problem,
    one_of,
    one_of_problem,
    positive_int,
    positive_int_problem,
    widths_problem,
)
from aerec.errors import ConfigError
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.models.scaling import SCALINGS, Scaling

if TYPE_CHECKING:
    from aerec.data.device_rows import DeviceRows
    from aerec.rankers import Ranker
    from aerec.train import FitResult

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "linear": lambda x: x,
}


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout with an explicit key; identity when `key` is None (evaluation)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class AutoEncoder(nnx.Module):
    """x -> encoder layers -> latent -> [mirrored decoder layers] -> linear reconstruction.

    Hidden layers use `activation` (the paper: Tanh for the encoder and the latent space), the
    output layer `output_activation` (the paper: linear). Dropout acts on every hidden output in
    training; `input_dropout` (a denoising option) on the input.
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int], latent: int, *,
                 activation: str = "tanh", output_activation: str = "linear",
                 dropout: float = 0.1, input_dropout: float = 0.0,
                 mirror_decoder: bool = False, rngs: nnx.Rngs):
        for name in (activation, output_activation):
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
        widths = [*hidden, latent]
        if mirror_decoder:
            widths += list(reversed(hidden))
        sizes = [n_inputs, *widths, n_inputs]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                                for a, b in itertools.pairwise(sizes)])
        self.activation = activation
        self.output_activation = output_activation
        self.dropout_rate = dropout
        self.input_dropout = input_dropout

    def __call__(self, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Reconstruct `x` (batch, n_inputs); pass `dropout_key` only in training."""
        keys = [None] * len(self.layers)
        if dropout_key is not None:
            keys = list(jax.random.split(dropout_key, len(self.layers)))
        x = dropout(x, self.input_dropout, keys[-1])
        hidden_activation = ACTIVATIONS[self.activation]
        for layer, key in zip(self.layers[:-1], keys[:-1], strict=True):
            x = dropout(hidden_activation(layer(x)), self.dropout_rate, key)
        return ACTIVATIONS[self.output_activation](self.layers[-1](x))

    def encode(self, x: jax.Array) -> jax.Array:
        """The last hidden layer's output for input `x` (evaluation: no dropout)."""
        hidden_activation = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = hidden_activation(layer(x))
        return x

    def decoder(self) -> tuple[jax.Array, jax.Array]:
        """The output layer's (kernel, bias): column j decodes output unit j."""
        output = self.layers[-1]
        return output.kernel[...], output.bias[...]


def build_autoencoder(model_cfg: Any, n_inputs: int, seed: int) -> AutoEncoder:
    """An AutoEncoder from the `model` config group (`layers`, `hidden`, `latent`, ...)."""
    layers = int(model_cfg.layers)
    hidden = model_cfg.hidden
    widths = [int(hidden)] * layers if isinstance(hidden, int) else [int(h) for h in hidden]
    if len(widths) != layers:
        raise ValueError(f"model.hidden lists {len(widths)} widths but model.layers={layers}")
    return AutoEncoder(
        n_inputs, widths, int(model_cfg.latent),
        activation=model_cfg.activation, output_activation=model_cfg.output_activation,
        dropout=float(model_cfg.dropout), input_dropout=float(model_cfg.input_dropout),
        mirror_decoder=bool(model_cfg.mirror_decoder), rngs=nnx.Rngs(seed),
    )


def graphdef_of(model_cfg: Any, n_inputs: int) -> nnx.GraphDef:
    """The module's graph alone, without allocating parameters."""
    abstract = nnx.eval_shape(lambda: build_autoencoder(model_cfg, n_inputs, 0))
    return nnx.split(abstract)[0]


def member_params_fn(model_cfg: Any, n_inputs: int, seed: int, members: int
                     ) -> Callable[[], Any]:
    """A function, to trace, that builds the parameters of `members` models (seeds seed,
    seed+1, ...) stacked on a leading member axis (see `init_members`)."""
    def stacked_params() -> Any:
        models = [build_autoencoder(model_cfg, n_inputs, seed + m) for m in range(members)]
        states = [nnx.to_pure_dict(nnx.split(model)[1]) for model in models]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)

    return stacked_params


def init_members(model_cfg: Any, n_inputs: int, seed: int, members: int
                 ) -> tuple[nnx.GraphDef, Any]:
    """The module's graph and the parameters of `members` models (seeds seed, seed+1, ...).

    Parameters are stacked on a leading member axis, also for a single model, so that one code
    path trains an ensemble: members share batches but not weights, and Adam's element-wise
    updates keep their training independent. (Training builds them with its optimizer state
    instead: `aerec.train.new_state` of `member_params_fn`.)
    """
    # One compiled program, not a dozen eagerly compiled random ops: the same values.
    return graphdef_of(model_cfg, n_inputs), jax.jit(
        member_params_fn(model_cfg, n_inputs, seed, members))()


def member_models(graphdef: nnx.GraphDef, params: Any) -> list[AutoEncoder]:
    """Each member of stacked `params` as a module of its own, to run one after another.

    Not vmapped: a member axis in the matmuls made XLA's GPU layout store every
    (batch, n_inputs) array with the batch index fastest; plain 2-D matmuls keep rows
    contiguous (experiments/README.md, GPU runs 3 and 4).
    """
    members = jax.tree.leaves(params)[0].shape[0]
    return [nnx.merge(graphdef, jax.tree.map(lambda leaf, m=m: leaf[m], params))
            for m in range(members)]


def apply_members(graphdef: nnx.GraphDef, params: Any, x: jax.Array,
                  dropout_key: jax.Array | None = None) -> jax.Array:
    """Outputs of every member for input `x`: shape (members, batch, width of `x`)."""
    models = member_models(graphdef, params)
    keys = ([None] * len(models) if dropout_key is None
            else jax.random.split(dropout_key, len(models)))
    return jnp.stack([model(x, dropout_key=key) for model, key in zip(models, keys,
                                                                         strict=True)])


def predict_ratings(graphdef: nnx.GraphDef, scaling: Scaling, params: Any, row_ids: jax.Array,
                    inputs: jax.Array) -> jax.Array:
    """Raw-scale predictions for whole rows: the members' reconstructions, averaged."""
    del row_ids  # the autoencoder reads the row's ratings, not its identity
    outputs = apply_members(graphdef, params, scaling.encode(inputs))
    return jnp.mean(scaling.decode(outputs), axis=0)


@dataclass(frozen=True)
class AutoEncoderPredictor:
    """The autoencoder's predictions for an evaluator: whole rows when called
    (`predict_ratings`), or the held-out cells alone in three steps that an evaluator
    compiles apart (`aerec.rating_metrics.Evaluator.evaluate_cells`): `decoder` once per
    evaluation, `encode` per chunk of rows, `decode_cells` at the chunk's cells.

    Held-out ratings are a few percent of a row's cells, and the output layer's full matmul
    costs as much as the encoder's. Its dot products at the cells alone read one output
    column per cell: from the transposed kernel made by `decoder`, and from codes made by
    `encode`, each in a program of its own, because fused into the gathers (which XLA's CPU
    does within one program, barrier or not) the transpose was read column-wise and the
    activation recomputed for every gathered element.
    Equal predictors hash alike, so they share compiled programs.
    """

    graphdef: nnx.GraphDef
    scaling: Scaling
    output_activation: str  # the model's (model.output_activation), as its graph applies it

    def __call__(self, params: Any, row_ids: jax.Array, inputs: jax.Array) -> jax.Array:
        return predict_ratings(self.graphdef, self.scaling, params, row_ids, inputs)

    def decoder(self, params: Any) -> tuple[jax.Array, jax.Array]:
        """Every member's output kernel transposed (members, n, width) and bias (members, n)."""
        kernel, bias = decoder_members(self.graphdef, params)
        return jnp.swapaxes(kernel, 1, 2), bias

    def encode(self, params: Any, row_ids: jax.Array, inputs: jax.Array) -> jax.Array:
        """Every member's code of the rows (members, rows, width)."""
        del row_ids  # the autoencoder reads the row's ratings, not its identity
        return encode_members(self.graphdef, params, self.scaling.encode(inputs))

    def decode_cells(self, decoder: tuple[jax.Array, jax.Array], codes: jax.Array,
                     cell_rows: jax.Array, cell_cols: jax.Array) -> jax.Array:
        """Raw-scale predictions at cells k = (code row `cell_rows[k]`, column
        `cell_cols[k]`), the members' averaged."""
        columns, bias = decoder
        # Member by member: gathers under a member axis took a third longer per member on
        # a CPU (ML-1M, three members of 500).
        outputs = jnp.stack([jnp.sum(codes[m][cell_rows] * columns[m][cell_cols], axis=-1)
                             + bias[m][cell_cols] for m in range(codes.shape[0])])
        outputs = ACTIVATIONS[self.output_activation](outputs)
        return jnp.mean(self.scaling.decode(outputs), axis=0)


def encode_members(graphdef: nnx.GraphDef, params: Any, x: jax.Array) -> jax.Array:
    """Every member's last hidden layer for input `x`: shape (members, batch, width)."""
    return jnp.stack([model.encode(x) for model in member_models(graphdef, params)])


def decoder_members(graphdef: nnx.GraphDef, params: Any) -> tuple[jax.Array, jax.Array]:
    """Every member's output-layer kernel (members, width, n) and bias (members, n)."""
    return jax.vmap(lambda p: nnx.merge(graphdef, p).decoder())(params)


def row_codes(graphdef: nnx.GraphDef, params: Any, inputs: DeviceRows, scaling: Scaling,
              chunk_rows: int) -> jax.Array:
    """Every member's code of every row of `inputs`: (members, rows, width)."""
    from aerec.rankers import item_codes  # it imports this module

    encode = jax.jit(lambda p, ids, x: encode_members(graphdef, p, scaling.encode(x)))
    return item_codes(encode, params, inputs, chunk_rows)


# The family on the model interface (`aerec.models.base`).

LOSSES = ("masked", "all_cells")


@dataclass(frozen=True)
class AutoencoderConfig:
    """configs/model/autoencoder.yaml, typed (its comments explain each key)."""

    name: str = "autoencoder"
    layers: int = 1
    hidden: int | tuple[int, ...] = 500  # one width for every encoder layer, or one each
    latent: int = 500
    activation: str = "tanh"
    output_activation: str = "linear"
    dropout: float = 0.1
    input_dropout: float = 0.0
    mirror_decoder: bool = False
    orientation: str = "item"
    scaling: str = "none"
    loss: str = "masked"
    l2: float = 1.0e-4
    ensemble: int = 1


class AutoencoderFamily:
    """The paper's autoencoder: trained in epochs by the shared loop; an ensemble's members
    stacked on a leading axis of every parameter."""

    name = "autoencoder"
    config_type = AutoencoderConfig
    iterative = True
    predicts_ratings = True
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {
        "layers": positive_int_problem, "hidden": widths_problem, "latent": positive_int_problem,
        "activation": one_of_problem(tuple(ACTIVATIONS)),
        "output_activation": one_of_problem(tuple(ACTIVATIONS)), "dropout": fraction_problem,
        "input_dropout": fraction_problem, "mirror_decoder": boolean_problem,
        "ensemble": positive_int_problem}

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        positive_int("model.layers", model["layers"])
        hidden = model["hidden"]
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        if not isinstance(hidden, int) and len(widths) != model["layers"]:
            raise ConfigError(f"model.hidden lists {len(widths)} widths, "
                              f"model.layers={model['layers']}")
        for width in [*widths, model["latent"]]:
            if not isinstance(width, int) or width < 1:
                raise ConfigError(f"model.hidden / model.latent: widths must be integers >= 1, "
                                  f"got {width!r}")
        fraction("model.dropout", model["dropout"])
        fraction("model.input_dropout", model["input_dropout"])
        one_of("model.activation", model["activation"], tuple(ACTIVATIONS))
        one_of("model.output_activation", model["output_activation"], tuple(ACTIVATIONS))
        one_of("model.scaling", model["scaling"], SCALINGS)
        one_of("model.loss", model["loss"], LOSSES)
        positive_int("model.ensemble", model["ensemble"])
        if model["l2"] < 0:
            raise ConfigError(f"model.l2={model['l2']} must be >= 0")

    def from_mapping(self, model: Mapping[str, Any]) -> AutoencoderConfig:
        """The typed config of a checked `model` section."""
        return config_from_mapping(AutoencoderConfig, model)

    def fit(self, config: AutoencoderConfig, train: DeviceRows, scaling: Scaling,
            trainer: Trainer) -> tuple[Predictor, FitResult]:
        """The masked (or all-cells) reconstruction loss, trained by the shared epoch loop."""
        from aerec.losses import Objective  # it imports this module

        n_inputs = train.shape[1]
        graphdef = graphdef_of(config, n_inputs)
        objective = Objective(graphdef, scaling, all_cells=config.loss == "all_cells",
                              l2=float(config.l2), compute_dtype=trainer.compute_dtype)
        predict = AutoEncoderPredictor(graphdef, scaling, config.output_activation)
        init = member_params_fn(config, n_inputs, trainer.seed, config.ensemble)
        return predict, trainer.epochs(objective, init, predict)

    def predictor(self, config: AutoencoderConfig, n_inputs: int, scaling: Scaling
                  ) -> AutoEncoderPredictor:
        """Whole rows, or held-out cells alone (`AutoEncoderPredictor`)."""
        return AutoEncoderPredictor(graphdef_of(config, n_inputs), scaling,
                                    config.output_activation)

    def ranker(self, config: AutoencoderConfig, params: Any, inputs: DeviceRows, *,
               scaling: Scaling, chunk_rows: int, fold_in_prior: float) -> Ranker:
        """User rows: a forward pass of each row; item rows: every item's code decoded by
        each user's output column (`aerec.rankers`)."""
        from aerec.rankers import ColumnRanker, RowRanker  # it imports this module

        graphdef = graphdef_of(config, inputs.shape[1])
        if config.orientation == "user":
            predict = partial(predict_ratings, graphdef, scaling)
            return RowRanker(jax.jit(predict), jax.jit(lambda p, x: predict(p, None, x)),
                             params, inputs)
        codes = row_codes(graphdef, params, inputs, scaling, chunk_rows)
        kernel, bias = decoder_members(graphdef, params)
        return ColumnRanker(codes, kernel, bias, jnp.zeros(codes.shape[:2]),
                            config.output_activation, scaling, fold_in_prior)

    def item_vectors(self, config: AutoencoderConfig, params: Any, inputs: DeviceRows, *,
                     scaling: Scaling, chunk_rows: int) -> np.ndarray:
        """User rows: the output layer's column of each item, the item's factor in its score
        code_u . W_i + b_i (the encoder's first layer reads the item as an input instead, and
        does not say how the model scores it); item rows: each item's code (last hidden
        layer) of its input row, the factor the ranker decodes with each user's column.
        An ensemble's members are concatenated."""
        graphdef = graphdef_of(config, inputs.shape[1])
        if config.orientation == "user":
            kernel, _ = decoder_members(graphdef, params)  # (members, width, n_items)
            vectors = jnp.transpose(kernel, (2, 0, 1))
        else:
            codes = row_codes(graphdef, params, inputs, scaling, chunk_rows)
            vectors = jnp.transpose(codes, (1, 0, 2))  # (members, n_items, width)
        return np.asarray(vectors, np.float32).reshape(vectors.shape[0], -1)

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """A list of widths must have one per encoder layer."""
        hidden = model["hidden"]
        if isinstance(hidden, list) and len(hidden) != model["layers"]:
            return "model.hidden", f"lists {len(hidden)} widths, model.layers={model['layers']}"
        return None

    def param_shapes(self, config: AutoencoderConfig, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """Traced from the constructor training uses (nothing allocated)."""
        del rows, n_items
        return jax.eval_shape(member_params_fn(config, n_inputs, 0, config.ensemble)), set()


AUTOENCODER = AutoencoderFamily()
