"""Checks of one value, shared by the configuration (`aerec.config`), the model families'
typed configs (`aerec.models`) and a saved model's model.json (`aerec.model_json`).

The run's configuration is checked by functions that raise a ConfigError naming the key;
a saved model's fields by functions that return what is wrong (None when the value is
valid), which model.json's reader turns into an error naming the file and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aerec.errors import ConfigError

# The run's configuration: ConfigError naming `key`.


def one_of(key: str, value: Any, valid: tuple[str, ...]) -> None:
    """`value` must be one of `valid`."""
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")


def positive(key: str, value: Any) -> None:
    """A number > 0."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{key}={value!r} must be a positive number")


def fraction(key: str, value: Any) -> None:
    """A number in [0, 1)."""
    if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value!r} must be in [0, 1)")


def positive_int(key: str, value: Any) -> None:
    """An integer >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value!r} must be an integer >= 1")


def number(key: str, value: Any) -> None:
    """An int or a float, not a bool."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be a number")


def boolean(key: str, value: Any) -> None:
    """true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")


def count(key: str, value: Any) -> None:
    """An integer >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key}={value!r} must be an integer >= 0")


# A saved model's fields: None when valid, else what the value must be.

def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int_problem(value: Any) -> str | None:
    """An integer >= 1."""
    return None if is_integer(value) and value >= 1 else "must be an integer >= 1"


def fraction_problem(value: Any) -> str | None:
    """A number in [0, 1)."""
    return None if is_number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


def non_negative_problem(value: Any) -> str | None:
    """A number >= 0."""
    return None if is_number(value) and value >= 0 else "must be a number >= 0"


def boolean_problem(value: Any) -> str | None:
    """true or false."""
    return None if isinstance(value, bool) else "must be true or false"


def one_of_problem(valid: tuple[str, ...]) -> Callable[[Any], str | None]:
    """A check that a value is one of `valid`."""
    return lambda value: None if value in valid else f"must be one of {', '.join(valid)}"


def widths_problem(value: Any) -> str | None:
    """A layer width >= 1, or a list of them."""
    listed = value if isinstance(value, list) else [value]
    if listed and all(is_integer(width) and width >= 1 for width in listed):
        return None
    return "must be an integer >= 1 or a list of them"


def user_rows_problem(orientation: Any, why: str) -> str | None:
    """None when a model's rows are users (`model.orientation=user`), else what the value
    must be and `why` (the top-N families encode a user's whole row)."""
    return None if orientation == "user" else f"must be user: {why}"
