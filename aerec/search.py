"""What an optimising sweep (hparams_search=optuna_*, docs/tracking.md) optimises: the
validation figure a run monitors (`train.monitor`), in that figure's direction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Figures where lower is better; every ranking figure (`ndcg@10`, `recall@20`, ...) is better
# higher.
MINIMISED = ("rmse", "mae")


def monitor_direction(monitor: str) -> str | None:
    """"minimize" or "maximize" for a figure the run monitors (`rmse`, `ndcg@10`); None for a
    name that is no figure (`auto`: the run picks it), whose direction a sweep cannot know."""
    if monitor in MINIMISED:
        return "minimize"
    name, at, k = monitor.partition("@")
    return "maximize" if name and at and k.isdigit() else None


def worst(monitor: str) -> float:
    """The value a failed job returns to the sweeper: the worst in the monitor's direction
    (+inf when minimised, -inf when maximised). Never NaN: hydra-optuna-sweeper 1.3 with
    Optuna 2.10 ends the whole sweep with a traceback on a NaN objective."""
    return float("-inf") if monitor_direction(monitor) == "maximize" else float("inf")


def objective(results: Mapping[str, Any], monitor: str) -> float:
    """What a finished run returns to the sweeper: its validation figure `valid_<monitor>`
    (at the kept epoch), or the worst value when it has none (no validation ratings)."""
    value = results.get(f"valid_{monitor}")
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return worst(monitor)
    return float(value)
