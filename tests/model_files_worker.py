"""A process that loads model directories for tests/test_model_files.py, which may crash it.

One JSON request per stdin line ({"dir", "users", "items", "user", "history"}); one JSON line
per request on stdout: "loaded" with every output (predictions, a known user's and a new
user's recommendations), "error" for an AerecError (with the stage that raised it), or
"exception" with the traceback of anything else. A crash ends the process: the test sees the
signal in its exit status and starts another.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import aerec
from aerec.cli import enable_compile_cache
from aerec.errors import AerecError


def outputs(request: dict[str, Any]) -> dict[str, Any]:
    """Everything a user gets from the model in `request["dir"]`, or how it failed."""
    stage = "load"
    try:
        model = aerec.load(request["dir"])
        stage = "predict"
        predictions = model.predict(request["users"], request["items"])
        stage = "recommend"
        known = model.recommend(request["user"], k=5)
        stage = "recommend_for_history"
        history = {int(item): rating for item, rating in request["history"].items()}
        new = model.recommend_for_history(history, k=5)
    except AerecError as error:
        return {"outcome": "error", "stage": stage, "type": type(error).__name__,
                "message": str(error)}
    except Exception as error:  # what the test is looking for: never allowed
        return {"outcome": "exception", "stage": stage, "type": type(error).__name__,
                "traceback": traceback.format_exc()}
    return {"outcome": "loaded", "predictions": predictions.tolist(),
            "recommend": json.loads(known.to_json(orient="records")),
            "recommend_for_history": json.loads(new.to_json(orient="records"))}


def main() -> None:
    """Answer requests until stdin closes."""
    if len(sys.argv) > 1:  # a compilation cache shared by the workers of one test run
        enable_compile_cache(sys.argv[1])
    for line in sys.stdin:
        print(json.dumps(outputs(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
