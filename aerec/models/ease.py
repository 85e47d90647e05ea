"""EASE (Steck, WWW 2019) and its denoising successors DLAE / EDLAE (Steck, NeurIPS 2020):
a linear item-to-item autoencoder fitted in closed form. A top-N family: it ranks items and
predicts no ratings.

X is the binary users x items matrix of the training interactions (every stored cell counts 1,
whatever its value), G = XᵀX, and Λ the diagonal penalty λI + p/(1-p)·diag(G) (`model.l2` = λ,
`model.dropout` = p; p = 0 is plain EASE). With P = (G + Λ)⁻¹:

- `zero_diagonal=true` (EASE; EDLAE with p > 0): B = I - P·diag(1/diag(P)), whose diagonal is
  0, the least-squares B under the constraint diag(B) = 0;
- `zero_diagonal=false` (DLAE): B = (G + Λ)⁻¹G = I - P·Λ, without the constraint.

A user's scores are x_u·B (x_u: the user's interaction row); a new user's history is such a
row, 1 at each item of the history. G is accumulated on the device from blocks of rows; P comes
from a float32 Cholesky factorisation (`jax.scipy.linalg`), in one program that reuses G's
buffer for B: about three n_items x n_items float32 matrices at its peak (`fit_bytes`). A
catalogue beyond the device's free memory is refused before anything is computed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve

from aerec.checks import fraction, is_number, one_of, user_rows_problem
from aerec.data.device_rows import BLOCK_CELLS, DeviceRows, padded_chunks
from aerec.errors import ConfigError
from aerec.models.base import FieldCheck, Predictor, Trainer, config_from_mapping
from aerec.models.scaling import SCALINGS, Scaling
from aerec.rankers import InteractionRanker, Ranker

if TYPE_CHECKING:
    from aerec.train import FitResult

HIGHEST = jax.lax.Precision.HIGHEST
FIT_MATRICES = 3  # n_items x n_items float32 matrices alive at the fit's peak (see solve_ease)


# The closed form.

@partial(jax.jit, donate_argnums=0)
def _add_block_gram(gram: jax.Array, block: jax.Array) -> jax.Array:
    """gram + XᵀX of one block of rows, X = (block > 0) (zero padding rows add nothing)."""
    x = (block > 0).astype(jnp.float32)
    return gram + jnp.matmul(x.T, x, precision=HIGHEST)


def block_rows(n_rows: int, n_items: int) -> int:
    """Rows per block of the Gram accumulation: at most BLOCK_CELLS cells and at most an
    n_items x n_items matrix's (the fit's memory bound holds while G is summed), spread
    evenly over the blocks so that the last one is not mostly padding."""
    cap = max(1, min(BLOCK_CELLS, n_items * n_items) // max(n_items, 1))
    blocks = -(-max(n_rows, 1) // cap)
    return -(-max(n_rows, 1) // blocks)


def gram_matrix(train: DeviceRows) -> jax.Array:
    """G = XᵀX (float32, n_items x n_items) of the binary interactions, on the device, summed
    over blocks of rows (one compiled program for all of them). Its entries are co-occurrence
    counts, exact in float32 up to 2**24."""
    n_rows, n_items = train.shape
    gram = jnp.zeros((n_items, n_items), jnp.float32)
    for _, ids, _ in padded_chunks(np.arange(n_rows), block_rows(n_rows, n_items)):
        gram = _add_block_gram(gram, train.gather(ids))
    return gram


@partial(jax.jit, static_argnames="zero_diagonal", donate_argnums=0)
def solve_ease(gram: jax.Array, l2: float, dropout_weight: float, *, zero_diagonal: bool
               ) -> jax.Array:
    """B from G (whose buffer it takes over: G is gone after the call), λ = `l2` and
    `dropout_weight` = p/(1-p): the module docstring's closed forms. One float32 program
    holding G (then B) and two n x n temporaries (the factor, then P)."""
    n = gram.shape[0]
    diagonal = jnp.arange(n)
    penalty = dropout_weight * jnp.diagonal(gram) + l2  # Λ's diagonal
    factor = cho_factor(gram.at[diagonal, diagonal].add(penalty), lower=True)
    inverse = cho_solve(factor, jnp.eye(n, dtype=gram.dtype))  # P
    if zero_diagonal:  # set exactly: P_jj / P_jj may round away from 1 once fused
        return (-inverse / jnp.diagonal(inverse)[None, :]).at[diagonal, diagonal].set(0.0)
    return jnp.eye(n, dtype=gram.dtype) - inverse * penalty[None, :]


def fit_ease(train: DeviceRows, *, l2: float, dropout: float, zero_diagonal: bool
             ) -> dict[str, jax.Array]:
    """The weights {"B": (n_items, n_items) float32} from the training rows (users x items).

    Full float32 products: on GPUs the default matmul precision is TF32, whose 10-bit mantissa
    would perturb the factorisation."""
    with jax.default_matmul_precision("highest"):
        weights = solve_ease(gram_matrix(train), float(l2), float(dropout / (1.0 - dropout)),
                             zero_diagonal=bool(zero_diagonal))
    return {"B": weights}


def predict_ease(params: dict[str, jax.Array], row_ids: jax.Array, inputs: jax.Array
                 ) -> jax.Array:
    """Scores of whole user rows: (inputs > 0) @ B, every interaction counting 1."""
    del row_ids  # a new user is scored the same way as a known one
    return jnp.matmul((inputs > 0).astype(jnp.float32), params["B"], precision=HIGHEST)


def history_scores(params: dict[str, jax.Array], inputs: jax.Array) -> jax.Array:
    """Scores of rows without an identity (a new user's history)."""
    return predict_ease(params, jnp.zeros(inputs.shape[0], jnp.int32), inputs)


# Memory.

def fit_bytes(n_items: int) -> int:
    """Device bytes a fit needs at its peak: FIT_MATRICES float32 n_items x n_items matrices
    (G, the Cholesky factor, P, B, with G's buffer reused for B; the compiled program's own
    measure on the CPU backend), besides the training rows."""
    return FIT_MATRICES * 4 * n_items * n_items


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The host's available memory: MemAvailable (free plus reclaimable caches) where Linux
    reports it, else the free pages (os.sysconf); None where neither is known."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_available_bytes() -> int | None:
    """Free memory of the default device: an accelerator's limit less what is in use (jax's
    memory_stats), the host's available memory for the CPU backend; None when unknown."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_available_bytes()


def check_fits(n_items: int, available: int | None) -> None:
    """ConfigError, before any work, when a fit over `n_items` items needs more than the
    `available` device bytes (None: unknown, not checked)."""
    needed = fit_bytes(n_items)
    if available is None or needed <= available:
        return
    fitting = int((available / (FIT_MATRICES * 4)) ** 0.5)
    raise ConfigError(
        f"model=ease on {n_items} items needs {needed / 1e9:.1f} GB of device memory "
        f"({FIT_MATRICES} float32 {n_items} x {n_items} matrices); {available / 1e9:.1f} GB "
        f"are free, enough for about {fitting} items: keep fewer items with "
        "prepare.min_item_ratings=<count> (items with fewer training ratings are dropped), or "
        "run on a device with more memory")


# The family on the model interface (`aerec.models.base`).

WHY_USER_ROWS = "EASE's rows are users"  # why model.orientation must be user


@dataclass(frozen=True)
class EaseConfig:
    """configs/model/ease.yaml, typed (its comments explain each key)."""

    name: str = "ease"
    l2: float = 500.0
    dropout: float = 0.0
    zero_diagonal: bool = True
    orientation: str = "user"
    scaling: str = "none"



class EaseFamily:
    """EASE / EDLAE / DLAE: B in one closed-form call; rows scored by x_u·B."""

    name = "ease"
    config_type = EaseConfig
    iterative = False
    predicts_ratings = False  # top-N: its scores rank items, they are no ratings
    # Prediction reads B alone; the orientation is checked by saved_problem.
    saved_keys: ClassVar[Mapping[str, FieldCheck]] = {}

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of the `model` section."""
        l2 = model["l2"]
        if not is_number(l2) or l2 <= 0:
            raise ConfigError(f"model.l2={l2!r} must be a finite number > 0 (EASE's ridge "
                              "penalty λ: G + λI must be invertible)")
        fraction("model.dropout", model["dropout"])
        if not isinstance(model["zero_diagonal"], bool):
            raise ConfigError(f"model.zero_diagonal={model['zero_diagonal']!r} must be true "
                              "or false")
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        if problem is not None:
            raise ConfigError(f"model.orientation={model['orientation']!r} {problem} (its "
                              "weights are item to item): set model.orientation=user")
        one_of("model.scaling", model["scaling"], SCALINGS)

    def from_mapping(self, model: Mapping[str, Any]) -> EaseConfig:
        """The typed config of a checked `model` section."""
        return config_from_mapping(EaseConfig, model)

    def fit(self, config: EaseConfig, train: DeviceRows, scaling: Scaling, trainer: Trainer
            ) -> tuple[Predictor, FitResult]:
        """`fit_ease` in one call, after checking that its matrices fit the device."""
        check_fits(train.shape[1], device_available_bytes())
        predict = self.predictor(config, train.shape[1], scaling)
        return predict, trainer.once(
            lambda: fit_ease(train, l2=config.l2, dropout=config.dropout,
                             zero_diagonal=config.zero_diagonal),
            predict)

    def predictor(self, config: EaseConfig, n_inputs: int, scaling: Scaling) -> Predictor:
        """`predict_ease`: scores, not ratings."""
        del config, n_inputs, scaling
        return predict_ease

    def ranker(self, config: EaseConfig, params: Any, inputs: DeviceRows, *, scaling: Scaling,
               chunk_rows: int, fold_in_prior: float) -> Ranker:
        """A row's interactions times B; a new user's history likewise."""
        del config, scaling, chunk_rows, fold_in_prior
        return InteractionRanker(jax.jit(predict_ease), jax.jit(history_scores), params,
                                 inputs)

    def item_vectors(self, config: EaseConfig, params: Any, inputs: DeviceRows, *,
                     scaling: Scaling, chunk_rows: int) -> np.ndarray:
        """Column j of B: how much each item a user has points to item j."""
        del config, inputs, scaling, chunk_rows
        return np.ascontiguousarray(np.asarray(params["B"], np.float32).T)

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """A saved EASE model's rows are users."""
        problem = user_rows_problem(model["orientation"], WHY_USER_ROWS)
        return None if problem is None else ("model.orientation", problem)

    def param_shapes(self, config: EaseConfig, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """As `fit_ease` returns them: B, items x items."""
        del config, rows, n_items
        return {"B": jax.ShapeDtypeStruct((n_inputs, n_inputs), np.float32)}, set()


EASE = EaseFamily()
