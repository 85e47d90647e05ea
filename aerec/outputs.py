"""What a run leaves in its output directory, and the table it prints."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from aerec.atomic import atomic_output, write_text_atomic

TABLE_KEYS = ("dataset", "feedback", "model", "layers", "n_users", "n_items", "n_train",
              "n_test", "test_rmse", "test_mae", "paper_rmse", "precision@10", "recall@10",
              "ndcg@10", "mrr@10", "monitor", "best_epoch", "epochs_run", "train_seconds")


def _plain(value: Any) -> Any:
    # JSON has no NaN/inf: write null for them rather than produce an unparseable file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary sibling, then rename: readers never see half a file."""
    write_text_atomic(path, json.dumps({k: _plain(v) for k, v in payload.items()}, indent=2)
                      + "\n")


class EpochLog:
    """Appends one JSON object per epoch to metrics.jsonl, flushed as it goes."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("")

    def __call__(self, record: dict[str, Any]) -> None:
        """Append one epoch's record."""
        with open(self.path, "a") as handle:
            handle.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")


def write_id_maps(dataset: Any, path: Path) -> None:
    """Raw MovieLens ids of the contiguous user and item indices (npz, no pickle)."""
    with atomic_output(path) as handle:
        np.savez(handle, users=dataset.users.raw, items=dataset.items.raw)


def write_config(resolved_yaml: str, output_dir: Path) -> None:
    """The fully resolved configuration of the run (YAML text) as config.yaml."""
    write_text_atomic(output_dir / "config.yaml", resolved_yaml)


def plot_learning_curve(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and the monitored validation figure per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [record["epoch"] for record in history]
    figure, (loss_axis, rmse_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(epochs, [record["train_loss"] for record in history])
    loss_axis.set(xlabel="epoch", ylabel="train loss", title="training loss")
    monitored = next((key for key in history[0] if key.startswith("valid_")), "valid_rmse")
    rmse_axis.plot(epochs, [record[monitored] for record in history], color="tab:orange")
    label = monitored.removeprefix("valid_")
    rmse_axis.set(xlabel="epoch", ylabel=label, title=f"validation {label}")
    figure.tight_layout()
    try:
        with atomic_output(path) as handle:
            figure.savefig(handle, dpi=100, format="png")
    finally:
        plt.close(figure)


def format_table(results: dict[str, Any]) -> str:
    """A two-column text table of the headline results."""
    rows = []
    for key in (key for key in TABLE_KEYS if key in results):
        value = results[key]
        if key == "monitor":  # the kept epoch's validation figure
            key, value = f"valid_{value}", results.get(f"valid_{value}")
        elif isinstance(value, float) and math.isnan(value):
            continue  # a figure the run does not have (its reason is in results.json)
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append((key, text))
    width = max(len(key) for key, _ in rows)
    rule = "-" * (width + 2 + max(len(text) for _, text in rows))
    return "\n".join([rule, *(f"{key:<{width}}  {text}" for key, text in rows), rule])
