"""WSGI (PEP 3333): a real Flask application, and a plain application checked by
wsgiref.validate, served in-process by graceserve.wsgi.WSGIHandler."""

from __future__ import annotations

import hashlib
import http.client

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List
from wsgiref.validate import validator

import pytest

import graceserve
import graceserve.wsgi

from conftest import addr_of, raw_exchange, request, status_of, wait_until

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import flask_app  # noqa: E402


@pytest.fixture
def flask_server(server_factory: Any) -> graceserve.Server:
    h = graceserve.wsgi.WSGIHandler(flask_app.app)
    s = server_factory(h)
    h.bind(s)
    return s


def test_flask_routes_query_strings_and_json(flask_server: graceserve.Server) -> None:
    a = addr_of(flask_server)
    status, headers, body = request(a, "GET", "/")
    assert (status, body) == (200, b"hello from flask")
    assert headers["content-type"].startswith("text/html")
    status, headers, body = request(a, "GET", "/hello/w%C3%B6rld%20x?a=1&a=2&b=&c=%26")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"name": "wörld x", "args": {"a": ["1", "2"], "b": [""], "c": ["&"]}, "path": "/hello/wörld x"}
    assert request(a, "GET", "/nope")[0] == 404
    assert request(a, "POST", "/")[0] == 405


def test_flask_upload_of_several_megabytes(flask_server: graceserve.Server) -> None:
    data = os.urandom(6 * 1024 * 1024)
    status, _, body = request(
        addr_of(flask_server), "POST", "/upload", body=data, headers={"content-type": "application/octet-stream"}
    )
    assert status == 200
    assert json.loads(body) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "type": "application/octet-stream"}


def test_flask_streamed_response_arrives_piece_by_piece(flask_server: graceserve.Server) -> None:
    before = flask_app.closed["stream"]
    c = http.client.HTTPConnection(*addr_of(flask_server), timeout=10)
    t0 = time.monotonic()
    c.request("GET", "/stream?n=4&delay=0.3")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("transfer-encoding") == "chunked"
    first = r.read(8)
    t_first = time.monotonic() - t0
    rest = r.read()
    t_all = time.monotonic() - t0
    assert first + rest == b"".join(f"chunk {i}\n".encode() for i in range(4))
    # Not buffered whole: the first piece came while the generator was still sleeping.
    assert t_first < 0.6 <= t_all, (t_first, t_all)
    c.close()
    assert wait_until(lambda: flask_app.closed["stream"] == before + 1), "close() of the iterable was called"


def test_flask_repeated_header_names_both_ways(flask_server: graceserve.Server) -> None:
    raw = raw_exchange(
        addr_of(flask_server),
        b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Rep: one\r\nX-Rep: two\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 200
    head, _, body = raw.partition(b"\r\n\r\n")
    # Werkzeug joins repeats of a request header with ", " (the environ holds one value).
    assert body == b"one, two"
    cookies = [line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]
    assert cookies == [b"set-cookie: a=1", b"set-cookie: b=2"]


def test_flask_exception_is_500_and_the_server_lives(
    flask_server: graceserve.Server, caplog: pytest.LogCaptureFixture
) -> None:
    a = addr_of(flask_server)
    status, _, body = request(a, "GET", "/boom")
    assert status == 500 and b"Internal Server Error" in body
    assert request(a, "GET", "/")[::2] == (200, b"hello from flask")


def test_close_is_called_when_the_client_leaves_mid_stream(flask_server: graceserve.Server) -> None:
    before = flask_app.closed["stream"]
    c = socket.create_connection(addr_of(flask_server))
    c.sendall(b"GET /stream?n=400&delay=0.01 HTTP/1.1\r\nHost: x\r\n\r\n")
    c.settimeout(10)
    got = b""
    while b"chunk 0" not in got:  # the head and the first piece may come in separate reads
        data = c.recv(4096)
        assert data, got
        got += data
    c.close()
    # The generator stops early (a write finds the client gone) and close() still runs.
    assert wait_until(lambda: flask_app.closed["stream"] == before + 1, 10)


# -- PEP 3333 to the letter: a plain application under wsgiref.validate -----------------------

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]


def spec_app(environ: Environ, start_response: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    if path == "/environ":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        keys = [
            "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_X_A", "HTTP_HOST",
            "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated",
        ]
        out = {k: environ.get(k) for k in keys}
        out["HTTP_X_UNDER_SCORE"] = environ.get("HTTP_X_UNDER_SCORE")
        out["body"] = body.decode("latin-1")
        data = json.dumps(out).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/generator":
        def gen() -> Iterator[bytes]:
            yield b""  # empty pieces before the first real one do not send the head yet
            yield b"a"
            yield b""
            yield b"bc"
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written|")
        return [b"returned"]
    if path == "/file":
        f = tempfile.TemporaryFile()
        f.write(b"0123456789" * 100_000)
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/exc-before-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/raise":
        raise RuntimeError("app failure")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


@pytest.fixture
def spec_server(server_factory: Any) -> graceserve.Server:
    h = graceserve.wsgi.WSGIHandler(validator(spec_app), script_name="/mount")
    s = server_factory(h)
    h.bind(s)
    return s


def test_environ_under_wsgiref_validate(spec_server: graceserve.Server) -> None:
    a = addr_of(spec_server)
    status, _, body = request(
        a,
        "POST",
        "/mount/environ?q=%C3%A9&x=1",
        body=b"payload \xff",
        headers={"Content-Type": "text/x-test", "X-A": "1", "X_Under_Score": "spoof"},
    )
    assert status == 200, body
    env = json.loads(body)
    assert env == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/mount",
        "PATH_INFO": "/environ",
        "QUERY_STRING": "q=%C3%A9&x=1",
        "CONTENT_TYPE": "text/x-test",
        "CONTENT_LENGTH": "9",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(a[1]),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_A": "1",
        "HTTP_HOST": f"127.0.0.1:{a[1]}",
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "HTTP_X_UNDER_SCORE": None,  # a name with "_" could spoof X-Under-Score: dropped
        "body": "payload \xff",
    }
    # PATH_INFO holds the percent-decoded bytes as Latin-1 (PEP 3333's native strings).
    status, _, body = request(a, "GET", "/mount/%C3%A9t%C3%A9/environ?")
    assert status == 404  # PATH_INFO is "/été/environ" (as Latin-1), not /environ
    status, _, body = request(a, "GET", "/other/environ")
    assert status == 404  # outside the mount point: SCRIPT_NAME stays empty, PATH_INFO whole


def test_generator_write_file_wrapper_and_exc_info(spec_server: graceserve.Server) -> None:
    a = addr_of(spec_server)
    status, headers, body = request(a, "GET", "/mount/generator")
    assert (status, body, headers.get("transfer-encoding")) == (202, b"abc", "chunked")
    assert request(a, "GET", "/mount/write")[::2] == (200, b"written|returned")
    status, _, body = request(a, "GET", "/mount/file")
    assert status == 200 and body == b"0123456789" * 100_000
    assert request(a, "GET", "/mount/exc-before-body")[::2] == (503, b"replaced")
    status, _, body = request(a, "HEAD", "/mount/generator")
    assert (status, body) == (202, b"")
    assert request(a, "GET", "/mount/raise")[0] == 500
    assert request(a, "GET", "/mount/environ")[0] == 200  # still serving


def test_start_response_called_from_inside_the_generator(server_factory: Any) -> None:
    """PEP 3333 lets an application call start_response lazily, from its iterable, before the
    first non-empty piece (wsgiref.validate is stricter, so this one runs unvalidated); and
    replace it with exc_info until then."""

    def lazy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        yield b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        try:
            raise KeyError("changed my mind")
        except KeyError:
            start_response("410 Gone", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"gone"

    s = server_factory(graceserve.wsgi.WSGIHandler(lazy))
    assert request(addr_of(s), "GET", "/")[::2] == (410, b"gone")


def test_start_response_misuse_is_500(server_factory: Any) -> None:
    def twice(environ: Environ, start_response: StartResponse) -> List[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    def bad_status(environ: Environ, start_response: StartResponse) -> List[bytes]:
        start_response("OK", [])
        return [b""]

    def not_bytes(environ: Environ, start_response: StartResponse) -> List[str]:
        start_response("200 OK", [])
        return ["text"]

    def no_start(environ: Environ, start_response: StartResponse) -> List[bytes]:
        return [b"x"]

    for app in (twice, bad_status, not_bytes, no_start):
        s = server_factory(graceserve.wsgi.WSGIHandler(app))  # type: ignore[arg-type]
        assert request(addr_of(s), "GET", "/")[0] == 500, app.__name__
        s.shutdown(1)


def test_content_length_mismatch_sends_the_real_length(server_factory: Any) -> None:
    def liar(environ: Environ, start_response: StartResponse) -> List[bytes]:
        start_response("200 OK", [("Content-Length", "100")])
        return [b"short"]

    s = server_factory(graceserve.wsgi.WSGIHandler(liar))
    assert request(addr_of(s), "GET", "/")[::2] == (200, b"short")


def test_serve_wsgi_runs_until_shutdown(tmp_path: Path) -> None:
    """graceserve.serve_wsgi on a thread other than main: no signal handlers; a shutdown
    from the ready callback's server ends it with status 0."""
    import threading

    servers: List[graceserve.Server] = []
    result: Dict[str, int] = {}

    def app(environ: Environ, start_response: StartResponse) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["SERVER_PORT"].encode()]

    t = threading.Thread(
        target=lambda: result.setdefault("status", graceserve.serve_wsgi(app, "127.0.0.1:0", ready=servers.append))
    )
    t.start()
    assert wait_until(lambda: servers)
    s = servers[0]
    assert request(addr_of(s), "GET", "/")[::2] == (200, str(s.port).encode())
    s.shutdown(2)
    t.join(10)
    assert result == {"status": 0}





def test_invalid_response_header_is_500_with_the_reason(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    def bad(environ: Environ, start_response: StartResponse) -> List[bytes]:
        start_response("200 OK", [("Bad Name", "x")])
        return [b"never sent"]

    s = server_factory(graceserve.wsgi.WSGIHandler(bad))
    assert request(addr_of(s), "GET", "/")[::2] == (500, b"internal server error\n")
    assert any("the application raised" in r.getMessage() for r in caplog.records)
