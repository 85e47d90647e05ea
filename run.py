"""aerec entry point: `python run.py [key=value ...]`, or `python run.py -m ...` to sweep."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from aerec.cli import main, quote_ratings_argument


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def run(cfg: DictConfig) -> float:
    """Compose the configuration, then hand it to aerec.cli.main."""
    hydra_cfg = HydraConfig.get()
    return main(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg.overrides.task,
                in_sweep=hydra_cfg.mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    sys.argv[1:] = quote_ratings_argument(sys.argv[1:])
    run()
