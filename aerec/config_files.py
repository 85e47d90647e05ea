"""Where aerec's Hydra configs are, for the command and for composing them in-process.

The source is the checkout's `configs/` directory. A wheel ships it inside the package as
`aerec.configs` (pyproject.toml maps `configs/` there at build time), found by package name:
no path relative to a repository. Imported from a checkout (an editable install, PYTHONPATH,
`python run.py`) there is no `aerec/configs/`: the checkout's own `configs/`, beside the
imported package, is used, so that code and configs always come from the same tree (a second
checkout on PYTHONPATH must not compose an installed checkout's configs).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from omegaconf import DictConfig

CONFIG_PACKAGE = "aerec.configs"
CONFIG_NAME = "config"


def config_path() -> str:
    """Hydra's `config_path` of aerec's configs: `pkg://aerec.configs` when installed from a
    wheel, else the absolute path of the checkout's `configs/` directory."""
    if (files("aerec") / "configs" / f"{CONFIG_NAME}.yaml").is_file():
        return f"pkg://{CONFIG_PACKAGE}"
    checkout = Path(__file__).resolve().parents[1] / "configs"
    if (checkout / f"{CONFIG_NAME}.yaml").is_file():
        return str(checkout)
    raise FileNotFoundError(
        f"aerec's configs are missing: neither the package {CONFIG_PACKAGE} nor {checkout} "
        f"holds {CONFIG_NAME}.yaml (reinstall aerec)")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The configuration `aerec key=value ...` composes from these overrides (the same
    defaults, groups and experiments; without the `hydra` section)."""
    from hydra import compose, initialize_config_dir, initialize_config_module

    source = config_path()
    initialize = (initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3")
                  if source.startswith("pkg://")
                  else initialize_config_dir(config_dir=source, version_base="1.3"))
    with initialize:
        return compose(config_name=CONFIG_NAME, overrides=list(overrides))
