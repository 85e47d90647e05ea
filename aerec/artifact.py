"""A trained model as a self-contained directory: `aerec.load(path)` needs nothing else.

The directory holds the parameters (orbax), `model.json` (the run's resolved config, scaling,
rating range, fallback) and `data.npz` (raw user and item ids, and the training ratings the
model reads as input, as CSR arrays; numpy without pickle). Predictions do not depend on the
original files or their line order.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import scipy.sparse as sp
from omegaconf import OmegaConf

from aerec.data.prepare import IdMap
from aerec.errors import DataError
from aerec.models.autoencoder import init_members, predict_ratings
from aerec.models.scaling import Scaling
from aerec.models.svd import predict_svd


def save_artifact(directory: Path, params: Any, *, config: Any, scaling: Scaling,
                  rating_range: tuple[float, float], fallback: float, users: IdMap,
                  items: IdMap, inputs: sp.csr_matrix) -> Path:
    """Write the artifact into `directory`, which must not exist yet.

    Everything is written into a temporary sibling that is renamed at the end, so a reader
    never sees a partial model.
    """
    directory = directory.absolute()
    if directory.exists():
        raise DataError(f"{directory} already exists; a model is never overwritten")
    final, directory = directory, directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(directory, ignore_errors=True)  # the leftover of a killed earlier attempt
    directory.mkdir(parents=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "params", params)
    checkpointer.wait_until_finished()
    resolved = OmegaConf.to_container(config, resolve=True)
    description = {"model": resolved["model"], "config": resolved,
                   "scaling": [scaling.shift, scaling.scale], "rating_range": list(rating_range),
                   "fallback": fallback, "n_inputs": int(inputs.shape[1])}
    (directory / "model.json").write_text(json.dumps(description, indent=2) + "\n")
    with open(directory / "data.npz", "wb") as handle:
        np.savez(handle, users=users.raw, items=items.raw, indptr=inputs.indptr,
                 indices=inputs.indices, data=inputs.data)
    directory.rename(final)
    return final


@dataclass
class TrainedModel:
    """A loaded model: predictions for (MovieLens user id, item id) pairs."""

    description: dict[str, Any]
    params: Any
    users: IdMap
    items: IdMap
    inputs: sp.csr_matrix
    predict_rows: Any

    def predict(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Predicted ratings, clipped to the rating scale; KeyError for an unknown id."""
        users, items = self.users.index(user_ids), self.items.index(item_ids)
        by_user = self.description["model"]["orientation"] == "user"
        rows, cols = (users, items) if by_user else (items, users)
        unique_rows, position = np.unique(rows, return_inverse=True)
        block = jnp.asarray(self.inputs[unique_rows].toarray())
        predictions = np.asarray(self.predict_rows(self.params, jnp.asarray(unique_rows), block))
        low, high = self.description["rating_range"]
        return np.clip(predictions[position, cols], low, high)


def load(path: str | Path) -> TrainedModel:
    """Load an artifact written by a training run (its output directory's `model/`)."""
    directory = Path(path).absolute()
    if not (directory / "model.json").is_file():
        raise DataError(f"{directory} is not an aerec model directory (no model.json)")
    description = json.loads((directory / "model.json").read_text())
    arrays = np.load(directory / "data.npz", allow_pickle=False)
    inputs = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                           shape=(len(arrays["indptr"]) - 1, description["n_inputs"]))
    scaling = Scaling(*description["scaling"])
    model_cfg = OmegaConf.create(description["model"])
    checkpointer = ocp.StandardCheckpointer()
    if model_cfg.name == "autoencoder":
        graphdef, like = init_members(model_cfg, description["n_inputs"], 0,
                                      int(model_cfg.ensemble))
        params = checkpointer.restore(directory / "params", jax.eval_shape(lambda: like))
        predict_rows = jax.jit(partial(predict_ratings, graphdef, scaling))
    else:
        params = checkpointer.restore(directory / "params")
        predict_rows = jax.jit(partial(predict_svd, scaling=scaling))
    return TrainedModel(description, params, IdMap(arrays["users"]), IdMap(arrays["items"]),
                        inputs, predict_rows)
