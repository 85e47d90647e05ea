"""The HTTP service, live on loopback: the same lists as the Python API, as JSON with titles;
clear 4xx errors; programs compiled before the first request; a port in use refused."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

import aerec
from aerec.saved_model import TrainedModel
from aerec.serve import create_app
from aerec.serve.__main__ import bind
from tests.conftest import cli_env


@dataclass
class Live:
    """A server running the service of `model` at `url`."""

    model: TrainedModel
    url: str
    client: httpx.Client

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"{self.url}{path}", params=params)

    def post(self, path: str, body: Any) -> httpx.Response:
        content = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post(f"{self.url}{path}", content=content,
                                headers={"content-type": "application/json"})


@pytest.fixture(scope="module")
def live(small_svd_model: Path) -> Iterator[Live]:
    """uvicorn serving the tiny SVD in a thread, on a free loopback port, for the module."""
    model = aerec.load(small_svd_model)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=30) as client:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            yield Live(model, url, client)  # the socket listens: requests wait for startup
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_health_names_the_model(live: Live) -> None:
    response = live.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "svd", "orientation": "user",
                               "users": 60, "items": 40, "rating_range": [1.0, 5.0],
                               "similar_items": True}


def test_known_user_gets_the_python_api_list_with_titles(live: Live) -> None:
    response = live.get("/recommend", user=7, k=5)
    assert response.status_code == 200 and response.headers["content-type"] == \
        "application/json"
    body = response.json()
    assert (body["user"], body["k"], body["model"]) == (7, 5, "svd")
    expected = live.model.recommend(7, k=5)
    assert [row["item"] for row in body["recommendations"]] == list(expected["item"])
    assert [row["title"] for row in body["recommendations"]] == list(expected["title"])
    assert all(row["title"] for row in body["recommendations"])


def test_history_as_ratings_or_as_a_list_of_items(live: Live) -> None:
    history = {"1": 5, "2": 4.5, "10": 1}
    body = live.post("/recommend", {"history": history, "k": 4}).json()
    expected = live.model.recommend_for_history({1: 5, 2: 4.5, 10: 1}, k=4)
    assert [row["item"] for row in body["recommendations"]] == list(expected["item"])
    assert body["history"] == {"1": 5.0, "2": 4.5, "10": 1.0}
    titles = {row["item"]: row["title"] for row in body["recommendations"]}
    assert titles == dict(zip(expected["item"], expected["title"], strict=True))
    # a list of items: each at the top of the scale (all an implicit history says)
    listed = live.post("/recommend", {"history": [1, "2"]}).json()
    top = live.model.recommend_for_history({1: 5.0, 2: 5.0}, k=10)
    assert [row["item"] for row in listed["recommendations"]] == list(top["item"])
    assert listed["k"] == 10


def test_similar_items_match_the_python_api(live: Live) -> None:
    body = live.get("/similar", item=2, k=3).json()
    expected = live.model.similar_items([2], k=3)
    assert (body["item"], body["metric"]) == (2, "cosine")
    assert [row["similar_item"] for row in body["similar"]] == list(expected["similar_item"])
    np.testing.assert_allclose([row["score"] for row in body["similar"]], expected["score"])
    assert body["similar"][0]["rank"] == 1 and "title" in body["similar"][0]
    dot = live.get("/similar", item=2, k=3, metric="dot").json()
    assert [row["similar_item"] for row in dot["similar"]] == list(
        live.model.similar_items(2, k=3, metric="dot")["similar_item"])


@pytest.mark.parametrize(("method", "path", "request_", "status", "detail"), [
    ("get", "/recommend", {"user": 9999}, 404, "user 9999 is not known"),
    ("get", "/recommend", {"user": "abc"}, 404, "user abc is not known"),
    ("get", "/recommend", {"user": 7, "k": 0}, 422, "k=0 must be"),
    ("get", "/recommend", {"user": 7, "k": "ten"}, 422, 'query k: .*valid integer.*"ten"'),
    ("get", "/recommend", {}, 422, "query user: Field required"),
    ("get", "/similar", {"item": 99999}, 404, "unknown item 99999"),
    ("get", "/similar", {"item": 1, "k": -2}, 422, "k=-2 must be"),
    ("get", "/similar", {"item": 1, "metric": "l2"}, 422, "valid: cosine, dot"),
    ("post", "/recommend", {"history": {"1": 9}}, 422, r"rating 9.0 of item 1 is outside .*"
     r"\[1.0, 5.0\]"),
    ("post", "/recommend", {"history": {"99999": 4}}, 404, "unknown item 99999"),
    ("post", "/recommend", {"history": {"1": True}}, 422, "rating of item 1 must be a number"),
    ("post", "/recommend", {"history": {}}, 422, "history is empty"),
    ("post", "/recommend", {"history": 5}, 422, "history must be an object of item ids"),
    ("post", "/recommend", {"history": [1, 1]}, 422, "item 1 is listed twice"),
    ("post", "/recommend", {"history": [1], "K": 3}, 422, "body K: Extra inputs"),
    ("post", "/recommend", {"history": [1], "k": 0}, 422, "k=0 must be"),
    ("post", "/recommend", {"k": 3}, 422, "body history: Field required"),
    ("post", "/recommend", '{"history": [1', 422, "not valid JSON at character"),
    ("post", "/recommend", b"history=1", 422, "not valid JSON"),
])
def test_bad_requests_get_a_clear_4xx(live: Live, method: str, path: str, request_: Any,
                                      status: int, detail: str) -> None:
    response = (live.get(path, **request_) if method == "get"
                else live.post(path, request_))
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    assert re.search(detail, body["detail"]), body["detail"]


def test_programs_are_compiled_before_the_first_request(live: Live) -> None:
    ranker = getattr(live.model.ranker, "inner", live.model.ranker)  # LearnedFirst wraps it
    compiled = (ranker.predict_rows._cache_size(), ranker.predict_new_rows._cache_size())
    assert compiled == (1, 1)  # by the warm-up, and by nothing since
    assert live.get("/recommend", user=3, k=2).status_code == 200
    assert live.post("/recommend", {"history": {"4": 2, "5": 3}}).status_code == 200
    assert (ranker.predict_rows._cache_size(), ranker.predict_new_rows._cache_size()) == \
        compiled
    assert "item_vectors" in live.model.__dict__  # built at start, not by a request


def test_a_port_in_use_is_one_line_and_exit_status_1(small_svd_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "aerec.serve", str(small_svd_model), "--port", str(port)],
            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"error: cannot listen on 127.0.0.1:{port}: address already in "
                             "use; choose another --port\n")


@pytest.mark.slow
def test_the_command_serves_until_ctrl_c(small_svd_model: Path) -> None:
    with subprocess.Popen(
            [sys.executable, "-m", "aerec.serve", str(small_svd_model), "--port", "0"],
            env=cli_env(), stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            first = process.stderr.readline()  # printed once the model is loaded and warm
            match = re.search(r"serving svd model .* \(60 users, 40 items\) on (http://\S+)$",
                              first.strip())
            assert match, first
            assert httpx.get(f"{match.group(1)}/health", timeout=30).json()["items"] == 40
            process.send_signal(signal.SIGINT)
            assert process.wait(30) == 130  # shut down gracefully, as Ctrl-C ends a command
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:  # a failed check: stop the server, not wait for it
                process.kill()
