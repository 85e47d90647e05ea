"""A rating scale read from the ratings themselves (custom files without dataset.rating_min/max):
how it is reported, and when one of its ends looks like an outlier rather than the scale's end.

The rule for an outlier: an end of the inferred scale (the smallest or the largest rating) is
flagged when it is both
- rare: held by at most 1% of the ratings (a single rating always counts as rare), and
- far: more than 3 spreads beyond the quartiles (Tukey's "far out" fences), the spread being the
  interquartile range or, when that is narrower, the smallest step between two distinct rating
  values (more than half the ratings may share one value, making the range 0).
500 in a 1-5 file: quartiles 2 and 4, fences -4 and 10, so 500 is far. A 1-5 file with a few 1s
and quartiles 4 and 4: spread 1 (the step), lower fence 1, so 1 is not flagged.
"""

from __future__ import annotations

import numpy as np

RARE_SHARE = 0.01  # at most this share of the ratings (or a single rating) holds a rare end
FAR_SPREADS = 3.0  # a far end lies more than this many spreads beyond the quartiles
LISTED_VALUES = 12  # up to this many distinct values, the distribution lists each one's count


def rating_distribution(ratings: np.ndarray) -> str:
    """`1: 120, 2: 340, ...` for few distinct values; quantiles for many."""
    values, counts = np.unique(ratings, return_counts=True)
    if values.size <= LISTED_VALUES:
        return ", ".join(f"{value:g}: {count}" for value, count in zip(values, counts,
                                                                       strict=True))
    shares = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
    labels = ("min", "1%", "25%", "median", "75%", "99%", "max")
    quantiles = np.quantile(ratings.astype(np.float64), shares)
    return f"{values.size} distinct values; " + ", ".join(
        f"{label} {value:g}" for label, value in zip(labels, quantiles, strict=True))


def outlying_ends(ratings: np.ndarray) -> list[tuple[str, float, int]]:
    """The ends of the ratings' range that are rare and far (the rule above), as
    ("bottom" | "top", value, how many ratings hold it)."""
    values, counts = np.unique(ratings, return_counts=True)
    if values.size < 3:  # with two values there is no "rest" to be far from
        return []
    low_quartile, high_quartile = np.quantile(ratings.astype(np.float64), (0.25, 0.75))
    spread = max(high_quartile - low_quartile, float(np.diff(values).min()))
    rare = max(RARE_SHARE * ratings.size, 1)
    ends = []
    if counts[0] <= rare and values[0] < low_quartile - FAR_SPREADS * spread:
        ends.append(("bottom", float(values[0]), int(counts[0])))
    if counts[-1] <= rare and values[-1] > high_quartile + FAR_SPREADS * spread:
        ends.append(("top", float(values[-1]), int(counts[-1])))
    return ends


def describe_inferred_scale(ratings: np.ndarray, origin: str) -> tuple[str, list[str]]:
    """The line reporting a scale inferred from `ratings` (at least two distinct values) with
    their distribution, and a warning for each end that looks like an outlier."""
    low, high = float(ratings.min()), float(ratings.max())
    note = (f"{origin}: rating scale inferred as [{low:g}, {high:g}] from the data "
            f"(dataset.rating_min/rating_max not set); {ratings.size} ratings: "
            f"{rating_distribution(ratings)}")
    ends = outlying_ends(ratings)
    if not ends:
        return note, []
    # the scale the other ratings suggest: the range without the outlying ends
    flagged = {value for _, value, _ in ends}
    rest = ratings[~np.isin(ratings, list(flagged))]
    suggested = f"dataset.rating_min={float(rest.min()):g} dataset.rating_max={float(rest.max()):g}"
    quartiles = np.quantile(ratings.astype(np.float64), (0.25, 0.75))
    warnings = [
        f"{origin}: the {end} of the inferred rating scale, {value:g}, is held by {count} of "
        f"{ratings.size} ratings, far from the others (quartiles {quartiles[0]:g} and "
        f"{quartiles[1]:g}): a typo or a rating on another scale stretches the scale every "
        "figure is computed on. Set the scale explicitly, e.g. to the other ratings' range: "
        f"{suggested} (a rating outside the scale is then refused, naming its line), or clean "
        "the file"
        for end, value, count in ends]
    return note, warnings
