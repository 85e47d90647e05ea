"""Model families by name: the one place a model name is looked up.

Adding a family: a module under `aerec/models/` with its typed config and family object
(`aerec.models.base`), `configs/model/<name>.yaml` with the same keys, an entry below, and its
tests (tests/test_registry.py builds every family registered here from its yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aerec.errors import ConfigError
from aerec.models.autoencoder import AUTOENCODER
from aerec.models.base import ModelConfig, ModelFamily
from aerec.models.ease import EASE
from aerec.models.multvae import MULTDAE, MULTVAE
from aerec.models.popularity import POPULARITY
from aerec.models.recvae import RECVAE
from aerec.models.svd import SVD

FAMILIES: dict[str, ModelFamily] = {family.name: family
                                    for family in (AUTOENCODER, SVD, POPULARITY, EASE, MULTVAE,
                                                   MULTDAE, RECVAE)}


class UnknownModelError(ConfigError, ValueError):
    """A model name no family is registered under (a ValueError too, as before the
    registry: callers of `aerec.rankers.build_ranker` catch that)."""


def find_family(name: Any) -> ModelFamily | None:
    """The family registered as `name`, or None."""
    return FAMILIES.get(name) if isinstance(name, str) else None


def get_family(name: Any) -> ModelFamily:
    """The family registered as `name`; UnknownModelError listing the valid names."""
    family = find_family(name)
    if family is None:
        raise UnknownModelError(f"model.name={name!r} is not a model aerec has; valid: "
                                f"{', '.join(FAMILIES)}")
    return family


def family_of(config: ModelConfig) -> ModelFamily:
    """The family of a typed model config."""
    return get_family(config.name)


def model_config(model: Mapping[str, Any]) -> ModelConfig:
    """The typed config of a checked `model` section (a run's or a saved model's)."""
    return get_family(model.get("name")).from_mapping(model)
