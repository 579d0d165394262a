"""The servers bench/python/bench.py compares, each answering GET / with the 5 bytes "hello".

    python3 apps.py gs|gs-inline|gs-builtin|ths|ths-keepalive PORT
    python -m uvicorn apps:asgi_app --port PORT ...        (uvicorn: see bench.py)

Each prints "ready" on stdout once it accepts connections, and stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Awaitable, Callable, Dict

BODY = b"hello"


# -- graceserve ----------------------------------------------------------------------------


def gs_hello(request: Any) -> bytes:
    return BODY


def run_graceserve(mode: str, port: int) -> int:
    import graceserve

    handler = None if mode == "gs-builtin" else gs_hello
    threads = int(os.environ["GS_HANDLER_THREADS"]) if os.environ.get("GS_HANDLER_THREADS") else None
    server = graceserve.Server(f"127.0.0.1:{port}", handler, inline=(mode == "gs-inline"), handler_threads=threads)
    return server.serve(ready=lambda s: print("ready", flush=True))


# -- http.server ---------------------------------------------------------------------------


class Stock(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler as documented: HTTP/1.0, a connection per request."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class KeepAlive(Stock):
    """The same handler with HTTP/1.1 keep-alive, and TCP_NODELAY so the separate header and
    body writes do not wait for delayed ACKs (40 ms each without it)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients resetting connections at the end of a run


def run_http_server(mode: str, port: int) -> int:
    server = Quiet(("127.0.0.1", port), KeepAlive if mode == "ths-keepalive" else Stock)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# -- uvicorn (ASGI) ------------------------------------------------------------------------

Send = Callable[[Dict[str, Any]], Awaitable[None]]


async def asgi_app(scope: Dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode.startswith("gs"):
        sys.exit(run_graceserve(mode, port))
    sys.exit(run_http_server(mode, port))
