"""Experiment tracking (aerec.tracking): what MLflow and TensorBoard hold is read back."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from aerec.cli import run_task
from aerec.config import run_config
from aerec.errors import ConfigError, TrainingInterrupted
from aerec.identity import flatten_config, run_identity
from aerec.run_config import LoggerConfig
from aerec.tracking import default_tracking_uri, make_tracker, metric_name, tracking
from tests.conftest import FAST_DATA

CONFIG = {"seed": 0, "model": {"name": "autoencoder", "hidden": [16, 8], "l2": 1e-4},
          "train": {"epochs": 3, "resume": "auto", "mesh": None}}
EPOCHS = [{"epoch": n, "train_loss": 1.0 / n, "valid_rmse": 1.5 - n / 10,
           "epoch_seconds": 0.25} for n in (1, 2, 3)]
RESULTS = {"status": "ok", "model": "autoencoder", "test_rmse": 0.91, "ndcg@10": 0.25,
           "best_epoch": 3, "resident": True, "k": [10], "notes": ["a note"]}


@pytest.fixture(autouse=True)
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """An empty working directory, where nothing should be written; no MLflow telemetry
    (MLflow sends usage reports unless told not to; it also skips them under pytest)."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    directory = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow database for the module (each new one is built by ~50 migrations); each
    test files its runs under an experiment of its own."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def mlflow_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return [(client, run) for run in client.search_runs([found.experiment_id])]


def test_metric_names_are_what_mlflow_accepts() -> None:
    assert metric_name("ndcg@10") == "ndcg_at_10"
    assert metric_name("epoch/valid_rmse") == "epoch/valid_rmse"
    assert metric_name("odd|name") == "odd_name"


def test_mlflow_holds_the_config_every_epoch_and_the_results(mlflow_uri: str, tmp_path: Path,
                                                             elsewhere: Path) -> None:
    logger = LoggerConfig(name="mlflow", tracking_uri=mlflow_uri, experiment="tests",
                          run_name="one")
    with tracking(logger, CONFIG, tmp_path / "run") as tracker:
        for record in EPOCHS:
            tracker.log_epoch(record)
        tracker.finish(RESULTS)
    [(client, run)] = mlflow_runs(mlflow_uri, "tests")
    assert run.info.status == "FINISHED" and run.info.run_name == "one"
    assert run.data.tags["aerec.output_dir"] == str(tmp_path / "run")
    assert run.data.params == {"seed": "0", "model.name": "autoencoder",
                               "model.hidden": "[16, 8]", "model.l2": "0.0001",
                               "train.epochs": "3", "train.resume": "auto",
                               "train.mesh": "null"}
    history = client.get_metric_history(run.info.run_id, "epoch/valid_rmse")
    assert [(m.step, m.value) for m in history] == [(1, 1.4), (2, 1.3), (3, 1.2)]
    assert len(client.get_metric_history(run.info.run_id, "epoch/train_loss")) == 3
    # the numbers of the results (not the booleans, lists or text), under MLflow's names
    final = {key: value for key, value in run.data.metrics.items()
             if not key.startswith("epoch/")}
    assert final == {"test_rmse": 0.91, "ndcg_at_10": 0.25, "best_epoch": 3.0}
    artifact = client.download_artifacts(run.info.run_id, "results.json", str(tmp_path))
    assert json.loads(Path(artifact).read_text()) == RESULTS
    # the artifacts beside the database, not in ./mlruns
    database = Path(mlflow_uri.removeprefix("sqlite:///"))
    assert run.info.artifact_uri.startswith(str(database.parent / "mlruns" / "tests"))
    assert list(elsewhere.iterdir()) == []


def test_a_failed_or_stopped_run_is_closed_so(mlflow_uri: str, tmp_path: Path) -> None:
    logger = LoggerConfig(name="mlflow", tracking_uri=mlflow_uri, experiment="closing")
    for error, name in ((RuntimeError("a bug"), "failed"),
                        (TrainingInterrupted(2, saved=True), "stopped")):
        with pytest.raises(type(error)), tracking(logger, CONFIG, tmp_path / name) as tracker:
            tracker.log_epoch(EPOCHS[0])
            raise error
    # a configuration MLflow refuses once the run is open (a key with `@`): closed too
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="odd@key"), tracking(
            logger, {"odd@key": 1}, tmp_path / "refused"):
        pass
    statuses = {run.data.tags["aerec.output_dir"]: run.info.status
                for _, run in mlflow_runs(mlflow_uri, "closing")}
    assert statuses == {str(tmp_path / "failed"): "FAILED",
                        str(tmp_path / "stopped"): "KILLED",
                        str(tmp_path / "refused"): "FAILED"}


def test_an_unusable_tracking_uri_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    uri = f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}"
    tracker = make_tracker(LoggerConfig(name="mlflow", tracking_uri=uri), tmp_path)
    with pytest.raises(ConfigError, match=rf"^logger\.tracking_uri={uri} cannot be used: "):
        tracker.start(CONFIG)


def test_the_default_store_is_a_database_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri() == "http://127.0.0.1:5000"


@pytest.mark.parametrize(("name", "extra"), [("mlflow", "mlflow"),
                                              ("tensorboard", "tensorboard")])
def test_a_missing_library_names_its_extra(name: str, extra: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    module = {"mlflow": "mlflow", "tensorboard": "tensorboardX"}[name]
    monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    with pytest.raises(ConfigError, match=rf"^logger={name} needs {module}, which cannot be "
                       rf"imported .*: pip install 'aerec\[{extra}\]'$"):
        make_tracker(LoggerConfig(name=name), tmp_path)


def read_events(directory: Path) -> list:
    """Every event of every TensorBoard event file below `directory`, parsed from its
    TFRecord framing (length, masked CRC of the length, data, masked CRC of the data)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    events = []
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        while data:
            header, (length_crc,) = data[:8], struct.unpack("<I", data[8:12])
            assert masked_crc32c(header) == length_crc
            (length,) = struct.unpack("<Q", header)
            payload = data[12:12 + length]
            (payload_crc,) = struct.unpack("<I", data[12 + length:16 + length])
            assert masked_crc32c(payload) == payload_crc
            events.append(Event.FromString(payload))
            data = data[16 + length:]
    return events


def scalars(events: list) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        for value in event.summary.value:
            if value.HasField("simple_value"):
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboard_holds_the_config_every_epoch_and_the_results(tmp_path: Path) -> None:
    with tracking(LoggerConfig(name="tensorboard"), CONFIG, tmp_path) as tracker:
        for record in EPOCHS:
            tracker.log_epoch(record)
        tracker.finish(RESULTS)
    events = read_events(tmp_path / "tensorboard")
    found = scalars(events)
    assert found["epoch/valid_rmse"] == [(1, pytest.approx(1.4)), (2, pytest.approx(1.3)),
                                         (3, pytest.approx(1.2))]
    assert {key for key in found if not key.startswith("epoch/")} == {
        "test_rmse", "ndcg_at_10", "best_epoch"}
    assert found["ndcg_at_10"] == [(0, 0.25)]
    [text] = [value for event in events for value in event.summary.value
              if value.tag.startswith("config")]
    assert "model:" in text.tensor.string_val[0].decode()
    # the HParams session: every configuration key, its values as logged
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    sessions = [HParamsPluginData.FromString(value.metadata.plugin_data.content)
                for event in events for value in event.summary.value
                if value.tag == "_hparams_/session_start_info"]
    [session] = [data.session_start_info.hparams for data in sessions]
    assert set(session) == set(flatten_config(CONFIG))
    assert session["model.hidden"].string_value == "[16, 8]"
    assert session["train.epochs"].number_value == 3


def test_a_run_reports_its_epochs_and_results(compose_config, mlflow_uri: str,
                                              tmp_path: Path) -> None:
    # popularity: one epoch record, from the same on_epoch as the autoencoder's epochs (whose
    # run is the slow test below)
    cfg = compose_config(*FAST_DATA, "model=popularity", "logger=mlflow",
                         f"logger.tracking_uri={mlflow_uri}", "logger.experiment=cli",
                         "ranking.k=[10]", fast=False)
    results = run_task(cfg, tmp_path / "run")
    [(client, run)] = mlflow_runs(mlflow_uri, "cli")
    assert run.info.status == "FINISHED"
    [recorded] = [json.loads(line)
                  for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "epoch/valid_rmse")
    assert [(m.step, m.value) for m in history] == [(1, recorded["valid_rmse"])]
    assert run.data.metrics["ndcg_at_10"] == results["ndcg@10"]
    assert run.data.metrics["test_rmse"] == results["test_rmse"]
    assert run.data.params["logger.name"] == "mlflow"
    assert run.data.params["model.damping"] == str(cfg.model.damping)


@pytest.mark.slow
def test_every_epoch_of_a_run_reaches_tensorboard(compose_config, tmp_path: Path) -> None:
    cfg = compose_config("logger=tensorboard", "train.epochs=3", "ranking.k=[10]")
    results = run_task(cfg, tmp_path / "run")
    recorded = [json.loads(line)
                for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    found = scalars(read_events(tmp_path / "run" / "tensorboard"))
    for key in ("train_loss", "valid_rmse", "epoch_seconds"):
        assert found[f"epoch/{key}"] == [(record["epoch"], pytest.approx(record[key]))
                                         for record in recorded]
    assert found["ndcg_at_10"] == [(0, pytest.approx(results["ndcg@10"]))]


def test_the_logger_is_checked_and_leaves_the_checkpoint_identity(compose_config) -> None:
    plain = run_config(compose_config())
    tracked = run_config(compose_config("logger=tensorboard"))
    assert tracked.logger == LoggerConfig(name="tensorboard")
    assert plain.logger == LoggerConfig()
    assert run_identity(tracked.resolved) == run_identity(plain.resolved)
    with pytest.raises(ConfigError, match=r"^logger\.name='wandb' is not valid; choose one "
                       r"of: none, mlflow, tensorboard$"):
        run_config(compose_config("logger.name=wandb"))
    with pytest.raises(ConfigError, match=r"^logger\.experiment='' must be a non-empty string$"):
        run_config(compose_config("logger=mlflow", "logger.experiment=''"))
