"""The model registry: every family builds from its yaml, names are looked up in one place."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from aerec.errors import ConfigError
from aerec.models.base import ModelFamily
from aerec.models.registry import FAMILIES, get_family, model_config
from tests.conftest import CONFIGS, ROOT

# A comparison with a model's name: `x.name == ...` (but not a dataset's or a data source's),
# `x["name"] == ...`, or any comparison with a registered name written out.
NAMES = "|".join(FAMILIES)
DISPATCH = [
    re.compile(r"(?<!dataset)(?<!dataset_cfg)(?<!source)(?<!logger)\.name\s*(==|!=|in\s)"),
    re.compile(r"\[\s*[\"']name[\"']\s*\]\s*(==|!=|in\s)"),
    re.compile(rf"(==|!=|\bin)\s*[(\[{{]?\s*[\"']({NAMES})[\"']"),
    re.compile(rf"[\"']({NAMES})[\"']\s*(==|!=)"),
]
# The registry looks names up; report.py labels the paper's table rows by the model names
# that runs recorded in their results.json (runs of any version), which is not a model's
# behaviour.
ALLOWED = {Path("aerec/models/registry.py"), Path("aerec/report.py")}


def model_name_comparisons(source: str) -> list[str]:
    """The lines of `source` that compare a model's name."""
    return [line.strip() for line in source.splitlines()
            if not line.lstrip().startswith("#") and any(p.search(line) for p in DISPATCH)]


def test_every_model_yaml_is_a_registered_family() -> None:
    assert sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml")) == sorted(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_builds_its_typed_config_from_its_yaml(compose_config, name: str) -> None:
    cfg = compose_config(f"model={name}", fast=False)
    family = get_family(name)
    assert isinstance(family, ModelFamily) and family.name == name
    family.check_config(cfg.model)
    config = model_config(cfg.model)
    assert type(config) is family.config_type
    # the dataclass has the yaml's keys, and its defaults are the yaml's values
    assert {field.name for field in dataclasses.fields(config)} == set(cfg.model)
    assert config == family.config_type()
    assert config.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.orientation = "user"


def test_overrides_reach_the_typed_config(compose_config) -> None:
    config = model_config(compose_config("model.hidden=[12,6]", "model.layers=2",
                                         "model.l2=0").model)
    assert config.hidden == (12, 6) and config.layers == 2
    assert config.l2 == 0.0 and isinstance(config.l2, float)


def test_a_saved_model_section_without_newer_keys_keeps_their_defaults() -> None:
    config = model_config({"name": "svd", "rank": 3, "center": False, "bias_reg": 1,
                           "orientation": "user"})
    assert (config.rank, config.center, config.bias_reg) == (3, False, 1.0)
    assert config.power_iterations == get_family("svd").config_type().power_iterations


@pytest.mark.parametrize("name", ["knn", None, ["svd"]])
def test_an_unknown_model_name_lists_the_valid_ones(name: object) -> None:
    for lookup in (lambda: get_family(name), lambda: model_config({"name": name})):
        with pytest.raises(ConfigError, match=r"valid: autoencoder, svd, popularity"):
            lookup()


def test_no_module_outside_the_registry_compares_model_names() -> None:
    found = {str(path.relative_to(ROOT)): lines
             for path in sorted((ROOT / "aerec").rglob("*.py"))
             if path.relative_to(ROOT) not in ALLOWED
             and (lines := model_name_comparisons(path.read_text()))}
    assert found == {}


def test_the_dispatch_scan_finds_what_the_registry_replaced() -> None:
    # the comparisons aerec made before the registry, and those it still makes on other names
    assert model_name_comparisons('if cfg.model.name == "autoencoder":\n'
                                  'if model["name"] == "svd":\n'
                                  '    if name == "popularity":\n'
                                  'elif model_cfg.name in ("svd",):\n') != []
    assert len(model_name_comparisons('if cfg.model.name == "autoencoder":\n'
                                      'if model["name"] == "svd":\n'
                                      '    if name == "popularity":\n')) == 3
    assert model_name_comparisons('if cfg.dataset.name == "synthetic":\n'
                                  'if source.name == "ml100k":\n') == []


def test_a_saved_models_cross_key_rule_is_its_familys() -> None:
    from aerec.model_json import Invalid, check_model_section

    svd = {"name": "svd", "orientation": "user", "rank": 3, "center": True, "bias_reg": 1.0}
    check_model_section({**svd, "hidden": [4, 4]})  # was a KeyError on model.layers
    autoencoder = {"name": "autoencoder", "orientation": "item", "layers": 1, "hidden": [4, 4],
                   "latent": 2, "activation": "tanh", "output_activation": "linear",
                   "dropout": 0.1, "input_dropout": 0.0, "mirror_decoder": False,
                   "ensemble": 1}
    with pytest.raises(Invalid, match=r"lists 2 widths, model\.layers=1") as raised:
        check_model_section(autoencoder)
    assert raised.value.field == "model.hidden"
