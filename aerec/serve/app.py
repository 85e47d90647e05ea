"""The HTTP service's application: a loaded model's recommendations and similar items as JSON.

One model per application, loaded by the caller and warmed here before the first request:
one recommendation for a known user, one for a history and one similar-items query compile
every program a request of each kind runs (histories are padded to a power of two, so the
warm-up's covers histories of up to 16 items). Handlers are plain functions, which FastAPI
runs in its thread pool; the model's lazily built parts (ranker, item vectors) are built by
the warm-up, so no two requests build them at once.

Errors are JSON `{"detail": "..."}` with one readable sentence: 404 for an unknown user or
item, 422 for any other invalid request (bad k, a rating outside the scale, a malformed
body), 500 (its traceback in the server's log) for a fault of the service itself.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from aerec import __version__
from aerec.errors import AerecError, DataError, UnknownIdError
from aerec.saved_model import TrainedModel

WHOLE = re.compile(r"^-?\d+$")
HISTORY_FORM = ('history must be an object of item ids to ratings ({"1193": 5, "661": 3}) '
                'or a list of item ids (["1193", "661"])')


class HistoryRequest(BaseModel):
    """POST /recommend's body: {"history": {item: rating, ...} or [item, ...], "k": 10}."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not ignored
    history: Any  # checked by `history_ratings`, whose errors say what it must be
    k: int = 10


def create_app(model: TrainedModel, *, warm: bool = True) -> FastAPI:
    """The service of `model`: GET /health, GET /recommend?user=&k=, POST /recommend with a
    history, GET /similar?item=&k=&metric=. `warm`: run one request of each kind first."""
    if warm:
        warm_up(model)
    app = FastAPI(title="aerec", version=__version__,
                  description="Recommendations and similar items from a trained aerec model.")
    app.add_exception_handler(AerecError, _model_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _fault)
    name = model.config.name

    @app.get("/health")
    def health() -> dict[str, Any]:
        """The model served: its family, orientation, counts and rating range."""
        return {"status": "ok", "model": name, "orientation": model.config.orientation,
                "users": len(model.users), "items": len(model.items),
                "rating_range": list(model.description["rating_range"]),
                "similar_items": model.item_vectors is not None}

    @app.get("/recommend")
    def recommend(user: str, k: int = 10) -> JSONResponse:
        """The top k items the known `user` has not rated, best first."""
        table = model.recommend(_raw_id(user), _bounded_k(k, model))
        return JSONResponse({"user": _raw_id(user), "k": k, "model": name,
                             "recommendations": _records(table)})

    @app.post("/recommend")
    def recommend_history(request: HistoryRequest) -> JSONResponse:
        """The top k items for a new user known by a history (no retraining)."""
        ratings = history_ratings(request.history,
                                  float(model.description["rating_range"][1]))
        table = model.recommend_for_history(ratings, _bounded_k(request.k, model))
        return JSONResponse({"history": {str(item): rating for item, rating in ratings.items()},
                             "k": request.k, "model": name,
                             "recommendations": _records(table)})

    @app.get("/similar")
    def similar(item: str, k: int = 10, metric: str = "cosine") -> JSONResponse:
        """The k items most similar to `item` by the model's item vectors."""
        table = model.similar_items([_raw_id(item)], _bounded_k(k, model), metric)
        return JSONResponse({"item": _raw_id(item), "k": k, "metric": metric, "model": name,
                             "similar": table.drop(columns="item").to_dict(orient="records")})

    return app


def warm_up(model: TrainedModel) -> None:
    """One request of each kind, so that the first client's does not compile or build the
    ranker and item vectors. A kind the model cannot answer (a history for an item-oriented
    model without a linear output layer; similar items without item vectors) is skipped:
    its requests get the same clear error."""
    model.recommend(model.users.raw[0].item(), k=10)
    learned = np.flatnonzero(~model.unlearned_items)
    item = model.items.raw[learned[0] if learned.size else 0].item()
    with contextlib.suppress(DataError):
        model.recommend_for_history({item: float(model.description["rating_range"][1])}, k=10)
    if model.item_vectors is not None and learned.size:
        model.similar_items([item], k=10)


def history_ratings(history: Any, top_rating: float) -> dict[Any, float]:
    """A request's history as {item id: rating}: an object of ratings as it is, a list of
    items each at `top_rating` (the top of the model's scale: a list says the user liked
    them, which is all an implicit-feedback history says). DataError when it is neither, or
    empty; the ratings' range and the ids are checked by the model."""
    if isinstance(history, dict):
        for item, rating in history.items():
            if isinstance(rating, bool) or not isinstance(rating, int | float):
                raise DataError(f"history: the rating of item {item} must be a number, got "
                                f"{json.dumps(rating)}")
        ratings = {_raw_id(item): float(rating) for item, rating in history.items()}
    elif isinstance(history, list):
        for item in history:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise DataError(f"history: {json.dumps(item)} is not an item id; "
                                f"{HISTORY_FORM}")
        ratings = {}
        for item in history:
            if _raw_id(item) in ratings:
                raise DataError(f"history: item {item} is listed twice")
            ratings[_raw_id(item)] = top_rating
    else:
        raise DataError(HISTORY_FORM)
    if not ratings:
        raise DataError(f"history is empty; {HISTORY_FORM}")
    return ratings


def _records(table: Any) -> list[dict[str, Any]]:
    """A recommendation table's rows as JSON objects, without a `user` column (a request
    names one user: the answer says it once)."""
    return table.drop(columns="user", errors="ignore").to_dict(orient="records")


def _raw_id(text: Any) -> Any:
    """An id from a query string or JSON key: an integer where it is written as one (the
    model's id map checks it, and names it if unknown), else as given."""
    return int(text) if isinstance(text, str) and WHOLE.match(text) else text


def _bounded_k(k: int, model: TrainedModel) -> int:
    """`k` at most the catalogue's size (a list never holds more); k < 1 is left for the
    model to refuse."""
    return min(k, len(model.items))


def _model_error(request: Request, error: Exception) -> JSONResponse:
    """A request the model refuses: 404 for an unknown id, 422 for anything else."""
    del request
    return JSONResponse({"detail": str(error)},
                        status_code=404 if isinstance(error, UnknownIdError) else 422)


def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's validation errors as one sentence per problem ("query k: Input should be a
    valid integer, ... (got 'ten')"), instead of its list of records."""
    del request
    assert isinstance(error, RequestValidationError)
    problems = [_problem(problem) for problem in error.errors()]
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)


def _problem(problem: dict[str, Any]) -> str:
    """One validation error as a sentence naming where it is."""
    where = " ".join(str(part) for part in problem.get("loc", ()))
    given = problem.get("input")
    if problem.get("type") == "json_invalid":  # its location is a character position
        position = problem["loc"][-1]
        return (f"body: not valid JSON at character {position} "
                f"({problem.get('ctx', {}).get('error', 'invalid')})")
    if isinstance(given, bytes):  # a body FastAPI did not read as JSON
        return "body: not JSON; send a JSON object with Content-Type: application/json"
    text = f"{where}: {problem.get('msg', 'invalid')}"
    if problem.get("type") != "missing" and "input" in problem:
        text += f" (got {json.dumps(given, default=str)[:40]})"
    return text


def _fault(request: Request, error: Exception) -> JSONResponse:
    """A fault of the service, answered without its traceback (which the server logs: the
    exception goes on to uvicorn after this answer)."""
    del request
    return JSONResponse({"detail": f"internal error ({type(error).__name__}); the server's "
                                   "log has the traceback"}, status_code=500)
