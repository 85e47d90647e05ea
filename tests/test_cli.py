"""The whole program end to end: real Hydra composition, real files, real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from aerec.cli import run_task
from aerec.config import run_config
from aerec.data.dataset import load_dataset
from aerec.data.split import TEST
from aerec.errors import ConfigError
from aerec.matrices import data_dir_of
from aerec.report import report
from tests.conftest import FAST, FAST_DATA, FAST_MODEL, FAST_TRAIN, ROOT, cli_env

REQUIRED_KEYS = {"dataset", "model", "layers", "n_users", "n_items", "n_train", "n_valid",
                 "n_test", "test_rmse", "test_mae", "paper_rmse", "best_epoch", "epochs_run",
                 "train_seconds"}


def check_outputs(output_dir: Path, epochs: int) -> dict:
    results = json.loads((output_dir / "results.json").read_text())
    assert results.keys() >= REQUIRED_KEYS
    for key in REQUIRED_KEYS - {"dataset", "model"}:
        assert isinstance(results[key], int | float), key
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    resolved = OmegaConf.load(output_dir / "config.yaml")
    assert resolved.model.name == results["model"]
    return results


@pytest.mark.parametrize(("split", "orientation"), [
    ("ratings", "item"), ("per_user", "item"), ("ratings", "user"), ("per_user", "user"),
    ("users", "user")])
def test_autoencoder_run_writes_its_outputs(compose_config, tmp_path: Path, split: str,
                                            orientation: str) -> None:
    cfg = compose_config(f"split.kind={split}", f"model.orientation={orientation}")
    results = run_task(cfg, tmp_path)
    check_outputs(tmp_path, epochs=3)
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert results["n_train"] + results["n_valid"] + results["n_test"] + results[
        "n_fold_in"] == 3000
    assert 0.3 < results["test_rmse"] < 2.5
    assert 0.0 < results["paper_rmse"] < 1.0


def test_custom_csv_with_header_and_named_columns(compose_config, tmp_path: Path) -> None:
    lines = ["movie;who;stars"] + [f"{item};{user};{1 + (user * item) % 5}"
                                   for user in range(1, 31) for item in range(1, 21)
                                   if (user + item) % 3]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = compose_config(*FAST_TRAIN, *FAST_MODEL, "dataset=custom", f"dataset.path={path}",
                         "dataset.sep=';'", "dataset.header=true",
                         "dataset.columns=[item,user,rating]", fast=False)
    results = run_task(cfg, tmp_path / "run")
    assert (results["n_users"], results["n_items"]) == (30, 20)
    assert results["n_train"] + results["n_valid"] + results["n_test"] == len(lines) - 1


def test_ml10m_layout_and_depth_three(compose_config, tmp_path: Path) -> None:
    # The official ML-10M layout (folder ml-10M100K/, '::', half stars), already extracted.
    folder = tmp_path / "data" / "ml-10M100K"
    folder.mkdir(parents=True)
    rows = [f"{user}::{item}::{0.5 * (1 + (user + 2 * item) % 10)}::{838985046 + user}"
            for user in range(1, 41) for item in range(1, 31) if (user * item) % 4]
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    cfg = compose_config(*FAST_TRAIN, *FAST_MODEL, "dataset=ml10m",
                         f"paths.data_dir={tmp_path / 'data'}", "dataset.download=false",
                         "model.layers=3", "model.hidden=[16,12,8]", fast=False)
    results = run_task(cfg, tmp_path / "run")
    assert results["layers"] == 3
    assert results["n_train"] + results["n_valid"] + results["n_test"] == len(rows)
    maps = np.load(tmp_path / "run" / "id_maps.npz", allow_pickle=False)
    assert maps["items"].tolist() == sorted({int(row.split("::")[1]) for row in rows})


def mean_only_rmse(cfg) -> float:
    """Test RMSE of predicting the training mean everywhere: the floor a model must beat."""
    run = run_config(cfg)
    dataset = load_dataset(run.dataset, run.prepare, run.split,
                           data_dir_of(run.paths), progress=False)
    test = dataset.rating[dataset.role == TEST]
    return float(np.sqrt(np.mean((np.clip(dataset.train_mean(), 1, 5) - test) ** 2)))


def test_the_autoencoder_learns(compose_config, tmp_path: Path) -> None:
    # A denser, less noisy synthetic matrix and ten epochs: training must find its structure.
    cfg = compose_config("dataset.n_ratings=6000", "dataset.noise=0.2", "model.hidden=32",
                         "model.latent=32", "model.scaling=center", "train.epochs=10",
                         "ranking.enabled=false", "checkpoint.enabled=false")
    results = run_task(cfg, tmp_path)
    assert results["test_rmse"] < 0.85 * mean_only_rmse(cfg)


def test_the_progress_bar_counts_every_epoch(compose_config, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    cfg = compose_config("train.progress=true", "ranking.enabled=false")
    run_task(cfg, tmp_path / "run")
    assert "3/3 [" in capsys.readouterr().err.split("\r")[-1]  # the last epoch counted too
    run_task(cfg, tmp_path / "again")  # finished: nothing trained, no bar
    assert "train:" not in capsys.readouterr().err


def test_svd_run(compose_config, tmp_path: Path) -> None:
    cfg = compose_config(*FAST_DATA, "model=svd", "model.rank=3", fast=False)
    results = run_task(cfg, tmp_path)
    check_outputs(tmp_path, epochs=1)
    assert results["layers"] == 0
    assert results["test_rmse"] < 0.95 * mean_only_rmse(cfg)  # it learned something
    with pytest.raises(ConfigError, match=r"model\.rank=81 is more than the 120 x 80 training "
                                          "matrix allows: at most 80"):
        run_task(compose_config(*FAST_DATA, "model=svd", "model.rank=81", fast=False),
                 tmp_path / "too_many")


def test_streamed_and_resident_paths_agree(compose_config, tmp_path: Path) -> None:
    # checkpoints off: the two runs share an identity and the second would just resume
    resident = run_task(compose_config("train.data_path=resident", "checkpoint.enabled=false"),
                        tmp_path / "a")
    streamed = run_task(compose_config("train.data_path=streamed", "checkpoint.enabled=false"),
                        tmp_path / "b")
    assert resident["resumed_from_epoch"] == streamed["resumed_from_epoch"] == 0
    assert streamed["test_rmse"] == pytest.approx(resident["test_rmse"], rel=1e-4)


@pytest.mark.parametrize(
    ("override", "key"),
    [("model.layers=0", "model.layers"), ("model.dropout=1.0", "model.dropout"),
     ("optimizer.learning_rate=-1", "optimizer.learning_rate"),
     ("train.batch_size=0", "train.batch_size"), ("split.test_fraction=1.5", "split.test_fraction"),
     ("model.orientation=diagonal", "model.orientation"), ("dataset.name=ml5m", "dataset.name"),
     ("dataset.rating_min=0", "dataset.rating_min"),
     ("checkpoint.every_seconds=-1", "checkpoint.every_seconds"),
     # checked against the data, before any training: a scale of 1-5 and 80 items
     ("ranking.threshold=6", r"ranking.threshold=6 is above the highest rating \(5\)")],
)
def test_invalid_config_names_the_key(compose_config, tmp_path: Path, override: str,
                                      key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_task(compose_config(override), tmp_path)
    assert not (tmp_path / "results.json").exists()
    epochs = tmp_path / "metrics.jsonl"
    assert not epochs.exists() or not epochs.read_text()  # refused before the first epoch


@pytest.mark.parametrize("model", ["autoencoder", "svd", "popularity"])
def test_held_out_users_need_user_orientation(compose_config, tmp_path: Path,
                                              model: str) -> None:
    cfg = compose_config(f"model={model}", "split.kind=users", "model.orientation=item",
                         fast=False)
    with pytest.raises(ConfigError, match=r"split\.kind=users .* model\.orientation=user"):
        run_task(cfg, tmp_path)
    assert not (tmp_path / "results.json").exists()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=600)


def test_run_py_end_to_end(tmp_path: Path) -> None:
    done = run_cli(*FAST, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test_rmse" in done.stdout
    check_outputs(tmp_path / "run", epochs=3)


@pytest.mark.slow  # one of the longest tests: CI's 2 cores run it with -m slow
def test_the_compilation_cache_keeps_quickly_compiled_programs(tmp_path: Path) -> None:
    # model=svd compiles only small programs (its products, in well under a second): a fresh
    # process finds them in the cache instead of compiling them again.
    done = run_cli(*FAST_DATA, "model=svd", "model.rank=3", "ranking.enabled=false",
                   f"paths.compile_cache_dir={tmp_path / 'cache'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept = {entry.name.split("-")[0] for entry in (tmp_path / "cache").iterdir()}
    assert {"jit_matmul", "jit_transposed_product_rows", "jit__dense_residuals"} <= kept


@pytest.mark.slow  # one of the longest tests: CI's 2 cores run it with -m slow
def test_an_unusable_compilation_cache_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    done = run_cli(*FAST, "train.epochs=1", "ranking.enabled=false",
                   f"paths.compile_cache_dir={tmp_path / 'a_file' / 'cache'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: paths.compile_cache_dir=") == 1
    assert "compiling without the persistent cache" in done.stderr
    assert "UserWarning" not in done.stderr


@pytest.mark.slow  # one of the longest tests: CI's 2 cores run it with -m slow
def test_multirun_sweeps_depth(tmp_path: Path) -> None:
    done = run_cli("-m", *FAST, "train.epochs=1", "model.layers=1,2",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    layers = [json.loads((tmp_path / "sweep" / str(n) / "results.json").read_text())["layers"]
              for n in (0, 1)]
    assert layers == [1, 2]


def test_user_errors_print_a_message_not_a_traceback(tmp_path: Path) -> None:
    done = run_cli("dataset=ml1m", f"paths.data_dir={tmp_path / 'empty'}",
                   "dataset.download=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 1
    assert "error: ml1m:" in done.stderr
    assert "Traceback" not in done.stderr
    # a mistyped key added with "+", as Hydra suggests: refused before any work, not ignored
    done = run_cli("+train.batchsize=8", f"hydra.run.dir={tmp_path / 'added'}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: +train.batchsize=8: aerec has no key "
                                   "train.batchsize, and would ignore it; did you mean "
                                   "train.batch_size?")


@pytest.mark.slow
def test_shared_ml1m_three_field_file(shared_ml1m: Path, tmp_path: Path) -> None:
    done = run_cli("dataset=ml1m", f"paths.data_dir={shared_ml1m}",
                   "dataset.ratings_file=ratings_notime.dat", "train.epochs=2",
                   "train.progress=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = check_outputs(tmp_path / "run", epochs=2)
    assert (results["n_users"], results["n_items"]) == (6040, 3706)
    assert results["n_test"] == 100_021


def test_a_failing_job_does_not_end_the_sweep(tmp_path: Path) -> None:
    # The middle job diverges (its loss is NaN from the first epoch): the third still runs,
    # and the command exits 1 after it, naming the failed job.
    sweep = tmp_path / "sweep"
    done = run_cli("-m", *FAST_DATA, "model.hidden=16", "model.latent=8", "train.epochs=2",
                   "checkpoint.enabled=false", "ranking.enabled=false",
                   "optimizer.learning_rate=0.01,1e30,0.02", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: training loss is nan at epoch 1")
    assert lines[-1] == "error: 1 of 3 jobs failed: sweep/1"  # relative to the working dir
    results = [json.loads((sweep / str(n) / "results.json").read_text()) for n in range(3)]
    assert [result["status"] for result in results] == ["ok", "failed", "ok"]
    assert results[1]["error"] == lines[0].removeprefix("error: ")
    assert results[2]["epochs_run"] == 2 and results[2]["test_rmse"] < 2.0
    failed = report(sweep).split("## Failed runs (in no table above)")[1]
    assert "| 1 | optimizer.learning_rate=1e+30 | training loss is nan" in failed


def test_an_internal_error_is_one_line_and_its_traceback_is_logged(tmp_path: Path) -> None:
    # A bug, planted by a wrapper around run.py: building the matrices raises.
    wrapper = tmp_path / "broken_run.py"
    wrapper.write_text(
        "import runpy, sys\n"
        "import aerec.experiment\n"
        "def build_matrices(*args, **kwargs):\n"
        "    raise ValueError('shapes (3,) and (4,) not aligned\\nmore detail')\n"
        "aerec.experiment.build_matrices = build_matrices\n"
        f"runpy.run_path({str(ROOT / 'run.py')!r}, run_name='__main__')\n")
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, str(wrapper), *FAST, f"hydra.run.dir={run}"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: internal error: ValueError: shapes (3,) and (4,) not "
                                   f"aligned (full traceback in {run / 'run.log'})")
    log = (run / "run.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "in run_experiment" in log and "more detail" in log
    assert not (run / "results.json").exists()


@pytest.mark.parametrize(("key", "below", "reason"), [
    ("hydra.run.dir", "a_file", "Not a directory"),
    # /proc: nothing can be created there, even by root (the tests run as root)
    ("hydra.sweep.dir", "/proc", "No such file or directory")])
def test_an_output_directory_that_cannot_be_written_is_one_line(tmp_path: Path, key: str,
                                                                below: str,
                                                                reason: str) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    directory = tmp_path / below / "run"
    done = run_cli(*(["-m"] if key == "hydra.sweep.dir" else []), "dataset=synthetic",
                   f"{key}={directory}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: {key}={directory} cannot be written ({reason}): "
                                   f"set {key} to a writable directory")


def test_diverging_training_exits_with_a_message(tmp_path: Path) -> None:
    done = run_cli(*FAST, "optimizer.learning_rate=1e30", f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path)
    assert done.returncode == 1
    assert "error: training loss is nan" in done.stderr
    assert "Traceback" not in done.stderr
