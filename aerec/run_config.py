"""The run's typed configuration: one frozen dataclass per section of `configs/config.yaml`.

Built once, where the command line starts, from the composed and checked Hydra tree
(`aerec.config.run_config`); below that point every function takes the section of its own
concern, or plain values. Field defaults are those of the YAML files, which stay the
user-facing defaults with a comment per key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aerec.models.base import ModelConfig, config_from_mapping


@dataclass(frozen=True)
class DatasetConfig:
    """`dataset`: which ratings; the keys of every `configs/dataset/*.yaml` (each reads its own)."""

    name: str
    ratings_file: str | None = None  # MovieLens: a file other than the archive's default
    download: bool = True
    path: str | None = None  # custom: the ratings file
    sep: str = ","
    header: bool = False
    columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    rating_min: float | None = None  # custom and synthetic: the rating scale
    rating_max: float | None = None
    feedback: str = "explicit"  # explicit (ratings) | implicit (interactions)
    implicit_min_rating: float | None = None  # ratings >= it are interactions (None: all)
    n_users: int = 2000  # synthetic: the seeded low-rank matrix
    n_items: int = 1000
    n_ratings: int = 100000
    rank: int = 10
    popularity_exponent: float = 0.8
    activity_exponent: float = 0.5
    noise: float = 0.5
    rating_step: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class PrepareConfig:
    """`prepare`: filtering and duplicate ratings."""

    min_item_ratings: int = 1
    min_user_ratings: int = 1
    duplicates: str = "error"
    repeat_filters: bool = False


@dataclass(frozen=True)
class SplitConfig:
    """`split`: how ratings are held out."""

    kind: str = "ratings"
    test_fraction: float = 0.1
    valid_fraction: float = 0.05
    fold_in_fraction: float = 0.8
    seed: int = 42
    heldout_users: int | None = None  # heldout_users: users held out for validation, as many
    # for test (None: round(test_fraction x users) each)


@dataclass(frozen=True)
class TrainConfig:
    """`train`: the epoch loop, the data path and the devices."""

    epochs: int = 200
    batch_size: int = 64
    patience: int = 20
    data_path: str = "auto"
    resident_max_bytes: int | None = None
    dense_dtype: str = "auto"
    eval_chunk_rows: int = 1024
    dtype: str = "float32"
    mesh: int | None = None
    wide_shards: int = 1
    progress: bool = True
    resume: str | bool = "auto"
    stop_grace_seconds: float = 20.0
    monitor: str = "auto"  # rmse | <ranking metric>@<k> | auto (aerec.monitor)


@dataclass(frozen=True)
class CheckpointConfig:
    """`checkpoint`: where and how often training state is saved; `path`: a saved model."""

    enabled: bool = True
    dir: str | None = None
    every_epochs: int = 1
    every_seconds: float = 60.0
    keep: int = 2
    path: str | None = None


@dataclass(frozen=True)
class RankingConfig:
    """`ranking`: the top-k evaluation."""

    enabled: bool = True
    k: tuple[int, ...] = (10, 20, 50, 100)
    threshold: float = 4.0
    chunk_users: int = 1024


@dataclass(frozen=True)
class PathsConfig:
    """`paths`: where data, checkpoints and compiled programs live (None: the defaults)."""

    data_dir: str | None = None
    checkpoint_dir: str | None = None
    compile_cache_dir: str | None = None


@dataclass(frozen=True)
class DistributedConfig:
    """`distributed`: several processes or hosts (None: detected)."""

    enabled: bool = False
    coordinator: str | None = None
    processes: int | None = None
    process_id: int | None = None


@dataclass(frozen=True)
class OptimizerConfig:
    """`optimizer`: Optax Adam and its learning-rate schedule."""

    name: str = "adam"
    learning_rate: float = 1e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    schedule: str = "constant"
    final_fraction: float = 0.0


@dataclass(frozen=True)
class RecommendRequest:
    """task=recommend: one of `user`, `ratings` or `ratings_file`; `k` items as `format`."""

    user: int | None = None
    ratings: str | None = None
    ratings_file: str | None = None
    k: int = 10
    format: str = "table"


@dataclass(frozen=True)
class RunConfig:
    """A whole run's configuration, typed.

    `resolved`: the composed tree as plain dicts and lists (hydra's keys left out), what a
    checkpoint's identity hashes and a saved model records, key for key as before.
    """

    task: str
    seed: int
    dataset: DatasetConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    prepare: PrepareConfig
    split: SplitConfig
    train: TrainConfig
    checkpoint: CheckpointConfig
    ranking: RankingConfig
    paths: PathsConfig
    distributed: DistributedConfig
    request: RecommendRequest
    resolved: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


S = TypeVar("S")


def section(config_type: type[S], values: Mapping[str, Any] | None) -> S:
    """`config_type` from a section's plain values (already checked), the others at their
    defaults. Values keep their type (an integer given for a float field stays an integer, so
    that messages show it as given)."""
    return config_from_mapping(config_type, values or {}, floats=False)
