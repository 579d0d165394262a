"""A real Starlette application for the ASGI tests (tests/python/test_asgi.py, test_cli.py).

Its lifespan writes "startup" and "shutdown" lines to the file named by $LIFESPAN_LOG (when set),
so a test of the command line can see the order of events; $LIFESPAN_FAIL=startup makes the
startup fail."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from typing import AsyncIterator, Dict, List

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

#: Client disconnects the application saw (path, seconds it waited), and lifespan events.
events: List[object] = []


def _log(line: str) -> None:
    events.append(line)
    path = os.environ.get("LIFESPAN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[Dict[str, object]]:
    if os.environ.get("LIFESPAN_FAIL") == "startup":
        raise RuntimeError("the database is unreachable")
    _log("startup")
    yield {"greeting": "hello from starlette"}
    _log("shutdown")


async def index(request: Request) -> Response:
    return PlainTextResponse(request.state.greeting)


async def hello(request: Request) -> Response:
    return JSONResponse(
        {
            "name": request.path_params["name"],
            "args": {k: request.query_params.getlist(k) for k in request.query_params},
            "path": request.url.path,
            "http_version": request.scope["http_version"],
        }
    )


async def upload(request: Request) -> Response:
    data = await request.body()
    return JSONResponse({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


async def stream(request: Request) -> Response:
    n = int(request.query_params.get("n", "5"))
    delay = float(request.query_params.get("delay", "0"))

    async def gen() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(delay)

    return StreamingResponse(gen(), media_type="text/plain")


async def headers(request: Request) -> Response:
    seen = request.headers.getlist("x-rep")
    resp = PlainTextResponse("|".join(seen))
    resp.raw_headers.append((b"set-cookie", b"a=1"))
    resp.raw_headers.append((b"set-cookie", b"b=2"))
    return resp


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def sleep(request: Request) -> Response:
    ms = int(request.query_params.get("ms", "0"))
    await asyncio.sleep(ms / 1000)
    return PlainTextResponse(f"slept {ms}")


async def wait_disconnect(request: Request) -> Response:
    """Waits in receive() until the client goes away; records it."""
    t0 = time.monotonic()
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            break
    events.append(("disconnect", request.url.path, time.monotonic() - t0))
    return PlainTextResponse("too late")


async def poll_disconnect(request: Request) -> Response:
    """Polls request.is_disconnected() (an immediately cancelled receive) until the client goes."""
    t0 = time.monotonic()
    while not await request.is_disconnected():
        await asyncio.sleep(0.01)
    events.append(("disconnect", request.url.path, time.monotonic() - t0))
    return PlainTextResponse("too late")


async def seen(request: Request) -> Response:
    return JSONResponse([list(e) if isinstance(e, tuple) else e for e in events])


app = Starlette(
    routes=[
        Route("/", index),
        Route("/hello/{name}", hello),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/headers", headers),
        Route("/boom", boom),
        Route("/sleep", sleep),
        Route("/wait-disconnect", wait_disconnect),
        Route("/poll-disconnect", poll_disconnect),
        Route("/events", seen),
    ],
    lifespan=lifespan,
)
