"""The composed configuration: checked before any work is done, then converted once into the
typed `aerec.run_config.RunConfig` that everything below the command line reads."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from aerec.checks import boolean, count, fraction, number, one_of, positive, positive_int
from aerec.data.dataset import DATASET_NAMES, FEEDBACKS
from aerec.data.device_rows import DENSE_DTYPES, ORIENTATIONS
from aerec.data.prepare import DUPLICATE_POLICIES
from aerec.data.split import SPLIT_KINDS
from aerec.errors import ConfigError
from aerec.identity import flatten_config
from aerec.models.registry import FAMILIES, get_family, model_config
from aerec.monitor import AUTO, parse_monitor
from aerec.optim import SCHEDULES
from aerec.run_config import (
    CheckpointConfig,
    DatasetConfig,
    DistributedConfig,
    OptimizerConfig,
    PathsConfig,
    PrepareConfig,
    RankingConfig,
    RecommendRequest,
    RunConfig,
    SplitConfig,
    TrainConfig,
    section,
)

MODELS = tuple(FAMILIES)
TASKS = ("train", "evaluate", "recommend")
FORMATS = ("table", "json")


def refuse_added_keys(overrides: Sequence[str], cfg: Any) -> None:
    """Refuse `+section.key=value` overrides: they add a key aerec never reads.

    For a mistyped key Hydra suggests adding it with `+`; done, the run would go on without a
    word and ignore it. (A `+group=option` without a dot picks a config group and is left to
    Hydra; `++key=value` sets a key whether or not it exists, so it is left alone too.)
    """
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        if "." not in key or "@" in key or key.startswith("hydra."):
            continue
        # the nearest name in the same section (a whole dotted key shares its prefix with
        # every key there, and would look close to any of them)
        section, name = key.rsplit(".", 1)
        siblings = {known.rsplit(".", 1)[1]: known for known in flat_keys(cfg)
                    if known != key and known.rsplit(".", 1)[0] == section}
        close = [siblings[match] for match in difflib.get_close_matches(name, siblings, n=1)]
        raise ConfigError(f"{override}: aerec has no key {key}, and would ignore it; "
                          + (f"did you mean {close[0]}?" if close
                             else "README.md lists the keys"))


def flat_keys(cfg: Any) -> list[str]:
    """Every key of a composed configuration, dotted (hydra's own left out)."""
    return [key for key in flatten_config(resolved_tree(cfg)) if not key.startswith("hydra.")]


def resolved_tree(cfg: Any) -> dict[str, Any]:
    """The composed configuration as plain dicts and lists, interpolations resolved, hydra's
    own section left out."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(tree, dict)
    tree.pop("hydra", None)
    return tree


def run_config(cfg: Any) -> RunConfig:
    """The typed configuration of a composed one, checked first (ConfigError naming the
    first invalid key)."""
    validate(cfg)
    return typed_config(cfg)


def typed_config(cfg: Any) -> RunConfig:
    """The typed configuration of a composed one, as it is (`run_config` checks it first);
    the one place the composed tree is converted."""
    tree = resolved_tree(cfg)
    ranking = dict(tree["ranking"])
    if isinstance(ranking["k"], int):  # one cut-off given alone
        ranking["k"] = [ranking["k"]]
    return RunConfig(
        task=tree["task"], seed=tree["seed"], dataset=section(DatasetConfig, tree["dataset"]),
        model=model_config(tree["model"]), optimizer=section(OptimizerConfig, tree["optimizer"]),
        prepare=section(PrepareConfig, tree["prepare"]), split=section(SplitConfig, tree["split"]),
        train=section(TrainConfig, tree["train"]),
        checkpoint=section(CheckpointConfig, tree["checkpoint"]),
        ranking=section(RankingConfig, ranking), paths=section(PathsConfig, tree.get("paths")),
        distributed=section(DistributedConfig, tree.get("distributed")),
        request=section(RecommendRequest, tree), resolved=tree)


def validate(cfg: Any) -> None:
    """Raise ConfigError naming the first invalid key."""
    one_of("task", cfg.task, TASKS)
    if cfg.task in ("evaluate", "recommend") and not cfg.checkpoint.get("path"):
        raise ConfigError(f"task={cfg.task} needs checkpoint.path=<a run's model/ directory>")
    if cfg.task == "recommend":
        _validate_recommend(cfg)
    _validate_ranking(cfg.ranking)
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise ConfigError(f"seed={seed!r} must be an integer in [0, 2**31)")
    one_of("dataset.name", cfg.dataset.name, DATASET_NAMES)
    _validate_feedback(cfg.dataset)
    _validate_scale(cfg.dataset)
    if cfg.dataset.name == "synthetic":
        _validate_synthetic(cfg.dataset)
    one_of("model.name", cfg.model.name, MODELS)
    one_of("model.orientation", cfg.model.orientation, ORIENTATIONS)
    one_of("split.kind", cfg.split.kind, SPLIT_KINDS)
    one_of("prepare.duplicates", cfg.prepare.duplicates, DUPLICATE_POLICIES)
    one_of("train.data_path", cfg.train.data_path, ("auto", "resident", "streamed"))
    one_of("train.dense_dtype", cfg.train.dense_dtype, DENSE_DTYPES)
    _validate_split(cfg)
    _validate_train(cfg.train)
    _validate_distributed(cfg)
    _validate_stopping(cfg)
    for key in ("min_item_ratings", "min_user_ratings"):
        count(f"prepare.{key}", cfg.prepare[key])
    boolean("prepare.repeat_filters", cfg.prepare.get("repeat_filters", False))
    family = get_family(cfg.model.name)
    family.check_config(cfg.model)
    if family.iterative:  # trained by the epoch loop, with the optimizer
        positive("optimizer.learning_rate", cfg.optimizer.learning_rate)
        one_of("optimizer.schedule", cfg.optimizer.schedule, SCHEDULES)


def _validate_split(cfg: Any) -> None:
    split = cfg.split
    for key in ("test_fraction", "valid_fraction", "fold_in_fraction"):
        fraction(f"split.{key}", split[key])
    if split.test_fraction == 0.0:
        raise ConfigError("split.test_fraction=0 leaves nothing to evaluate")
    if split.kind == "recbole" and split.valid_fraction + split.test_fraction >= 1.0:
        raise ConfigError(f"split.kind=recbole: split.valid_fraction={split.valid_fraction} "
                          f"plus split.test_fraction={split.test_fraction} must be below 1 "
                          "(both are fractions of each user's interactions)")
    heldout = split.get("heldout_users")
    if heldout is not None:
        positive_int("split.heldout_users", heldout)
    if split.kind in ("users", "heldout_users") and cfg.model.orientation == "item":
        # Held-out users would be output columns that training never reached: an
        # autoencoder's are random (test RMSE 1.12 on ML-1M), an SVD's are empty, and the
        # evaluation gives every cell of such a column the training mean (popularity's too,
        # whose predictions do not depend on the user).
        raise ConfigError(f"split.kind={split.kind} holds users out whole, which an "
                          "item-oriented model cannot score (their output columns are never "
                          "trained): set model.orientation=user, or split.kind=ratings / "
                          "per_user / recbole")


def _validate_feedback(dataset: Any) -> None:
    """dataset.feedback and dataset.implicit_min_rating; implicit columns name no rating
    only without a threshold."""
    feedback = dataset.get("feedback", "explicit")
    one_of("dataset.feedback", feedback, FEEDBACKS)
    threshold = dataset.get("implicit_min_rating")
    if threshold is not None:
        number("dataset.implicit_min_rating", threshold)
        if not math.isfinite(threshold):
            raise ConfigError(f"dataset.implicit_min_rating={threshold!r} must be finite")
    columns = dataset.get("columns")
    if (feedback == "implicit" and threshold is not None and columns is not None
            and "rating" not in columns):
        raise ConfigError(f"dataset.implicit_min_rating={threshold:g} needs a rating field, "
                          f"but dataset.columns={list(columns)} names none: leave the "
                          "threshold null (every line an interaction), or name the rating")


def _validate_train(train: Any) -> None:
    for key in ("epochs", "batch_size", "eval_chunk_rows", "patience"):
        positive_int(f"train.{key}", train[key])
    one_of("train.dtype", train.dtype, ("float32", "bfloat16"))
    if train.monitor != AUTO:
        parse_monitor(train.monitor)
    mesh = train.mesh
    if mesh is not None and (not isinstance(mesh, int) or isinstance(mesh, bool)
                             or (mesh < 1 and mesh != -1)):
        raise ConfigError(f"train.mesh={mesh!r} must be null, -1 (all devices) or a number of "
                          "devices >= 1")
    positive_int("train.wide_shards", train.wide_shards)
    if train.wide_shards > 1 and mesh is None:
        raise ConfigError(f"train.wide_shards={train.wide_shards} needs a mesh: set "
                          "train.mesh to the number of devices (-1: all)")


def _validate_distributed(cfg: Any) -> None:
    if not cfg.distributed.enabled:
        return
    if cfg.train.wide_shards > 1:
        raise ConfigError("distributed.enabled=true: train.wide_shards > 1 is not "
                          "supported across processes yet")
    if cfg.train.mesh != -1:  # a smaller mesh would leave some processes without devices in it
        raise ConfigError(f"distributed.enabled=true needs train.mesh=-1 (all devices of "
                          f"all processes), not {cfg.train.mesh!r}")
    if cfg.checkpoint.enabled:
        raise ConfigError("distributed.enabled=true: checkpoints are not supported across "
                          "processes yet; set checkpoint.enabled=false")


def _validate_stopping(cfg: Any) -> None:
    """The stop request's grace period, resuming, and how often checkpoints are written."""
    grace = cfg.train.stop_grace_seconds
    number("train.stop_grace_seconds", grace)
    if not grace >= 0:  # NaN too
        raise ConfigError(f"train.stop_grace_seconds={grace!r} must be >= 0 (seconds)")
    if not (cfg.train.resume == "auto" or isinstance(cfg.train.resume, bool)):  # 0 == False
        raise ConfigError(f"train.resume={cfg.train.resume!r} must be auto, true or false")
    for key in ("every_epochs", "keep"):
        positive_int(f"checkpoint.{key}", cfg.checkpoint[key])
    seconds = cfg.checkpoint.get("every_seconds", 0)
    number("checkpoint.every_seconds", seconds)
    if seconds < 0:
        raise ConfigError(f"checkpoint.every_seconds={seconds!r} must be >= 0")


def _validate_scale(dataset: Any) -> None:
    """The rating scale: both ends or neither (then read from the data), low > 0, low < high."""
    low, high = dataset.get("rating_min"), dataset.get("rating_max")
    if (low is None) != (high is None):
        given, missing = ("rating_min", "rating_max") if high is None else ("rating_max",
                                                                            "rating_min")
        raise ConfigError(f"dataset.{given} is set but dataset.{missing} is not: give both "
                          "ends of the rating scale, or neither to read them from the data")
    if low is None:
        return
    number("dataset.rating_min", low)
    number("dataset.rating_max", high)
    if not low > 0:
        raise ConfigError(f"dataset.rating_min={low!r} must be > 0: 0 marks a missing cell in "
                          "the rating matrices (shift the scale, e.g. 1..21 for -10..10)")
    if not high > low:
        raise ConfigError(f"dataset.rating_max={high!r} must be above "
                          f"dataset.rating_min={low!r}")


def _validate_synthetic(dataset: Any) -> None:
    for key in ("n_users", "n_items", "n_ratings", "rank"):
        positive_int(f"dataset.{key}", dataset[key])
    for key in ("popularity_exponent", "activity_exponent", "noise", "rating_step"):
        number(f"dataset.{key}", dataset[key])
    if dataset.rating_step <= 0:
        raise ConfigError(f"dataset.rating_step={dataset.rating_step!r} must be > 0")


def _validate_recommend(cfg: Any) -> None:
    given = [key for key in ("user", "ratings", "ratings_file") if cfg.get(key) is not None]
    if len(given) != 1:
        raise ConfigError("task=recommend needs exactly one of user=<id>, "
                          "ratings=\"item:rating,...\" or ratings_file=<path>"
                          + (f" (got {', '.join(given)})" if given else ""))
    if cfg.user is not None and (not isinstance(cfg.user, int) or isinstance(cfg.user, bool)):
        raise ConfigError(f"user={cfg.user!r} must be an integer user id")
    positive_int("k", cfg.k)
    one_of("format", cfg.format, FORMATS)


def _validate_ranking(ranking: Any) -> None:
    ks = ranking.k if not isinstance(ranking.k, int) else [ranking.k]
    if len(ks) == 0:
        raise ConfigError("ranking.k must list at least one cut-off, e.g. [10, 20]")
    for k in ks:
        positive_int("ranking.k", k)
    positive_int("ranking.chunk_users", ranking.chunk_users)
    if not isinstance(ranking.threshold, int | float) or isinstance(ranking.threshold, bool):
        raise ConfigError(f"ranking.threshold={ranking.threshold!r} must be a number")
