"""The command line's entry point: `aerec key=value ...`, `python -m aerec ...` and the
checkout's `python run.py ...` all call `main` (`-m`: a Hydra sweep, one job per value)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from aerec import cli
from aerec.config_files import CONFIG_NAME, config_path


def run(cfg: DictConfig) -> float:
    """Hydra's task: hand the composed configuration to aerec.cli.main (its return value, the
    validation RMSE, is what a sweeper tunes)."""
    hydra_cfg = HydraConfig.get()
    return cli.main(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg.overrides.task,
                    in_sweep=hydra_cfg.mode == RunMode.MULTIRUN)


def main() -> None:
    """Compose the configuration from the command line's arguments (`sys.argv`), run it."""
    sys.argv[1:] = cli.quote_ratings_argument(sys.argv[1:])
    # The config path is looked up here, not at import: a wheel's package or a checkout's
    # directory (aerec.config_files). Returns None: a console script exits with main()'s value.
    hydra.main(version_base="1.3", config_path=config_path(), config_name=CONFIG_NAME)(run)()
