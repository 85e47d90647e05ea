"""A saved model's files, read as untrusted input and validated before anything uses them.

`read_model_files` checks every field of `model.json` and every array of `data.npz` (types,
shapes, index ranges, sortedness, the scale's order, a known model name), then the
parameters' shapes and dtypes against those the model's configuration implies, before the
arrays reach SciPy's sparse matrices or JAX: an index past the model's width would otherwise
be read out of bounds (a segmentation fault), and a missing key would end in a traceback.
Any failure is a `DataError` naming the file and the field.

A model saved since carries `content_sha256`, a digest of everything it predicts from (the
description, the arrays, the parameters): a file changed after the save, by hand or by a
damaged copy, is refused instead of predicting something else. Models saved before lack it
and are checked field by field only; the checks alone keep any file from crashing the process.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from aerec.errors import DataError
from aerec.model_json import DIGEST, Invalid, read_description
from aerec.models.registry import family_of, model_config

# Arrays of data.npz. The last six are optional: models saved before they existed load with
# the fallbacks of `aerec.saved_model.load` (seen items = inputs, trained columns = nonempty
# input columns, no titles).
REQUIRED_ARRAYS = ("users", "items", "indptr", "indices", "data")
OPTIONAL_ARRAYS = ("trained_columns", "seen_indptr", "seen_indices", "titles", "genres",
                   "years")


@dataclass(frozen=True)
class ModelFiles:
    """A model directory's contents, validated: its description (model.json), arrays
    (data.npz; optional ones absent in older models) and parameters (placed here)."""

    description: dict[str, Any]
    arrays: dict[str, np.ndarray]
    params: Any


def read_model_files(directory: Path) -> ModelFiles:
    """The validated contents of a model directory; DataError naming the file and field."""
    try:
        description = read_description(directory / "model.json")
        arrays = read_arrays(directory / "data.npz")
        check_arrays(arrays, description)
        params = read_params(directory / "params", description, arrays)
        check_digest(description, arrays, params)
    except Invalid as invalid:
        field = f"{invalid.field}: " if invalid.field else ""
        raise DataError(f"{directory / invalid.file}: {field}{invalid.problem}; {directory} is "
                        "not a valid aerec model: train it again, or copy it again from where "
                        "it was saved") from None
    return ModelFiles(description, arrays, params)


# data.npz

def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of data.npz that a model uses, never unpickled; required ones present."""
    arrays = {}
    try:  # never unpickle: an object array in the file is an error, not code to run
        # np.load would leave its own handle open when the file is no zip archive
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            for name in (*REQUIRED_ARRAYS, *OPTIONAL_ARRAYS):
                if name in archive.files:
                    arrays[name] = archive[name]
    except FileNotFoundError:
        raise Invalid("data.npz", "", "is missing") from None
    except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile) as error:
        raise Invalid("data.npz", "", f"cannot be read: {error}") from None
    for name in REQUIRED_ARRAYS:
        if name not in arrays:
            raise Invalid("data.npz", name, "is missing")
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.ndim != 1:
            raise Invalid("data.npz", name, "must be a one-dimensional array")
    return arrays


def _kind(arrays: dict[str, np.ndarray], name: str, kinds: str, what: str) -> np.ndarray:
    array = arrays[name]
    if array.dtype.kind not in kinds:
        raise Invalid("data.npz", name, f"must hold {what}, not {array.dtype}")
    return array


def _sorted_ids(arrays: dict[str, np.ndarray], name: str) -> int:
    ids = _kind(arrays, name, "iu", "integer ids")
    if ids.size == 0:
        raise Invalid("data.npz", name, "is empty")
    if np.any(ids[1:] <= ids[:-1]):  # IdMap finds an id by binary search
        raise Invalid("data.npz", name, "must be sorted and distinct")
    return int(ids.size)


def check_csr(arrays: dict[str, np.ndarray], prefix: str, rows: int, cols: int) -> None:
    """`{prefix}indptr` and `{prefix}indices`: a (rows x cols) CSR structure whose column
    indices are in range and strictly increasing within each row (as `rating_matrix` sorts
    them: no cell twice)."""
    indptr = _kind(arrays, f"{prefix}indptr", "i", "integer offsets")
    indices = _kind(arrays, f"{prefix}indices", "i", "integer column indices")
    if indptr.size != rows + 1:
        raise Invalid("data.npz", f"{prefix}indptr", f"has {indptr.size} offsets, not "
                      f"{rows + 1} (one more than the {rows} rows)")
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise Invalid("data.npz", f"{prefix}indptr", f"must rise from 0 to the {indices.size} "
                      "entries of indices")
    outside = (indices < 0) | (indices >= cols)
    if outside.any():
        raise Invalid("data.npz", f"{prefix}indices", f"{np.count_nonzero(outside)} column "
                      f"indices outside [0, {cols})")
    starts = np.zeros(indices.size, bool)
    starts[indptr[:-1][np.diff(indptr) > 0]] = True
    if np.any((np.diff(indices) <= 0) & ~starts[1:]):
        raise Invalid("data.npz", f"{prefix}indices", "must be sorted and distinct in each row")


def check_arrays(arrays: dict[str, np.ndarray], description: dict[str, Any]) -> None:
    """data.npz against itself and model.json: the input ratings (model orientation), the
    seen items (users x items), the trained columns and the catalog."""
    n_users, n_items = _sorted_ids(arrays, "users"), _sorted_ids(arrays, "items")
    by_user = description["model"]["orientation"] == "user"
    rows, cols = (n_users, n_items) if by_user else (n_items, n_users)
    if description["n_inputs"] != cols:
        raise Invalid("model.json", "n_inputs", f"is {description['n_inputs']}, but data.npz "
                      f"holds {cols} {'items' if by_user else 'users'} (the inputs of a model "
                      f"whose rows are {'users' if by_user else 'items'})")
    check_csr(arrays, "", rows, cols)
    _check_ratings(arrays, description["rating_range"])
    if "trained_columns" in arrays:
        mask = arrays["trained_columns"]
        if mask.dtype != np.bool_ or mask.size != cols:
            raise Invalid("data.npz", "trained_columns", f"must be {cols} booleans")
    if ("seen_indptr" in arrays) != ("seen_indices" in arrays):
        raise Invalid("data.npz", "seen_indices", "seen_indptr and seen_indices come together")
    if "seen_indptr" in arrays:
        check_csr(arrays, "seen_", n_users, n_items)
    _check_catalog(arrays, n_items)


def _check_ratings(arrays: dict[str, np.ndarray], rating_range: list[float]) -> None:
    """One float32 rating per index, each within the model's rating range."""
    data = arrays["data"]
    if data.dtype != np.float32 or data.size != arrays["indices"].size:
        raise Invalid("data.npz", "data", "must hold one float32 rating per index")
    low, high = rating_range
    if not np.all((data > 0) & (data >= low) & (data <= high)):  # also false for NaN
        raise Invalid("data.npz", "data", f"holds ratings outside the model's rating range "
                      f"[{low}, {high}] (or 0, which marks a missing cell)")


def _check_catalog(arrays: dict[str, np.ndarray], n_items: int) -> None:
    """Titles, genres and years: one entry per item, or none."""
    for name, kinds in (("titles", "U"), ("genres", "U"), ("years", "iu")):
        if name in arrays and arrays[name].size not in (0, n_items):
            raise Invalid("data.npz", name, f"must have one entry per item ({n_items}) or none")
        if name in arrays and arrays[name].size:
            _kind(arrays, name, kinds, "text" if kinds == "U" else "integers")


# params

def expected_params(description: dict[str, Any], arrays: dict[str, np.ndarray]
                    ) -> tuple[dict[str, jax.ShapeDtypeStruct], set[str]]:
    """The parameters' shapes and dtypes the configuration implies, by path, and the paths
    that older models may lack, as the model's family has them (`param_shapes`: traced from
    the constructor training uses, or as the one-call fit returns them)."""
    config = model_config(description["model"])
    shapes, optional = family_of(config).param_shapes(
        config, description["n_inputs"], arrays["indptr"].size - 1, arrays["items"].size)
    return flat_tree(shapes), optional


def flat_tree(tree: Any) -> dict[str, Any]:
    """Leaves by their path `layers/0/kernel` (orbax reads keys back as strings)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda leaf: hasattr(leaf, "shape"))
    return {"/".join(str(getattr(key, "key", key)) for key in path): leaf
            for path, leaf in flat}


def checkpoint_tree(path: Path) -> Any:
    """The metadata tree of the arrays saved at `path` (shapes and dtypes, no values)."""
    metadata = ocp.StandardCheckpointer().metadata(path)
    tree = getattr(metadata, "item_metadata", metadata)  # a StepMetadata on newer orbax
    return getattr(tree, "tree", tree)


def restore_here(path: Path) -> Any:
    """The array tree saved at `path`, placed on this process's default device.

    The target's shapes and dtypes come from the checkpoint's metadata and its placement from
    here: a model written on a GPU loads on a CPU and the other way round (orbax refuses to
    guess across topologies).
    """
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here),
                          checkpoint_tree(path), is_leaf=lambda leaf: hasattr(leaf, "shape"))
    return ocp.StandardCheckpointer().restore(path, target)


def _unreadable(error: Exception) -> Invalid:
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return Invalid("params", "", f"cannot be read ({type(error).__name__}: {first})")


def read_params(path: Path, description: dict[str, Any], arrays: dict[str, np.ndarray]
                ) -> Any:
    """The parameters, their shapes and dtypes checked against the configuration before
    they are read, and their values finite (training never saves others)."""
    expected, optional = expected_params(description, arrays)
    if not path.is_dir():
        raise Invalid("params", "", "is missing (or is not a directory)")
    try:  # untrusted files: whatever orbax or TensorStore raises means they cannot be read
        stored = flat_tree(checkpoint_tree(path))
    except Exception as error:
        raise _unreadable(error) from None
    if not stored:  # orbax logs an unreadable metadata file and returns nothing
        raise Invalid("params", "", "cannot be read (no metadata of its arrays)")
    _check_stored(stored, expected, optional, description["model"]["name"])
    try:
        params = restore_here(path)
    except Exception as error:
        raise _unreadable(error) from None
    for name, leaf in flat_tree(params).items():
        if not bool(np.isfinite(np.asarray(leaf)).all()):
            raise Invalid("params", name, "holds NaN or infinite values")
    return params


def _check_stored(stored: dict[str, Any], expected: dict[str, jax.ShapeDtypeStruct],
                  optional: set[str], kind: str) -> None:
    """The stored parameters' names, shapes and dtypes are those expected (`optional` ones
    may be missing); `kind`: the model's name, for the message."""
    for name in sorted(set(expected) | set(stored)):
        if name not in stored and name not in optional:
            raise Invalid("params", name, "is missing")
        if name not in expected:
            raise Invalid("params", name, f"is not a parameter of this {kind} model")
        if name in stored and (tuple(stored[name].shape) != expected[name].shape
                               or np.dtype(stored[name].dtype) != expected[name].dtype):
            raise Invalid("params", name, f"is {np.dtype(stored[name].dtype)} "
                          f"{tuple(stored[name].shape)}, but model.json implies "
                          f"{expected[name].dtype} {expected[name].shape}")


# the digest

def content_digest(description: dict[str, Any], arrays: dict[str, np.ndarray], params: Any
                   ) -> str:
    """sha256 of a model's content: the description (canonical JSON, without the digest),
    each array and each parameter (name, dtype, shape, bytes). The same for the arrays as
    saved and as loaded, wherever the parameters were placed."""
    digest = hashlib.sha256()
    text = json.dumps({k: v for k, v in description.items() if k != DIGEST}, sort_keys=True,
                      separators=(",", ":")).encode()
    digest.update(f"model.json {len(text)}\n".encode() + text)
    leaves = {**{f"data.npz/{name}": array for name, array in arrays.items()},
              **{f"params/{name}": leaf for name, leaf in flat_tree(params).items()}}
    for name in sorted(leaves):
        array = np.ascontiguousarray(np.asarray(leaves[name]))
        digest.update(f"{name} {array.dtype} {array.shape} {array.nbytes}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_digest(description: dict[str, Any], arrays: dict[str, np.ndarray], params: Any
                 ) -> None:
    """Refuse content that differs from what was saved (models saved before have no digest)."""
    if DIGEST in description and content_digest(description, arrays, params) != description[
            DIGEST]:
        raise Invalid("model.json", DIGEST, "does not match the directory's content: a file "
                      "was changed after the model was saved")
