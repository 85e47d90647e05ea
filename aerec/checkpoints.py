"""The checkpoint cache on the command line: `python -m aerec.checkpoints list | prune`.

Every training run checkpoints into `<root>/<dataset>-<model>-<hash>` (root: `--root`, else
$AEREC_CHECKPOINT_DIR, else the per-user cache). A finished run keeps one checkpoint; directories
set aside (`.unreadable-`, `.replaced-`, `.data-changed-` and a time) are kept for a look until
pruned. A directory a running training holds (its lock) is never removed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from aerec.checkpoint import default_checkpoint_root
from aerec.errors import AerecError, CheckpointError
from aerec.lock import DirectoryLock

ASIDE = r"\.(unreadable|replaced|data-changed)-\d{8}-\d{6}"
SET_ASIDE = re.compile(ASIDE + "$")
# What training names a checkpoint directory under the root: <dataset>-<model>-<12 hex
# digits of the identity>, and its set-aside copies. Nothing else under the root is touched.
CHECKPOINT_NAME = re.compile(r"^.+-[0-9a-f]{12}(" + ASIDE + ")?$")
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Entry:
    """One directory of the cache."""

    path: Path
    size: int
    modified: float  # the newest modification time inside it
    state: str


def size_and_mtime(directory: Path) -> tuple[int, float]:
    """Bytes of every file under `directory`, and the newest modification time there."""
    size, newest = 0, directory.stat().st_mtime
    for path in directory.rglob("*"):
        try:
            stat = path.lstat()
        except OSError:  # removed while we looked (a save renaming its temporary directory)
            continue
        newest = max(newest, stat.st_mtime)
        if path.is_file():
            size += stat.st_size
    return size, newest


def state_of(directory: Path) -> str:
    """What a checkpoint directory holds: its newest epoch and whether the run finished."""
    aside = SET_ASIDE.search(directory.name)
    if aside:
        return f"set aside ({aside.group(1)})"
    steps = sorted((int(path.name) for path in directory.iterdir() if path.name.isdigit()),
                   reverse=True)
    if not steps:
        return "empty"
    try:
        meta = json.loads((directory / str(steps[0]) / "meta" / "metadata").read_text())
        finished = "finished" if meta.get("finished") else "unfinished"
    except (OSError, ValueError, AttributeError):
        finished = "unreadable"
    return f"epoch {steps[0]}, {finished}"


def entries(root: Path) -> list[Entry]:
    """The cache's checkpoint directories (named as training names them; any other directory
    under the root is left alone), oldest first."""
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        if path.is_dir() and not path.is_symlink() and CHECKPOINT_NAME.match(path.name):
            size, modified = size_and_mtime(path)
            found.append(Entry(path, size, modified, state_of(path)))
    return sorted(found, key=lambda entry: entry.modified)


def parse_size(text: str) -> int:
    """'500M', '2G', '1.5g', '1000' (bytes) as bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write e.g. 500M or 2G")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '2w' as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: write e.g. 30d, 12h or 90m")
    return float(match.group(1)) * SECONDS[match.group(2)]


def human(size: float) -> str:
    """Bytes as a short human-readable size."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def list_entries(root: Path) -> None:
    """Print every checkpoint directory with its size, age and state, and the total."""
    found = entries(root)
    print(f"checkpoints in {root}:")
    now = time.time()
    for entry in found:
        days = (now - entry.modified) / 86400
        print(f"  {human(entry.size):>9}  {days:6.1f} days  {entry.path.name}  ({entry.state})")
    print(f"{len(found)} directories, {human(sum(entry.size for entry in found))}")


def to_prune(found: list[Entry], older_than: float | None, max_size: int | None,
             set_aside: bool, now: float) -> list[Entry]:
    """What the criteria select: set-aside directories, those older than `older_than`
    seconds, then the oldest until the rest fits in `max_size` bytes."""
    chosen = [entry for entry in found
              if (set_aside and SET_ASIDE.search(entry.path.name))
              or (older_than is not None and now - entry.modified > older_than)]
    if max_size is not None:
        total = sum(entry.size for entry in found if entry not in chosen)
        for entry in found:  # oldest first
            if total <= max_size:
                break
            if entry not in chosen:
                chosen.append(entry)
                total -= entry.size
    return chosen


def remove(entry: Entry) -> bool:
    """Delete a checkpoint directory unless a running training holds it; whether removed."""
    try:
        lock = DirectoryLock(entry.path)
    except AerecError as error:  # held by a run, or its lock cannot be taken
        print(f"  kept {entry.path.name}: {error}")
        return False
    try:
        shutil.rmtree(entry.path)
        with suppress(PermissionError):  # Windows keeps a locked file; its release removes it
            lock.path.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def prune(root: Path, older_than: float | None, max_size: int | None, set_aside: bool,
          dry_run: bool) -> None:
    """Remove what the criteria select (print it only with `dry_run`)."""
    chosen = to_prune(entries(root), older_than, max_size, set_aside, time.time())
    verb = "would remove" if dry_run else "removed"
    gone = []
    for entry in chosen:  # said as each goes: a later failure leaves an accurate account
        if dry_run or remove(entry):
            gone.append(entry)
            print(f"  {verb} {entry.path.name} ({human(entry.size)}, {entry.state})",
                  flush=True)
    print(f"{verb} {len(gone)} directories, {human(sum(entry.size for entry in gone))}, "
          f"from {root}")


def main(argv: list[str] | None = None) -> int:
    """`list` or `prune` the checkpoint cache; exit status 0, or 1 with an `error:` line."""
    parser = argparse.ArgumentParser(prog="python -m aerec.checkpoints",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="the checkpoint root (default: $AEREC_CHECKPOINT_DIR or the "
                             "per-user cache; the runs' paths.checkpoint_dir if set)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="each checkpoint directory, its size, age and state")
    pruning = commands.add_parser("prune", help="remove directories by age or total size")
    pruning.add_argument("--older-than", type=parse_age, metavar="AGE",
                         help="remove those not written for AGE (e.g. 30d, 12h)")
    pruning.add_argument("--max-size", type=parse_size, metavar="SIZE",
                         help="remove the oldest until the rest takes at most SIZE (e.g. 2G)")
    pruning.add_argument("--set-aside", action="store_true",
                         help="remove the directories set aside (unreadable, replaced, "
                              "trained on changed data)")
    pruning.add_argument("--dry-run", action="store_true", help="only say what would go")
    args = parser.parse_args(argv)
    root = (args.root or default_checkpoint_root()).expanduser().absolute()
    try:
        if root.exists() and not root.is_dir():
            raise CheckpointError(f"{root} is a file, not a checkpoint directory")
        if args.command == "list":
            list_entries(root)
        elif args.older_than is None and args.max_size is None and not args.set_aside:
            parser.error("prune needs --older-than, --max-size or --set-aside")
        else:
            prune(root, args.older_than, args.max_size, args.set_aside, args.dry_run)
    except (AerecError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
