"""model.json of a saved model, checked field by field (see `aerec.model_files`).

Every field that loading and task=evaluate read must be present, of its type and in its
range: a known model name and orientation, the keys the model's graph and predictor read, a
scaling with a positive scale, a rating range low < high holding the fallback, a positive
n_inputs; `config` an object whose model section is the model's. Optional fields are checked
for their form: the digests of the data the model was trained on and of the directory's
content, the data's file and directory.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aerec.config import MODELS
from aerec.data.matrix import ORIENTATIONS
from aerec.models.autoencoder import ACTIVATIONS

DIGEST = "content_sha256"
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_DEPTH = 16  # a saved model's description nests 4 levels (config.model.hidden's list)


class Invalid(Exception):  # noqa: N818 (a finding, turned into a DataError)
    """`field` of `file` (model.json, data.npz, params) is not what a saved model holds."""

    def __init__(self, file: str, field: str, problem: str):
        super().__init__(problem)
        self.file, self.field, self.problem = file, field, problem


# Checks of one value: None when it is valid, else what it must be.

def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> str | None:
    return None if _integer(value) and value >= 1 else "must be an integer >= 1"


def _fraction(value: Any) -> str | None:
    return None if _number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


def _non_negative(value: Any) -> str | None:
    return None if _number(value) and value >= 0 else "must be a number >= 0"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(valid: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda value: None if value in valid else f"must be one of {', '.join(valid)}"


def _widths(value: Any) -> str | None:
    listed = value if isinstance(value, list) else [value]
    if listed and all(_integer(width) and width >= 1 for width in listed):
        return None
    return "must be an integer >= 1 or a list of them"


def _digest(value: Any) -> str | None:
    return (None if isinstance(value, str) and HEX_DIGEST.fullmatch(value)
            else "must be a sha256 digest (64 lowercase hexadecimal digits)")


# The keys each model's graph and predictor read when loaded (training's other keys are
# recorded, not used).
MODEL_KEYS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "autoencoder": {"layers": _positive_int, "hidden": _widths, "latent": _positive_int,
                    "activation": _one_of(tuple(ACTIVATIONS)),
                    "output_activation": _one_of(tuple(ACTIVATIONS)), "dropout": _fraction,
                    "input_dropout": _fraction, "mirror_decoder": _boolean,
                    "ensemble": _positive_int},
    "svd": {"rank": _positive_int, "center": _boolean, "bias_reg": _non_negative},
    "popularity": {},
}


def read_description(path: Path) -> dict[str, Any]:
    """model.json parsed and checked field by field."""
    try:
        description = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise Invalid("model.json", "", "is missing") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad JSON or UTF-8
        raise Invalid("model.json", "", f"is not valid JSON ({error})") from None
    if not isinstance(description, dict):
        raise Invalid("model.json", "", "must hold a JSON object")
    if _depth(description) > MAX_DEPTH:  # OmegaConf and comparisons recurse: bounded here
        raise Invalid("model.json", "", f"is nested more than {MAX_DEPTH} levels deep")
    check_description(description)
    return description


def _depth(value: Any) -> int:
    """How deeply a JSON value nests lists and objects (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = (node.values() if isinstance(node, dict)
                    else node if isinstance(node, list) else None)
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _field(section: dict[str, Any], key: str, prefix: str = "") -> Any:
    if key not in section:
        raise Invalid("model.json", f"{prefix}{key}", "is missing")
    return section[key]


def _pair(description: dict[str, Any], key: str) -> tuple[float, float]:
    value = _field(description, key)
    if not (isinstance(value, list) and len(value) == 2 and all(map(_number, value))):
        raise Invalid("model.json", key, f"must be two finite numbers, got {value!r:.80}")
    return value[0], value[1]


def check_description(description: dict[str, Any]) -> None:
    """Every field `aerec.load` and task=evaluate read, of the right type and range."""
    check_model_section(_field(description, "model"))
    config = _field(description, "config")
    if not isinstance(config, dict):
        raise Invalid("model.json", "config", "must be an object")
    if config.get("model") != description["model"]:  # task=evaluate reads the config's
        raise Invalid("model.json", "config.model", "differs from the model section")
    if _pair(description, "scaling")[1] <= 0:
        raise Invalid("model.json", "scaling", "its scale (the second number) must be > 0")
    low, high = _pair(description, "rating_range")
    if not low < high:
        raise Invalid("model.json", "rating_range", f"[{low}, {high}] must be low < high")
    fallback = _field(description, "fallback")
    if not (_number(fallback) and low <= fallback <= high):
        raise Invalid("model.json", "fallback", f"{fallback!r:.80} must be a number in the "
                      "rating range")
    if _positive_int(_field(description, "n_inputs")):
        raise Invalid("model.json", "n_inputs", f"{description['n_inputs']!r:.80} must be an "
                      "integer >= 1")
    for key in ("data_fingerprint", DIGEST):  # optional: older models lack them
        if key in description and _digest(description[key]):
            raise Invalid("model.json", key, _digest(description[key]))
    for key in ("data_source", "data_dir"):  # optional: where task=evaluate reads the data
        if key in description and not isinstance(description[key], str):
            raise Invalid("model.json", key, f"{description[key]!r:.80} must be a string")


def check_model_section(model: Any) -> None:
    """The `model` section: a known name and orientation, and the keys its graph reads."""
    if not isinstance(model, dict):
        raise Invalid("model.json", "model", "must be an object")
    _check_keys(model, {"name": _one_of(MODELS), "orientation": _one_of(ORIENTATIONS)})
    _check_keys(model, MODEL_KEYS[model["name"]])
    hidden = model.get("hidden")
    if isinstance(hidden, list) and len(hidden) != model["layers"]:
        raise Invalid("model.json", "model.hidden", f"lists {len(hidden)} widths, "
                      f"model.layers={model['layers']}")


def _check_keys(model: dict[str, Any], checks: dict[str, Callable[[Any], str | None]]) -> None:
    for key, check in checks.items():
        problem = check(_field(model, key, "model."))
        if problem:
            raise Invalid("model.json", f"model.{key}", f"{model[key]!r:.80} {problem}")
