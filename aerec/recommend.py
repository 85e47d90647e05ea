"""task=recommend: top-k items for a known user or for a new user's rating history."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from aerec.errors import DataError, UnknownIdError
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


def recommend(model_path: str | Path, cfg: RecommendRequest) -> dict[str, Any]:
    """The recommendations `cfg` asks of the saved model in `model_path`, as a JSON-ready
    dict."""
    from aerec.saved_model import load  # imports JAX

    model = load(model_path)
    if cfg.user is not None:
        table = model.recommend(int(cfg.user), int(cfg.k))
        request: dict[str, Any] = {"user": int(cfg.user)}
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


def format_recommendations(payload: dict[str, Any]) -> str:
    """A text table of the recommendations."""
    table = pd.DataFrame(payload["recommendations"])
    if table.empty:
        return "no items left to recommend"
    # A top-N model predicts no rating (null in the JSON): shown as "-".
    table["predicted_rating"] = table["predicted_rating"].map(
        lambda rating: "-" if rating is None or rating != rating else f"{rating:.2f}")
    table["year"] = table["year"].map(lambda year: str(year) if year else "")
    for column in ("title", "genres", "year"):
        if not table[column].astype(bool).any():
            table = table.drop(columns=column)
    who = (f"user {payload['user']}" if "user" in payload
           else f"a new user with {len(payload['history'])} ratings")
    return f"top {payload['k']} for {who}:\n" + table.to_string(index=False)
