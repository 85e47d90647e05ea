"""`python -m aerec.serve MODEL [--port 8000] [--host 127.0.0.1]`: serve a saved model.

The port is taken first, so that a port in use is reported at once (one line, exit status 1)
rather than after the model is loaded; then the model is loaded and warmed, and uvicorn
serves on the socket already listening. Connections made meanwhile wait in its backlog.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

from aerec.errors import AerecError


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m aerec.serve",
        description="Serve a trained aerec model over HTTP: GET /recommend?user=&k=, POST "
                    "/recommend with a history, GET /similar?item=&k=, GET /health.")
    parser.add_argument("model", type=Path, help="a run's model/ directory")
    parser.add_argument("--port", type=int, default=8000,
                        help="TCP port (default 8000; 0: any free port, printed at start)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn's log level (default info; warning hides each request)")
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on (host, port); OSError if it cannot be. It listens at once:
    on Linux, two sockets with SO_REUSEADDR may both bind a port that no one listens on."""
    if not 0 <= port <= 65535:
        raise OSError(f"port {port} is not a TCP port (0 to 65535)")
    family, kind, protocol, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, protocol)
    # Reuse a port whose last connections are still closing (TIME_WAIT); a port another
    # process listens on stays refused.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog
    except OSError:
        sock.close()
        raise
    return sock


def reason(error: OSError) -> str:
    """An OSError's message without its errno prefix ("address already in use")."""
    return error.strerror.lower() if error.strerror else str(error)


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted; 1 with a one-line error for a port, a model or a missing
    extra."""
    args = parse_arguments(argv)
    try:
        sock = bind(args.host, args.port)
    except OSError as error:  # socket.gaierror too: an unknown host name
        hint = "; choose another --port" if error.errno == errno.EADDRINUSE else ""
        print(f"error: cannot listen on {args.host}:{args.port}: {reason(error)}{hint}",
              file=sys.stderr)
        return 1
    try:
        import uvicorn

        from aerec.saved_model import load
        from aerec.serve.app import create_app
    except ImportError as error:
        sock.close()
        print(f"error: the HTTP service needs FastAPI and uvicorn ({error}); install them "
              "with: pip install 'aerec[serve]'", file=sys.stderr)
        return 1
    try:
        model = load(args.model)
        app = create_app(model)
    except AerecError as error:
        sock.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    print(f"aerec: serving {model.config.name} model {args.model.absolute()} "
          f"({len(model.users)} users, {len(model.items)} items) on http://"
          f"{f'[{host}]' if ':' in host else host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # while loading, or re-raised by uvicorn after its shutdown
        sys.exit(130)  # 128 + SIGINT, as for a process the signal ended
