"""model.json of a saved model, checked field by field (see `aerec.model_files`).

Every field that loading and task=evaluate read must be present, of its type and in its
range: a known model name and orientation, the keys the model's graph and predictor read, a
scaling with a positive scale, a rating range low <= high holding the fallback (equal for
implicit feedback: every interaction is 1), a positive
n_inputs; `config` an object whose model section is the model's. Optional fields are checked
for their form: the digests of the data the model was trained on and of the directory's
content, the data's file and directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aerec.checks import is_number, one_of_problem, positive_int_problem
from aerec.data.device_rows import ORIENTATIONS
from aerec.models.registry import FAMILIES, get_family

DIGEST = "content_sha256"
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_DEPTH = 16  # a saved model's description nests 4 levels (config.model.hidden's list)


class Invalid(Exception):  # noqa: N818 (a finding, turned into a DataError)
    """`field` of `file` (model.json, data.npz, params) is not what a saved model holds."""

    def __init__(self, file: str, field: str, problem: str):
        super().__init__(problem)
        self.file, self.field, self.problem = file, field, problem


def _digest(value: Any) -> str | None:
    return (None if isinstance(value, str) and HEX_DIGEST.fullmatch(value)
            else "must be a sha256 digest (64 lowercase hexadecimal digits)")


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
    if _depth(description) > MAX_DEPTH:  # copies and comparisons recurse: bounded here
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
    if not (isinstance(value, list) and len(value) == 2 and all(map(is_number, value))):
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
    dataset = config.get("dataset")  # task=evaluate reads the data again by its name
    if not (isinstance(dataset, dict) and isinstance(dataset.get("name"), str)):
        raise Invalid("model.json", "config.dataset", "must be an object with a name")
    _check_scale(description)
    if positive_int_problem(_field(description, "n_inputs")):
        raise Invalid("model.json", "n_inputs", f"{description['n_inputs']!r:.80} must be an "
                      "integer >= 1")
    _check_optional(description)


def _check_scale(description: dict[str, Any]) -> None:
    """The scaling's scale > 0; the rating range low <= high, holding the fallback."""
    if _pair(description, "scaling")[1] <= 0:
        raise Invalid("model.json", "scaling", "its scale (the second number) must be > 0")
    low, high = _pair(description, "rating_range")
    if not low <= high:
        raise Invalid("model.json", "rating_range", f"[{low}, {high}] must be low <= high")
    fallback = _field(description, "fallback")
    if not (is_number(fallback) and low <= fallback <= high):
        raise Invalid("model.json", "fallback", f"{fallback!r:.80} must be a number in the "
                      "rating range")


def _check_optional(description: dict[str, Any]) -> None:
    """The optional fields, where present: digests, the data's file and directory."""
    for key in ("data_fingerprint", DIGEST):  # optional: older models lack them
        if key in description and _digest(description[key]):
            raise Invalid("model.json", key, _digest(description[key]))
    for key in ("data_source", "data_dir"):  # optional: where task=evaluate reads the data
        if key in description and not isinstance(description[key], str):
            raise Invalid("model.json", key, f"{description[key]!r:.80} must be a string")


def check_model_section(model: Any) -> None:
    """The `model` section: a known name and orientation, and the keys its family's graph
    and predictor read (training's other keys are recorded, not used)."""
    if not isinstance(model, dict):
        raise Invalid("model.json", "model", "must be an object")
    _check_keys(model, {"name": one_of_problem(tuple(FAMILIES)),
                        "orientation": one_of_problem(ORIENTATIONS)})
    family = get_family(model["name"])
    _check_keys(model, family.saved_keys)
    problem = family.saved_problem(model)
    if problem is not None:
        raise Invalid("model.json", *problem)


def _check_keys(model: dict[str, Any], checks: Mapping[str, Callable[[Any], str | None]]
                ) -> None:
    for key, check in checks.items():
        problem = check(_field(model, key, "model."))
        if problem:
            raise Invalid("model.json", f"model.{key}", f"{model[key]!r:.80} {problem}")
