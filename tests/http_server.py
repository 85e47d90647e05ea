"""A real HTTP server on loopback for download tests: serves bytes, truncates on request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server returns: path -> body; paths in `truncate` stop after half the body."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    stall: set[str] = field(default_factory=set)  # send headers and a few bytes, then hang
    fail: set[str] = field(default_factory=set)  # answer 500 Internal Server Error
    requests: list[str] = field(default_factory=list)
    base_url: str = ""
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def serve(served: Served) -> Iterator[Served]:
    """Run a server on 127.0.0.1 (random port) for the duration of the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            if self.path in served.fail:
                self.send_error(500)
                return
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in served.stall:
                self.wfile.write(body[:10])
                self.wfile.flush()
                served.release.wait(30)  # until the test ends: a server that stopped sending
                return
            if self.path in served.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
