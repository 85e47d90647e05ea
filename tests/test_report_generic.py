"""aerec.report on runs that are not the paper's: a top-N sweep, ranked by the validation
figure its runs monitored, without the paper's columns (results.json files written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from aerec.report import report


def write_run(directory: Path, overrides: str, config: str | None = None,
              **fields: object) -> None:
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {token}\n" for token in overrides.split()))
    if config is not None:
        (directory / "config.yaml").write_text(config)
    base = {"dataset": "ml1m", "layers": 0, "epochs_run": 5, "train_seconds": 12.0}
    (directory / "results.json").write_text(json.dumps({**base, **fields}))


def multvae(directory: Path, dropout: float, valid: float, test: float, **more: object) -> None:
    write_run(directory, f"hparams_search=optuna_multvae model.dropout={dropout}",
              model="multvae", monitor="ndcg@10", **{"valid_ndcg@10": valid, "ndcg@10": test,
                                                     "recall@10": test - 0.05}, **more)


def rows(section: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_a_top_n_sweep_has_no_paper_columns(tmp_path: Path) -> None:
    multvae(tmp_path / "0", 0.3, valid=0.31, test=0.29)
    multvae(tmp_path / "1", 0.5, valid=0.36, test=0.30)
    # results that do not name their monitor: read from the run's config.yaml
    write_run(tmp_path / "2", "hparams_search=optuna_multvae model.dropout=0.7",
              "train:\n  monitor: ndcg@10\n", model="multvae",
              **{"valid_ndcg@10": 0.33, "ndcg@10": 0.31, "recall@10": 0.26})
    markdown = report(tmp_path)
    assert "paper" not in markdown.lower() and "rmse" not in markdown
    assert not (tmp_path / "report.png").exists()
    assert "Overrides of every run, left out of the tables: `hparams_search=optuna_multvae`" \
        in markdown
    section = markdown.split("## Runs, best validation ndcg@10 first")[1].split("## Top-k")[0]
    header, *ranked = rows(section)
    assert header == ["run", "overrides", "valid_ndcg@10", "ndcg@10", "recall@10", "epochs",
                      "seconds"]
    assert [row[:5] for row in ranked] == [  # higher is better: best first
        ["1", "model.dropout=0.5", "0.3600", "0.3000", "0.2500"],
        ["2", "model.dropout=0.7", "0.3300", "0.3100", "0.2600"],
        ["0", "model.dropout=0.3", "0.3100", "0.2900", "0.2400"]]
    seeds = rows(markdown.split("## Mean ± standard deviation over seeds")[1].split("## ")[0])
    assert seeds[0] == ["configuration", "runs", "valid_ndcg@10", "ndcg@10", "recall@10",
                        "train seconds"]


def test_paper_and_top_n_runs_each_get_their_tables(tmp_path: Path) -> None:
    write_run(tmp_path / "ae", "model=autoencoder model.layers=1", model="autoencoder",
              layers=1, valid_rmse=0.86, test_rmse=0.85, paper_rmse=0.21)
    # a model the paper does not have: out of its table even with the paper's metric
    multvae(tmp_path / "vae", 0.5, valid=0.36, test=0.30, paper_rmse=0.4)
    write_run(tmp_path / "vae2", "model=multvae model.dropout=0.2", model="multvae",
              monitor="ndcg@10")  # no figures: ranked last
    markdown = report(tmp_path)
    paper = markdown.split("## Mean")[0]
    assert [row[0] for row in rows(paper)][1:] == ["1 layer + 1 latent space"]
    assert (tmp_path / "report.png").is_file()
    by_rmse = rows(markdown.split("## Runs, best validation RMSE first")[1].split("## ")[0])
    assert by_rmse[0][2:5] == ["valid_rmse", "test_rmse", "paper_rmse"]
    assert [row[0] for row in by_rmse[1:]] == ["ae"]
    by_ndcg = rows(markdown.split("## Runs, best validation ndcg@10 first")[1].split("## ")[0])
    assert [row[0] for row in by_ndcg[1:]] == ["vae", "vae2"]
    assert by_ndcg[0][2] == "valid_ndcg@10"
