"""The model interface: what every model family implements and all the rest of aerec uses.

A family is one module under `aerec/models/`: a typed config (a frozen dataclass whose fields
and defaults are those of `configs/model/<name>.yaml`) and a family object, registered by
name in `aerec.models.registry`. The experiment, evaluation, ranking, recommendation and the
saved model reach a model only through these methods:

- `check_config(model)`: ConfigError naming `model.<key>` for a composed `model` section;
- `from_mapping(model)`: the typed config of a checked section (a run's, or a saved model's);
- `fit(config, train, scaling, trainer)`: fitted parameters with a validation figure, through
  the `Trainer` the experiment sets up (iterative families run its epoch loop, closed-form
  ones one timed call);
- `predictor(config, n_inputs, scaling)`: predictions of whole rows, for evaluation and for
  a saved model's `predict`;
- `ranker(config, params, inputs, ...)`: every item's score for known users and for a new
  user's history (`aerec.rankers.Ranker`);
- `item_vectors(config, params, inputs, ...)`: one vector per item, or None, for a saved
  model's `similar_items`;
- `saved_keys`, `saved_problem(model)`, `param_shapes(...)`: how a saved model's model.json
  and parameters are checked before they are used (`aerec.model_json`, `aerec.model_files`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import jax
    import numpy as np

    from aerec.data.device_rows import DeviceRows
    from aerec.models.scaling import Scaling
    from aerec.rankers import Ranker
    from aerec.train import FitResult

# (params, row_ids, inputs) -> raw-scale predictions of the whole rows `inputs`
Predictor = Callable[[Any, "jax.Array", "jax.Array"], "jax.Array"]
# A value check of a saved model's field: None when valid, else what it must be.
FieldCheck = Callable[[Any], "str | None"]


class ModelConfig(Protocol):
    """The keys every family's typed config has."""

    name: str
    orientation: str  # user: rows are users; item: rows are items
    scaling: str  # aerec.models.scaling.SCALINGS


class Trainer(Protocol):
    """How a family's parameters are fitted, set up by the experiment for one run."""

    seed: int
    batch_size: int  # rows per optimizer step (train.batch_size)
    compute_dtype: Any  # the training step's dtype (train.dtype)

    def epochs(self, objective: Any, init_params: Callable[[], Any], predict: Predictor
               ) -> FitResult:
        """The shared epoch loop (`aerec.train.fit`) on `objective`
        (`aerec.train.TrainingObjective`) from the parameters `init_params` builds:
        optimizer, checkpoints and resume, early stopping on the monitored validation figure
        (`train.monitor`: the RMSE of `predict`, or a ranking figure of the family's
        `ranker`), stop requests."""

    def once(self, fit_params: Callable[[], Any], predict: Predictor) -> FitResult:
        """Parameters fitted in one call, timed and validated, reported as one epoch."""


@runtime_checkable
class ModelFamily(Protocol):
    """A model family (see the module docstring)."""

    name: str
    config_type: type
    iterative: bool  # trained in epochs by the shared loop: optimizer, checkpoints, resume
    # False for top-N families: they rank items from interactions and predict no ratings
    # (the run gives them interactions, reports no RMSE and validates on a ranking figure)
    predicts_ratings: bool
    saved_keys: Mapping[str, FieldCheck]  # model.json keys its graph and predictor read

    def check_config(self, model: Mapping[str, Any]) -> None:
        """ConfigError naming the first invalid key of a composed `model` section."""

    def from_mapping(self, model: Mapping[str, Any]) -> Any:
        """The typed config of a checked `model` section."""

    def fit(self, config: Any, train: DeviceRows, scaling: Scaling, trainer: Trainer
            ) -> tuple[Predictor, FitResult]:
        """Fit on the training rows (model orientation); the predictor and the fit result."""

    def predictor(self, config: Any, n_inputs: int, scaling: Scaling) -> Predictor:
        """Predictions of whole rows of `n_inputs` columns from fitted parameters."""

    def ranker(self, config: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
               chunk_rows: int, fold_in_prior: float) -> Ranker:
        """Every item's score, reading `inputs` as what is known of every row."""

    def item_vectors(self, config: Any, params: Any, inputs: DeviceRows, *, scaling: Scaling,
                     chunk_rows: int) -> np.ndarray | None:
        """Every item's representation as a row of a host float32 array (n_items, d), or None
        for a family without item representations (popularity: a count per item).

        The contract, for every family that returns rows:
        - row j is item j, in the model's item order (the saved model's item id map);
        - rows point alike when the model treats the items alike, so that the cosine of two
          rows is the family's item-to-item similarity (`TrainedModel.similar_items`, cosine
          by default, or the dot product): for a family that scores item j as a user's code
          dotted with a vector of item j plus terms that do not depend on the user, it is
          that vector (the output layer's column j of an autoencoder over users, of
          Mult-VAE and RecVAE; SVD's item factors; EASE's column j of B); for a model whose
          rows are items, item j's code, computed from its input row;
        - `inputs`: the model's input rows (model orientation: `TrainedModel.input_rows`),
          read only where a code is computed from them, in blocks of `chunk_rows`;
          `scaling`: the model's rating scaling, as its ranker applies it;
        - an ensemble's members are concatenated along d (the dot product of two rows is then
          the sum of the members');
        - biases and other per-item offsets are left out (they move an item's scores for every
          user alike, not which users score it);
        - every value is finite; rows of the items the model learned nothing of (no training
          ratings: `aerec.rankers.unknown_items`) may be anything finite, zero included, and
          are left out of the results by the caller;
        - deterministic and without training; a loaded model computes them once.
        """

    def saved_problem(self, model: dict[str, Any]) -> tuple[str, str] | None:
        """A saved `model` section's inconsistency across keys, as (field, problem)."""

    def param_shapes(self, config: Any, n_inputs: int, rows: int, n_items: int
                     ) -> tuple[Any, set[str]]:
        """The saved parameters' tree of shapes and dtypes (`jax.ShapeDtypeStruct`), and the
        paths that models saved by older versions may lack."""


C = TypeVar("C")


def config_from_mapping(config_type: type[C], model: Mapping[str, Any], *,
                        floats: bool = True) -> C:
    """`config_type` with the fields `model` has (missing ones keep their defaults: models
    saved by older versions lack keys added since, which prediction does not read). Lists
    become tuples and, with `floats`, integers given for float fields floats; nothing else is
    converted, the values are checked before (`check_config`, or model.json's checks of
    `saved_keys`). Keys the dataclass lacks are not read by aerec and are left out."""
    values = {}
    for field in dataclasses.fields(config_type):  # type: ignore[arg-type]
        if field.name not in model:
            continue
        value = model[field.name]
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = tuple(value)
        elif (floats and isinstance(field.default, float) and isinstance(value, int)
              and not isinstance(value, bool)):
            value = float(value)
        values[field.name] = value
    return config_type(**values)
