"""Rankers: every item's score for a chunk of known users, or for a new user's rating history.

Ranking needs a user's scores over all items, whichever way the model is oriented:

- `RowRanker`: rows are users (user orientation). A user's scores are one forward pass of the
  user's ratings; a new user is the same forward pass of the history (no retraining).
- `ColumnRanker`: rows are items (item orientation; the paper's and I-AutoRec's layout). Every
  item's code (last hidden layer, or the SVD projection) is computed once; a user's scores then
  come from that user's column of the linear output layer: score(i, u) = out(code_i . W_u +
  b_u + offset_i). A new user has no column, so one is fitted to the history in closed form:
  ridge regression of the history's ratings on the items' codes, shrunk towards the average
  user's column (the classic fold-in of matrix factorisation; the item codes stay fixed because
  the new user's ratings are not part of any training input). The pull towards the average
  user weighs as much as `fold_in_prior` items with average code norm (2 by default: on
  ML-1M priors 1 to 5 give NDCG@10 within 0.003 of each other; experiments/README.md, "New
  users"). Without history it gives the average user's scores.
- `PopularityRanker`: the number of training ratings, the same for everyone.

Scores are on the raw rating scale (predicted ratings) except for popularity (counts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from aerec.data.device_rows import DeviceRows, padded_chunks, padded_size
from aerec.errors import DataError
from aerec.models.autoencoder import ACTIVATIONS
from aerec.models.scaling import Scaling

HIGHEST = jax.lax.Precision.HIGHEST


class Ranker(Protocol):
    """Scores of every item for users; higher is better."""

    n_items: int
    scores_are_ratings: bool

    def user_scores(self, users: np.ndarray) -> jax.Array:
        """(len(users), n_items) scores of known users (indices; -1 pads and gives junk)."""

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """(n_items,) scores for a user known only by ratings of `items` (indices)."""


@dataclass
class RowRanker:
    """User orientation: a forward pass of each user's row of ratings."""

    predict_rows: Any  # jit: (params, row_ids, inputs) -> predictions
    predict_new_rows: Any  # jit: (params, inputs) -> predictions for rows without an identity
    params: Any
    inputs: DeviceRows  # users x items
    scores_are_ratings: bool = True

    @property
    def n_items(self) -> int:
        """Number of items scored."""
        return self.inputs.shape[1]

    def user_scores(self, users: np.ndarray) -> jax.Array:
        """Predictions from the users' input rows."""
        safe = np.maximum(users, 0)
        return self.predict_rows(self.params, jax.device_put(safe), self.inputs.gather(users))

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The forward pass of a row holding only the history."""
        row = np.zeros((1, self.n_items), np.float32)
        row[0, items] = ratings
        return np.asarray(self.predict_new_rows(self.params, jax.device_put(row)))[0]


@dataclass
class InteractionRanker(RowRanker):
    """A user-row ranker of a top-N model: its scores are not ratings, and a new user's
    history counts 1 at each of its items, whatever the rating given."""

    scores_are_ratings: bool = False

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The scores of a row holding 1 at each history item."""
        return super().history_scores(items, np.ones(np.shape(ratings), np.float32))


def _decode_columns(codes: jax.Array, kernel: jax.Array, bias: jax.Array, offset: jax.Array,
                    columns: jax.Array, *, activation: str, scaling: Scaling) -> jax.Array:
    """(len(columns), n_items) raw-scale scores: members' out(code . W_u + b_u + offset)."""
    outputs = (jnp.einsum("mid,mdu->mui", codes, kernel[:, :, columns], precision=HIGHEST)
               + bias[:, columns][:, :, None] + offset[:, None, :])
    return jnp.mean(scaling.decode(ACTIVATIONS[activation](outputs)), axis=0)


def _fold_in_column(codes: jax.Array, kernel: jax.Array, bias: jax.Array, offset: jax.Array,
                    items: jax.Array, targets: jax.Array, weight: jax.Array, l2: float
                    ) -> tuple[jax.Array, jax.Array]:
    """Per member, the output column (w, b) fitted to `targets` on `items`, by ridge
    regression towards the average column: (A^T A + l2 I) d = A^T (t - A p), (w, b) = p + d.
    `weight` is 1 for the history's entries and 0 for padding, which takes no part.
    """
    def one_member(codes_m, kernel_m, bias_m, offset_m):
        prior = jnp.concatenate([jnp.mean(kernel_m, axis=1), jnp.mean(bias_m)[None]])
        design = jnp.concatenate([codes_m[items], jnp.ones((items.size, 1))],
                                 axis=1) * weight[:, None]
        residual = (targets - offset_m[items]) * weight - design @ prior
        gram = design.T @ design + l2 * jnp.eye(design.shape[1])
        column = prior + jnp.linalg.solve(gram, design.T @ residual)
        return column[:-1], column[-1]

    return jax.vmap(one_member)(codes, kernel, bias, offset)


def _history_scores(codes: jax.Array, kernel: jax.Array, bias: jax.Array, offset: jax.Array,
                    items: jax.Array, targets: jax.Array, weight: jax.Array, l2: float, *,
                    scaling: Scaling) -> jax.Array:
    """(n_items,) raw-scale scores decoded with the column folded in from a history."""
    weights, biases = _fold_in_column(codes, kernel, bias, offset, items, targets, weight, l2)
    outputs = codes @ weights[:, :, None] + biases[:, None, None]
    return jnp.mean(scaling.decode(outputs[..., 0] + offset), axis=0)


def padded_history(items: np.ndarray, targets: np.ndarray, minimum: int = 16
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A history padded to the next power of two (at least `minimum`) with weight-0 entries:
    (items, targets, weight). Histories of many lengths then share a few compiled programs
    instead of compiling one each."""
    padding = padded_size(int(items.size), minimum) - items.size
    return (np.pad(np.asarray(items, np.int32), (0, padding)),
            np.pad(np.asarray(targets, np.float32), (0, padding)),
            np.pad(np.ones(items.size, np.float32), (0, padding)))


@dataclass
class ColumnRanker:
    """Item orientation: fixed item codes decoded by each user's output column."""

    codes: jax.Array  # (members, n_items, width)
    kernel: jax.Array  # (members, width, n_users)
    bias: jax.Array  # (members, n_users)
    offset: jax.Array  # (members, n_items): the SVD's item baseline; 0 for the autoencoder
    activation: str
    scaling: Scaling
    fold_in_prior: float = 2.0
    scores_are_ratings: bool = True

    def __post_init__(self):
        # In units of one item's squared code norm (+1 for the bias), so that the prior's
        # weight does not depend on the width or activation of the code layer.
        self.code_norm = float(jnp.mean(jnp.sum(self.codes**2, axis=-1))) + 1.0
        self._decode = jax.jit(partial(_decode_columns, activation=self.activation,
                                       scaling=self.scaling))
        self._history = jax.jit(partial(_history_scores, scaling=self.scaling))

    @property
    def n_items(self) -> int:
        """Number of items scored."""
        return int(self.codes.shape[1])

    def user_scores(self, users: np.ndarray) -> jax.Array:
        """Decode every item's code with the users' output columns."""
        return self._decode(self.codes, self.kernel, self.bias, self.offset,
                            jax.device_put(np.maximum(users, 0)))

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Decode with an output column fitted to the history (see the module docstring)."""
        if self.activation != "linear":
            raise DataError("recommendations for a new user with an item-oriented model need "
                            "a linear output layer (model.output_activation=linear)")
        strength = self.fold_in_prior * self.code_norm
        if math.isinf(strength):  # an infinitely strong prior: the average user
            items, ratings, strength = items[:0], ratings[:0], 1.0
        targets = (np.asarray(ratings, np.float32) - self.scaling.shift) / self.scaling.scale
        items, targets, weight = padded_history(np.asarray(items), targets)
        return np.asarray(self._history(self.codes, self.kernel, self.bias, self.offset,
                                        items, targets, weight, strength))


@dataclass
class PopularityRanker:
    """Most rated first, for every user."""

    counts: jax.Array
    # The items' damped mean ratings: shown beside a recommendation, not ranked by.
    item_ratings: jax.Array | None = None
    scores_are_ratings: bool = False

    @property
    def n_items(self) -> int:
        """Number of items scored."""
        return int(self.counts.shape[0])

    def user_scores(self, users: np.ndarray) -> jax.Array:
        """The item counts, one row per user."""
        return jnp.broadcast_to(self.counts[None, :], (len(users), self.n_items))

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The item counts."""
        del items, ratings
        return np.asarray(self.counts)


def item_codes(encode: Any, params: Any, inputs: DeviceRows, chunk_rows: int) -> jax.Array:
    """encode(params, ids, rows) over every row of `inputs` in fixed-size chunks: (members,
    rows, width). The parameters are an argument of the compiled `encode`, not constants
    captured in it (which would put the whole input layer into the program and its cache
    entry). The padding is cut once, after the chunks are joined: slicing each chunk would
    compile one more program for the last, partial one."""
    parts = [encode(params, jax.device_put(np.maximum(ids, 0)), inputs.gather(ids))
             for _, ids, _ in padded_chunks(np.arange(inputs.shape[0]), chunk_rows)]
    return jnp.concatenate(parts, axis=1)[:, :inputs.shape[0]]


@dataclass
class LearnedFirst:
    """Another ranker's scores, with the items the model learned nothing of ranked after all
    the others (the lowest finite score: -inf marks an excluded item, never ranked): their
    scores are the network's untrained output, and the training mean that `predict` gives
    them would rank them above every item of a model whose scores are not ratings (trained
    on all cells, they sit near the bottom of the scale). Shown in a recommendation, such an
    item's predicted rating is the training mean, as `predict` has it."""

    inner: Any
    unknown: np.ndarray  # (n_items,) bool

    def __post_init__(self):
        self._unknown = jax.device_put(self.unknown)

    @property
    def n_items(self) -> int:
        """Number of items scored."""
        return self.inner.n_items

    @property
    def scores_are_ratings(self) -> bool:
        """Whether the (finite) scores are predicted ratings."""
        return self.inner.scores_are_ratings

    def user_scores(self, users: np.ndarray) -> jax.Array:
        """The inner ranker's scores, the lowest at unknown items."""
        scores = self.inner.user_scores(users)
        return jnp.where(self._unknown[None, :], jnp.finfo(scores.dtype).min, scores)

    def history_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """The inner ranker's scores, the lowest at unknown items."""
        scores = np.asarray(self.inner.history_scores(items, ratings))
        return np.where(self.unknown, np.finfo(scores.dtype).min, scores)


def unknown_items(by_user: bool, trained_columns: np.ndarray, rows_with_input: np.ndarray
                  ) -> np.ndarray:
    """The items a model learned nothing of: with user rows, its output columns that had no
    training rating; with item rows, its rows without input ratings."""
    return ~(trained_columns if by_user else rows_with_input)


def build_ranker(model: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
                 chunk_rows: int = 1024, fold_in_prior: float = 2.0,
                 unknown: np.ndarray | None = None) -> Ranker:
    """The ranker of a trained model (`model`: its typed config), reading `inputs` (train
    [+ fold-in] ratings, in the model's orientation) as what it knows of every user and item;
    the `unknown` items (see `unknown_items`) ranked last, except by popularity (whose scores
    are counts)."""
    ranker = _model_ranker(model, params, inputs, scaling=scaling, chunk_rows=chunk_rows,
                           fold_in_prior=fold_in_prior)
    if unknown is None or not unknown.any() or not ranker.scores_are_ratings:
        return ranker
    return LearnedFirst(ranker, np.asarray(unknown, bool))


def _model_ranker(model: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
                  chunk_rows: int, fold_in_prior: float) -> Ranker:
    """The ranker of the model itself (`build_ranker`); `model`: its typed config, or a
    `model` section to read one from."""
    from aerec.models.registry import family_of, model_config  # the families import this

    config = model_config(model) if isinstance(model, Mapping) else model
    return family_of(config).ranker(config, params, inputs, scaling=scaling,
                                    chunk_rows=chunk_rows, fold_in_prior=fold_in_prior)
