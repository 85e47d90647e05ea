"""model=ease's fit time on the RecBole ML-1M interactions, and its float32 accuracy.

Recipe:

    time PYTHONPATH=. python experiments/ease_fit_time.py \
        --ratings ../shared/data/ml-1m/ratings_notime.dat --float64

The interactions are RecBole's ML-1M general-recommendation set: ratings >= 3, then users and
items with fewer than 10 interactions dropped until none is left (the shared copy: 834,449
interactions, 6,033 users, 3,123 items). All of them form X here (no split: the fit's cost
depends on the catalogue, not on which interactions are held out), resident on the device as
a run holds it. The first fit compiles its programs (cold); the next ones reuse them (warm,
the median of `--repeats`). Each fit's CPU seconds are printed beside its wall-clock
seconds: on a shared host they show the fit's own cost (on 2 idle cores, wall >= CPU / 2).
`--float64` compares B with NumPy's float64 closed form. Prints timings; asserts nothing.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 (the clock starts before the imports it times)
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def recbole_ml1m(path: Path, min_rating: float = 3.0, min_count: int = 10) -> sp.csr_matrix:
    """The binary users x items interaction matrix of RecBole's ML-1M set."""
    # "::" split on ":" by the C parser: the fields are columns 0, 2 and 4
    ratings = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4],
                          names=["user", "a", "item", "b", "rating"])
    ratings = ratings[ratings["rating"] >= min_rating]
    while True:  # a dropped item can leave a user below the threshold, and the other way
        keep = ((ratings.groupby("user")["item"].transform("size") >= min_count)
                & (ratings.groupby("item")["user"].transform("size") >= min_count))
        if keep.all():
            break
        ratings = ratings[keep]
    users = pd.factorize(ratings["user"])[0]
    items = pd.factorize(ratings["item"])[0]
    return sp.csr_matrix((np.ones(len(ratings), np.float32), (users, items)))


def float64_weights(matrix: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's closed form in float64 NumPy: B = I - P diag(1/diag(P)), P = (X^T X + l2 I)^-1."""
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    inverse = np.linalg.inv(gram + l2 * np.eye(gram.shape[0]))
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=Path,
                        default=Path("../shared/data/ml-1m/ratings_notime.dat"))
    parser.add_argument("--l2", type=float, nargs="+", default=[500.0, 1000.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--float64", action="store_true", help="compare with NumPy float64")
    args = parser.parse_args()

    started = time.perf_counter()
    matrix = recbole_ml1m(args.ratings)
    print(f"interactions {matrix.nnz:,}, users {matrix.shape[0]:,}, items {matrix.shape[1]:,} "
          f"(read and filtered in {time.perf_counter() - started:.2f} s)")
    started = time.perf_counter()
    import jax

    from aerec.data.device_rows import DeviceRows
    from aerec.models.ease import fit_bytes, fit_ease
    rows = DeviceRows(matrix, resident=True)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; imports and X on the "
          f"device {time.perf_counter() - started:.2f} s; the fit's peak "
          f"{fit_bytes(matrix.shape[1]) / 1e6:.0f} MB")

    def fit(l2: float) -> tuple[float, float, np.ndarray]:
        """Wall and CPU seconds of one fit (CPU time: all the process's threads; it tells a
        busy host's figure from the fit's own cost), and B."""
        began, began_cpu = time.perf_counter(), time.process_time()
        weights = jax.block_until_ready(fit_ease(rows, l2=l2, dropout=0.0,
                                                 zero_diagonal=True)["B"])
        return time.perf_counter() - began, time.process_time() - began_cpu, weights

    cold, cold_cpu, _ = fit(args.l2[0])
    print(f"cold fit (compiles) {cold:.2f} s ({cold_cpu:.2f} CPU s); process so far "
          f"{time.perf_counter() - STARTED:.2f} s")
    for l2 in args.l2:
        warm = [fit(l2)[:2] for _ in range(args.repeats)]
        print(f"l2={l2:g}: warm fit {statistics.median(w for w, _ in warm):.2f} s, "
              f"{statistics.median(c for _, c in warm):.2f} CPU s (medians of {args.repeats}:"
              f" {', '.join(f'{w:.2f}' for w, _ in warm)} s)")
        if args.float64:
            weights = np.asarray(fit(l2)[2], np.float64)
            expected = float64_weights(matrix, l2)
            error = np.abs(weights - expected)
            print(f"  float32 vs float64: max |error| {error.max():.2e}, max |B| "
                  f"{np.abs(expected).max():.3f}, median relative error "
                  f"{np.median(error / np.maximum(np.abs(expected), 1e-12)):.1e}")
            top = np.argsort(-(matrix[:200] @ weights), axis=1)[:, :10]
            expected_top = np.argsort(-(matrix[:200] @ expected), axis=1)[:, :10]
            print(f"  top-10 lists of the first 200 users equal: "
                  f"{np.mean(np.all(top == expected_top, axis=1)):.3f}")
    print(f"process total {time.perf_counter() - STARTED:.2f} s")


if __name__ == "__main__":
    main()
