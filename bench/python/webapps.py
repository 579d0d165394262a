"""The framework applications bench/python/bench.py serves (the framework table): the same
Flask app under graceserve, gunicorn and granian; the same Starlette app under graceserve,
uvicorn and granian. Each answers GET / with the 5 bytes "hello" through the framework's own
routing and response objects. bare_asgi does the same with no framework: what is left is the
servers' own cost.

    python -m graceserve webapps:flask_app       python -m gunicorn webapps:flask_app ...
    python -m graceserve webapps:starlette_app   python -m uvicorn webapps:starlette_app ...
"""

from __future__ import annotations

from typing import Any, Dict

from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

flask_app = Flask(__name__)


@flask_app.get("/")
def flask_hello() -> str:
    return "hello"


async def starlette_hello(request: Request) -> Response:
    return PlainTextResponse("hello")


starlette_app = Starlette(routes=[Route("/", starlette_hello)])


async def bare_asgi(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})
