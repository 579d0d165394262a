"""server-wasi (the wasm32-wasip2 component under wasmtime, behind build/bin/server-wasi): the
lifecycle a user sees, and that it matches server-c where the host contract says so.

The shared host-contract scenarios also run against server-wasi in tests/conformance; these
cover the issue's list plus what only the WASI build has (the component itself, stdin as the
signal channel, the launcher)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
import pytest

from wasihost import (
    SERVER_C,
    SERVER_WASI,
    SIGNALS,
    WASM,
    Proc,
    get,
    http,
    port_bindable,
    port_refuses,
    start,
    start_guest,
    status_and_body,
)

# Time for a request already written to reach its handler on a loaded 2-core machine.
REACH_HANDLER_S = 0.3


@pytest.fixture
def procs() -> "list[Proc]":
    return []


@pytest.fixture(autouse=True)
def _cleanup(procs: "list[Proc]") -> object:
    yield
    for p in procs:
        p.kill()


def read_response(s: socket.socket) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 response with Content-Length from a keep-alive socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, f"connection closed mid-head: {buf!r}"
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    assert m, f"no content-length in {head!r}"
    n = int(m.group(1))
    while len(rest) < n:
        b = s.recv(65536)
        assert b, "connection closed mid-body"
        rest += b
    return int(head.split()[1]), head, rest[:n]


def inflight(port: int, path: str) -> tuple[socket.socket, threading.Thread, dict[str, object]]:
    """A keep-alive connection that has been served once, then sends `path` and reads the answer
    in a thread; the caller signals once the request has reached its handler."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s)[0] == 200
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got: dict[str, object] = {}

    def reader() -> None:
        try:
            got["resp"] = read_response(s)
            got["eof"] = s.recv(1) == b""
        except Exception as e:  # noqa: BLE001 - the assertion below reports it
            got["error"] = repr(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(REACH_HANDLER_S)
    return s, t, got


def test_artifact_is_a_wasip2_component() -> None:
    data = WASM.read_bytes()
    # Component binaries: magic, version 0x0d, layer 1 (a core module has version 1, layer 0).
    assert data[:8] == b"\0asm\x0d\x00\x01\x00", f"not a component: header {data[:8]!r}"
    for name in (b"wasi:cli/run@0.2", b"wasi:sockets/tcp@0.2", b"wasi:cli/stdin@0.2"):
        assert name in data, f"component does not mention {name.decode()}"


def test_routes_match_server_c(procs: "list[Proc]") -> None:
    answers = []
    for binary in (SERVER_WASI, SERVER_C):
        p = start(binary)
        procs.append(p)
        got = []
        for raw in (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /sleep?ms=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\nab\x00\xffcde",
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ):
            resp = http(p.port, raw)
            head = resp.partition(b"\r\n\r\n")[0].lower()
            ctype = re.search(rb"(?m)^content-type:\s*(.*?)\s*$", head)
            got.append((*status_and_body(resp), ctype.group(1) if ctype else None))
        p.signal(signal.SIGTERM)
        assert p.wait(10) == 0
        answers.append(got)
    wasi, c = answers
    assert wasi[0][:2] == (200, b"OK")
    assert wasi[1][:2] == (200, b"slept 50")
    assert wasi[3][:2] == (200, b"ab\x00\xffcde")
    assert wasi[4][0] == 404
    assert wasi == c, f"server-wasi {wasi} != server-c {c}"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_drains_inflight_sleep_then_exits_0(procs: "list[Proc]", sig: str) -> None:
    p = start(SERVER_WASI, "--shutdown-timeout-ms", "5000")
    procs.append(p)
    s, t, got = inflight(p.port, "/sleep?ms=1500")
    t0 = p.signal(SIGNALS[sig])
    # The listener closes at once: new clients are refused while the request finishes.
    deadline = time.monotonic() + 2
    while not port_refuses(p.port):
        assert time.monotonic() < deadline, "still accepting connections during the drain"
        time.sleep(0.02)
    t.join(10)
    s.close()
    assert "error" not in got, got
    resp = got["resp"]
    assert isinstance(resp, tuple)
    status, head, body = resp
    assert (status, body) == (200, b"slept 1500")
    assert b"connection: close" in head.lower()
    assert got["eof"], "connection left open after the drained response"
    assert p.wait(10) == 0
    waited = time.monotonic() - t0
    assert waited > 0.8, f"exited {waited:.2f} s after the signal: did not wait for the request"
    err = p.err.all()
    assert len(err) == 2, f"a graceful stop prints the drain's two lines: {err}"
    assert err[0].startswith(f"server-wasi: draining (signal {int(SIGNALS[sig])})"), err
    assert err[1].startswith("server-wasi: stopped gracefully in "), err
    assert port_bindable(p.port), "port still held after exit"


def test_deadline_forces_the_stop_exit_1(procs: "list[Proc]") -> None:
    p = start(SERVER_WASI, "--shutdown-timeout-ms=300")
    procs.append(p)
    s, t, got = inflight(p.port, "/sleep?ms=5000")
    t0 = p.signal(signal.SIGTERM)
    assert p.wait(10) == 1
    assert time.monotonic() - t0 < 4, "the 300 ms deadline did not cut the 5 s request"
    t.join(5)
    s.close()
    assert "resp" not in got, "the cut request was answered"
    err = p.err.all()
    assert len(err) == 2 and err[0].startswith("server-wasi: draining (signal 15)"), err
    assert err[1].startswith("server-wasi: stop forced: the drain deadline passed"), err
    assert port_bindable(p.port)


def test_second_signal_forces_exit_1(procs: "list[Proc]") -> None:
    p = start(SERVER_WASI)
    procs.append(p)
    s, t, got = inflight(p.port, "/sleep?ms=5000")
    t0 = p.signal(signal.SIGINT)
    time.sleep(0.2)
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 1
    assert time.monotonic() - t0 < 4, "second signal did not force the stop"
    t.join(5)
    s.close()
    err = p.err.all()
    assert len(err) == 2 and err[0].startswith("server-wasi: draining (signal 2)"), err  # SIGINT
    assert "second signal" in err[1], err


def test_idle_keepalive_closed_at_drain(procs: "list[Proc]") -> None:
    p = start(SERVER_WASI)
    procs.append(p)
    conns = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[:3:2] == (200, b"OK")
        conns.append(s)
    t0 = p.signal(signal.SIGTERM)
    for s in conns:
        assert s.recv(1) == b"", "idle keep-alive connection not closed at drain"
        s.close()
    assert p.wait(10) == 0
    # Far below the 5 s signal deadline: idle connections do not hold the drain.
    assert time.monotonic() - t0 < 3


def _port_in_use_line(binary: str, port: int) -> tuple[int, list[str], str]:
    r = subprocess.run([binary, "--addr", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr.splitlines(), r.stdout


def test_port_in_use_exit_1_with_the_same_line_as_server_c() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        wasi = _port_in_use_line(str(SERVER_WASI), port)
        c = _port_in_use_line(str(SERVER_C), port)
    assert wasi[0] == c[0] == 1
    assert wasi[2] == c[2] == "", "nothing on stdout when the bind fails"
    assert len(wasi[1]) == 1, wasi[1]
    want = f"server-wasi: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert wasi[1][0].startswith(want), wasi[1]
    # Same line as server-c's but for the name and the errno's numbering.
    def norm(line: str, name: str) -> str:
        return re.sub(r" \([^)]*\)$", "", line.replace(name, "server-X"))

    assert norm(wasi[1][0], "server-wasi") == norm(c[1][0], "server-c"), (wasi[1], c[1])


def curl_h2(port: int, path: str, *extra: str) -> tuple[str, str]:
    r = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", *extra,
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    body, _, meta = r.stdout.rpartition("\n")
    return body, meta


def test_h2c_routes_and_drain(procs: "list[Proc]") -> None:
    p = start(SERVER_WASI)
    procs.append(p)
    assert curl_h2(p.port, "/") == ("OK", "2 200")
    assert curl_h2(p.port, "/echo", "--data-binary", "h2 body") == ("h2 body", "2 200")
    assert curl_h2(p.port, "/missing")[1] == "2 404"
    got: dict[str, tuple[str, str]] = {}
    t = threading.Thread(target=lambda: got.update(r=curl_h2(p.port, "/sleep?ms=1200")), daemon=True)
    t.start()
    time.sleep(REACH_HANDLER_S + 0.2)
    p.signal(signal.SIGTERM)
    t.join(15)
    assert got.get("r") == ("slept 1200", "2 200"), "in-flight h2 request did not complete during the drain"
    assert p.wait(10) == 0


def _guest_inflight(p: Proc) -> tuple[socket.socket, threading.Thread, dict[str, object]]:
    return inflight(p.port, "/sleep?ms=1000")


def test_guest_drains_when_stdin_ends(procs: "list[Proc]") -> None:
    """Run by hand under wasmtime (or orphaned by a dead launcher), the end of stdin is the
    graceful trigger."""
    p = start_guest()
    procs.append(p)
    s, t, got = _guest_inflight(p)
    assert p.popen.stdin is not None
    p.popen.stdin.close()
    assert p.wait(10) == 0
    t.join(5)
    s.close()
    assert got.get("resp", (0, b"", b""))[::2] == (200, b"slept 1000"), got  # type: ignore[index]


def test_guest_second_byte_on_stdin_forces(procs: "list[Proc]") -> None:
    p = start_guest("--shutdown-timeout-ms", "5000")
    procs.append(p)
    s, t, got = _guest_inflight(p)
    stdin = p.popen.stdin
    assert stdin is not None
    stdin.write(b"s")
    stdin.flush()
    time.sleep(0.1)
    stdin.write(b"s")
    stdin.flush()
    assert p.wait(10) == 1
    t.join(5)
    s.close()
    assert "resp" not in got
    assert any("second signal" in line for line in p.err.all()), p.err.all()


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["--addr"], ["--shutdown-timeout-ms", "-1"], ["--shutdown-timeout-ms=abc"], ["--help"],
     ["--addr", "nonsense"]],
)
def test_command_line_errors_match_server_c(args: list[str]) -> None:
    def run(binary: str) -> tuple[int, str, str]:
        r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    w, c = run(str(SERVER_WASI)), run(str(SERVER_C))
    assert w[0] == c[0] and w[1] == c[1] == "", (w, c)
    # The one documented difference: server-wasi takes HOST:PORT only (no systemd / fd:N
    # listeners on WASI; README "WASI").
    c_err = c[2].replace("server-c", "server-X").replace("HOST:PORT|systemd|systemd:NAME|fd:N", "HOST:PORT")
    assert w[2].replace("server-wasi", "server-X") == c_err, (w, c)


def test_launcher_reports_a_missing_component() -> None:
    env = dict(os.environ, SERVER_WASI_WASM="/nonexistent/server-wasi.wasm")
    r = subprocess.run([str(SERVER_WASI)], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1
    assert "cannot find the component /nonexistent/server-wasi.wasm" in r.stderr



def test_clients_that_reset_at_once_do_not_crash_the_guest(procs: "list[Proc]") -> None:
    """wasi-libc aborts the guest when asked for a reset socket's peer address (in accept or
    getpeername); the WASI accept path must never ask. A port probe must not stop the server."""
    p = start(SERVER_WASI)
    procs.append(p)
    for data in (b"", b"GET /sleep?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HT"):
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            if data:
                s.sendall(data)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # RST
    assert status_and_body(get(p.port, "/")) == (200, b"OK")
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0, p.err.all()
