"""A saved model directory is untrusted input: tampered files are refused, never a crash.

Tiny models of each kind are trained once; copies of their directories are tampered with
(model.json fields, data.npz arrays, parameter files and values, files removed or truncated)
and loaded, asked for predictions and recommendations by a worker process
(tests/model_files_worker.py), so that a crash shows as a signal instead of ending pytest.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import aerec
from aerec.cli import run_task
from aerec.errors import DataError
from aerec.model_files import DIGEST, restore_here
from tests.conftest import CONFIGS, FAST_DATA, FAST_MODEL, ROOT, cli_env

# Item rows for the autoencoder (the default), user rows for the SVD and popularity. Centred,
# the autoencoder's predictions after one epoch are not all clipped to the scale's end (which
# would hide a change in its parameters).
MODELS = {"autoencoder": [*FAST_MODEL, "model.ensemble=2", "model.scaling=center",
                          "train.epochs=1"],
          "svd": ["model=svd", "model.rank=3"],
          "popularity": ["model=popularity"]}
# Examples per run (derandomized: the same directories each run). A longer run:
# AEREC_MODEL_FILES_EXAMPLES=1000, other directories with AEREC_MODEL_FILES_SEED=<n>, the
# outcome counts written to the file AEREC_MODEL_FILES_COUNTS names.
EXAMPLES = int(os.environ.get("AEREC_MODEL_FILES_EXAMPLES", "40"))
SEED = os.environ.get("AEREC_MODEL_FILES_SEED")
OUTCOMES: Counter[str] = Counter()
BY_CHANGE: Counter[str] = Counter()  # each example's outcome, counted for each of its changes
REQUEST_SECONDS = 120


@dataclass(frozen=True)
class Trained:
    """A model directory and what the worker returned for it, untampered."""

    directory: Path
    request: dict[str, Any]
    outputs: dict[str, Any]


class Worker:
    """A process loading model directories (tests/model_files_worker.py), restarted after
    it crashes; its stderr goes to a file, whose end a crash reports."""

    def __init__(self, root: Path):
        self.root, self.process, self.starts = root, None, 0

    def _start(self) -> None:
        self.starts += 1
        self.log = self.root / f"worker-{self.starts}.log"
        with open(self.log, "w") as log:  # the process keeps its own copy of the handle
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.model_files_worker", str(self.root / "jax-cache")],
                cwd=ROOT, env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """The worker's answer, or {"outcome": "crash" / "hang"} when it gave none."""
        if self.process is None:
            self._start()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            ready = select.select([self.process.stdout], [], [], REQUEST_SECONDS)[0]
            line = self.process.stdout.readline() if ready else None
        except BrokenPipeError:
            line = ""
        if line:
            return json.loads(line)
        if line is None:
            self.process.kill()
        status = self.process.wait()
        self.close()
        return {"outcome": "hang" if line is None else "crash", "status": status,
                "stderr": self.log.read_text()[-3000:]}

    def close(self) -> None:
        """End the worker (closing its stdin ends its loop)."""
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
            self.process.stdout.close()
            self.process = None


def compose_fast(*overrides: str) -> Any:
    """The real composed configuration with the FAST data (a module's fixture cannot use the
    function-scoped compose_config)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=[*FAST_DATA, *overrides])


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker for the module's tests."""
    loader = Worker(tmp_path_factory.mktemp("worker"))
    yield loader
    loader.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, worker: Worker) -> dict[str, Trained]:
    """One tiny model of each kind (no checkpoints: this runs before the per-test checkpoint
    directory is set), and its untampered outputs."""
    root = tmp_path_factory.mktemp("trained")
    models = {}
    for name, overrides in MODELS.items():
        run_task(compose_fast(*overrides, "checkpoint.enabled=false", "ranking.enabled=false"),
                 root / name)
        directory = root / name / "model"
        with np.load(directory / "data.npz") as arrays:
            users, items = arrays["users"][:4].tolist(), arrays["items"][:4].tolist()
        low, high = json.loads((directory / "model.json").read_text())["rating_range"]
        request = {"users": users + users[:2], "items": items + items[-1:] * 2,
                   "user": users[0], "history": {str(items[0]): high, str(items[1]): low}}
        outputs = worker.ask({**request, "dir": str(directory)})
        assert outputs["outcome"] == "loaded", outputs
        models[name] = Trained(directory, request, outputs)
    return models


def tampered_copy(model: Trained, parent: Path) -> Path:
    """A copy of a trained model's directory to tamper with."""
    return Path(shutil.copytree(model.directory, parent / "model"))


# Tampering. Each is a small frozen dataclass (hypothesis prints it for a failing example)
# whose apply(directory, original) changes one thing in `directory`, a copy of the untampered
# `original`; the strategies below draw them.

def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of a JSON value (dict keys and list indices), root excluded."""
    children = (value.items() if isinstance(value, dict)
                else enumerate(value) if isinstance(value, list) else ())
    paths = []
    for key, child in children:
        paths += [(*prefix, key), *json_paths(child, (*prefix, key))]
    return paths


def read_json(directory: Path) -> Any:
    return json.loads((directory / "model.json").read_text())


def write_json(directory: Path, description: Any, **dump: Any) -> None:
    (directory / "model.json").write_text(json.dumps(description, **dump))


def set_path(description: Any, path: tuple, value: Any, delete: bool = False) -> None:
    node = description
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        node.pop(path[-1], None)
    elif delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@dataclass(frozen=True)
class EditJson:
    """Delete or set the field at path number `pick` (of all paths, or of those outside
    `config` when `core`), mirrored into config.model when `mirror`."""

    pick: int
    value: Any
    delete: bool
    core: bool
    mirror: bool

    def apply(self, directory: Path, original: Path) -> None:
        description = read_json(directory)
        paths = [p for p in json_paths(description)
                 if not self.core or p[0] != "config" or p[:2] == ("config", "model")]
        path = paths[self.pick % len(paths)]
        targets = [path]
        if self.mirror and path[0] == "model" and len(path) > 1:
            targets.append(("config", *path))
        for target in targets:
            set_path(description, target, self.value, self.delete)
        write_json(directory, description, indent=2)


# Plausible edits: (path, new value from the old), each mirrored into config.model.
PLAUSIBLE = [
    (("n_inputs",), lambda v: v + 1), (("n_inputs",), lambda v: v - 1),
    (("n_inputs",), lambda v: v + 40), (("n_inputs",), lambda v: v - 40),
    (("model", "orientation"), lambda v: {"item": "user", "user": "item"}.get(v, v)),
    (("model", "name"), lambda v: "svd" if v != "svd" else "autoencoder"),
    (("model", "name"), lambda v: "popularity" if v != "popularity" else "svd"),
    (("model", "name"), lambda v: "knn"),
    (("scaling", 0), lambda v: v + 0.5), (("scaling", 1), lambda v: v * 2),
    (("scaling", 1), lambda v: 0.0), (("scaling", 1), lambda v: -1.0),
    (("rating_range",), lambda v: v[::-1]), (("rating_range", 1), lambda v: v - 1),
    (("rating_range", 0), lambda v: v - 0.5), (("fallback",), lambda v: v + 0.25),
    (("fallback",), lambda v: 100.0),
    (("model", "hidden"), lambda v: v + 1), (("model", "hidden"), lambda v: [v, v]),
    (("model", "latent"), lambda v: v + 1), (("model", "ensemble"), lambda v: 1),
    (("model", "ensemble"), lambda v: 3), (("model", "layers"), lambda v: 2),
    (("model", "mirror_decoder"), lambda v: True), (("model", "dropout"), lambda v: 0.5),
    (("model", "activation"), lambda v: "relu"),
    (("model", "output_activation"), lambda v: "sigmoid"),
    (("model", "rank"), lambda v: v + 1), (("model", "rank"), lambda v: v - 1),
    (("model", "center"), lambda v: not v), (("model", "bias_reg"), lambda v: 0.0),
    ((DIGEST,), lambda v: v[::-1]), ((DIGEST,), lambda v: v.upper()),
]


@dataclass(frozen=True)
class PlausibleJson:
    """A likely hand edit: PLAUSIBLE[which] (nothing where the field does not exist)."""

    which: int

    def apply(self, directory: Path, original: Path) -> None:
        path, change = PLAUSIBLE[self.which]
        description = read_json(directory)
        node = description
        for key in path[:-1]:
            node = node[key]
        if path[-1] not in node and not isinstance(node, list):
            return
        for target in ([path, ("config", *path)] if path[0] == "model" else [path]):
            set_path(description, target, change(node[path[-1]]))
        write_json(directory, description, indent=2)


@dataclass(frozen=True)
class RewriteJson:
    """model.json replaced: truncated, garbage, not an object, or rewritten unchanged in
    another key order or layout (which must change nothing)."""

    how: str
    at: int
    garbage: bytes

    def apply(self, directory: Path, original: Path) -> None:
        path = directory / "model.json"
        text = path.read_bytes()
        if self.how == "truncate":
            path.write_bytes(text[:self.at % len(text)])
        elif self.how == "garbage":
            path.write_bytes(self.garbage)
        elif self.how == "not_an_object":
            path.write_text(["[]", "3", "null", '"model"', "{}"][self.at % 5])
        elif self.how == "delete":
            path.unlink()
        elif self.how == "reorder":
            write_json(directory, dict(reversed(read_json(directory).items())), indent=1)
        else:  # compact
            write_json(directory, read_json(directory))


ARRAYS = ("users", "items", "indptr", "indices", "data", "trained_columns", "seen_indptr",
          "seen_indices", "titles", "genres", "years")
DTYPES = ("int8", "int32", "int64", "uint64", "float16", "float32", "float64", "bool",
          "complex64", "<U3", "S3", "object")
VALUES = (-1, 0, 1, 79, 80, 119, 120, 2**31 - 1, -2**31, 2**40, 0.5, 3.0, 6.0, float("nan"),
          float("inf"), -float("inf"))


def read_arrays(directory: Path) -> dict[str, np.ndarray]:
    with open(directory / "data.npz", "rb") as handle, np.load(handle) as archive:
        return {name: archive[name] for name in archive.files}


def write_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(directory / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)


def as_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """`array` converted to `dtype`, or zeros of that dtype where it does not convert."""
    try:
        with np.errstate(all="ignore"):
            return array.astype(dtype)
    except (ValueError, TypeError, OverflowError):
        return np.zeros(array.shape, dtype)


def with_value(array: np.ndarray, position: int, value: float) -> np.ndarray | None:
    """A copy of `array` with one element set to `value`; None where the value does not fit
    its dtype (no cast that wraps or warns)."""
    if array.size == 0:
        return None
    kind, array = array.dtype.kind, array.copy()
    if kind in "iu":
        if not float(value).is_integer() or not (np.iinfo(array.dtype).min <= value
                                                 <= np.iinfo(array.dtype).max):
            return None
        value = int(value)
    elif kind == "b":
        value = bool(value)
    elif kind == "U":
        value = str(value)
    array[position % array.size] = value
    return array


@dataclass(frozen=True)
class EditArray:
    """One array of data.npz deleted, retyped, reshaped, one value replaced, shuffled,
    swapped with another, or an extra array added (ignored: nothing changes)."""

    how: str
    name: str
    other: str
    dtype: str
    at: int
    value: float

    def apply(self, directory: Path, original: Path) -> None:
        arrays = read_arrays(directory)
        array = arrays[self.name]
        if self.how == "delete":
            del arrays[self.name]
        elif self.how == "retype":
            arrays[self.name] = (np.array([object()] * array.size, dtype=object)
                                 if self.dtype == "object" else as_dtype(array, self.dtype))
        elif self.how == "reshape":
            shapes = {0: array.reshape(-1, 1), 1: array[:1].reshape(()) if array.size else array,
                      2: array[:-1], 3: np.concatenate([array, array[-1:]]), 4: array[:0],
                      5: np.concatenate([array, array])}
            arrays[self.name] = shapes[self.at % len(shapes)]
        elif self.how == "value":
            changed = with_value(array, self.at, self.value)
            if changed is not None:
                arrays[self.name] = changed
        elif self.how == "shuffle":
            arrays[self.name] = np.random.default_rng(self.at).permutation(array)
        elif self.how == "swap":
            arrays[self.name], arrays[self.other] = arrays[self.other], array
        else:  # extra
            arrays["extra"] = np.arange(3)
        write_arrays(directory, arrays)


def files_under(directory: Path) -> list[Path]:
    """The files below `directory`, sorted. orbax lays out the parameters' files differently
    on each save (names and contents of its data files), so the file an example tampers with
    may differ between runs: the outcome counts vary a little, the assertions hold."""
    return sorted(path for path in directory.rglob("*") if path.is_file())


@dataclass(frozen=True)
class EditFile:
    """A file deleted, truncated, one byte flipped or replaced by garbage: data.npz, or
    file number `pick` under params/ (or params/ deleted whole)."""

    target: str
    how: str
    pick: int
    at: int

    def apply(self, directory: Path, original: Path) -> None:
        if self.target == "params" and self.how == "delete_all":
            shutil.rmtree(directory / "params")
            return
        candidates = ([directory / "data.npz"] if self.target == "data.npz"
                      else files_under(directory / "params"))
        path = candidates[self.pick % len(candidates)]
        content = path.read_bytes()
        if self.how == "delete" or self.how == "delete_all":
            path.unlink()
        elif self.how == "truncate":
            path.write_bytes(content[:self.at % max(len(content), 1)])
        elif self.how == "flip" and content:
            position = self.at % len(content)
            path.write_bytes(content[:position] + bytes([content[position] ^ 0xFF])
                             + content[position + 1:])
        else:
            path.write_bytes(b"\x00garbage" * (1 + self.at % 3))


@dataclass(frozen=True)
class EditParams:
    """The (untampered) parameters saved again with one leaf dropped, one added, reshaped,
    retyped, or one value changed (NaN, or slightly)."""

    how: str
    pick: int
    at: int

    def apply(self, directory: Path, original: Path) -> None:
        # read from the untampered model: orbax's failures to read (after an earlier change
        # to these files) would leave this process exceptions that nothing can catch
        params = jax.tree.map(np.asarray, restore_here(original / "params"))
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        path, leaf = leaves[self.pick % len(leaves)]
        keys = [key.key for key in path]
        node = params
        for key in keys[:-1]:
            node = node[key]
        if self.how == "drop":
            del node[keys[-1]]
        elif self.how == "add":
            params["extra"] = np.zeros(3, np.float32)
        elif self.how == "reshape":
            node[keys[-1]] = (leaf.T.copy() if leaf.ndim > 1 and leaf.shape[0] != leaf.shape[-1]
                              else np.concatenate([leaf.ravel(), leaf.ravel()[:1]]))
        elif self.how == "retype":
            node[keys[-1]] = leaf.astype(["float16", "float64", "int32"][self.at % 3])
        else:
            flat = leaf.copy().ravel()
            if flat.size:
                flat[self.at % flat.size] = np.nan if self.how == "nan" else flat[
                    self.at % flat.size] + 0.5
            node[keys[-1]] = flat.reshape(leaf.shape)
        shutil.rmtree(directory / "params", ignore_errors=True)
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(directory / "params", params)
        checkpointer.wait_until_finished()


ARRAY_EDITS = st.builds(
    EditArray, how=st.sampled_from(["delete", "retype", "reshape", "value", "value", "value",
                                    "shuffle", "swap", "extra"]),
    name=st.sampled_from(ARRAYS), other=st.sampled_from(ARRAYS), dtype=st.sampled_from(DTYPES),
    at=st.integers(0, 10**4), value=st.sampled_from(VALUES))
# Half of the changes are to data.npz and params, whose checks guard against crashes.
TAMPERING = st.one_of(
    ARRAY_EDITS, ARRAY_EDITS,
    st.builds(EditJson, pick=st.integers(0, 10**4), delete=st.booleans(), core=st.booleans(),
              mirror=st.booleans(),
              value=st.one_of(st.none(), st.booleans(), st.integers(-3, 200),
                              st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                              st.lists(st.integers(-2, 200), max_size=3), st.just({}),
                              st.sampled_from(["item", "user", "svd", "popularity", "relu"]))),
    st.builds(PlausibleJson, which=st.integers(0, len(PLAUSIBLE) - 1)),
    st.builds(RewriteJson, how=st.sampled_from(["truncate", "garbage", "not_an_object",
                                                "delete", "reorder", "compact"]),
              at=st.integers(0, 10**4), garbage=st.binary(max_size=40)),
    st.builds(EditFile, target=st.sampled_from(["data.npz", "params", "params"]),
              how=st.sampled_from(["delete", "truncate", "flip", "garbage", "delete_all"]),
              pick=st.integers(0, 100), at=st.integers(0, 10**6)),
    st.builds(EditParams, how=st.sampled_from(["drop", "add", "reshape", "retype", "nan",
                                               "change"]),
              pick=st.integers(0, 100), at=st.integers(0, 10**4)),
)


def strip_digest(directory: Path) -> bool:
    """Remove content_sha256 (an older or a crafted model: checked field by field only);
    whether model.json still holds an object to remove it from."""
    try:
        description = read_json(directory)
    except (OSError, ValueError):
        return False
    if not isinstance(description, dict):
        return False
    description.pop(DIGEST, None)
    write_json(directory, description, indent=2)
    return True


def judge(answer: dict[str, Any], untampered: dict[str, Any], digest_kept: bool) -> str:
    """The outcome's name for the counts; fails the test on a crash, a hang, an exception
    other than AerecError, a refusal that names no file, or changed outputs of a model that
    kept its digest."""
    assert answer["outcome"] not in ("crash", "hang"), answer
    assert answer["outcome"] != "exception", answer["traceback"]
    if answer["outcome"] == "error":
        if answer["stage"] != "load":  # an unknown id of a crafted model: a clean error
            return f"refused at {answer['stage']} ({answer['type']})"
        message = answer["message"]
        assert answer["type"] == "DataError", answer
        named = [name for name in ("model.json", "data.npz", "params") if name in message]
        assert named, message
        return f"refused at load: {named[0]}"
    if digest_kept:
        assert answer == untampered, "a tampered model predicts differently"
        return "loaded, same outputs"
    return "loaded, same outputs" if answer == untampered else (
        "loaded without digest, different outputs")


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck),
          derandomize=SEED is None, database=None)
@seed(int(SEED or 0))
@given(kind=st.sampled_from(sorted(MODELS)),
       tampering=st.lists(TAMPERING, min_size=1, max_size=3),
       without_digest=st.sampled_from([True, True, False]))
def test_tampered_model_directories_are_refused_or_predict_the_same(
        trained: dict[str, Trained], worker: Worker, kind: str, tampering: list[Any],
        without_digest: bool) -> None:
    with tempfile.TemporaryDirectory(dir=worker.root) as parent:
        directory = tampered_copy(trained[kind], Path(parent))
        for change in tampering:
            try:
                change.apply(directory, trained[kind].directory)
            except Exception:  # an earlier change left nothing this one can edit (a file
                OUTCOMES["changes not applicable"] += 1  # deleted, bad JSON, ...)
        digest_kept = not (without_digest and strip_digest(directory))
        answer = worker.ask({**trained[kind].request, "dir": str(directory)})
        outcome = judge(answer, trained[kind].outputs, digest_kept)
        OUTCOMES[outcome] += 1
        OUTCOMES["examples"] += 1
        OUTCOMES["examples without the digest"] += not digest_kept
        for change in tampering:
            BY_CHANGE[f"{type(change).__name__}: {outcome}"] += 1


@pytest.fixture(scope="module", autouse=True)
def record_outcomes() -> Iterator[None]:
    """Write the outcome counts where AEREC_MODEL_FILES_COUNTS says (a longer run's figures)."""
    yield
    target = os.environ.get("AEREC_MODEL_FILES_COUNTS")
    if target:
        counts = {**dict(sorted(OUTCOMES.items())), "by change": dict(sorted(BY_CHANGE.items()))}
        Path(target).write_text(json.dumps(counts, indent=2) + "\n")


def tamper(directory: Path, json_edit: dict[tuple, Any] | None = None,
           array_edit: dict[str, Any] | None = None) -> Path:
    """`directory` with fields of model.json set (None deletes) and arrays of data.npz
    replaced (None deletes)."""
    if json_edit:
        description = read_json(directory)
        for path, value in json_edit.items():
            set_path(description, path, value, delete=value is None)
        write_json(directory, description, indent=2)
    if array_edit:
        arrays = read_arrays(directory)
        for name, value in array_edit.items():
            if value is None:
                del arrays[name]
            else:
                arrays[name] = value
        write_arrays(directory, arrays)
    return directory


def index_past_the_width(directory: Path) -> Path:
    """data.npz with one column index past the model's inputs (was read out of bounds)."""
    indices = read_arrays(directory)["indices"].copy()
    indices[0] = read_json(directory)["n_inputs"] + 5
    return tamper(directory, array_edit={"indices": indices})


# The tampering of issue 21: each was a segmentation fault or a traceback.
ISSUE_CASES = {
    "n_inputs": (lambda d: tamper(d, {("n_inputs",): read_json(d)["n_inputs"] + 1}),
                 "model.json: n_inputs: is 121, but data.npz holds 120 users"),
    "index past the width": (index_past_the_width,
                             "data.npz: indices: 1 column indices outside [0, 120)"),
    "bad JSON": (lambda d: (d / "model.json").write_text('{"model": {"name": "autoencoder"'),
                 "model.json: is not valid JSON"),
    "missing key": (lambda d: tamper(d, {("scaling",): None}), "model.json: scaling: is missing"),
    "unknown model": (lambda d: tamper(d, {("model", "name"): "knn",
                                           ("config", "model", "name"): "knn"}),
                      "model.json: model.name: 'knn' must be one of autoencoder, svd, popularity"),
    "params deleted": (lambda d: shutil.rmtree(d / "params"),
                       "params: is missing (or is not a directory)"),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_the_tampering_of_the_issue_is_named(trained: dict[str, Trained], worker: Worker,
                                             tmp_path: Path, case: str) -> None:
    change, expected = ISSUE_CASES[case]
    directory = tampered_copy(trained["autoencoder"], tmp_path)
    change(directory)
    answer = worker.ask({**trained["autoencoder"].request, "dir": str(directory)})
    assert answer["outcome"] == "error" and answer["type"] == "DataError", answer
    assert f"{directory}/{expected}" in answer["message"]
    assert answer["message"].endswith(f"{directory} is not a valid aerec model: train it "
                                      "again, or copy it again from where it was saved")


def test_a_change_that_passes_every_check_is_refused_by_the_digest(
        trained: dict[str, Trained], tmp_path: Path) -> None:
    # A rating changed within the scale makes a well-formed model that predicts otherwise:
    # only the digest recorded at the save tells it from the model that was saved.
    directory = tampered_copy(trained["svd"], tmp_path)
    data = read_arrays(directory)["data"].copy()
    data[0] = 1.0 if data[0] != 1.0 else 2.0
    tamper(directory, array_edit={"data": data})
    with pytest.raises(DataError, match=r"model\.json: content_sha256: does not match"):
        aerec.load(directory)
    tamper(directory, {(DIGEST,): None})  # as a model saved before digests were recorded
    assert not np.array_equal(aerec.load(directory).predict(trained["svd"].request["users"],
                                                            trained["svd"].request["items"]),
                              trained["svd"].outputs["predictions"])


def test_a_model_saved_before_the_newer_arrays_still_loads(trained: dict[str, Trained],
                                                           tmp_path: Path) -> None:
    directory = tamper(tampered_copy(trained["autoencoder"], tmp_path), {(DIGEST,): None},
                       {name: None for name in ("trained_columns", "seen_indptr",
                                                "seen_indices", "titles", "genres", "years")})
    model = aerec.load(directory)
    request = trained["autoencoder"].request
    assert np.isfinite(model.predict(request["users"], request["items"])).all()
    assert len(model.recommend(request["user"], k=5)) == 5


def test_the_command_line_names_the_tampered_field(trained: dict[str, Trained],
                                                   tmp_path: Path) -> None:
    directory = index_past_the_width(tampered_copy(trained["autoencoder"], tmp_path))
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "task=recommend",
                           f"checkpoint.path={directory}",
                           f"user={trained['autoencoder'].request['user']}",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert f"{directory}/data.npz: indices: 1 column indices outside [0, 120)" in errors[0]


def test_a_data_fingerprint_is_kept_and_its_form_checked(trained: dict[str, Trained],
                                                         tmp_path: Path) -> None:
    # Recorded by training runs that fingerprint their data, read by task=evaluate.
    fingerprint = "0123456789abcdef" * 4
    directory = tamper(tampered_copy(trained["popularity"], tmp_path),
                       {(DIGEST,): None, ("data_fingerprint",): fingerprint})
    assert aerec.load(directory).description["data_fingerprint"] == fingerprint
    tamper(directory, {("data_fingerprint",): fingerprint.upper()})
    with pytest.raises(DataError, match=r"model\.json: data_fingerprint: must be a sha256"):
        aerec.load(directory)
