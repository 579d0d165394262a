"""The binding in-process: handlers, requests, responses, errors, threads, lifecycle."""

from __future__ import annotations

import gc
import http.client
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import graceserve
from graceserve import _trampolines
from conftest import addr_of, raw_exchange, request, status_of, wait_until


# -- responses -------------------------------------------------------------------------------


def test_handler_return_types(server_factory: Any) -> None:
    def h(req: graceserve.Request) -> graceserve.HandlerResult:
        p = req.path
        if p == "/bytes":
            return b"raw"
        if p == "/str":
            return "text \u00e9"
        if p == "/bytearray":
            return bytearray(b"ba")
        if p == "/pair":
            return 201, "created"
        if p == "/triple":
            return 202, [("x-one", "1"), ("x-one", "2"), (b"x-bin", b"\xff")], b"t"
        if p == "/mapping":
            return 203, {"Content-Type": "application/json"}, '{"a": 1}'
        if p == "/response":
            return graceserve.Response(b"{}", 418, content_type="application/json")
        return graceserve.Response("nope", 404)

    s = server_factory(h)
    a = addr_of(s)
    st, hd, body = request(a, "GET", "/bytes")
    assert (st, body) == (200, b"raw") and "content-type" not in hd
    st, hd, body = request(a, "GET", "/str")
    assert (st, body, hd["content-type"]) == (200, "text \u00e9".encode(), "text/plain; charset=utf-8")
    assert request(a, "GET", "/bytearray")[::2] == (200, b"ba")
    assert request(a, "GET", "/pair")[::2] == (201, b"created")
    raw = raw_exchange(a, b"GET /triple HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(raw) == 202 and raw.count(b"x-one: ") == 2 and b"x-bin: \xff\r\n" in raw
    st, hd, body = request(a, "GET", "/mapping")
    assert (st, hd["content-type"], body) == (203, "application/json", b'{"a": 1}')
    st, hd, body = request(a, "GET", "/response")
    assert (st, hd["content-type"], body) == (418, "application/json", b"{}")
    assert request(a, "GET", "/other")[0] == 404
    assert s.shutdown() == 0


def test_request_fields(server_factory: Any) -> None:
    seen: Dict[str, Any] = {}

    def h(req: graceserve.Request) -> str:
        seen.update(
            method=req.method,
            path=req.path,
            raw_path=req.raw_path,
            query_string=req.query_string,
            query=req.query,
            a=req.arg("a"),
            missing=req.arg("zz", "dflt"),
            ua=req.headers["USER-AGENT"],
            accept_all=req.headers.get_all("accept"),
            accept=req.headers["accept"],
            has_host="Host" in req.headers,
            header_fast=req.header("x-custom"),
            header_missing=req.header("x-missing", "no"),
            raw=req.headers.raw,
            body=req.body,
            text=req.text(),
            remote=req.remote_addr,
            version=req.http_version,
        )
        return "ok"

    s = server_factory(h)
    host, port = addr_of(s)
    raw = raw_exchange(
        (host, port),
        b"PUT /a%20b/c?a=1&a=2&b=&c=%C3%A9 HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\n"
        b"Accept: text/a\r\nAccept: text/b\r\nX-Custom: v\r\nContent-Length: 5\r\n\r\nhello",
    )
    assert status_of(raw) == 200
    assert seen["method"] == "PUT"
    assert seen["path"] == "/a b/c" and seen["raw_path"] == "/a%20b/c"
    assert seen["query_string"] == "a=1&a=2&b=&c=%C3%A9"
    assert seen["query"] == {"a": ["1", "2"], "b": [""], "c": ["\u00e9"]}
    assert (seen["a"], seen["missing"]) == ("1", "dflt")
    assert seen["ua"] == "t/1"
    assert seen["accept_all"] == ["text/a", "text/b"] and seen["accept"] == "text/a, text/b"
    assert seen["has_host"] and seen["header_fast"] == "v" and seen["header_missing"] == "no"
    assert (b"user-agent", b"t/1") in seen["raw"]
    assert seen["body"] == b"hello" and seen["text"] == "hello"
    assert seen["remote"].startswith("127.0.0.1:")
    assert seen["version"] == "1.1"
    s.shutdown()


def test_non_utf8_header_and_path(server_factory: Any) -> None:
    seen: Dict[str, Any] = {}

    def h(req: graceserve.Request) -> bytes:
        seen["value"] = req.headers["x-bin"]
        seen["fast"] = req.header("x-bin")
        seen["path"] = req.path
        seen["raw_path"] = req.raw_path
        return b"ok"

    s = server_factory(h)
    a = addr_of(s)
    raw = raw_exchange(a, b"GET /caf%E9/%FF HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\xfe\x80 ok\r\n\r\n")
    assert status_of(raw) == 200
    assert seen["value"].encode("latin-1") == b"\xff\xfe\x80 ok" == seen["fast"].encode("latin-1")
    assert seen["raw_path"] == "/caf%E9/%FF"
    assert seen["path"].encode("utf-8", "surrogateescape") == b"/caf\xe9/\xff"
    seen.clear()
    # Raw non-ASCII bytes in the request target are refused before any handler runs.
    assert status_of(raw_exchange(a, b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n")) == 400
    assert seen == {}
    s.shutdown()


def test_large_bodies(server_factory: Any) -> None:
    big = os.urandom(6 * 1024 * 1024)

    def h(req: graceserve.Request) -> graceserve.HandlerResult:
        if req.path == "/download":
            return big
        return req.body

    s = server_factory(h, max_body_bytes=7 * 1024 * 1024)
    a = addr_of(s)
    st, _, body = request(a, "POST", "/echo", body=big, timeout=30)
    assert st == 200 and body == big
    st, hd, body = request(a, "GET", "/download", timeout=30)
    assert st == 200 and body == big and hd["content-length"] == str(len(big))
    raw = raw_exchange(a, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (7 * 1024 * 1024 + 1))
    assert status_of(raw) == 413
    s.shutdown()


# -- failures in handlers --------------------------------------------------------------------


def test_handler_exception_is_500_and_logged(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    def h(req: graceserve.Request) -> str:
        if req.path == "/boom":
            raise RuntimeError("kaboom")
        if req.path == "/exit":
            raise SystemExit(3)
        return "fine"

    s = server_factory(h)
    a = addr_of(s)
    with caplog.at_level(logging.ERROR, logger="graceserve"):
        st, hd, body = request(a, "GET", "/boom")
        assert (st, body) == (500, b"internal server error\n")
        assert request(a, "GET", "/exit")[0] == 500
    assert request(a, "GET", "/")[::2] == (200, b"fine"), "the server keeps serving"
    errors = [r for r in caplog.records if r.name == "graceserve" and r.levelno >= logging.ERROR]
    assert any("kaboom" in str(r.exc_info[1]) for r in errors if r.exc_info)
    assert any("GET /boom" in r.getMessage() for r in errors)
    s.shutdown()


@pytest.mark.parametrize(
    "result,why",
    [
        (None, "returned None"),
        (12345, "bad handler result"),
        ((200, 1, 2, 3), "bad handler result"),
        ((200, {"bad name": "v"}, b""), "invalid response"),
        ((200, {"x": "line\r\nbreak"}, b""), "invalid response"),
        ((99, b""), "invalid response"),
        (("200", b""), "bad handler result"),
    ],
)
def test_bad_results_are_500(server_factory: Any, caplog: pytest.LogCaptureFixture, result: Any, why: str) -> None:
    s = server_factory(lambda req: result)
    with caplog.at_level(logging.ERROR, logger="graceserve"):
        assert request(addr_of(s), "GET", "/")[0] == 500
    assert any(why in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    s.shutdown()


def test_callbacks_survive_gc(server_factory: Any) -> None:
    """Only the server references the handler; forced collections must not free anything the
    library still calls (the CFUNCTYPE trampolines, the slab entry)."""
    s = server_factory((lambda: (lambda req: "alive"))())
    a = addr_of(s)
    for _ in range(20):
        gc.collect()
        assert request(a, "GET", "/")[::2] == (200, b"alive")
    assert len(_trampolines.DISPATCH) == 1
    s.shutdown()
    assert len(_trampolines.DISPATCH) == 0, "the library dropped the userdata once stopped"


# -- threads ---------------------------------------------------------------------------------


def test_concurrent_requests_from_many_threads(server_factory: Any) -> None:
    lock = threading.Lock()
    threads_seen: set = set()
    active = [0, 0]  # now, max

    def h(req: graceserve.Request) -> str:
        with lock:
            threads_seen.add(threading.get_ident())
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return req.arg("i") or ""

    s = server_factory(h, handler_threads=16)
    a = addr_of(s)
    errors: List[str] = []

    def client(n: int) -> None:
        c = http.client.HTTPConnection(*a, timeout=10)
        for i in range(15):
            c.request("GET", f"/?i={n}-{i}")
            r = c.getresponse()
            body = r.read().decode()
            if r.status != 200 or body != f"{n}-{i}":
                errors.append(f"{r.status} {body}")
        c.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(24)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(30)
    assert errors == []
    assert len(threads_seen) > 4 and active[1] > 4, (len(threads_seen), active)
    assert s.stats().requests_total == 24 * 15
    s.shutdown()


def test_inline_handlers(server_factory: Any) -> None:
    s = server_factory(lambda req: b"inline", inline=True, workers=2)
    a = addr_of(s)
    out: List[int] = []
    ts = [threading.Thread(target=lambda: out.append(request(a, "GET", "/")[0])) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert out == [200] * 20
    s.shutdown()


def test_thread_locals_persist_across_calls(server_factory: Any) -> None:
    local = threading.local()

    def h(req: graceserve.Request) -> str:
        local.n = getattr(local, "n", 0) + 1
        return str(local.n)

    s = server_factory(h, handler_threads=1)
    a = addr_of(s)
    counts = [int(request(a, "GET", "/")[2]) for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    s.shutdown()


# -- reply later -----------------------------------------------------------------------------


def test_reply_later_from_another_thread(server_factory: Any) -> None:
    done = threading.Event()
    errors: List[BaseException] = []

    def worker(req: graceserve.Request) -> None:
        try:
            time.sleep(0.05)
            body = req.body  # still readable: not answered yet
            assert req.respond(202, b"later:" + body, {"x-worker": "1"}) is True
            with pytest.raises(graceserve.RequestClosedError):
                req.respond(200, b"twice")
            with pytest.raises(graceserve.RequestClosedError):
                _ = req.headers  # never read before answering: gone
            assert req.answered
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def h(req: graceserve.Request) -> str:
        threading.Thread(target=worker, args=(req.defer(),)).start()
        return "ignored: deferred"

    s = server_factory(h)
    st, hd, body = request(addr_of(s), "POST", "/", body=b"abc")
    assert (st, body, hd["x-worker"]) == (202, b"later:abc", "1")
    assert done.wait(5) and errors == []
    s.shutdown()


def test_respond_inside_handler_and_return_none(server_factory: Any) -> None:
    def h(req: graceserve.Request) -> None:
        req.respond(201, "direct")

    s = server_factory(h)
    assert request(addr_of(s), "GET", "/")[::2] == (201, b"direct")
    s.shutdown()


def test_deferred_request_dropped_gets_500(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    def h(req: graceserve.Request) -> None:
        req.defer()  # and forget it

    s = server_factory(h)
    with caplog.at_level(logging.WARNING, logger="graceserve"):
        assert request(addr_of(s), "GET", "/")[0] == 500
    assert any("dropped unanswered" in r.getMessage() for r in caplog.records)
    s.shutdown()


def test_cancelled_when_client_leaves(server_factory: Any) -> None:
    parked: List[graceserve.Request] = []

    def h(req: graceserve.Request) -> None:
        parked.append(req.defer())

    s = server_factory(h)
    c = socket.create_connection(addr_of(s))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_until(lambda: parked)
    req = parked[0]
    assert not req.cancelled
    c.close()
    assert wait_until(lambda: req.cancelled), "the library notices the client left"
    assert req.respond(200, "too late") is False
    s.shutdown()


def test_reply_later_during_drain(server_factory: Any) -> None:
    """A deferred request is in flight: the drain waits for its answer."""
    parked: List[graceserve.Request] = []
    s = server_factory(lambda req: parked.append(req.defer()))
    result: Dict[str, Any] = {}

    def client() -> None:
        result["r"] = request(addr_of(s), "GET", "/")

    t = threading.Thread(target=client)
    t.start()
    assert wait_until(lambda: parked)
    threading.Timer(0.3, lambda: parked[0].respond(200, "answered late")).start()
    t0 = time.monotonic()
    assert s.shutdown(5) == 0
    assert 0.2 < time.monotonic() - t0 < 3
    t.join(5)
    assert result["r"][0] == 200 and result["r"][2] == b"answered late"
    assert result["r"][1].get("connection") == "close"


# -- lifecycle -------------------------------------------------------------------------------


def test_start_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = graceserve.Server(f"127.0.0.1:{port}", lambda r: "x")
        with pytest.raises(graceserve.AddressInUseError) as ei:
            s.start()
    assert f"127.0.0.1:{port}" in str(ei.value) and "Address already in use" in str(ei.value)
    assert isinstance(ei.value, graceserve.StartError) and ei.value.code == 8
    assert not s.running and s.status == 1 and s.stop_cause == graceserve.StopCause.BIND_FAILED
    assert s.wait() == 1
    assert len(_trampolines.DISPATCH) == 0
    with pytest.raises(graceserve.InvalidAddressError):
        graceserve.Server("no port here").start()
    # Limits are the library's to check: the start refuses them, naming the option.
    bad = graceserve.Server("127.0.0.1:0", lambda r: "x", workers=2000)
    with pytest.raises(graceserve.StartError) as ei:
        bad.start()
    assert ei.value.code == 5 and "worker_threads" in ei.value.message
    assert bad.status == 1 and bad.stop_cause == graceserve.StopCause.INVALID_OPTIONS
    assert len(_trampolines.DISPATCH) == 0
    with pytest.raises(graceserve.NotRunningError):
        graceserve.Server().wait()
    with pytest.raises(ValueError):
        graceserve.Server(workers=0)
    with pytest.raises(TypeError):
        graceserve.Server(handler=42)  # type: ignore[arg-type]


def test_start_twice_and_a_second_server(server_factory: Any) -> None:
    s = server_factory()
    with pytest.raises(graceserve.AlreadyRunningError):
        s.start()  # the same object
    assert s.running
    other = server_factory(lambda req: "other")  # another object: its own server
    assert other.running and other.port != s.port
    assert request(addr_of(other), "GET", "/")[::2] == (200, b"other")
    assert request(addr_of(s), "GET", "/")[::2] == (200, b"OK")
    assert s.shutdown() == 0 and other.shutdown() == 0


def test_restart_in_process() -> None:
    statuses = []
    for i in range(3):
        with graceserve.Server("127.0.0.1:0", lambda req, i=i: f"run {i}") as s:
            assert request(addr_of(s), "GET", "/")[2] == f"run {i}".encode()
        statuses.append((s.status, s.stop_cause))
    assert statuses == [(0, graceserve.StopCause.GRACEFUL_CALL)] * 3
    s2 = graceserve.Server("127.0.0.1:0")
    s2.start()
    assert request(addr_of(s2), "GET", "/")[::2] == (200, b"OK")  # built-in handler
    assert s2.shutdown() == 0
    s2.start()  # the same object again
    assert s2.running and s2.wait(0.05) is None
    assert s2.shutdown() == 0


def test_shutdown_deadline_forced(server_factory: Any) -> None:
    release = threading.Event()

    def h(req: graceserve.Request) -> str:
        release.wait(10)
        return "late"

    s = server_factory(h)
    result: Dict[str, Any] = {}

    def client() -> None:
        try:
            result["r"] = request(addr_of(s), "GET", "/")
        except (OSError, http.client.HTTPException) as e:
            result["error"] = e

    t = threading.Thread(target=client)
    t.start()
    assert wait_until(lambda: s.stats().requests_active == 1)
    t0 = time.monotonic()
    assert s.shutdown(0.2) == 1
    assert 0.15 < time.monotonic() - t0 < 2
    assert s.stop_cause == graceserve.StopCause.FORCED_DEADLINE and "forced" in s.stop_message
    t.join(5)
    assert "error" in result
    release.set()
    assert wait_until(lambda: not _trampolines.ACTIVE), "the straggler handler returns"


def test_shutdown_from_a_handler(server_factory: Any) -> None:
    got: Dict[str, Any] = {}

    def h(req: graceserve.Request) -> str:
        srv = got["server"]
        got["shutdown"] = srv.shutdown()
        with pytest.raises(graceserve.WrongThreadError):
            srv.wait()
        return "bye"

    s = got["server"] = server_factory(h)
    assert request(addr_of(s), "GET", "/")[::2] == (200, b"bye")
    assert s.wait(5) == 0
    assert got["shutdown"] is None and s.stop_cause == graceserve.StopCause.GRACEFUL_CALL


def test_serve_handles_sigint_and_restores_handlers() -> None:
    before_int, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    s = graceserve.Server("127.0.0.1:0", lambda r: "x")
    ready: List[str] = []

    def on_ready(srv: graceserve.Server) -> None:
        ready.append(srv.addr)
        assert signal.getsignal(signal.SIGINT) is not before_int
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    assert s.serve(ready=on_ready) == 0
    assert ready and s.stop_cause == graceserve.StopCause.GRACEFUL_SIGNAL
    assert signal.getsignal(signal.SIGINT) is before_int
    assert signal.getsignal(signal.SIGTERM) is before_term


def test_serve_second_signal_forces() -> None:
    release = threading.Event()

    def h(req: graceserve.Request) -> str:
        release.wait(10)
        return "x"

    s = graceserve.Server("127.0.0.1:0", h, shutdown_timeout=30)

    def on_ready(srv: graceserve.Server) -> None:
        def go() -> None:
            try:
                request(addr_of(srv), "GET", "/", timeout=5)
            except (OSError, http.client.HTTPException):
                pass

        threading.Thread(target=go, daemon=True).start()

        def signals() -> None:
            wait_until(lambda: srv.stats().requests_active == 1)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=signals, daemon=True).start()

    t0 = time.monotonic()
    assert s.serve(ready=on_ready) == 1
    assert time.monotonic() - t0 < 5
    assert s.stop_cause == graceserve.StopCause.FORCED_SECOND_SIGNAL
    release.set()
    assert wait_until(lambda: not _trampolines.ACTIVE)


def test_wait_is_interruptible_and_stats() -> None:
    s = graceserve.Server("127.0.0.1:0")
    s.start()
    try:
        t0 = time.monotonic()
        assert s.wait(0.12) is None
        assert 0.1 <= time.monotonic() - t0 < 1
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            s.wait()  # outside serve(): Ctrl-C reaches Python; the server keeps running
        assert s.running
        assert s.stats().connections_active == 0
    finally:
        assert s.shutdown() == 0


def test_asyncio_helpers() -> None:
    import asyncio

    import graceserve.aio

    async def main() -> Optional[int]:
        async def h(req: graceserve.Request) -> graceserve.HandlerResult:
            await asyncio.sleep(0.01)
            if req.path == "/boom":
                raise ValueError("async boom")
            return f"async {req.path}"

        s = graceserve.Server("127.0.0.1:0", graceserve.aio.handler(h))
        loop = asyncio.get_running_loop()
        results: List[Any] = []

        def clients(srv: graceserve.Server) -> None:
            def run() -> None:
                a = addr_of(srv)
                results.append(request(a, "GET", "/x")[::2])
                results.append(request(a, "GET", "/boom")[0])
                srv.shutdown()

            threading.Thread(target=run).start()

        status = await graceserve.aio.serve(s, ready=clients)
        assert results == [(200, b"async /x"), 500]
        assert not loop.is_closed()
        return status

    assert asyncio.run(main()) == 0
