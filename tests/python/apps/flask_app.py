"""A real Flask application for the WSGI tests (tests/python/test_wsgi.py, test_cli.py)."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Dict, Iterator

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)
#: Streamed responses whose iterable was closed (the server must always call close()).
closed: Dict[str, int] = {"stream": 0}
lock = threading.Lock()


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/hello/<name>")
def hello(name: str) -> Dict[str, object]:
    return {"name": name, "args": request.args.to_dict(flat=False), "path": request.path}


@app.post("/upload")
def upload() -> Dict[str, object]:
    data = request.get_data()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "type": request.content_type}


@app.get("/stream")
def stream() -> Response:
    n = request.args.get("n", default=5, type=int)
    delay = request.args.get("delay", default=0.0, type=float)

    def gen() -> Iterator[str]:
        try:
            for i in range(n):
                yield f"chunk {i}\n"
                time.sleep(delay)
        finally:
            with lock:
                closed["stream"] += 1

    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.get("/headers")
def headers() -> Response:
    seen = request.headers.getlist("X-Rep")
    resp = Response("|".join(seen))
    resp.headers.add("Set-Cookie", "a=1")
    resp.headers.add("Set-Cookie", "b=2")
    return resp


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("boom")


@app.get("/sleep")
def sleep() -> str:
    ms = request.args.get("ms", default=0, type=int)
    time.sleep(ms / 1000)
    return f"slept {ms}"
