"""Mean ± std over seeds of the top-N figures of runs laid out as OUT/<name>/<seed>/:

    python experiments/topn_table.py multirun/topn_ml1m [K (10)]

Prints a Markdown table: test NDCG, Recall, MRR, Hit and Precision at K, validation figure,
best epoch and training seconds, one row per name (runs whose results.json is missing or
failed are counted apart).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def summary(root: Path, k: int = 10) -> str:
    """The table of every name under `root`."""
    figures = ["ndcg", "recall", "mrr", "hit_rate", "precision"]
    lines = ["| model | runs | " + " | ".join(f"{f}@{k}" for f in figures)
             + " | valid | best epoch | train s |", "|---" * (len(figures) + 5) + "|"]
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        runs = []
        for result in sorted(folder.glob("*/results.json")):
            run = json.loads(result.read_text())
            if run.get("status") == "ok":
                runs.append(run)
        if not runs:
            continue

        def cell(values: list[float], digits: int = 4) -> str:
            array = np.asarray(values, np.float64)
            return (f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f}" if len(array) > 1
                    else f"{array[0]:.{digits}f}")

        monitor = runs[0]["monitor"]
        row = [folder.name, str(len(runs))]
        row += [cell([run[f"{figure}@{k}"] for run in runs]) for figure in figures]
        row += [f"{monitor} {cell([run[f'valid_{monitor}'] for run in runs])}",
                cell([run["best_epoch"] for run in runs], 0),
                cell([run["train_seconds"] for run in runs], 1)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10))
