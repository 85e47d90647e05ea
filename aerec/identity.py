"""What a run trains, as the configuration keys that define it: a checkpoint's identity."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from aerec.data.parse import field_separator

if TYPE_CHECKING:
    from aerec.data.dataset import Dataset

# Keys that do not change what is trained: where files live, how progress is shown, how often
# checkpoints are written, and the data path (resident and streamed, float32 or bfloat16
# storage of exact ratings: the same inputs, so the same results to rounding).
# Keys that change how a run is carried out or evaluated, never what it trains.
NOT_IDENTITY_SECTIONS = ("paths.", "checkpoint.", "hydra.", "ranking.", "distributed.")
NOT_IDENTITY = {"task", "train.progress", "train.resume", "train.data_path",
                "train.resident_max_bytes", "train.dense_dtype", "train.eval_chunk_rows",
                "train.stop_grace_seconds", "user", "ratings", "ratings_file", "k", "format"}
# Keys added after checkpoints were first written, at the value that trains as before: left
# out of the identity then, so that older checkpoints still resume (and keep their directory).
NEUTRAL_DEFAULTS = {"train.wide_shards": 1, "train.monitor": "auto",
                    "dataset.feedback": "explicit", "dataset.implicit_min_rating": None,
                    "prepare.repeat_filters": False, "split.heldout_users": None}
# Keys that do not change what is trained but were in the identity of checkpoints already
# written: recorded at one value whatever they are set to, so that a run resumes whichever
# it is (turning downloads off once the archive is local). Older checkpoints written at that
# value keep their default directory; those written at another (dataset.download=false)
# are still resumed from an explicit checkpoint.dir (`identity_differences` reads their
# saved value as this one), but their default directory has moved.
RECORDED_AS = {"dataset.download": True}
# Keys with several spellings of one value, recorded as the value they are read as:
# `dataset.sep=tab` reads the same file as a tab.
NORMALISED = {"dataset.sep": field_separator}
# What the same configuration trains, as a number: raised when a code change makes it train
# differently, so that a checkpoint of the older training is neither resumed nor reported as
# this one's (its directory differs, and an explicit checkpoint.dir names the mismatch).
# 2: dropout keys from their own stream (aerec.train.training_key).
# 3: the loss's gradient written out (aerec.losses.masked_mse: float sums in another order);
#    on an accelerator, hidden widths padded, biases folded into padding units and the
#    training state kept padded between steps (aerec.train.for_steps; removed since: the
#    step pads in each step again, aerec.accelerate, with the same values: no new format).
# 4: the split drawn over the ratings in (user, item) order, not the file's (the same for a
#    file sorted that way, as the shared ML-1M copy and ml-latest-small are).
TRAINING_FORMAT = 4


def is_identity_key(key: str) -> bool:
    """Whether a configuration key (dotted) can change what a run trains."""
    return key not in NOT_IDENTITY and not key.startswith(NOT_IDENTITY_SECTIONS)


def flatten_config(tree: Any) -> dict[str, Any]:
    """A resolved configuration (plain dicts) as {dotted key: value} (empty sections left
    out)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(tree, "")
    return flat


def run_identity(resolved: Any) -> dict[str, Any]:
    """The flattened configuration keys that define what a run trains, from the run's
    resolved configuration (`aerec.run_config.RunConfig.resolved`)."""
    flat = {key: NORMALISED[key](value) if key in NORMALISED else value
            for key, value in flatten_config(resolved).items()}
    identity = {key: RECORDED_AS.get(key, value) for key, value in flat.items()
                if is_identity_key(key)
                and not (key in NEUTRAL_DEFAULTS and value == NEUTRAL_DEFAULTS[key])}
    return dict(sorted({**identity, "aerec.training_format": TRAINING_FORMAT}.items()))


def data_fingerprint(dataset: Dataset) -> str:
    """What a run trains on, as a sha256 hex digest of the prepared ratings: raw user and item
    ids, ratings and the rating scale, in (user, item) order. The file's line order, path and
    format do not enter it: the same ratings give the same fingerprint however they are
    stored, and any rating added, removed or changed gives another."""
    digest = hashlib.sha256(b"aerec-ratings-v1")
    arrays = (dataset.users.raw[dataset.user_index], dataset.items.raw[dataset.item_index],
              dataset.rating.astype(np.float32),
              np.array([dataset.rating_min, dataset.rating_max], np.float64))
    for array in arrays:
        if array.dtype.kind in "iu" and array.dtype != np.uint64:
            array = array.astype(np.int64)  # ids parsed narrower or wider are the same ids
        array = np.ascontiguousarray(array)
        # the dtype and length framed in: equal bytes of other types are other data
        digest.update(f"{array.dtype.str}:{array.size};".encode())
        digest.update(array.tobytes() if array.dtype.kind != "O" else
                      "\0".join(map(str, array)).encode())
    return digest.hexdigest()
