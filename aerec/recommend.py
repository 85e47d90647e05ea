"""task=recommend: top-k items for known users (one, a list, or all of them, printed or written
to a file) or for a new user's rating history."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from aerec.errors import DataError, UnknownIdError
from aerec.recommendation_files import check_output
from aerec.run_config import RecommendRequest

PAIR = re.compile(r"^\s*(-?\d+)\s*(?:::|:|,|\t|\s)\s*(\S+)\s*$")


def _pair(text: str, where: str) -> tuple[int, float]:
    match = PAIR.match(text)
    if match is None:
        raise DataError(f"{where}: expected 'item:rating' (e.g. 1193:5), got {text!r}")
    try:
        rating = float(match.group(2))
    except ValueError:
        raise DataError(f"{where}: rating {match.group(2)!r} is not a number") from None
    return int(match.group(1)), rating


def _add(history: dict[int, float], item: int, rating: float, where: str) -> None:
    if item in history:
        raise DataError(f"{where}: item {item} is rated twice")
    history[item] = rating


def parse_history(text: str) -> dict[int, float]:
    """`"1193:5,661:3 914:4"` -> {1193: 5.0, 661: 3.0, 914: 4.0} (separators: , ; or space)."""
    history: dict[int, float] = {}
    for position, part in enumerate(p for p in re.split(r"[,;\s]+", text.strip()) if p):
        item, rating = _pair(part, f"ratings, entry {position + 1}")
        _add(history, item, rating, f"ratings, entry {position + 1}")
    if not history:
        raise DataError("ratings is empty; give 'item:rating' pairs, e.g. ratings=\"1193:5,661:3\"")
    return history


def _decode(raw: bytes, path: Path, number: int) -> str:
    try:  # tolerate a byte-order mark on the first line
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}, line {number}: not UTF-8 text ({error.reason}: "
                        f"{raw.rstrip()[:40]!r}); save the file as UTF-8") from None


def read_history(path: Path) -> dict[int, float]:
    """A history file: one `item:rating` (or `item,rating`, `item::rating`, tab) per line;
    blank lines, `#` comments and an `item,rating` header line are skipped."""
    path = Path(path)
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"ratings_file={path} {state}")
    history: dict[int, float] = {}
    header_allowed = True  # until the first line with content
    # decoded line by line, so that an error names its line; \n, \r\n or \r end a line
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        text = _decode(raw, path, number).split("#", 1)[0].strip()
        if not text:
            continue
        if header_allowed:
            header_allowed = False
            if not text[0].isdigit() and text[0] != "-":  # "item,rating"
                continue
        item, rating = _pair(text, f"{path}, line {number}")
        _add(history, item, rating, f"{path}, line {number}")
    if not history:
        raise DataError(f"{path}: no 'item:rating' lines")
    return history


def recommend(model_path: str | Path, cfg: RecommendRequest, *, chunk_users: int = 1024,
              progress: bool = False) -> dict[str, Any]:
    """The recommendations `cfg` asks of the saved model in `model_path`, as a JSON-ready
    dict; with `cfg.output`, the lists are written to that file (checked before the model is
    loaded) and the dict says what was written. Known users are ranked `chunk_users` at a
    time; `progress`: a progress bar while a file is written."""
    from aerec.saved_model import load  # imports JAX

    if cfg.output is not None:
        check_output(Path(cfg.output))
    model = load(model_path)
    if cfg.output is not None:
        return _write(model, cfg, chunk_users, progress)
    if cfg.user is not None or cfg.users is not None:
        users = cfg.user if cfg.user is not None else list(cfg.users)
        table = model.recommend(users, int(cfg.k), chunk_users=chunk_users)
        request: dict[str, Any] = ({"user": int(cfg.user)} if cfg.user is not None
                                   else {"users": users})
    else:
        source = "ratings" if cfg.ratings is not None else f"ratings_file={cfg.ratings_file}"
        history = (parse_history(str(cfg.ratings)) if cfg.ratings is not None
                   else read_history(Path(cfg.ratings_file)))
        try:
            table = model.recommend_for_history(history, int(cfg.k))
        except UnknownIdError as error:  # say which input named it
            raise UnknownIdError(f"{source}: {error}") from None
        request = {"history": {str(item): rating for item, rating in history.items()}}
    return {**request, "k": int(cfg.k), "model": model.description["model"]["name"],
            "recommendations": json.loads(table.to_json(orient="records"))}


def _write(model: Any, cfg: RecommendRequest, chunk_users: int, progress: bool
           ) -> dict[str, Any]:
    """Write the lists of `cfg`'s users (all, a list, or one) to `cfg.output`."""
    users = (None if cfg.users == "all" else
             [cfg.user] if cfg.user is not None else list(cfg.users))
    started = time.perf_counter()
    rows = model.write_recommendations(cfg.output, int(cfg.k), users,
                                       chunk_users=chunk_users, progress=progress)
    return {"users": "all" if users is None else users, "k": int(cfg.k),
            "model": model.description["model"]["name"], "output": str(cfg.output),
            "rows": rows, "n_users": len(model.users) if users is None else len(users),
            "seconds": round(time.perf_counter() - started, 3)}


def format_recommendations(payload: dict[str, Any]) -> str:
    """A text table of the recommendations (or, where they went to a file, a line saying
    so). A model that predicts ratings shows them; another, its scores."""
    if "output" in payload:
        return (f"wrote {payload['rows']} rows (top {payload['k']} of {payload['n_users']} "
                f"users) to {payload['output']} in {payload['seconds']:.1f} s")
    table = pd.DataFrame(payload["recommendations"])
    if table.empty:
        return "no items left to recommend"
    if "predicted_rating" in table:
        table = table.drop(columns="score")
        table["predicted_rating"] = table["predicted_rating"].map("{:.2f}".format)
    else:
        table["score"] = table["score"].map("{:.4g}".format)
    table["year"] = table["year"].map(lambda year: str(year) if year else "")
    for column in ("title", "genres", "year"):
        if not table[column].astype(bool).any():
            table = table.drop(columns=column)
    if "users" in payload:
        who = f"{len(payload['users'])} users"
    else:
        table = table.drop(columns="user", errors="ignore")
        who = (f"user {payload['user']}" if "user" in payload
               else f"a new user with {len(payload['history'])} ratings")
    return f"top {payload['k']} for {who}:\n" + table.to_string(index=False)
