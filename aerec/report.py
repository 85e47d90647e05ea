"""Aggregate the runs of a (multi)run directory: `python -m aerec.report DIR [--out DIR]`.

Writes `report.md` (the paper's tables beside ours, configurations that differ only in their
seeds as mean ± std, every run ranked by the validation figure it monitored, and the top-k
figures) and `report.png` (our paper-metric figures beside the paper's), and prints the
markdown. The paper's tables and figure are only for the paper's kind of run (a rating model
with a paper_rmse); a directory of others, a top-N sweep, gets the other tables alone.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from aerec.atomic import atomic_output, write_text_atomic
from aerec.identity import RECORDED_AS, is_identity_key
from aerec.search import MINIMISED, monitor_direction

# Tables 3 and 4 of Ferreira et al. 2020: RMSE by (model, encoder layers) and dataset.
PAPER_RMSE: dict[tuple[str, int], dict[str, float]] = {
    ("autoencoder", 1): {"ml1m": 0.029, "ml10m": 0.010},
    ("autoencoder", 2): {"ml1m": 0.038, "ml10m": 0.012},
    ("autoencoder", 3): {"ml1m": 0.050, "ml10m": 0.015},
    ("svd", 0): {"ml1m": 0.184, "ml10m": 0.176},
}
DATASET_LABELS = {"ml1m": "ML-1M", "ml10m": "ML-10M"}
# The models whose rows the paper's tables have (aerec's popularity floor among them).
PAPER_MODELS = ("autoencoder", "svd", "popularity")


def format_seconds(seconds: float) -> str:
    """Whole seconds, but two decimals under ten (a one-shot fit takes a fraction of one)."""
    return f"{seconds:.2f}" if round(seconds, 2) < 10 else f"{seconds:.0f}"


def architecture(model: str, layers: int) -> str:
    """The paper's row label for a model and depth."""
    if model == "svd":
        return "SVD"
    if model == "popularity":
        return "popularity (most rated)"
    return f"{layers} layer{'s' if layers > 1 else ''} + 1 latent space"


# What the tables read of a training run's results.json (figures may be null).
RUN_KEYS = ("dataset", "model", "layers", "epochs_run", "train_seconds")


def load_runs(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every training run's results.json below `directory`, with the run's overrides when Hydra
    saved them; and apart, the runs that failed (`"status": "failed"`) or whose results.json
    cannot be read, each with its error. Other tasks' results (`task=evaluate` re-scores a
    saved model: no training figures) are left out."""
    runs, failed = [], []
    for path in sorted(directory.rglob("results.json")):
        overrides = path.parent / ".hydra" / "overrides.yaml"
        where = {"run_dir": str(path.parent.relative_to(directory)),
                 "overrides": (" ".join(yaml.safe_load(overrides.read_text()))
                               if overrides.is_file() else "")}
        result = _read_result(path)
        if isinstance(result, str) or result.get("status") == "failed":
            error = result if isinstance(result, str) else str(result.get("error"))
            failed.append({**where, "error": error})
        elif "epochs_run" in result:
            runs.append({**result, **where,
                         "monitor": result.get("monitor") or monitored(path.parent)})
    return runs, failed


def monitored(run_dir: Path) -> str:
    """The validation figure a run monitored, from its config.yaml (`train.monitor`), for
    results that do not say it; rmse, what runs monitored before the key existed."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        monitor = config["train"]["monitor"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return "rmse"
    return monitor if isinstance(monitor, str) and monitor != "auto" else "rmse"


def _read_result(path: Path) -> dict[str, Any] | str:
    """A results.json as a dict, or why it cannot be read (damaged, or edited by hand)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"results.json is unreadable: {error}"
    if not isinstance(result, dict):
        return "results.json is unreadable: not a JSON object"
    missing = [key for key in RUN_KEYS if key not in result]
    if "epochs_run" in result and missing:
        return f"results.json is unreadable: it lacks {', '.join(missing)}"
    return result


def _summary(values: list[float]) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} (n={len(values)})"


# Overrides that place a run in the paper table (dataset column, model and depth) or name its
# seeds; with those that do not change what is trained (aerec.identity) they are left out of
# the configuration that labels a row.
ROW_KEYS = ("dataset", "model", "model.layers", "seed", "split.seed")


def configuration(run: dict[str, Any]) -> str:
    """The run's overrides that change what it trains, less its place in the table; sorted."""
    kept = []
    for token in run["overrides"].split():
        key = token.split("=", 1)[0].lstrip("+~")
        if key not in ROW_KEYS and is_identity_key(key) and key not in RECORDED_AS:
            kept.append(token)
    return " ".join(sorted(kept))


def shared_overrides(runs: list[dict[str, Any]]) -> set[str]:
    """The overrides every run has: said once above the tables, not in every row."""
    return set.intersection(*(set(run["overrides"].split()) for run in runs)) if runs else set()


def own_overrides(run: dict[str, Any], shared: set[str]) -> str:
    """The run's overrides less those every run has; '-' for none."""
    return " ".join(token for token in run["overrides"].split() if token not in shared) or "-"


def group(runs: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, list[dict]]]:
    """Runs by (model, layers, configuration less the shared overrides), then by dataset:
    runs averaged together differ only in their seeds."""
    shared = shared_overrides(runs)
    grouped: dict[tuple[str, int, str], dict[str, list[dict]]] = defaultdict(
        lambda: defaultdict(list))
    for run in runs:
        own = " ".join(token for token in configuration(run).split() if token not in shared)
        grouped[(run["model"], int(run["layers"]), own)][run["dataset"]].append(run)
    return grouped


def row_label(key: tuple[str, int, str]) -> str:
    """The paper's architecture label, with the configuration when there is one."""
    model, layers, config = key
    return architecture(model, layers) + (f" ({config})" if config else "")


def row_order(key: tuple[str, int, str]) -> tuple[bool, int, str]:
    return key[0] == "svd", key[1], key[2]


def mean_or_nan(values: list[float | None]) -> float:
    present = [value for value in values if value is not None]
    return statistics.mean(present) if present else float("nan")


def paper_table(runs: list[dict[str, Any]]) -> str:
    """Rows: architecture; per dataset: the paper's RMSE, our paper_rmse and test_rmse."""
    grouped = group(runs)
    datasets = sorted({run["dataset"] for run in runs}, key=lambda name: (name != "ml1m", name))
    header = ["architecture"]
    for name in datasets:
        label = DATASET_LABELS.get(name, name)
        header += [f"{label} paper", f"{label} paper_rmse", f"{label} test_rmse"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(grouped, key=row_order):
        cells = [row_label(key)]
        for name in datasets:
            reported = PAPER_RMSE.get(key[:2], {}).get(name)
            found = grouped[key].get(name, [])
            cells += [f"{reported:.3f}" if reported is not None else "-",
                      _summary([run.get("paper_rmse") for run in found]),
                      _summary([run.get("test_rmse") for run in found])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def is_paper_run(run: dict[str, Any]) -> bool:
    """Whether the run has a place in the paper's tables: a model of theirs, scored on the
    paper's metric."""
    return run["model"] in PAPER_MODELS and run.get("paper_rmse") is not None


def present(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    """The `keys` some run has a figure for, in order."""
    return [key for key in keys if any(run.get(key) is not None for run in runs)]


def monitors(runs: list[dict[str, Any]]) -> list[str]:
    """The validation figures the runs monitored, in the order first met."""
    return list(dict.fromkeys(run["monitor"] for run in runs))


def monitor_label(monitor: str) -> str:
    return monitor.upper() if monitor in MINIMISED else monitor


def best_first(monitor: str) -> Any:
    """Sort key: best `valid_<monitor>` first (in its direction), runs without it last."""
    sign = -1.0 if monitor_direction(monitor) == "maximize" else 1.0

    def order(run: dict[str, Any]) -> float:
        value = run.get(f"valid_{monitor}")
        return sign * value if isinstance(value, int | float) and value == value else math.inf

    return order


# The test figures a run's row shows beside its validation figure, where some run has them.
TEST_FIGURES = ("test_rmse", "ndcg@10", "recall@10")


def runs_table(runs: list[dict[str, Any]], monitor: str, paper: bool) -> str:
    """The runs that monitored `monitor`, best validation figure first (the only figure to
    tune on), with their test figures; `paper`: with the paper's metric."""
    mine = [run for run in runs if run["monitor"] == monitor]
    keys = [f"valid_{monitor}", *present(mine, tuple(
        key for key in ("valid_rmse", TEST_FIGURES[0], *(("paper_rmse",) if paper else ()),
                        *TEST_FIGURES[1:]) if key != f"valid_{monitor}"))]
    lines = [f"| run | overrides | {' | '.join(keys)} | epochs | seconds |",
             "|---|---|" + "---|" * len(keys) + "---|---|"]
    shared = shared_overrides(runs)
    for run in sorted(mine, key=best_first(monitor)):
        text = [f"{value:.4f}" if value is not None else "-" for value in map(run.get, keys)]
        lines.append(f"| {run['run_dir']} | {own_overrides(run, shared)} | {' | '.join(text)} | "
                     f"{run['epochs_run']} | {format_seconds(run['train_seconds'])} |")
    return "\n".join(lines)


RANKING_KEYS = ("precision@10", "recall@10", "ndcg@10", "hit_rate@10", "map@10",
                "coverage@10", "recall@100", "ndcg@100", "mrr@10")


def ranking_table(runs: list[dict[str, Any]]) -> str:
    """Top-k figures of the runs that have them, best NDCG@10 first."""
    ranked = [run for run in runs if run.get("ndcg@10") is not None]
    if not ranked:
        return "(no run has ranking figures)"
    keys = present(ranked, ("test_rmse", *RANKING_KEYS))
    lines = [f"| run | model | overrides | {' | '.join(keys)} |",
             "|---|---|---|" + "---|" * len(keys)]
    shared = shared_overrides(runs)
    for run in sorted(ranked, key=lambda run: -run["ndcg@10"]):
        figures = [run.get(key) for key in keys]
        text = [f"{value:.4f}" if value is not None else "-" for value in figures]
        lines.append(f"| {run['run_dir']} | {run['model']} | {own_overrides(run, shared)} | "
                     f"{' | '.join(text)} |")
    return "\n".join(lines)


SEED_KEYS = ("seed=", "split.seed=")


def seeds_table(runs: list[dict[str, Any]]) -> str:
    """Runs that differ only in their seeds, summarised as mean ± standard deviation."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    shared = shared_overrides(runs)
    for run in runs:
        kept = [token for token in own_overrides(run, shared).split()
                if not token.startswith(SEED_KEYS)]
        grouped[" ".join(kept) or "-"].append(run)
    keys = present(runs, ("test_rmse", "test_mae", *(f"valid_{monitor}"
                                                     for monitor in monitors(runs)),
                          *TEST_FIGURES[1:]))
    lines = [f"| configuration | runs | {' | '.join(keys)} | train seconds |",
             "|---|---|" + "---|" * len(keys) + "---|"]
    for configuration, members in sorted(grouped.items()):
        figures = [_summary([run.get(key) for run in members]).split(" (n=")[0]
                   for key in keys]
        seconds = statistics.mean(run["train_seconds"] for run in members)
        lines.append(f"| {configuration} | {len(members)} | {' | '.join(figures)} | "
                     f"{format_seconds(seconds)} |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Bars: the paper's RMSE and our paper_rmse per architecture, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = group(runs)
    datasets = sorted({run["dataset"] for run in runs}, key=lambda name: (name != "ml1m", name))
    keys = sorted(grouped, key=row_order)
    width = max(5.0, 1.6 * len(keys))  # room for each row's wrapped label
    figure, axes = plt.subplots(1, len(datasets), figsize=(width * len(datasets), 4.5),
                                squeeze=False)
    for axis, name in zip(axes[0], datasets, strict=True):
        positions = range(len(keys))
        reported = [PAPER_RMSE.get(key[:2], {}).get(name, float("nan")) for key in keys]
        ours = [mean_or_nan([run.get("paper_rmse") for run in grouped[key].get(name, [])])
                for key in keys]
        axis.bar([p - 0.2 for p in positions], reported, width=0.4, label="paper (reported)")
        axis.bar([p + 0.2 for p in positions], ours, width=0.4, label="ours (paper_rmse)")
        axis.set_xticks(list(positions), [textwrap.fill(row_label(key), 22) for key in keys],
                        fontsize=7)
        axis.set(title=DATASET_LABELS.get(name, name), ylabel="RMSE on the [0, 1] scale")
        axis.legend(fontsize=8)
    figure.tight_layout()
    try:
        with atomic_output(path) as handle:
            figure.savefig(handle, dpi=100, format="png")
    finally:
        plt.close(figure)


def failed_table(failed: list[dict[str, Any]], shared: set[str]) -> str:
    """The runs that failed or cannot be read, with their own overrides and their errors."""
    lines = ["| run | overrides | error |", "|---|---|---|"]
    for run in failed:
        error = " ".join(run["error"].split()).replace("|", "\\|")  # one table cell
        lines.append(f"| {run['run_dir']} | {own_overrides(run, shared)} | {error} |")
    return "\n".join(lines)


def report(directory: Path, out: Path | None = None) -> str:
    """Write report.md and report.png for the runs below `directory`; return the markdown."""
    runs, failed = load_runs(directory)
    if not runs:
        raise SystemExit(f"error: no training run's results.json below {directory}" + (
            f"; {len(failed)} failed: {', '.join(run['run_dir'] for run in failed)}"
            if failed else ""))
    out = out or directory
    out.mkdir(parents=True, exist_ok=True)
    shared = sorted(shared_overrides(runs))
    settings = (f"Overrides of every run, left out of the tables: `{' '.join(shared)}`.\n\n"
                if shared else "")
    paper = [run for run in runs if is_paper_run(run)]
    markdown = (f"## Paper tables (runs below {directory})\n\n{settings}{paper_table(paper)}\n\n"
                if paper else f"## Summary of the runs below {directory}\n\n{settings}")
    markdown += f"## Mean ± standard deviation over seeds\n\n{seeds_table(runs)}\n\n"
    for monitor in monitors(runs):
        markdown += (f"## Runs, best validation {monitor_label(monitor)} first\n\n"
                     f"{runs_table(runs, monitor, bool(paper))}\n\n")
    markdown += f"## Top-k ranking, best NDCG@10 first\n\n{ranking_table(runs)}\n"
    if failed:
        markdown += ("\n## Failed runs (in no table above)\n\n"
                     f"{failed_table(failed, set(shared))}\n")
    write_text_atomic(out / "report.md", markdown)
    if paper:
        plot(paper, out / "report.png")
    return markdown


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m aerec.report DIR [--out DIR]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a run or multirun directory")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default DIR)")
    arguments = parser.parse_args(argv)
    print(report(arguments.directory, arguments.out))


if __name__ == "__main__":
    main()
