"""Request.respond_stream / ResponseStream: a body sent in pieces (used by the WSGI and ASGI
adapters for generators and more_body)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any, Dict, List

import graceserve

from conftest import addr_of, wait_until


def test_stream_pieces_chunked_and_with_length(server_factory: Any) -> None:
    gate = threading.Event()

    def h(req: graceserve.Request) -> None:
        if req.path == "/length":
            with req.respond_stream(200, [("content-length", "10")]) as s:
                assert s.write(b"01234") and s.write("56789")
            return
        with req.respond_stream(201, {"content-type": "text/x-test"}) as s:
            assert s.write(b"first|")
            gate.wait(5)  # the client has the first piece before the second is written
            assert s.write(bytearray(b"second"))

    s = server_factory(h)
    c = http.client.HTTPConnection(*addr_of(s), timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert (r.status, r.getheader("transfer-encoding"), r.getheader("content-type")) == (201, "chunked", "text/x-test")
    assert r.read(6) == b"first|"
    gate.set()
    assert r.read() == b"second"
    c.request("GET", "/length")
    r = c.getresponse()
    assert (r.status, r.getheader("content-length"), r.getheader("transfer-encoding")) == (200, "10", None)
    assert r.read() == b"0123456789"
    c.close()


def test_stream_write_false_once_client_gone(server_factory: Any) -> None:
    result: Dict[str, Any] = {}
    started = threading.Event()

    def h(req: graceserve.Request) -> None:
        stream = req.respond_stream(200)
        with stream:
            assert not stream.cancelled
            started.set()
            deadline = time.monotonic() + 10
            ok = True
            while ok and time.monotonic() < deadline:
                ok = stream.write(b"x" * 65536)
            result["ok"], result["cancelled"] = ok, stream.cancelled
        result["closed"] = stream.closed
        assert stream.write(b"after close") is False

    s = server_factory(h)
    c = socket.create_connection(addr_of(s))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert started.wait(10)
    c.recv(1000)
    c.close()
    assert wait_until(lambda: "closed" in result, 15)
    assert result == {"ok": False, "cancelled": True, "closed": True}


def test_respond_stream_errors(server_factory: Any) -> None:
    seen: List[str] = []

    def h(req: graceserve.Request) -> None:
        try:
            req.respond_stream(200, [("bad name", "x")])
        except ValueError:
            seen.append("invalid")  # and the request is still answerable
        with req.respond_stream(200):
            pass
        try:
            req.respond_stream(200)
        except graceserve.RequestClosedError:
            seen.append("answered")

    s = server_factory(h)
    c = http.client.HTTPConnection(*addr_of(s), timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"")
    assert wait_until(lambda: len(seen) == 2)  # the handler goes on after the answer left
    assert seen == ["invalid", "answered"]
    c.close()
