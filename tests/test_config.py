"""Configuration checks: a bad value is refused before any work, naming its key."""

from __future__ import annotations

import pytest

from aerec.config import ConfigError, refuse_added_keys, validate


@pytest.mark.parametrize(("overrides", "message"), [
    (["seed=-1"], r"seed=-1 must be an integer in \[0, 2\*\*31\)"),
    (["seed=2147483648"], r"seed=2147483648 must be an integer in"),
    (["train.batch_size=0.5"], r"train\.batch_size=0\.5 must be an integer >= 1"),
    (["train.epochs=10.5"], r"train\.epochs=10\.5 must be an integer >= 1"),
    (["train.patience=abc"], r"train\.patience='abc' must be an integer >= 1"),
    (["train.eval_chunk_rows=0"], r"train\.eval_chunk_rows=0 must be an integer >= 1"),
    (["train.resume=0"], r"train\.resume=0 must be auto, true or false"),  # 0 == False
    (["train.resume=1"], r"train\.resume=1 must be auto, true or false"),
    (["train.dense_dtype=float16"], r"train\.dense_dtype='float16' is not valid; choose one of"),
    (["prepare.min_item_ratings=-1"], r"prepare\.min_item_ratings=-1 must be an integer >= 0"),
    (["dataset.n_ratings=0"], r"dataset\.n_ratings=0 must be an integer >= 1"),
    (["dataset.rating_step=0"], r"dataset\.rating_step=0 must be > 0"),
    (["dataset.noise=loud"], r"dataset\.noise='loud' must be a number"),
    (["dataset.rating_max=1.0"], r"dataset\.rating_max=1\.0 must be above dataset\.rating_min"),
    (["dataset=custom", "dataset.path=x.csv", "dataset.rating_min=1"],
     r"dataset\.rating_min is set but dataset\.rating_max is not"),
    (["dataset=custom", "dataset.path=x.csv", "dataset.rating_max=5"],
     r"dataset\.rating_max is set but dataset\.rating_min is not"),
    (["dataset=custom", "dataset.path=x.csv", "dataset.rating_min=0", "dataset.rating_max=5"],
     r"dataset\.rating_min=0 must be > 0"),
])
def test_invalid_values_name_their_key(compose_config, overrides: list[str],
                                       message: str) -> None:
    synthetic = "dataset=custom" not in overrides  # the fast overrides are synthetic's
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(*overrides, fast=synthetic))


def test_the_defaults_and_the_fast_test_config_are_valid(compose_config) -> None:
    validate(compose_config(fast=False))
    validate(compose_config())


def test_keys_added_with_a_plus_are_refused(compose_config) -> None:
    cfg = compose_config("+model.hiden=32", "+optimizer.zzz=1")
    with pytest.raises(ConfigError, match=r"^\+model\.hiden=32: aerec has no key model\.hiden, "
                                          r"and would ignore it; did you mean model\.hidden\?$"):
        refuse_added_keys(["+model.hiden=32"], cfg)
    with pytest.raises(ConfigError, match=r"optimizer\.zzz, and would ignore it; README\.md lists"):
        refuse_added_keys(["+optimizer.zzz=1"], cfg)
    # config groups, Hydra's own keys and "++" (set, added or not) are left to Hydra
    refuse_added_keys(["+experiment=paper", "+hydra.job.env_set.X=1", "++train.epochs=3",
                       "+experiment_model@model=paper_svd", "train.epochs=3"], cfg)


def test_the_composed_configuration_is_converted_once_into_typed_sections(
        compose_config) -> None:
    import dataclasses

    from aerec.config import run_config
    from aerec.models.autoencoder import AutoencoderConfig
    from aerec.run_config import DatasetConfig, RankingConfig, RunConfig, TrainConfig

    run = run_config(compose_config("ranking.k=5", "train.epochs=3"))
    assert isinstance(run, RunConfig) and isinstance(run.model, AutoencoderConfig)
    assert isinstance(run.dataset, DatasetConfig) and run.dataset.name == "synthetic"
    assert run.train == dataclasses.replace(TrainConfig(**{
        key: value for key, value in run.resolved["train"].items()}), epochs=3)
    assert run.ranking == RankingConfig(k=(5,), threshold=run.ranking.threshold,
                                        chunk_users=run.ranking.chunk_users,
                                        enabled=run.ranking.enabled)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.train.epochs = 4  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"train\.epochs=0 must be an integer >= 1"):
        run_config(compose_config("train.epochs=0"))
