"""`python run.py <args>` in this process, with the ranking held up after the first chunk of
users: it prints `first chunk ranked` and waits, so that a test can interrupt the writing of
an output file at a known point (tests/test_recommend_all.py)."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import aerec.saved_model

ranked_chunks = aerec.saved_model.ranked_chunks


def held_up(*args, **kwargs):
    """The real chunks; after the first one has been asked for, a long wait."""
    for number, chunk in enumerate(ranked_chunks(*args, **kwargs)):
        if number == 1:  # the first chunk is written by now
            print("first chunk ranked", flush=True)
            time.sleep(120)
        yield chunk


if __name__ == "__main__":
    aerec.saved_model.ranked_chunks = held_up
    run_py = Path(__file__).resolve().parents[1] / "run.py"
    sys.argv = [str(run_py), *sys.argv[1:]]
    runpy.run_path(str(run_py), run_name="__main__")
