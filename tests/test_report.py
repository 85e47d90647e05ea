"""Aggregation of run directories into the paper's tables, and the paper configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aerec.report import format_seconds, main, report


def write_run(directory: Path, overrides: str | None = None, **fields: object) -> None:
    directory.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    overrides = overrides or f"model.layers={fields.get('layers', 0)}"
    (directory / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {token}\n" for token in overrides.split()))
    base = {"valid_rmse": 0.9, "epochs_run": 3, "train_seconds": 1.0, "test_mae": 0.7}
    (directory / "results.json").write_text(json.dumps({**base, **fields}))


def test_paper_table_and_ranking(tmp_path: Path) -> None:
    write_run(tmp_path / "0", dataset="ml1m", model="autoencoder", layers=1, paper_rmse=0.10,
              test_rmse=0.90, valid_rmse=0.95)
    write_run(tmp_path / "1", dataset="ml1m", model="autoencoder", layers=1, paper_rmse=0.12,
              test_rmse=0.94, valid_rmse=0.85)
    write_run(tmp_path / "2", dataset="ml1m", model="svd", layers=0, paper_rmse=0.20,
              test_rmse=0.88)
    markdown = report(tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()}
    # two seeds of the same architecture: mean ± sample standard deviation
    assert "| 0.029 | 0.1100 ± 0.0141 (n=2) | 0.9200 ± 0.0283 (n=2) |" in rows[
        "1 layer + 1 latent space"]
    assert "| 0.184 | 0.2000 | 0.8800 |" in rows["SVD"]
    runs_section = markdown.split("## Runs")[1]
    ranked = [line.split(" | ")[0].strip("| ") for line in runs_section.splitlines()
              if line.startswith("| ") and "model.layers" in line]
    assert ranked == ["1", "2", "0"]  # by validation RMSE: 0.85, 0.9, 0.95
    assert all(line.endswith("| 3 | 1.00 |") for line in runs_section.splitlines()
               if "model.layers" in line)  # a short fit's seconds keep two decimals
    assert (tmp_path / "report.md").read_text() == markdown
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_seconds_keep_two_decimals_under_ten() -> None:
    assert [format_seconds(value) for value in (0.4177, 9.994, 9.996, 177.3)] == [
        "0.42", "9.99", "10", "177"]


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no training run's results\.json"):
        main([str(tmp_path)])


@pytest.mark.parametrize("experiment", ["paper", "paper_standard"])
def test_paper_experiments_specialise_each_model(compose_config, experiment: str) -> None:
    autoencoder = compose_config(f"experiment={experiment}", fast=False)
    assert (autoencoder.prepare.min_item_ratings, autoencoder.prepare.min_user_ratings) == (20,
                                                                                            20)
    assert autoencoder.model.loss == "all_cells"
    assert autoencoder.model.scaling == "minmax"
    assert autoencoder.model.activation == "tanh"
    assert autoencoder.optimizer.learning_rate == 1e-4
    assert autoencoder.split.kind == ("users" if experiment == "paper" else "ratings")
    svd = compose_config(f"experiment={experiment}", "model=svd", "model.rank=5", fast=False)
    assert (svd.model.center, svd.model.scaling, svd.model.rank) == (False, "minmax", 5)


def test_seeds_are_summarised_per_configuration(tmp_path: Path) -> None:
    for index, (ensemble, seed, test) in enumerate([(1, 0, 0.83), (1, 1, 0.85), (3, 0, 0.82),
                                                    (3, 1, 0.82)]):
        write_run(tmp_path / str(index), f"seed={seed} split.seed={seed} model.ensemble={ensemble}",
                  dataset="ml1m", model="autoencoder", layers=1, paper_rmse=0.5, test_rmse=test)
    markdown = report(tmp_path)
    assert "| model.ensemble=1 | 2 | 0.8400 ± 0.0141 | 0.7000 ± 0.0000 |" in markdown
    assert "| model.ensemble=3 | 2 | 0.8200 ± 0.0000 |" in markdown


def test_ranking_table_orders_by_ndcg(tmp_path: Path) -> None:
    top = {"precision@10": 0.2, "recall@10": 0.1, "hit_rate@10": 0.5, "map@10": 0.1,
           "coverage@10": 0.3, "recall@100": 0.4, "ndcg@100": 0.3, "paper_rmse": 0.5}
    write_run(tmp_path / "pop", "model=popularity", dataset="ml1m", model="popularity", layers=0,
              test_rmse=0.97, **top, **{"ndcg@10": 0.12})
    write_run(tmp_path / "svd", "model=svd", dataset="ml1m", model="svd", layers=0, test_rmse=0.88,
              **top, **{"ndcg@10": 0.27})
    write_run(tmp_path / "old", "model=svd", dataset="ml1m", model="svd", layers=0,
              test_rmse=0.88, paper_rmse=0.5)
    section = report(tmp_path).split("## Top-k ranking")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "@" not in line]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["svd", "pop"]
    assert "| 0.8800 | 0.2000 | 0.1000 | 0.2700 |" in rows[0]


def test_paper_table_keeps_configurations_apart(tmp_path: Path) -> None:
    # The same architecture under two experiments is two rows, not one mean of both.
    for name, overrides, test in [("paper", "experiment=paper model.layers=1 seed=0", 0.95),
                                  ("best", "experiment=best_ml1m model.layers=1 seed=0", 0.83),
                                  ("best1", "experiment=best_ml1m model.layers=1 seed=1", 0.85)]:
        write_run(tmp_path / name, overrides, dataset="ml1m", model="autoencoder", layers=1,
                  paper_rmse=0.5, test_rmse=test)
    rows = {line.split(" | ")[0].strip("| "): line
            for line in report(tmp_path).split("## Mean")[0].splitlines()}
    assert "| 0.029 | 0.5000 | 0.9500 |" in rows["1 layer + 1 latent space (experiment=paper)"]
    assert "| 0.8400 ± 0.0141 (n=2) |" in rows[
        "1 layer + 1 latent space (experiment=best_ml1m)"]


def test_settings_every_run_shares_are_said_once(tmp_path: Path) -> None:
    common = "experiment=paper paths.data_dir=/data train.progress=false"
    for name, layers in (("one", 1), ("two", 2)):
        write_run(tmp_path / name, f"{common} model.layers={layers} model.hidden=64 "
                  "dataset.download=false", dataset="ml1m", model="autoencoder", layers=layers,
                  paper_rmse=0.5, test_rmse=0.9, **{"ndcg@10": 0.2})
    write_run(tmp_path / "svd", f"{common} model=svd", dataset="ml1m", model="svd",
              layers=0, paper_rmse=0.6, test_rmse=1.0)
    markdown = report(tmp_path)
    table = markdown.split("## Mean")[0]
    assert ("Overrides of every run, left out of the tables: `experiment=paper "
            "paths.data_dir=/data train.progress=false`.") in table
    # row labels: what changes training, less what every run shares (downloads do not)
    labels = [line.split(" | ")[0].strip("| ") for line in table.splitlines()
              if line.startswith("| ") and "---" not in line][1:]
    assert labels == ["1 layer + 1 latent space (model.hidden=64)",
                      "2 layers + 1 latent space (model.hidden=64)", "SVD"]
    # the other tables show each run's own overrides only
    for section in markdown.split("## ")[2:]:
        assert "paths.data_dir" not in section and "experiment=paper" not in section
    assert "| svd | model=svd |" in markdown.split("## Runs")[1]
    assert "| model.layers=1 model.hidden=64 dataset.download=false |" in markdown.split(
        "## Top-k")[1]


def test_evaluate_runs_and_missing_paper_metric_do_not_break_the_report(tmp_path: Path) -> None:
    write_run(tmp_path / "train", dataset="ml1m", model="autoencoder", layers=1, test_rmse=0.9,
              paper_rmse=None)
    evaluated = tmp_path / "evaluate"
    evaluated.mkdir()
    (evaluated / "results.json").write_text(json.dumps(
        {"dataset": "ml1m", "model": "autoencoder", "layers": 1, "test_rmse": 0.9}))
    markdown = report(tmp_path)
    assert "evaluate" not in markdown.split("## Runs")[1]
    # without the paper's metric, no paper table or figure
    assert "## Paper tables" not in markdown and "paper_rmse" not in markdown
    assert not (tmp_path / "report.png").exists()


def test_failed_and_unreadable_runs_are_listed_apart(tmp_path: Path) -> None:
    write_run(tmp_path / "0", "train.epochs=3 optimizer.learning_rate=0.001", dataset="ml1m",
              model="autoencoder", layers=1, paper_rmse=0.5, test_rmse=0.9)
    failed = tmp_path / "1"
    write_run(failed, "train.epochs=3 optimizer.learning_rate=1e30")
    (failed / "results.json").write_text(json.dumps(
        {"status": "failed", "error": "training loss is nan at epoch 1 | see run.log"}))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "results.json").write_text('{"epochs_run": 3, "test_')  # cut short
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "results.json").write_text('{"epochs_run": 3}')
    markdown = report(tmp_path)
    tables, section = markdown.split("## Failed runs (in no table above)")
    assert "1e30" not in tables
    runs_section = tables.split("## Runs")[1].split("## Top-k")[0]
    assert [line.split(" | ")[0] for line in runs_section.split("|---|\n")[1].splitlines()
            if line] == ["| 0"]
    assert section.strip().splitlines()[2:] == [
        "| 1 | optimizer.learning_rate=1e30 | training loss is nan at epoch 1 \\| see run.log |",
        "| 2 | - | results.json is unreadable: Unterminated string starting at: line 1 "
        "column 19 (char 18) |",
        "| 3 | - | results.json is unreadable: it lacks dataset, model, layers, train_seconds |"]
    (tmp_path / "0" / "results.json").unlink()  # only failed runs: one error line
    with pytest.raises(SystemExit, match=r"^error: no training run's results\.json below .*; "
                                         "3 failed: 1, 2, 3$"):
        main([str(tmp_path)])
