"""The host contract (docs/architecture.md §5 The host contract), run against server-c and
server-python alike: each test is parametrized over both hosts, so server-python must behave
exactly as the C host does."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Dict, List

import pytest

from conftest import SIGNALS, Host, port_refused, raw_exchange, request, status_of


def test_routes(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    a = (h.host, h.port)
    assert h.port != 0
    status, headers, body = request(a, "GET", "/")
    assert (status, body, headers["content-type"]) == (200, b"OK", "text/plain; charset=utf-8")
    assert request(a, "GET", "/sleep?ms=30")[::2] == (200, b"slept 30")
    assert request(a, "GET", "/sleep?x=1&ms=0")[::2] == (200, b"slept 0")
    for bad in ("/sleep", "/sleep?ms=", "/sleep?ms=abc", "/sleep?ms=-5", "/sleep?ms=3600001", "/sleep?ms=5x"):
        assert request(a, "GET", bad)[::2] == (400, b"bad ms\n"), bad
    status, headers, body = request(a, "POST", "/echo", body=b"hello \x00\xff world")
    assert (status, body) == (200, b"hello \x00\xff world")
    assert "content-type" not in headers
    assert request(a, "POST", "/echo", body=b"")[::2] == (200, b"")
    for method, path in (("GET", "/nope"), ("POST", "/"), ("GET", "/echo"), ("PUT", "/sleep?ms=1")):
        status, headers, body = request(a, method, path, body=b"" if method != "GET" else None)
        assert (status, body) == (404, b"not found\n"), (method, path)
    h.signal(signal.SIGTERM)
    assert h.wait() == 0
    out, err = h.outputs()
    assert out == ""
    # The library's two lifecycle lines: the drain starts, the drain ends.
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"{h.exe.name}: draining (signal 15): deadline 5000 ms;"), lines
    assert lines[1].startswith(f"{h.exe.name}: stopped gracefully in "), lines


def test_default_addr_and_flag_forms(spawn: Any) -> None:
    h: Host = spawn("--addr=127.0.0.1:0", "--shutdown-timeout-ms=100")
    assert h.host == "127.0.0.1"
    h.signal(signal.SIGINT)
    assert h.wait() == 0


@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_graceful_drain_with_inflight_sleep(spawn: Any, signame: str) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    result: Dict[str, Any] = {}

    def client() -> None:
        c = h.conn()
        c.request("GET", "/sleep?ms=1500")
        r = c.getresponse()
        result["status"], result["body"] = r.status, r.read()
        result["connection"] = r.getheader("connection")

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.5)  # the request is in the handler now (margin for 2 shared CPUs)
    t0 = time.monotonic()
    h.signal(SIGNALS[signame])
    time.sleep(0.3)
    assert port_refused(h.host, h.port), "new connections must be refused during the drain"
    t.join(10)
    assert h.wait() == 0
    elapsed = time.monotonic() - t0
    assert result == {"status": 200, "body": b"slept 1500", "connection": "close"}
    assert elapsed < 3.0, f"drain took {elapsed:.2f}s"
    out, err = h.outputs()
    assert out == ""
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_deadline_forces_exit_1(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "300")
    result: Dict[str, Any] = {}

    def client() -> None:
        c = h.conn()
        try:
            c.request("GET", "/sleep?ms=5000")
            r = c.getresponse()
            result["status"] = r.status
        except (http.client.HTTPException, OSError) as e:
            result["error"] = type(e).__name__

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    assert h.wait() == 1
    elapsed = time.monotonic() - t0
    t.join(10)
    assert "error" in result, f"the cut request must not get a response: {result}"
    assert 0.25 <= elapsed < 2.5, f"forced stop after {elapsed:.2f}s (deadline 0.3s)"
    out, err = h.outputs()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "draining (signal 15)" in lines[0], err
    assert "stop forced" in lines[1] and "1 connection(s) still open" in lines[1], err


def test_second_signal_forces(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "10000")
    t = threading.Thread(target=lambda: raw_exchange((h.host, h.port), b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n", 8))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    h.signal(signal.SIGINT)
    time.sleep(0.3)
    assert h.proc.poll() is None, "the first signal only drains"
    h.signal(signal.SIGINT)
    assert h.wait() == 1
    assert time.monotonic() - t0 < 2.5
    t.join(10)
    _, err = h.outputs()
    assert "second signal" in err and "Traceback" not in err


def test_port_in_use(spawn: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        h: Host = spawn("--addr", f"127.0.0.1:{port}", listening=False)
        assert h.wait() == 1
        out, err = h.outputs()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert f"127.0.0.1:{port}" in lines[0] and "Address already in use" in lines[0], lines[0]
    assert lines[0].startswith(f"{h.exe.name}: cannot listen on 127.0.0.1:{port}: ")


def test_invalid_address(spawn: Any) -> None:
    h: Host = spawn("--addr", "not-an-address", listening=False)
    assert h.wait() == 1
    out, err = h.outputs()
    assert out == "" and len(err.splitlines()) == 1 and "not-an-address" in err


def test_idle_and_silent_connections_closed_at_once(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    idle = socket.create_connection((h.host, h.port), timeout=5)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK")
    silent = socket.create_connection((h.host, h.port), timeout=5)
    half = socket.create_connection((h.host, h.port), timeout=5)
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
    time.sleep(0.1)
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    assert h.wait() == 0
    assert time.monotonic() - t0 < 2.0
    for s in (idle, silent, half):
        assert s.recv(4096) == b""  # closed by the server
        s.close()


def test_restart_on_same_port(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    port = h.port
    h.signal(signal.SIGTERM)
    assert h.wait() == 0
    h2: Host = spawn("--addr", f"127.0.0.1:{port}")
    assert request((h2.host, h2.port), "GET", "/")[0] == 200
    h2.signal(signal.SIGTERM)
    assert h2.wait() == 0


def test_usage_errors(host_exe: Any) -> None:
    def run(*args: str) -> "subprocess.CompletedProcess[bytes]":
        return subprocess.run([str(host_exe), *args], capture_output=True, timeout=20)

    for args in (["--bogus"], ["--addr"], ["--shutdown-timeout-ms", "abc"], ["--shutdown-timeout-ms", "-1"]):
        r = run(*args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == b"" and b"usage:" in r.stderr or b"invalid" in r.stderr, r.stderr
    r = run("--help")
    assert r.returncode == 0 and b"usage:" in r.stderr


def test_non_utf8_bytes(spawn: Any) -> None:
    """Non-UTF-8 bytes in a header value reach the handler intact; in the request target they
    are refused by the HTTP parser the same way for every host."""
    h: Host = spawn("--addr", "127.0.0.1:0")
    a = (h.host, h.port)
    raw = raw_exchange(a, b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\xfe\x80\r\nContent-Length: 3\r\n\r\n\xff\x00\xfe")
    assert status_of(raw) == 200 and raw.endswith(b"\r\n\r\n\xff\x00\xfe")
    raw = raw_exchange(a, b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(raw) == 400, raw
    raw = raw_exchange(a, b"GET /caf%E9 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(raw) == 404
    h.signal(signal.SIGTERM)
    assert h.wait() == 0


def test_large_body_echo(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    body = bytes(range(256)) * (4 * 4096)  # 4 MiB
    status, _, data = request((h.host, h.port), "POST", "/echo", body=body, timeout=30)
    assert status == 200 and data == body
    too_big = 8 * 1024 * 1024 + 1
    raw = raw_exchange((h.host, h.port), b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nxx" % too_big)
    assert status_of(raw) == 413
    h.signal(signal.SIGTERM)
    assert h.wait() == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_http2_prior_knowledge(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    r = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", f"http://{h.addr}/sleep?ms=5"],
        capture_output=True,
        timeout=20,
    )
    assert r.stdout == b"slept 5\n2 200", r
    h.signal(signal.SIGTERM)
    assert h.wait() == 0


def test_concurrent_sleeps(spawn: Any) -> None:
    h: Host = spawn("--addr", "127.0.0.1:0")
    results: List[int] = []

    def one() -> None:
        results.append(request((h.host, h.port), "GET", "/sleep?ms=300")[0])

    threads = [threading.Thread(target=one) for _ in range(16)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 16
    assert time.monotonic() - t0 < 3.0, "the sleeps must run concurrently"
    h.signal(signal.SIGTERM)
    assert h.wait() == 0
