"""Official and custom delimited formats -> a tidy ratings table (user, item, rating[, timestamp]).

Implicit feedback (clicks, plays) may have no rating field: user, item[, timestamp].

The fast path hands the whole file to pandas' C parser. Only when that fails, or the values do
not validate, a slow line-by-line pass finds the first offending line so that the error names
the file, the line and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aerec.errors import ConfigError, DataError

FIELDS = ("user", "item", "rating", "timestamp")
REQUIRED = ("user", "item", "rating")
REQUIRED_IMPLICIT = ("user", "item")
IGNORED = ("_", "skip")
INTEGER_FIELDS = ("user", "item", "timestamp")
INT64 = np.iinfo(np.int64)  # ids and timestamps are read as int64


# The separators suggested when the configured one does not fit, in the order tried
# (MovieLens' own first: "::", then the CSV and TSV of other exports).
SEPARATORS = ("::", ",", "\t", ";", "|", " ")


def field_separator(sep: str) -> str:
    """`dataset.sep` as a character: a tab given as `\\t` or `tab` is a tab (Hydra keeps the
    backslash of "dataset.sep='\\t'", and a bare tab is hard to type on a command line)."""
    return "\t" if sep in ("\\t", "tab") else sep


def read_ratings(path: Path, *, sep: str, header: bool, columns: Sequence[str] | None = None,
                 encoding: str = "utf-8", rating_range: tuple[float, float] | None = None,
                 implicit: bool = False, rated: bool = False) -> pd.DataFrame:
    """Parse a delimited ratings file into columns user, item (int64), rating (float32), ...

    `columns` names each field in file order (`user`, `item`, `rating`, `timestamp`, or `_` to
    ignore one); by default the fields are user, item, rating and an optional timestamp.
    `implicit`: the rating field is optional, and by default 2 fields are user, item; 3 are
    user, item, rating only when the file is known to be `rated` (a threshold on its ratings
    is configured), else refused as ambiguous (user, item, timestamp is as likely).
    """
    path, sep = Path(path), field_separator(sep)
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # the same text, with a byte-order mark (if any) removed
    line = _first_line(path, header, encoding)
    n_fields = len(line.split(sep))
    if columns is None:
        names = _default_names(path, n_fields, line, sep, implicit=implicit, rated=rated)
    else:
        names = _column_names(path, columns, n_fields, implicit=implicit)
    wanted = [(position, name) for position, name in enumerate(names) if name not in IGNORED]
    # "::" is not a single character, which would force pandas' slow Python engine. Splitting
    # on ":" instead keeps the C engine: field k then sits at position 2k, with empty tokens
    # between (ratings files hold only numbers, so no ":" inside a field).
    stride, c_sep = (2, ":") if sep == "::" else (1, sep)
    dtypes = {name: ("int64" if name in INTEGER_FIELDS else "float64") for _, name in wanted}
    columns_wanted = {f"field{position * stride}": name for position, name in wanted}
    tokens = [f"field{k}" for k in range((n_fields - 1) * stride + 1)]
    # Every token is read (no `usecols`, which would let pandas silently misread a line with
    # too many fields); the empty tokens between "::" halves must stay empty.
    spacers = [token for k, token in enumerate(tokens) if k % stride]
    try:
        table = pd.read_csv(
            path,
            sep=c_sep,
            header=0 if header else None,
            names=tokens,
            dtype={**{column: dtypes[name] for column, name in columns_wanted.items()},
                   **dict.fromkeys(spacers, "float32")},
            engine="c",
            encoding=encoding,
            skip_blank_lines=True,
        )
    # pandas raises OverflowError for an integer beyond 64 bits (signed or not)
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError) as error:
        _diagnose(path, sep, header, names, encoding, rating_range)
        raise DataError(f"{path}: could not parse ratings: {error}") from error
    if spacers and table[spacers].notna().to_numpy().any():
        _diagnose(path, sep, header, names, encoding, rating_range)
        raise DataError(f"{path}: a field holds a single ':' (fields are separated by '::')")
    table = table[list(columns_wanted)].rename(columns=columns_wanted)
    if "rating" in table:
        if not _values_valid(table, rating_range):
            _diagnose(path, sep, header, names, encoding, rating_range)
            raise DataError(f"{path}: ratings are not finite or outside {rating_range}")
        table["rating"] = table["rating"].astype(np.float32)
    return table.reset_index(drop=True)


def _separator_hint(line: str, sep: str, counts: tuple[int, ...] = (3, 4)) -> str | None:
    """'set dataset.sep=...' when another common separator splits `line` into as many fields
    as a ratings file has (`counts`); None when none does."""
    for candidate in SEPARATORS:
        if candidate != sep and len(line.split(candidate)) in counts:
            value = "tab" if candidate == "\t" else repr(candidate)
            return f"its first line splits on {candidate!r}: set dataset.sep={value}"
    return None


def _first_line(path: Path, header: bool, encoding: str) -> str:
    """The first line that holds a rating (after the header, if any), without its end."""
    try:
        with open(path, encoding=encoding) as handle:
            if header and not handle.readline():
                raise DataError(f"{path}: file is empty (a header line was expected)")
            for line in handle:
                if line.strip():
                    return line.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not valid {encoding} text: {error}") from error
    raise DataError(f"{path}: no ratings in the file (it is empty or holds only a header)")


def _default_names(path: Path, n_fields: int, line: str, sep: str, *, implicit: bool,
                   rated: bool) -> list[str]:
    """The fields of a file without dataset.columns: user, item, rating[, timestamp]; for
    implicit feedback also user, item (and user, item, rating when the file is `rated`)."""
    if n_fields == 2 and implicit:
        return ["user", "item"]
    if n_fields == 3 and implicit and not rated:
        raise DataError(
            f"{path}: 3 fields per line with dataset.feedback=implicit: user, item and either "
            "a rating or a timestamp; name them: dataset.columns=[user,item,rating] (every "
            "rating an interaction, or those >= dataset.implicit_min_rating when it is set) "
            "or dataset.columns=[user,item,timestamp]")
    if n_fields in (3, 4):
        return list(FIELDS[:n_fields])
    hint = _separator_hint(line, sep, (2, 3, 4) if implicit else (3, 4))
    if n_fields == 2 and hint is None:  # only explicit feedback is left here
        raise DataError(
            f"{path}: 2 fields (user, item) where ratings need 3 (user, item, rating): it "
            "looks like implicit feedback: set dataset.feedback=implicit")
    expected = ("2 fields (user, item), 3 or 4 (with rating, timestamp)" if implicit else
                "3 fields (user, item, rating) or 4 (with timestamp)")
    raise DataError(f"{path}: expected {expected} per line, found {n_fields} with "
                    f"dataset.sep={sep!r}; " + (hint or "set dataset.columns to name each field"))


def _column_names(path: Path, columns: Sequence[str], n_fields: int, *, implicit: bool
                  ) -> list[str]:
    """dataset.columns, checked: each required field once (user, item and, for explicit
    feedback, rating), the others at most once, one name per field of the file."""
    names = list(columns)
    required = REQUIRED_IMPLICIT if implicit else REQUIRED
    unknown = [name for name in names if name not in FIELDS + IGNORED]
    missing = [name for name in required if name not in names]
    used = [name for name in names if name not in IGNORED]
    if unknown or missing or len(set(used)) != len(used):
        optional = "'rating' and 'timestamp'" if implicit else "'timestamp'"
        hint = ("; a file without ratings (clicks, plays): dataset.feedback=implicit"
                if missing == ["rating"] else "")
        raise ConfigError(
            f"dataset.columns={names}: each of {required} exactly once, optionally {optional}, "
            f"'_' for a field to skip (unknown: {unknown}, missing: {missing}){hint}"
        )
    if len(names) != n_fields:
        raise DataError(f"{path}: dataset.columns names {len(names)} fields, file has {n_fields}")
    return names


def _values_valid(table: pd.DataFrame, rating_range: tuple[float, float] | None) -> bool:
    ratings = table["rating"].to_numpy()
    if not np.isfinite(ratings).all():
        return False
    if rating_range is not None:
        low, high = rating_range
        return bool(((ratings >= low) & (ratings <= high)).all())
    return True


def _diagnose(path: Path, sep: str, header: bool, names: list[str], encoding: str,
              rating_range: tuple[float, float] | None) -> None:
    """Raise a DataError naming the first line that breaks the format (slow; error path only)."""
    expected = sep.join(names)
    with open(path, encoding=encoding, errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if (header and line_number == 1) or not text.strip():
                continue
            fields = text.split(sep)
            where = f"{path}, line {line_number}"
            if len(fields) != len(names):
                raise DataError(
                    f"{where}: expected {len(names)} fields like {expected!r}, "
                    f"got {len(fields)}: {text[:80]!r}"
                )
            for name, value in zip(names, fields, strict=True):
                if name in INTEGER_FIELDS:
                    _check_integer(where, name, value)
                elif name == "rating":
                    _check_rating(where, value, rating_range)


def _check_integer(where: str, name: str, value: str) -> None:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{where}: {name} must be an integer, got {value!r}") from None
    if not INT64.min <= number <= INT64.max:
        raise DataError(f"{where}: {name} {value.strip()} does not fit in 64 bits: ids and "
                        f"timestamps must lie within {INT64.min}..{INT64.max} (renumber them)")


def _check_rating(where: str, value: str, rating_range: tuple[float, float] | None) -> None:
    try:
        rating = float(value)
    except ValueError:
        raise DataError(f"{where}: rating must be a number, got {value!r}") from None
    if not math.isfinite(rating):
        raise DataError(f"{where}: rating must be finite, got {value!r}")
    if rating_range is not None and not rating_range[0] <= rating <= rating_range[1]:
        raise DataError(f"{where}: rating {value} outside the scale {rating_range}")
