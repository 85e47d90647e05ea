"""aerec's Hydra configs, installed as the package `aerec.configs` (pyproject.toml maps this
directory there when a wheel is built; Hydra's `pkg://` config source needs this file)."""
