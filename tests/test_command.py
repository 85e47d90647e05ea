"""The installed command: `aerec key=value ...` and `python -m aerec`, with the configs shipped
inside the package (pyproject.toml maps configs/ to aerec.configs); built as a wheel and run
from a fresh virtual environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from aerec.config_files import config_path
from tests.conftest import CONFIGS, FAST_MODEL, ROOT

TINY_TRAIN = ["train.epochs=2", "train.batch_size=16", "train.progress=false", "ranking.k=[10]",
              *FAST_MODEL]
TINY_RUN = ["dataset=synthetic", "dataset.n_users=60", "dataset.n_items=40",
            "dataset.n_ratings=1200", *TINY_TRAIN]


def test_the_checkout_composes_its_own_configs() -> None:
    assert config_path() == str(CONFIGS)


def dotted(folder: Path, root: Path, *package: str) -> str:
    """The package name of `folder`, found under `root` (the package `package`, if given)."""
    return ".".join([*package, *folder.relative_to(root).parts])


def test_pyproject_ships_every_package_and_config() -> None:
    # setuptools is given every package by name (configs/ is not under aerec/, so discovery
    # cannot find it): a new subpackage or config group must be added to that list.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"aerec.configs": "configs"}
    code = {dotted(init.parent, ROOT) for init in (ROOT / "aerec").rglob("__init__.py")}
    groups = {dotted(path.parent, CONFIGS, "aerec.configs") for path in CONFIGS.rglob("*")
              if path.is_file() and "__pycache__" not in path.parts}
    missing = (code | groups) - set(setuptools["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    # every file under configs/ is package data ("*.yaml") or the package's __init__.py
    patterns = setuptools["package-data"]["*"]
    unshipped = [path for path in CONFIGS.rglob("*") if path.is_file()
                 and "__pycache__" not in path.parts and path.name != "__init__.py"
                 and not any(path.match(pattern) for pattern in patterns)]
    assert not unshipped, f"{unshipped} are not package data ([tool.setuptools.package-data])"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"aerec": "aerec.command:main"}


def installed_layout(site: Path) -> None:
    """aerec as a wheel installs it: the package, and configs/ inside it as aerec.configs."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "aerec", site / "aerec", ignore=ignore)
    shutil.copytree(CONFIGS, site / "aerec" / "configs", ignore=ignore)


def isolated_env() -> dict[str, str]:
    """No PYTHONPATH (the tests put this checkout there) and no user site-packages."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "PYTHONNOUSERSITE": "1"}


def test_the_packaged_configs_compose_and_the_command_helps(tmp_path: Path) -> None:
    # In a child process: Hydra's --help configures logging, which closes the handlers of
    # libraries (absl's) bound to an earlier sys.stderr, here pytest's capture.
    installed_layout(tmp_path / "site")
    (tmp_path / "elsewhere").mkdir()
    script = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
        "import aerec\n"
        "from aerec.config_files import compose_config, config_path\n"
        "print(aerec.__file__)\n"
        "print(config_path())\n"
        "print(compose_config(['model=svd', 'experiment=paper']).model.scaling)\n"
        "for flag in ('--help', '--info=searchpath'):\n"
        "    sys.argv = ['aerec', flag]\n"
        "    try:\n"
        "        runpy.run_module('aerec', run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, stop.code\n")
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path / "elsewhere",
                          env=isolated_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    paper_svd = OmegaConf.load(CONFIGS / "experiment_model" / "paper_svd.yaml")  # not the default
    assert lines[:3] == [str(tmp_path / "site" / "aerec" / "__init__.py"), "pkg://aerec.configs",
                         paper_svd.scaling]
    assert "aerec is powered by Hydra." in lines
    for group in ("dataset", "model", "optimizer", "experiment"):
        options = sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in lines
    # --info=searchpath's table: the packaged configs are the main config source
    assert "| main     | pkg://aerec.configs |" in lines, done.stdout


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=isolated_env(), capture_output=True, text=True,
                          timeout=timeout)


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of this checkout, built offline from a copy (an in-tree build would leave
    build/ behind, whose stale files a later wheel would ship)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("aerec", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--no-index", "--disable-pip-version-check", "-w", str(tmp_path / "dist"),
                str(source)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("aerec-*.whl")
    return wheel


def fresh_venv(venv: Path, wheel: Path) -> Path:
    """A virtual environment seeing the system's packages (jax, hydra: not installed again),
    with the wheel installed into it; returns its bin/ folder."""
    done = run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                str(venv)], cwd=venv.parent)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    # the system's pip, from the system site-packages, installs into the venv it runs in
    done = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                "--ignore-installed", "--disable-pip-version-check", str(wheel)],
               cwd=venv.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.slow  # a wheel build, a fresh venv, a run and a two-job sweep: over a minute
def test_the_wheel_installs_a_command_that_trains(tmp_path: Path) -> None:
    bin_ = fresh_venv(tmp_path / "venv", build_wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"  # unrelated to the checkout: no configs/, no run.py
    elsewhere.mkdir()
    # The venv's aerec is the wheel's, not the system's editable install of a checkout.
    done = run([str(bin_ / "python"), "-I", "-c", "import aerec, aerec.config_files as c;"
                "print(aerec.__file__); print(c.config_path())"], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    assert done.stdout.split() == [str(site / "aerec" / "__init__.py"), "pkg://aerec.configs"]

    # `aerec key=value ...`: one run, its results and log in the run directory.
    done = run([str(bin_ / "aerec"), *TINY_RUN, "hydra.run.dir=single"], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "test_rmse" in done.stdout and "results written to" in done.stdout
    single = elsewhere / "single"
    assert results(single)["status"] == "ok" and results(single)["epochs_run"] == 2
    assert (single / "run.log").is_file() and (single / "model" / "model.json").is_file()
    sources = yaml.safe_load((single / ".hydra" / "hydra.yaml").read_text())
    assert {"path": "aerec.configs", "schema": "pkg", "provider": "main"} in (
        sources["hydra"]["runtime"]["config_sources"])

    # `python -m aerec -m ...`: a two-job sweep, with a config group of the user's own found
    # through hydra.searchpath beside the packaged ones.
    mine = tmp_path / "my_configs" / "dataset"
    mine.mkdir(parents=True)
    (mine / "tiny.yaml").write_text(OmegaConf.to_yaml(OmegaConf.merge(
        OmegaConf.load(CONFIGS / "dataset" / "synthetic.yaml"),
        {"n_users": 50, "n_items": 40, "n_ratings": 1000})))
    done = run([str(bin_ / "python"), "-I", "-m", "aerec", "-m", *TINY_TRAIN, "dataset=tiny",
                "model.hidden=8,16", f"hydra.searchpath=[file://{mine.parent}]",
                "hydra.sweep.dir=sweep"], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    for job, hidden in (("0", 8), ("1", 16)):
        job_dir = elsewhere / "sweep" / job
        assert results(job_dir)["status"] == "ok"
        resolved = yaml.safe_load((job_dir / "config.yaml").read_text())
        assert resolved["model"]["hidden"] == hidden and resolved["dataset"]["n_users"] == 50
    assert not (elsewhere / "sweep" / "2").exists()

    # Hydra's callbacks come from the packaged config: an unwritable run directory is one
    # error line before any work.
    (elsewhere / "a_file").write_text("")
    done = run([str(bin_ / "aerec"), *TINY_RUN, "hydra.run.dir=a_file/run"], cwd=elsewhere,
               timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: hydra.run.dir=a_file/run cannot be written")
