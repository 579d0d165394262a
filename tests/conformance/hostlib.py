"""Driving one host process from outside, through the host contract
(docs/architecture.md §5 The host contract).

Everything here talks to 127.0.0.1 only, waits on real events (the ready line, a socket
becoming readable, a process exiting) with deadlines, and never sleeps hoping something happened.
"""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GRACESERVE_BIN", ROOT / "build" / "bin"))
ALL_HOSTS = ("c", "python", "go", "wasi", "goref")

# How long a host may take to print its ready line (the WASI host compiles a module first).
READY_TIMEOUT_S = float(os.environ.get("CONFORMANCE_READY_TIMEOUT_S", "30"))
# Slack added to timing bounds on a loaded, shared 2-core machine (see README of the suite).
SLACK_MS = float(os.environ.get("CONFORMANCE_SLACK_MS", "400"))
# The bound for a forced stop is "deadline + 100 ms". A busy 2-core machine adds some
# scheduling delay on top, so the suite allows DEADLINE_SLACK_MS more. Measured on an idle machine:
# c, go and goref stop 15-35 ms after the deadline, wasi 60-80 ms; keep the slack small enough
# that a host that is late by design (hundreds of ms) still fails.
DEADLINE_SLACK_MS = float(os.environ.get("CONFORMANCE_DEADLINE_SLACK_MS", "150"))

READY_RE = re.compile(r"^listening on (127\.0\.0\.1):(\d+)$")


def selected_hosts() -> list[str]:
    raw = os.environ.get("GRACESERVE_HOSTS", "").strip()
    if not raw:
        return list(ALL_HOSTS)
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    unknown = [h for h in hosts if h not in ALL_HOSTS]
    if unknown:
        raise SystemExit(f"GRACESERVE_HOSTS: unknown host(s) {unknown}; known: {','.join(ALL_HOSTS)}")
    return hosts


def host_binary(host: str) -> Path:
    return BIN / f"server-{host}"


class HostMissing(AssertionError):
    pass


def require_binary(host: str) -> Path:
    path = host_binary(host)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HostMissing(
            f"host {host!r} was selected but {path} is missing or not executable "
            f"(run `make hosts host-goref`, or select hosts with GRACESERVE_HOSTS)"
        )
    return path


class _Reader(threading.Thread):
    """Collects a pipe's lines so the child never blocks on a full pipe."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, timeout: float) -> Optional[str]:
        end = time.monotonic() + timeout
        with self.cond:
            while not self.lines and not self.eof:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.lines[0] if self.lines else None

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.lines)


@dataclass
class Exit:
    status: int  # Popen.returncode: exit status, or -SIG when killed by a signal
    elapsed_ms: float  # from the reference instant given to wait_exit
    stdout: str
    stderr: str


@dataclass
class Proc:
    host: str
    argv: list[str]
    popen: subprocess.Popen
    out: _Reader
    err: _Reader
    port: int = 0
    addr: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> float:
        """Sends sig to the host's main pid (as a supervisor would); returns the instant."""
        t = time.monotonic()
        os.kill(self.popen.pid, sig)
        return t

    def wait_exit(self, timeout: float, since: Optional[float] = None) -> Exit:
        since = time.monotonic() if since is None else since
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.host}: still running {timeout:.1f}s after the reference instant; killed it. "
                f"stderr: {self.err.text()!r}"
            )
        end = time.monotonic()
        self.out.join(5)
        self.err.join(5)
        return Exit(self.popen.returncode, (end - since) * 1000.0, self.out.text(), self.err.text())

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass


def spawn(host: str, *args: str, preexec: Optional[list[str]] = None) -> Proc:
    """Starts a host without waiting for anything."""
    binary = require_binary(host)
    argv = list(preexec or []) + [str(binary), *args]
    env = dict(os.environ)
    env.pop("GRACESERVE_LOG", None)
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # our own signals to the test runner never reach it
        env=env,
    )
    out, err = _Reader(popen.stdout), _Reader(popen.stderr)
    out.start()
    err.start()
    return Proc(host, argv, popen, out, err)


def start(host: str, timeout_ms: Optional[int] = None, addr: str = "127.0.0.1:0", delay_ms: Optional[int] = None,
          argv: Optional[list[str]] = None) -> Proc:
    """Starts a host on addr and waits for its ready line; returns it with .port set. argv, when
    given, is the whole command line instead of the one built from the other arguments."""
    args = ["--addr", addr]
    if timeout_ms is not None:
        args += ["--shutdown-timeout-ms", str(timeout_ms)]
    if delay_ms is not None:
        args += ["--drain-delay-ms", str(delay_ms)]
    proc = spawn(host, *(args if argv is None else argv))
    line = proc.out.wait_line(READY_TIMEOUT_S)
    if line is None:
        status = proc.popen.poll()
        proc.kill()
        raise AssertionError(
            f"{host}: no ready line within {READY_TIMEOUT_S}s (exit status {status}); "
            f"stderr: {proc.err.text()!r}"
        )
    m = READY_RE.match(line)
    if not m:
        proc.kill()
        raise AssertionError(f"{host}: first stdout line is {line!r}, want 'listening on 127.0.0.1:PORT'")
    proc.addr, proc.port = m.group(1), int(m.group(2))
    return proc


# ---------------------------------------------------------------------------------------------
# The two stderr lines of a drain (docs/architecture.md §5 The host contract): one when it
# starts, one when it ends.


@dataclass
class DrainLines:
    signum: Optional[int]  # None: a shutdown call
    delay_ms: Optional[int]  # None: the line announces no pre-drain delay
    deadline_ms: int
    open_at_start: int
    stop: Optional[str]  # the second line without the host prefix; None when the host was killed


_GO_HTTP2_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d http2: ")


def _drain_start_re(host: str) -> re.Pattern[str]:
    return re.compile(
        rf"^server-{host}: draining \((?:signal (\d+)|shutdown call)\): "
        r"(?:pre-drain delay (\d+) ms, then )?deadline (\d+) ms; (\d+) connection\(s\) open$"
    )


def drain_lines(host: str, stderr: str, stopped: bool = True) -> DrainLines:
    """Parses the lifecycle lines a drain prints on stderr: exactly two when the host stopped by
    itself (stopped=True), exactly the first one when something killed it mid-drain."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if host == "goref":
        # net/http logs HTTP/2 protocol errors through the log package (ErrorLog unset, the
        # default), which h2spec provokes on purpose; graceserve hosts print nothing of the kind.
        lines = [line for line in lines if not _GO_HTTP2_LOG.match(line)]
    want = 2 if stopped else 1
    assert len(lines) == want, f"{host}: want {want} lifecycle line(s) on stderr, got {lines!r}"
    m = _drain_start_re(host).match(lines[0])
    assert m, f"{host}: first stderr line {lines[0]!r} is not the drain-started line"
    stop = None
    if stopped:
        prefix = f"server-{host}: "
        assert lines[1].startswith(prefix), f"{host}: second stderr line {lines[1]!r} lacks {prefix!r}"
        stop = lines[1][len(prefix):]
        assert re.match(r"^(stopped gracefully in \d+ ms: |stop forced: )", stop), f"{host}: second line {lines[1]!r}"
    return DrainLines(
        signum=int(m.group(1)) if m.group(1) else None,
        delay_ms=int(m.group(2)) if m.group(2) else None,
        deadline_ms=int(m.group(3)),
        open_at_start=int(m.group(4)),
        stop=stop,
    )


def graceful_ms(lines: DrainLines) -> int:
    """The N of `stopped gracefully in N ms`; fails when the stop line says otherwise."""
    m = re.match(r"^stopped gracefully in (\d+) ms: ", lines.stop or "")
    assert m, f"stop line {lines.stop!r} does not report a graceful stop"
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.1 over sockets


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_refused(port: int) -> bool:
    """True when a TCP connect to the port is refused right now."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    except (ConnectionRefusedError, ConnectionResetError):
        return True  # reset: the listener closed while our handshake was in its queue
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return True
        raise
    s.close()
    return False


def wait_refused(port: int, within_s: float) -> float:
    """Polls until connects to the port are refused; returns when (monotonic). Fails at within_s."""
    end = time.monotonic() + within_s
    while True:
        if connect_refused(port):
            return time.monotonic()
        if time.monotonic() > end:
            raise AssertionError(f"port {port} still accepts connections {within_s}s into the drain")
        time.sleep(0.01)


def port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    version: str = "HTTP/1.1"


class Closed(Exception):
    """The peer closed (EOF or reset) before a complete response; .got holds the bytes read."""

    def __init__(self, got: bytes, why: str) -> None:
        super().__init__(f"{why} after {len(got)} response bytes: {got[:200]!r}")
        self.got = got
        self.why = why


def request_bytes(method: str, path: str, body: bytes = b"", headers: Optional[dict[str, str]] = None) -> bytes:
    h = {"Host": "127.0.0.1"}
    if method in ("POST", "PUT") or body:
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode("latin-1") + body


def _recv_more(s: socket.socket, buf: bytearray, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no complete response in time; got {bytes(buf[:200])!r}")
    s.settimeout(left)
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        raise Closed(bytes(buf), "connection reset")
    except socket.timeout:
        raise TimeoutError(f"no complete response in time; got {bytes(buf[:200])!r}")
    if not chunk:
        raise Closed(bytes(buf), "EOF")
    buf += chunk


def read_response(s: socket.socket, timeout: float = 10.0, buf: Optional[bytearray] = None, head_only: bool = False) -> Response:
    """Reads one HTTP/1.1 response (Content-Length, chunked, or close-delimited)."""
    deadline = time.monotonic() + timeout
    buf = bytearray() if buf is None else buf
    while b"\r\n\r\n" not in buf:
        _recv_more(s, buf, deadline)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    del buf[: len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if head_only:
        return Response(int(status), headers, b"", version)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            _recv_more(s, buf, deadline)
        body = bytes(buf[:n])
        del buf[:n]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                _recv_more(s, buf, deadline)
            size_line, _, _ = bytes(buf).partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            del buf[: len(size_line) + 2]
            while len(buf) < size + 2:
                _recv_more(s, buf, deadline)
            body += bytes(buf[:size])
            del buf[: size + 2]
            if size == 0:
                break
    elif int(status) in (204, 304) or 100 <= int(status) < 200:
        body = b""
    else:
        try:
            while True:
                _recv_more(s, buf, deadline)
        except Closed:
            pass
        body = bytes(buf)
        buf.clear()
    return Response(int(status), headers, body, version)


def http(port: int, method: str, path: str, body: bytes = b"", timeout: float = 10.0, headers: Optional[dict[str, str]] = None) -> Response:
    with connect(port, timeout) as s:
        s.sendall(request_bytes(method, path, body, headers))
        return read_response(s, timeout)


def wait_closed(s: socket.socket, timeout: float) -> str:
    """Waits until the peer closes s; returns 'eof' or 'reset'. Fails on data or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {timeout}s")
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return "reset"
        if not data:
            return "eof"
        # A drain may answer a half-sent request with an error before closing; keep reading.


def wait_closed_silently(s: socket.socket, timeout: float) -> str:
    """Like wait_closed, but the peer must close without sending a single byte first (no error
    answer to a half-sent request, nothing after a complete one)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {timeout}s")
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return "reset"
        assert not data, f"the server sent {data[:200]!r} before closing the connection"
        return "eof"


class Background(threading.Thread):
    """Runs fn in a thread and keeps its result or exception."""

    def __init__(self, fn, *args) -> None:
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.result = None
        self.error: Optional[BaseException] = None
        self.done_at: Optional[float] = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - reported by get()
            self.error = e
        self.done_at = time.monotonic()

    def get(self, timeout: float):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"background call still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.result
