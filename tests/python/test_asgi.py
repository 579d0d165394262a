"""ASGI 3: a real Starlette application, and small raw applications for the corners, served
in-process by graceserve.asgi.ASGIHandler (requests through the library's queue)."""

from __future__ import annotations


import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import graceserve
import graceserve.asgi
from graceserve.asgi import ASGIHandler, LifespanError

from conftest import addr_of, raw_exchange, request, status_of, wait_until

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import starlette_app  # noqa: E402

Scope = Dict[str, Any]


class Served:
    """An ASGI application served in-process: handler (lifespan run) + server."""

    def __init__(self, app: Any, **kw: Any) -> None:
        self.handler = ASGIHandler(app, **kw)
        self.handler.startup()
        self.server = graceserve.Server("127.0.0.1:0", self.handler).start()
        self.handler.bind(self.server)
        self.addr = addr_of(self.server)

    def close(self, timeout: float = 5.0) -> Optional[int]:
        status = self.server.shutdown(timeout) if self.server.running else self.server.status
        self.handler.shutdown()
        return status


@pytest.fixture
def serve() -> Iterator[Any]:
    made: List[Served] = []

    def make(app: Any, **kw: Any) -> Served:
        s = Served(app, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        try:
            s.close(0)
        except LifespanError:
            pass


@pytest.fixture
def star(serve: Any) -> Served:
    starlette_app.events.clear()
    s: Served = serve(starlette_app.app)
    return s


def test_starlette_routes_query_strings_and_lifespan_state(star: Served) -> None:
    assert starlette_app.events == ["startup"], "the lifespan startup ran before the server started"
    status, headers, body = request(star.addr, "GET", "/")
    assert (status, body) == (200, b"hello from starlette")  # request.state from the lifespan
    assert headers["content-type"] == "text/plain; charset=utf-8"
    status, _, body = request(star.addr, "GET", "/hello/w%C3%B6rld%20x?a=1&a=2&b=&c=%26")
    assert status == 200
    assert json.loads(body) == {
        "name": "wörld x",
        "args": {"a": ["1", "2"], "b": [""], "c": ["&"]},
        "path": "/hello/wörld x",
        "http_version": "1.1",
    }
    assert request(star.addr, "GET", "/nope")[0] == 404
    assert request(star.addr, "POST", "/")[0] == 405


def test_starlette_upload_of_several_megabytes(star: Served) -> None:
    data = os.urandom(6 * 1024 * 1024)
    status, _, body = request(star.addr, "POST", "/upload", body=data)
    assert status == 200
    assert json.loads(body) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_starlette_streamed_response_arrives_piece_by_piece(star: Served) -> None:
    c = http.client.HTTPConnection(*star.addr, timeout=10)
    t0 = time.monotonic()
    c.request("GET", "/stream?n=4&delay=0.3")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("transfer-encoding") == "chunked"
    first = r.read(8)
    t_first = time.monotonic() - t0
    rest = r.read()
    t_all = time.monotonic() - t0
    assert first + rest == b"".join(f"chunk {i}\n".encode() for i in range(4))
    assert t_first < 0.6 <= t_all, (t_first, t_all)
    c.close()


def test_starlette_repeated_header_names_both_ways(star: Served) -> None:
    raw = raw_exchange(star.addr, b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Rep: one\r\nX-Rep: two\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 200
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b"one|two"  # scope["headers"] keeps every repeat
    cookies = [line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]
    assert cookies == [b"set-cookie: a=1", b"set-cookie: b=2"]


def test_starlette_exception_is_500_and_the_server_lives(star: Served) -> None:
    status, _, body = request(star.addr, "GET", "/boom")
    assert (status, body) == (500, b"Internal Server Error")
    assert request(star.addr, "GET", "/")[0] == 200


@pytest.mark.parametrize("path", ["/wait-disconnect", "/poll-disconnect"])
def test_client_disconnect_reaches_the_app(star: Served, path: str) -> None:
    c = socket.create_connection(star.addr)
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert wait_until(lambda: star.server.stats().requests_active == 1)
    time.sleep(0.2)  # the application is waiting for the disconnect now
    c.close()
    t0 = time.monotonic()
    assert wait_until(lambda: any(isinstance(e, tuple) and e[1] == path for e in starlette_app.events), 5)
    assert time.monotonic() - t0 < 1.0, "noticed within a few poll periods"
    assert request(star.addr, "GET", "/")[0] == 200


def test_client_gone_mid_stream_stops_the_app(serve: Any) -> None:
    """A client that leaves a streamed response: the next send raises ClientDisconnected (an
    OSError, ASGI spec 2.4) in the application, which stops; nothing is logged as an error."""
    outcome: Dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] != "/stream":
            await send({"type": "http.response.body", "body": b"ok"})
            return
        try:
            for _ in range(10_000):
                await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
        except OSError as e:
            outcome["error"] = type(e).__name__
            raise
        outcome["error"] = None

    s = serve(app, lifespan="off")
    c = socket.create_connection(s.addr)
    c.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.recv(1024).startswith(b"HTTP/1.1 200")
    c.close()
    assert wait_until(lambda: "error" in outcome, 10)
    assert outcome == {"error": "ClientDisconnected"}
    assert request(s.addr, "GET", "/")[0] == 200


def test_drain_deadline_reaches_the_app_as_disconnect(serve: Any) -> None:
    seen: Dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        message = await receive()  # waits until the client goes, or the deadline cuts it
        seen["message"] = message
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    s = serve(app, lifespan="off")
    c = socket.create_connection(s.addr)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_until(lambda: s.server.stats().requests_active == 1)
    t0 = time.monotonic()
    assert s.server.shutdown(0.3) == 1, "the deadline cut the request"
    assert wait_until(lambda: "message" in seen, 5)
    assert seen["message"] == {"type": "http.disconnect"}
    assert time.monotonic() - t0 < 2
    c.close()


def test_disconnect_after_the_response_and_scope_details(serve: Any) -> None:
    seen: Dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen["scope"] = {k: v for k, v in scope.items() if k not in ("headers", "state")}
        seen["headers"] = scope["headers"]
        seen["first"] = await receive()
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"done"})
        seen["after"] = await receive()  # the response is complete: http.disconnect at once

    s = serve(app, lifespan="off", root_path="/api")
    status, headers, body = request(s.addr, "POST", "/api/p%20q?x=%20", body=b"abc", headers={"X-Rep": "1"})
    assert (status, body, headers["x-a"]) == (201, b"done", "1")
    assert wait_until(lambda: "after" in seen)
    sc = seen["scope"]
    assert sc["type"] == "http" and sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (sc["method"], sc["scheme"], sc["http_version"]) == ("POST", "http", "1.1")
    assert (sc["path"], sc["raw_path"], sc["root_path"]) == ("/api/api/p q", b"/api/api/p%20q", "/api")
    assert sc["query_string"] == b"x=%20"
    assert sc["client"][0] == "127.0.0.1" and sc["server"] == s.addr
    assert (b"x-rep", b"1") in seen["headers"] and all(n == n.lower() for n, _ in seen["headers"])
    assert seen["first"] == {"type": "http.request", "body": b"abc", "more_body": False}
    assert seen["after"] == {"type": "http.disconnect"}


def test_app_errors_are_500(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/no-response":
            return
        if path == "/raise-after-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("before any body: still a 500")
        if path == "/bad-header":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"x")]})
            await send({"type": "http.response.body", "body": b"x"})
            return
        if path == "/start-only":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            return
        await send({"type": "http.response.body", "body": b"no start"})

    s = serve(app, lifespan="off")
    for path, want in (("/no-response", 500), ("/raise-after-start", 500), ("/bad-header", 500), ("/body-first", 500), ("/start-only", 204)):
        assert request(s.addr, "GET", path)[0] == want, path
    assert s.server.stats().requests_active == 0


# -- lifespan ---------------------------------------------------------------------------------


def test_lifespan_startup_failure_raises_with_the_message() -> None:
    os.environ["LIFESPAN_FAIL"] = "startup"
    try:
        h = ASGIHandler(starlette_app.app)
        with pytest.raises(LifespanError, match="the database is unreachable"):
            h.startup()
        h.shutdown()
    finally:
        del os.environ["LIFESPAN_FAIL"]


def test_lifespan_failed_messages_and_unsupported_apps() -> None:
    async def failing(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": "no config"})

    h = ASGIHandler(failing)
    with pytest.raises(LifespanError, match="no config"):
        h.startup()
    h.shutdown()

    async def shutdown_fails(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    h = ASGIHandler(shutdown_fails)
    h.startup()
    with pytest.raises(LifespanError, match="flush failed"):
        h.shutdown()

    async def http_only(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("only http")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with ASGIHandler(http_only) as h:  # "auto": served without a lifespan
        s = graceserve.Server("127.0.0.1:0", h).start()
        assert request(addr_of(s), "GET", "/")[::2] == (200, b"ok")
        assert s.shutdown(2) == 0
    with pytest.raises(LifespanError, match="only http"):
        ASGIHandler(http_only, lifespan="on").startup()


def test_requests_after_shutdown_get_503(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    s = serve(app, lifespan="off")
    assert request(s.addr, "GET", "/")[0] == 200
    s.handler.shutdown()  # the application is gone; the server still runs
    assert request(s.addr, "GET", "/")[::2] == (503, b"service unavailable\n")
    assert s.server.shutdown(2) == 0


def test_plain_handler_calls_without_the_queue(server_factory: Any) -> None:
    """ASGIHandler called as an ordinary handler (on library threads), as a server that does
    not know the library's queue would: the same answers, the slower way."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body[::-1], "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})

    with ASGIHandler(app, lifespan="off") as h:
        s = server_factory(lambda req: h(req))
        assert request(addr_of(s), "POST", "/", body=b"olleh")[::2] == (200, b"hello!")
        s.shutdown(2)


def test_serve_asgi_on_a_thread(tmp_path: Path) -> None:
    log = tmp_path / "lifespan.log"
    os.environ["LIFESPAN_LOG"] = str(log)
    try:
        servers: List[graceserve.Server] = []
        result: Dict[str, int] = {}
        t = threading.Thread(
            target=lambda: result.setdefault(
                "status", graceserve.serve_asgi(starlette_app.app, "127.0.0.1:0", ready=servers.append)
            )
        )
        t.start()
        assert wait_until(lambda: servers, 10)
        assert log.read_text() == "startup\n"
        assert request(addr_of(servers[0]), "GET", "/")[0] == 200
        servers[0].shutdown(2)
        t.join(10)
        assert result == {"status": 0}
        assert log.read_text() == "startup\nshutdown\n"
    finally:
        del os.environ["LIFESPAN_LOG"]





def test_http2_requests_reach_the_app_as_http_version_2(serve: Any) -> None:
    """h2c (prior knowledge) on the same port, many streams per connection (h2load, installed
    by the project's setup): the scope says "2"."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = 200 if scope["http_version"] == "2" else 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": scope["http_version"].encode()})

    s = serve(app, lifespan="off")
    out = subprocess.run(
        ["h2load", "-n", "200", "-c", "2", "-m", "20", f"http://{s.addr[0]}:{s.addr[1]}/"],
        capture_output=True, text=True, timeout=60,
    ).stdout
    assert "200 succeeded" in out and "status codes: 200 2xx" in out, out
    assert request(s.addr, "GET", "/")[::2] == (400, b"1.1")


def test_several_receive_waits_all_see_the_disconnect(serve: Any) -> None:
    seen: Dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        # one wait cancelled at once (Starlette's is_disconnected), two real ones
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(receive(), 0.001)
        seen["messages"] = await asyncio.gather(receive(), receive())

    s = serve(app, lifespan="off")
    c = socket.create_connection(s.addr)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_until(lambda: s.server.stats().requests_active == 1)
    time.sleep(0.1)
    c.close()
    assert wait_until(lambda: "messages" in seen, 5)
    assert seen["messages"] == [{"type": "http.disconnect"}] * 2
