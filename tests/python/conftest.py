"""Shared helpers: paths, a host-process driver, and raw HTTP over loopback."""

from __future__ import annotations

import gc
import http.client
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "bindings" / "python"
LIB = Path(os.environ.get("GRACESERVE_LIBRARY", ROOT / "target" / "release" / "libgraceserve.so"))

sys.path.insert(0, str(PKG))
os.environ.setdefault("GRACESERVE_LIBRARY", str(LIB))

import graceserve  # noqa: E402
from graceserve import _server  # noqa: E402

def py_env(**extra: str) -> Dict[str, str]:
    """Environment for a child Python that imports the in-repo package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


class Host:
    """A child process that prints `listening on HOST:PORT` first (the CLI, an application),
    under test. The example hosts are driven by tests/conformance."""

    def __init__(self, exe: Path, *args: str) -> None:
        self.exe = exe
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.addr = ""
        self.host = ""
        self.port = 0

    def wait_listening(self, timeout: float = 10.0) -> "Host":
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"{self.exe.name}: no 'listening on' line within {timeout}s"
        line = self.proc.stdout.readline().decode()
        assert line.startswith("listening on "), f"{self.exe.name}: unexpected first line {line!r}"
        assert line.endswith("\n")
        self.addr = line[len("listening on "):].strip()
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)
        return self

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def outputs(self) -> Tuple[str, str]:
        """(rest of stdout, all of stderr) once the process has exited."""
        out, err = self.proc.communicate(timeout=10)
        return out.decode(), err.decode()

    def conn(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def read_lines(stream: "object", n: int, timeout: float = 10.0) -> List[str]:
    """The first ``n`` lines a child writes to the pipe ``stream`` (unbuffered reads, so a
    second line that arrived with the first is not left in a buffer select cannot see)."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < n:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no {n} lines within {timeout}s: {data!r}"
        chunk = os.read(fd, 4096)
        assert chunk, f"the child closed its output after {data!r}"
        data += chunk
    lines = data.decode().splitlines()
    assert len(lines) == n, f"more output than the {n} lines expected: {data!r}"
    return lines


def request(
    addr: Tuple[str, int],
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    timeout: float = 10.0,
) -> Tuple[int, Dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    c = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def raw_exchange(addr: Tuple[str, int], payload: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes and reads until the server closes (or the timeout)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(chunks).lower():
                # A complete keep-alive response: stop when the body is in.
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return b"".join(chunks)
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/") else 0


def port_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except OSError:
        return True


@pytest.fixture
def server_factory() -> Iterator["ServerFactory"]:
    """Makes in-process servers on a free port; stops whatever is still running afterwards."""
    made: List[graceserve.Server] = []

    def make(handler: Optional[graceserve.Handler] = None, **kw: object) -> graceserve.Server:
        s = graceserve.Server("127.0.0.1:0", handler, **kw)  # type: ignore[arg-type]
        made.append(s)
        return s.start()

    yield make
    for s in made:
        if s.running:
            s.shutdown(0)
    gc.collect()


ServerFactory = object


def addr_of(s: graceserve.Server) -> Tuple[str, int]:
    host, port = s.addr.rsplit(":", 1)
    return host, int(port)


def wait_until(pred: "object", timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


@pytest.fixture(autouse=True)
def _no_leftover_server() -> Iterator[None]:
    yield
    left = [s for s in list(_server._LIVE) if s.running]
    for s in left:
        s.shutdown(0)
    assert not left, f"a test left servers running: {left}"
