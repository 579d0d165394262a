"""Starting build/bin/server-wasi (or wasmtime directly) and talking to it over loopback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "build" / "bin"
SERVER_WASI = BIN / "server-wasi"
SERVER_C = BIN / "server-c"
WASM = BIN / "server-wasi.wasm"

# The first start after a rebuild compiles the component; later starts hit wasmtime's cache.
READY_TIMEOUT_S = 60.0
READY_RE = re.compile(r"^listening on (127\.0\.0\.1):(\d+)$")


def wasmtime() -> str:
    found = os.environ.get("WASMTIME") or shutil.which("wasmtime")
    if found:
        return found
    return os.path.expanduser("~/.cargo/bin/wasmtime")


class Lines(threading.Thread):
    """Collects a pipe's lines so the child never blocks on a full pipe."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False
        self.start()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, timeout: float) -> Optional[str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.lines and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.lines[0] if self.lines else None

    def all(self, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return list(self.lines)


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    out: Lines
    err: Lines
    port: int = 0
    signalled_at: list[float] = field(default_factory=list)

    def signal(self, sig: int) -> float:
        t = time.monotonic()
        self.popen.send_signal(sig)
        self.signalled_at.append(t)
        return t

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"process still running {timeout} s later; stderr: {self.err.all(1)}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        # wasmtime runs in the launcher's own session: make sure none outlives the test.
        if self.popen.stdin:
            self.popen.stdin.close()


def spawn(cmd: list[str], stdin_pipe: bool = False) -> Proc:
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    return Proc(p, Lines(p.stdout), Lines(p.stderr))


def wait_ready(proc: Proc) -> Proc:
    line = proc.out.wait_line(READY_TIMEOUT_S)
    if line is None:
        proc.kill()
        raise AssertionError(f"no ready line; stderr: {proc.err.all(1)}")
    m = READY_RE.match(line)
    assert m, f"ready line {line!r} is not `listening on 127.0.0.1:PORT`"
    proc.port = int(m.group(2))
    return proc


def start(binary: Path = SERVER_WASI, *args: str) -> Proc:
    return wait_ready(spawn([str(binary), "--addr", "127.0.0.1:0", *args]))


def start_guest(*args: str) -> Proc:
    """The component straight under wasmtime, stdin a pipe the test controls (no launcher)."""
    cmd = [wasmtime(), "run", "-S", "inherit-network", str(WASM), "--addr", "127.0.0.1:0", *args]
    return wait_ready(spawn(cmd, stdin_pipe=True))


def http(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Sends one raw HTTP/1.1 request and reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks: list[bytes] = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def get(port: int, path: str) -> bytes:
    return http(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def status_and_body(resp: bytes) -> tuple[int, bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"not an HTTP/1.1 response: {resp[:80]!r}"
    return int(head.split()[1]), body


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def port_bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
