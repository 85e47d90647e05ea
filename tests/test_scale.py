"""Mixed precision; data-parallel and wide-layer-split training over a device mesh (4 virtual
CPU devices)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aerec.cli import run_task
from aerec.errors import ConfigError
from tests.conftest import cli_env

FAST_FIT = ["train.epochs=4", "optimizer.learning_rate=0.01"]

# Run in a child process: the number of host devices is fixed when JAX starts.
SHARDED = """
import json, sys
import jax, numpy as np
from hydra import compose, initialize_config_dir
from aerec.config import run_config
from aerec.experiment import run_experiment
from tests.conftest import CONFIGS, FAST
def figures(results):  # the RMSEs, then every epoch's training loss
    return [results["valid_rmse"], results["test_rmse"]] + [
        record["train_loss"] for record in results["history"]]
out = {}
import aerec.train
state_shardings = aerec.train.state_shardings
split = {}  # per mesh: the shapes of the training state's arrays split along `wide`
def recorded(state, mesh, width):
    shardings = state_shardings(state, mesh, width)
    split[mesh.shape["wide"]] = sorted(
        [list(leaf.shape), list(sharding.spec)] for leaf, sharding in zip(
            jax.tree.leaves(state), jax.tree.leaves(shardings)) if sharding.spec)
    return shardings
aerec.train.state_shardings = recorded
for path in ("resident", "streamed"):
    # one device; 4 splitting the batch; 2 x 2; 4 splitting the wide layers
    for mesh, wide in (("null", 1), ("4", 1), ("4", 2), ("4", 4)):
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*FAST, "train.epochs=4",
                "checkpoint.enabled=false", "ranking.enabled=false", f"train.data_path={path}",
                f"train.mesh={mesh}", f"train.wide_shards={wide}"])
        results, _ = run_experiment(run_config(cfg))
        out[f"{path}-{mesh}-{wide}"] = figures(results)
# the step as an accelerator runs it (inputs padded to 128 columns), wide layers split
import aerec.accelerate
aligned_width = aerec.accelerate.aligned_width
aerec.accelerate.aligned_width = lambda n: -(-n // 128) * 128
with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
    cfg = compose(config_name="config", overrides=[*FAST, "train.epochs=4",
        "checkpoint.enabled=false", "ranking.enabled=false", "train.data_path=resident",
        "train.mesh=4", "train.wide_shards=2"])
results, _ = run_experiment(run_config(cfg))
out["padded-4-2"] = figures(results)
aerec.accelerate.aligned_width = aligned_width
# interrupted at epoch 3 with the wide layers split, then resumed from the checkpoint
class Stop(Exception):
    pass
def stop_at_three(record):
    if record["epoch"] == 3:
        raise Stop
# and the same padded as an accelerator pads (in each step; checkpoints in the model's own
# widths), against the padded run above
for prefix, width in (("", aligned_width), ("padded-", lambda n: -(-n // 128) * 128)):
    aerec.accelerate.aligned_width = width
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*FAST, "train.epochs=4",
            "ranking.enabled=false", "train.mesh=4", "train.wide_shards=2",
            f"checkpoint.dir={sys.argv[1]}-{prefix}"])
    try:
        run_experiment(run_config(cfg), on_epoch=stop_at_three)
    except Stop:
        pass
    results, _ = run_experiment(run_config(cfg))
    out[f"{prefix}resumed-4-2"] = figures(results)
    out[f"{prefix}resumed_from"] = results["resumed_from_epoch"]
aerec.accelerate.aligned_width = aligned_width
with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
    cfg = compose(config_name="config", overrides=[*FAST, "dataset.n_users=122",
        "checkpoint.enabled=false", "train.mesh=4", "train.wide_shards=4"])
try:
    run_experiment(run_config(cfg))
except Exception as error:  # 122 user columns cannot be split in 4
    out["indivisible"] = f"{type(error).__name__}: {error}"
out["devices"] = len(jax.devices())
out["split"] = split
print(json.dumps(out))
"""


@pytest.mark.slow  # the longest test (~30-60 s on 2 cores): CI's time goes to issue 21's tests
def test_sharded_training_matches_one_device(tmp_path) -> None:
    env = {**cli_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path / "ckpt")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures.pop("devices") == 4
    split = figures.pop("split")  # the state's arrays training split along `wide`
    assert split["1"] == []  # a batch-only mesh replicates the whole state
    # over 4 (120 users, 16 hidden, 8 latent): the input kernel, the output kernel and
    # bias, each with its two Adam moments; the input bias and the hidden layers replicated
    assert split["4"] == sorted(3 * [[[1, 8, 120], [None, None, "wide"]],
                                     [[1, 120], [None, "wide"]],
                                     [[1, 120, 16], [None, "wide", None]]])
    assert figures.pop("resumed_from") == 2
    assert figures["resumed-4-2"] == figures["resident-4-2"]  # exactly: same program
    assert figures.pop("padded-resumed_from") == 2
    assert figures["padded-resumed-4-2"] == figures["padded-4-2"]
    assert figures.pop("indivisible").startswith(
        "ConfigError: train.wide_shards=4 must divide the width of a row (122 columns)")
    reference = figures["resident-null-1"]
    assert len(reference) == 2 + 4  # the RMSEs, then the four epochs' training losses
    for name, values in figures.items():
        # Same batches and keys; only the order of floating-point sums differs.
        assert values == pytest.approx(reference, rel=1e-4), name


def test_bfloat16_costs_little_accuracy(compose_config, tmp_path) -> None:
    f32 = run_task(compose_config(*FAST_FIT, "ranking.enabled=false"), tmp_path / "f32")
    bf16 = run_task(compose_config(*FAST_FIT, "ranking.enabled=false", "train.dtype=bfloat16"),
                    tmp_path / "bf16")
    assert bf16["valid_rmse"] == pytest.approx(f32["valid_rmse"], abs=0.02)
    assert bf16["valid_rmse"] != f32["valid_rmse"]  # bf16 really was used


@pytest.mark.parametrize(("override", "message"), [
    ("train.dtype=float16", "train.dtype='float16' is not valid"),
    ("train.mesh=0", "train.mesh=0 must be null, -1"),
    ("train.wide_shards=2", r"train\.wide_shards=2 needs a mesh"),
    ("train.wide_shards=0", r"train\.wide_shards=0 must be an integer >= 1"),
])
def test_scale_options_are_validated(compose_config, tmp_path, override: str,
                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_task(compose_config(override), tmp_path)


def test_mesh_larger_than_the_machine_is_refused(compose_config, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"train\.mesh=64 devices requested"):
        run_task(compose_config("train.mesh=64"), tmp_path)


# One of two processes joined by jax.distributed (gloo collectives on the CPU).
PROCESS = """
import json, sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from aerec.cli import init_distributed, run_task
from tests.conftest import CONFIGS, FAST
with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
    cfg = compose(config_name="config", overrides=[*FAST, "train.epochs=4",
        "checkpoint.enabled=false", "ranking.enabled=false", "train.mesh=-1",
        "distributed.enabled=true", f"distributed.coordinator=127.0.0.1:{sys.argv[1]}",
        "distributed.processes=2", f"distributed.process_id={sys.argv[2]}"])
init_distributed(cfg.distributed)
import jax
import aerec.train
pieces = []  # the number of rows of every piece of a training batch this process densified
sharded_batch = aerec.train.sharded_batch
def counted(train_rows, ids, shardings):
    host_rows = train_rows.host_rows
    def piece(ids):
        pieces.append(len(ids))
        return host_rows(ids)
    train_rows.host_rows = piece
    try:
        return sharded_batch(train_rows, ids, shardings)
    finally:
        del train_rows.host_rows
aerec.train.sharded_batch = counted
# Each process's own validation RMSE made to differ (process 1's by 1e-3): the RMSE that
# decides is process 0's, in both (aerec.sharding.agreed).
import aerec.experiment
fit = aerec.experiment.fit
def offset_fit(objective, optimizer, state, train_rows, validate, **options):
    return fit(objective, optimizer, state, train_rows,
               lambda params: validate(params) + 1e-3 * jax.process_index(), **options)
aerec.experiment.fit = offset_fit
results = run_task(cfg, Path(sys.argv[3]))
from tests.test_scale import history
from aerec.sharding import data_mesh
try:
    data_mesh(2)  # process 0's two devices alone
    small_mesh = "accepted"
except Exception as error:
    small_mesh = str(error)
print(json.dumps({"small_mesh": small_mesh, "devices": jax.device_count(),
                  "processes": jax.process_count(), "local_devices": jax.local_device_count(),
                  "pieces": pieces,
                  "valid_rmse": results["valid_rmse"], "test_rmse": results["test_rmse"],
                  "history": history(Path(sys.argv[3]) / ("process-1" if jax.process_index()
                                                           else ""))}))
"""


def history(run_dir: Path) -> list[float]:
    """A run's training loss and validation RMSE, epoch after epoch (its metrics.jsonl)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [figure for record in records
            for figure in (record["train_loss"], record["valid_rmse"])]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # one of the longest tests: CI's 2 cores run it with -m slow
def test_two_processes_train_like_one(compose_config, tmp_path) -> None:
    port = str(free_port())
    # two devices a process: each process feeds two of the four devices
    env = {**cli_env(), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    children = [subprocess.Popen([sys.executable, "-c", PROCESS, port, str(rank),
                                  str(tmp_path / "run")], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        outputs = [child.communicate(timeout=600) for child in children]
    finally:  # a failed or stuck pair must not outlive the test (the other waits for it)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr[-3000:]
    figures = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    alone = run_task(compose_config("train.epochs=4", "ranking.enabled=false",
                                    "train.data_path=streamed"), tmp_path / "alone")
    for figure in figures:
        assert (figure["devices"], figure["local_devices"], figure["processes"]) == (4, 2, 2)
        assert figure["small_mesh"] == ("train.mesh=2 devices hold only processes [0] of 2: "
                                        "use train.mesh=-1")
        # each process densified only its two devices' quarters of every 16-row batch
        assert figure["pieces"] and set(figure["pieces"]) == {4}
        assert figure["valid_rmse"] == pytest.approx(alone["valid_rmse"], rel=1e-4)
        assert figure["test_rmse"] == pytest.approx(alone["test_rmse"], rel=1e-4)
        assert figure["history"] == pytest.approx(history(tmp_path / "alone"), rel=1e-4)
    # both processes fed the same number of pieces, and took the same decisions on the
    # same figures: process 0's validation RMSE (process 1's own is 1e-3 higher) is the one
    # every process uses
    assert len(figures[0]["pieces"]) == len(figures[1]["pieces"])
    assert figures[0]["history"] == figures[1]["history"]
    assert (tmp_path / "run" / "results.json").is_file()
    assert (tmp_path / "run" / "process-1" / "results.json").is_file()
    assert not (tmp_path / "run" / "model").exists()  # no model artifact across processes yet


def test_distributed_needs_a_mesh_and_no_checkpoints(compose_config, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"needs train\.mesh=-1 .*, not None"):
        run_task(compose_config("distributed.enabled=true"), tmp_path)
    with pytest.raises(ConfigError, match=r"needs train\.mesh=-1 .*, not 1"):
        run_task(compose_config("distributed.enabled=true", "train.mesh=1"), tmp_path)
    with pytest.raises(ConfigError, match=r"checkpoint\.enabled=false"):
        run_task(compose_config("distributed.enabled=true", "train.mesh=-1"), tmp_path)
