"""A rolling restart behind a real HAProxy, as Kubernetes does it to a Deployment (issue 10).

Two instances of a host serve behind HAProxy (HTTP mode, round robin, health checks on /readyz
every 100 ms, no retries, no redispatch: a stand-in for a Kubernetes Service, whose kube-proxy
never retries). A closed-loop keep-alive load runs through the proxy the whole time. Each instance
in turn gets SIGTERM, is waited for, started again on the same port, and waited for until the
proxy sees it healthy, as a rolling update replaces one pod after the other. Every request the
load sends is counted: a complete 200 answer, or a failure (a non-2xx answer from the proxy, a
connection it cut, a timeout). Users notice failures; the goal is zero.

Everything listens on 127.0.0.1 only: the hosts on ports they chose (:0 the first time, the same
port on restart), HAProxy on a socket this module binds and hands over (`bind fd@N`), its stats on
a Unix socket in a temporary directory. Used by tests/rolling/test_rolling.py (`make test`) and
bench/rolling/run.py (`make bench-rolling`).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))

import hostlib  # noqa: E402
from hostlib import Closed, read_response, request_bytes  # noqa: E402

def _find_haproxy() -> str:
    """$HAPROXY, else haproxy on PATH, else Debian's /usr/sbin/haproxy (not on a user's PATH)."""
    return os.environ.get("HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"


HAPROXY = _find_haproxy()
CHECK_INTER_MS = 100  # the health-check interval (a readiness probe's periodSeconds, shortened)
FALL, RISE = 3, 2  # checks to mark a server down / up (Kubernetes: failureThreshold 3)


def haproxy_version() -> str:
    """e.g. "2.6.12" (the first line of `haproxy -v`)."""
    out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, timeout=10).stdout
    words = out.split()
    return words[2] if len(words) > 2 and words[:2] == ["HAProxy", "version"] else out.strip()[:40]


def haproxy_config(frontend_fd: int, stats_sock: Path, ports: list[int]) -> str:
    servers = "\n".join(f"    server s{i + 1} 127.0.0.1:{port}" for i, port in enumerate(ports))
    return f"""\
global
    maxconn 4096
    stats socket {stats_sock} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    # A Kubernetes Service does not retry a request elsewhere, so neither does this proxy.
    retries 0
    no option redispatch

frontend fe
    bind fd@{frontend_fd}
    default_backend be

backend be
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter {CHECK_INTER_MS}ms fastinter {CHECK_INTER_MS}ms downinter {CHECK_INTER_MS}ms fall {FALL} rise {RISE}
{servers}
"""


class HAProxy:
    """An haproxy process in the foreground with a generated config; stats over its Unix socket."""

    def __init__(self, ports: list[int], workdir: Path) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.stats_sock = workdir / "haproxy.sock"
        cfg = workdir / "haproxy.cfg"
        fd = self.listener.fileno()
        cfg.write_text(haproxy_config(fd, self.stats_sock, ports))
        self.log = open(workdir / "haproxy.log", "wb")
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(cfg)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            pass_fds=(fd,), start_new_session=True,
        )
        self.workdir = workdir

    def stat(self) -> dict[str, dict[str, str]]:
        """`show stat` for the backend's servers: {"s1": {"status": "UP", "stot": "123", ...}}."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats_sock))
            s.sendall(b"show stat\n")
            data = bytearray()
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "be" and row.get("svname", "").startswith("s"):
                rows[row["svname"]] = row
        return rows

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.stats_sock.exists() or not self._answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited with {self.proc.returncode}: {self.log_text()}")
            if time.monotonic() > end:
                raise AssertionError(f"haproxy's stats socket not up within {timeout}s: {self.log_text()}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            self.stat()
            return True
        except OSError:
            return False

    def status(self, server: str) -> str:
        return self.stat()[server]["status"]

    def wait_status(self, server: str, want: str, timeout: float) -> float:
        """Polls until the server's status is `want` (e.g. "UP"); returns when (monotonic)."""
        end = time.monotonic() + timeout
        while True:
            st = self.status(server)
            if st == want:
                return time.monotonic()
            if time.monotonic() > end:
                raise AssertionError(f"haproxy: {server} is {st!r}, not {want!r}, after {timeout}s")
            time.sleep(0.01)

    def log_text(self) -> str:
        self.log.flush()
        return (self.workdir / "haproxy.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        self.listener.close()


# ---------------------------------------------------------------------------------------------
# The load: closed-loop keep-alive clients through the proxy.


@dataclass
class Load:
    answered: int = 0
    failed: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)  # the first 3 failures of each kind
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self) -> None:
        with self.lock:
            self.answered += 1

    def fail(self, kind: str, detail: str) -> None:
        with self.lock:
            self.failed += 1
            self.kinds[kind] += 1
            if self.kinds[kind] <= 3:
                self.samples.append(detail)

    @property
    def total(self) -> int:
        return self.answered + self.failed


def _client(port: int, stop: threading.Event, load: Load, idx: int, t_origin: float) -> None:
    """One keep-alive connection to the proxy, reopened only when the proxy closes it. Every 10th
    request sleeps 50 ms in the handler, so requests are in flight when an instance is told to stop."""
    sock: Optional[socket.socket] = None
    n = 0
    while not stop.is_set():
        n += 1
        path, want = ("/sleep?ms=50", b"slept 50") if n % 10 == 0 else ("/", b"OK")
        at = f"client {idx} at {time.monotonic() - t_origin:.2f}s"
        try:
            if sock is None:
                sock = hostlib.connect(port, 10)
            sock.sendall(request_bytes("GET", path))
            r = read_response(sock, 10)
        except (Closed, OSError, TimeoutError) as e:
            kind = "timeout" if isinstance(e, TimeoutError) else "connection cut"
            load.fail(kind, f"{at}: GET {path}: {e}")
            if sock is not None:
                sock.close()
            sock = None
            continue
        if r.status == 200 and r.body == want:
            load.ok()
        else:
            load.fail(f"status {r.status}", f"{at}: GET {path}: {r.status} {r.body[:80]!r}")
        if r.headers.get("connection", "").lower() == "close":
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


# ---------------------------------------------------------------------------------------------
# One rolling restart.


@dataclass
class Restart:
    server: str
    exit_status: int
    stop_ms: float  # SIGTERM -> exit
    down_before_exit: bool  # the proxy marked it DOWN while the old process still ran
    drain_line: str  # the old process's lifecycle lines
    up_after_ms: float  # SIGTERM -> the proxy sees the new process UP
    served_after: int  # 2xx answers the new process gave through the proxy while settling


@dataclass
class Result:
    host: str
    delay_ms: int
    load: Load
    restarts: list[Restart]
    seconds: float

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.load.kinds.items())) or "-"
        stops = ", ".join(f"{r.stop_ms:.0f}" for r in self.restarts)
        return (f"{self.host:<6} delay {self.delay_ms:>4} ms: failed {self.load.failed:>4} of {self.load.total:>6} "
                f"requests ({kinds}); stops {stops} ms; {self.seconds:.1f} s")


def run(host: str, delay_ms: int, timeout_ms: int = 5000, clients: int = 16, warm_s: float = 1.0,
        settle_s: float = 0.5) -> Result:
    """Two instances of host behind HAProxy, keep-alive load, each instance restarted in turn."""
    workdir = Path(tempfile.mkdtemp(prefix="graceserve-rolling-"))
    procs: list[hostlib.Proc] = []
    proxy: Optional[HAProxy] = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    load = Load()
    t_origin = time.monotonic()
    try:
        procs = [hostlib.start(host, timeout_ms=timeout_ms, delay_ms=delay_ms) for _ in range(2)]
        ports = [p.port for p in procs]
        proxy = HAProxy(ports, workdir)
        proxy.wait_ready(10)
        for name in ("s1", "s2"):
            proxy.wait_status(name, "UP", 10)
        for i in range(clients):
            t = threading.Thread(target=_client, args=(proxy.port, stop, load, i, t_origin), daemon=True)
            t.start()
            threads.append(t)
        end = time.monotonic() + 10
        while load.answered < 200 and time.monotonic() < end:
            time.sleep(0.05)
        assert load.answered >= 200, f"the load never got going through haproxy: {load.answered} answered, {load.samples}"
        time.sleep(warm_s)

        restarts = []
        for i, name in enumerate(("s1", "s2")):
            old = procs[i]
            t0 = old.signal(signal.SIGTERM)
            down_seen = False
            while old.running():
                if not down_seen and proxy.status(name).startswith("DOWN"):
                    down_seen = old.running()
                if time.monotonic() - t0 > (delay_ms + timeout_ms) / 1000 + 10:
                    break
                time.sleep(0.01)
            ex = old.wait_exit((delay_ms + timeout_ms) / 1000 + 10, t0)
            procs[i] = hostlib.start(host, timeout_ms=timeout_ms, delay_ms=delay_ms, addr=f"127.0.0.1:{ports[i]}")
            up_at = proxy.wait_status(name, "UP", 15)
            before = int(proxy.stat()[name]["hrsp_2xx"])
            time.sleep(settle_s)
            served = int(proxy.stat()[name]["hrsp_2xx"]) - before
            restarts.append(Restart(name, ex.status, ex.elapsed_ms, down_seen, ex.stderr.strip(),
                                    (up_at - t0) * 1000, served))
        time.sleep(settle_s)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        for p in procs:
            if p.running():
                p.signal(signal.SIGTERM)
                try:
                    p.wait_exit((delay_ms + timeout_ms) / 1000 + 10)
                except AssertionError:
                    pass
            p.kill()
        if proxy is not None:
            proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return Result(host, delay_ms, load, restarts, time.monotonic() - t_origin)
