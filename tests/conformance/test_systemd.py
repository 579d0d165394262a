"""Under systemd, and restarts that lose nothing (issue 11), per native host.

The tests play systemd with the README's unit pair ("Under systemd"): a `.socket` unit that owns
the listening socket and passes it as descriptor 3 (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES=http;
the service runs `--addr systemd:http`), and a `Type=notify` service with `WatchdogSec`
(NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID), `NotifyAccess=all` and `ExecReload=kill -HUP
$MAINPID`. `systemd-socket-activate` (Debian's systemd package) stands in for the `.socket`
unit's activation; a bash wrapper sets what systemd sets for a restart (fd 3 and the variables,
LISTEN_PID = the host's own pid through `exec`).

"Under load" is the suite's closed-loop keep-alive client (loadclient.py), which classifies
every request: failed must be 0 and, since the socket is never closed, refused too.

Not applicable: wasi (no processes to start, no unix sockets: the WASI host documents it) and
goref (Go's net/http reference host has no systemd support).
"""

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

import pytest

import hostlib
import loadclient
import systemdlib
from hostlib import READY_RE, READY_TIMEOUT_S, http
from systemdlib import (FDNAME, Note, NotifySocket, Unit, host_env, high_fd, listening_socket, reap_orphans,
                        start_service, wait_pid)

NOT_APPLICABLE = {
    "wasi": "not applicable on WASI: no processes to start (no upgrade) and no unix sockets "
            "(no sd_notify, no inherited listener); README 'WASI' says so",
    "goref": "the Go net/http reference host has no socket activation, sd_notify or upgrade",
}

# WatchdogSec, here short so pings come often enough to count in a test.
WATCHDOG_USEC = 400_000  # pings every 200 ms
DRAIN_DELAY_MS = 500  # old and new process overlap this long (README: --drain-delay-ms)
LOAD_WORKERS = 8
LOAD_PHASE_S = 1.0  # load runs at least this long before a restart and after it


@pytest.fixture
def native(host: str) -> str:
    why = NOT_APPLICABLE.get(host)
    if why:
        pytest.skip(why)
    return host


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    """Successors of an upgrade become this process's children once their parent exits (as they
    become systemd's), so their exit status can be checked."""
    systemdlib.set_subreaper(True)
    yield
    systemdlib.set_subreaper(False)


@pytest.fixture
def notify_path(tmp_path: Path):
    n = NotifySocket(str(tmp_path / "notify"))  # systemd's is /run/systemd/notify
    yield n
    n.close()


@pytest.fixture
def notify_abstract():
    n = NotifySocket(f"@graceserve-test-notify/{os.getpid()}/{time.monotonic_ns()}")
    yield n
    n.close()


@pytest.fixture
def units():
    started: list[Unit] = []
    yield started
    for u in started:
        u.kill()
    reap_orphans()


def require_activate() -> str:
    path = shutil.which("systemd-socket-activate")
    if not path:
        raise AssertionError("systemd-socket-activate is missing: install Debian's systemd package "
                             "(.ci/setup.d/60-conformance.sh does)")
    return path


def from_pid(notes: list[Note], pid: int) -> list[Note]:
    return [n for n in notes if n.pid == pid]


@dataclass
class Load:
    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    counts: loadclient.Counts = field(default_factory=loadclient.Counts)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        self.counts, self.threads = loadclient.run(self.port, "h1", LOAD_WORKERS, self.stop)
        return self

    def wait_answered(self, n: int, timeout: float, what: str, for_s: float = LOAD_PHASE_S) -> None:
        """Waits until n requests were answered and at least for_s seconds passed."""
        t0 = time.monotonic()
        end = t0 + timeout
        while self.counts.answered < n or time.monotonic() - t0 < for_s:
            if time.monotonic() > end:
                raise AssertionError(f"{what}: only {self.counts.answered} answered after {timeout}s "
                                     f"(want {n}): {self.counts.line()}; e.g. {self.counts.failures[:3]}")
            time.sleep(0.02)

    def finish(self) -> loadclient.Counts:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.counts


def assert_lost_nothing(c: loadclient.Counts, what: str) -> None:
    assert c.failed == 0, f"{what}: {c.line()}; e.g. {c.failures[:5]}"
    assert c.refused == 0, f"{what}: the socket never closed, yet connections were refused: {c.line()}"


# ---------------------------------------------------------------------------------------------
# the scenarios


def test_socket_activation_and_notify(native, units, notify_path):
    """systemd-socket-activate holds the socket and starts the host on the first connection;
    the host serves that very connection, tells the (path) notify socket READY=1 with its pid,
    pings the watchdog, says STOPPING=1 on SIGTERM and exits 0."""
    host = native
    require_activate()
    sock = listening_socket()
    port = sock.getsockname()[1]
    u = start_service([str(hostlib.require_binary(host)), "--addr", f"systemd:{FDNAME}"], sock, notify_path,
                      WATCHDOG_USEC, activate=True)
    units.append(u)
    sock.close()  # systemd-socket-activate holds it now
    u.wait_err(rf"Listening on 127\.0\.0\.1:{port} as 3\.", 10)
    comm = Path(f"/proc/{u.pid}/comm").read_text().strip()
    assert comm.startswith("systemd-socket"), f"the host started before any connection: {comm!r}"
    assert not u.ready_lines() and not notify_path.snapshot()

    r = http(port, "GET", "/", timeout=READY_TIMEOUT_S)  # the first connection
    assert (r.status, r.body) == (200, b"OK")
    assert u.wait_out(1) == [f"listening on 127.0.0.1:{port}"]
    notify_path.wait(lambda ns: sum(n.has("WATCHDOG=1") for n in ns) >= 3, 3, "3 watchdog pings")
    notes = notify_path.snapshot()
    assert notes[0].pid == u.pid and notes[0].has("READY=1"), notify_path.dump()
    assert notes[0].value("MAINPID") == str(u.pid)
    assert notes[0].value("STATUS") == f"serving on 127.0.0.1:{port}"
    assert all(n.pid == u.pid for n in notes), notify_path.dump()
    assert not any(n.has("STOPPING=1") for n in notes)
    pings = [n.at for n in notes if n.has("WATCHDOG=1")]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < WATCHDOG_USEC / 1e6, f"watchdog pings {gaps} s apart; WATCHDOG_USEC={WATCHDOG_USEC}"

    os.kill(u.pid, signal.SIGTERM)
    notify_path.wait(lambda ns: any(n.has("STOPPING=1") for n in ns), 5, "STOPPING=1")
    assert u.wait(10) == 0
    stopping = next(n for n in notify_path.snapshot() if n.has("STOPPING=1"))
    assert stopping.pid == u.pid and (stopping.value("STATUS") or "").startswith("draining")
    assert re.search(rf"^server-{host}: stopped gracefully in \d+ ms", u.err.text(), re.M), u.err.text()


def test_restart_on_inherited_socket_under_load(native, units):
    """systemctl restart with the socket unit holding the socket: SIGTERM to the old process,
    wait for its exit, start the new one on the same descriptor. Under keep-alive load nothing
    fails and nothing is refused: connections made between the two wait in the socket's queue."""
    host = native
    sock = listening_socket()
    port = sock.getsockname()[1]
    argv = [str(hostlib.require_binary(host)), "--addr", f"systemd:{FDNAME}", "--drain-delay-ms", "200"]
    old = start_service(argv, sock, None)
    units.append(old)
    assert old.wait_out(1) == [f"listening on 127.0.0.1:{port}"]
    load = Load(port).start()
    try:
        load.wait_answered(200, 10, "before the restart")
        os.kill(old.pid, signal.SIGTERM)
        assert old.wait(10) == 0, old.err.text()
        by_old = load.counts.answered
        new = start_service(argv, sock, None)
        units.append(new)
        assert new.wait_out(1) == [f"listening on 127.0.0.1:{port}"]
        load.wait_answered(by_old + 200, 10, "after the restart (the new process)")
    finally:
        counts = load.finish()
    os.kill(new.pid, signal.SIGTERM)
    assert new.wait(10) == 0, new.err.text()
    print(f"{host} restart: {counts.line()}")
    assert_lost_nothing(counts, "restart on the inherited socket")


def test_sighup_upgrade_under_load(native, units):
    """SIGHUP with the host bound by itself (--addr 127.0.0.1:0): a fresh copy takes the
    listener over, the old process drains (pre-drain delay: both serve a while) and exits 0,
    the new one serves alone. Nothing fails, nothing is refused."""
    host = native
    argv = [str(hostlib.require_binary(host)), "--addr", "127.0.0.1:0", "--drain-delay-ms", str(DRAIN_DELAY_MS)]
    old = Unit(argv, host_env({}))
    units.append(old)
    port = int(READY_RE.match(old.wait_out(1)[0]).group(2))  # type: ignore[union-attr]
    load = Load(port).start()
    try:
        load.wait_answered(200, 10, "before the upgrade")
        t0 = time.monotonic()
        os.kill(old.pid, signal.SIGHUP)
        m = old.wait_err(rf"^server-{host}: upgrade: the new process \(pid (\d+)\) is ready; draining this one$", 20)
        new_pid = int(m.group(1))
        assert old.wait(15) == 0, old.err.text()
        handover_s = time.monotonic() - t0
        by_both = load.counts.answered
        load.wait_answered(by_both + 200, 10, "after the old process exited (the new one alone)")
    finally:
        counts = load.finish()
    assert old.ready_lines() == [f"listening on 127.0.0.1:{port}"] * 2  # old, then new (same port)
    err = old.err.text()
    assert re.search(rf"^server-{host}: draining \(upgraded to pid {new_pid}\): pre-drain delay {DRAIN_DELAY_MS} ms",
                     err, re.M), err
    assert re.search(rf"^server-{host}: stopped gracefully in \d+ ms", err, re.M), err
    os.kill(new_pid, signal.SIGTERM)
    assert wait_pid(new_pid, 10) == 0
    assert hostlib.port_free(port)
    print(f"{host} upgrade: {counts.line()} old process gone {handover_s:.2f}s after SIGHUP")
    assert_lost_nothing(counts, "SIGHUP upgrade")


def test_upgrade_under_the_units(native, units, notify_abstract):
    """The README's units end to end: socket via descriptor 3 (`--addr systemd:http`), Type=notify
    with the watchdog (abstract notify socket), and `systemctl reload` = `kill -HUP $MAINPID`,
    twice. Each time the old process tells systemd MAINPID=<new> and then nothing more (its
    STOPPING=1 would stop the service: NotifyAccess=all), the new one pings the watchdog, and
    the last one says STOPPING=1 on SIGTERM. Every process exits 0."""
    host = native
    n = notify_abstract
    sock = listening_socket()
    port = sock.getsockname()[1]
    argv = [str(hostlib.require_binary(host)), "--addr", f"systemd:{FDNAME}", "--drain-delay-ms", "100"]
    first = start_service(argv, sock, n, WATCHDOG_USEC)
    units.append(first)
    first.wait_out(1)
    n.wait(lambda ns: any(x.has("READY=1") for x in ns), 5, "READY=1")
    mainpid = int(n.snapshot()[0].value("MAINPID") or 0)
    assert mainpid == first.pid
    pids = [mainpid]
    for k in (2, 3):  # ExecReload=kill -HUP $MAINPID, twice
        os.kill(mainpid, signal.SIGHUP)
        old = mainpid
        n.wait(lambda ns: any(x.pid == old and x.value("MAINPID") not in (None, str(old)) for x in ns), 20,
               f"MAINPID= from {old}")
        handed = next(x for x in n.snapshot() if x.pid == old and x.value("MAINPID") not in (None, str(old)))
        mainpid = int(handed.value("MAINPID") or 0)
        # what `systemctl status` shows from now on (the new process's READY went to the old one)
        assert handed.value("STATUS") == f"serving on 127.0.0.1:{port} (pid {mainpid}, upgraded from pid {old})"
        assert not handed.has("STOPPING=1")
        pids.append(mainpid)
        first.wait_out(k)
        status = first.wait(10) if old == first.pid else wait_pid(old, 10)
        assert status == 0, f"pid {old} exited {status}: {first.err.text()}"
        n.wait(lambda ns: sum(x.pid == mainpid and x.has("WATCHDOG=1") for x in ns) >= 2, 3,
               f"watchdog pings from {mainpid}")
        r = http(port, "GET", "/")  # only the new process is left to accept it
        assert (r.status, r.body) == (200, b"OK")
    os.kill(mainpid, signal.SIGTERM)
    n.wait(lambda ns: any(x.has("STOPPING=1") for x in ns), 5, "STOPPING=1")
    assert wait_pid(mainpid, 10) == 0
    notes = n.snapshot()
    stopping = [x for x in notes if x.has("STOPPING=1")]
    assert [x.pid for x in stopping] == [mainpid], f"STOPPING=1 only from the last process: {n.dump()}"
    for old, new in zip(pids, pids[1:]):
        mine = from_pid(notes, old)
        cut = next(i for i, x in enumerate(mine) if x.value("MAINPID") == str(new))
        later = [x for x in mine[cut + 1:] if x.fields != ["WATCHDOG=1"]]
        assert not later, f"pid {old} kept talking after handing over to {new}: {later}"
        assert len(mine[cut + 1:]) <= 1, f"pid {old} kept pinging after the hand-over: {mine[cut + 1:]}"
    assert not any(x.has("READY=1") for x in notes[1:]), "a successor's READY=1 goes to its predecessor"
    assert len(first.ready_lines()) == 3


def host_copy(host: str, where: Path) -> tuple[list[str], Path]:
    """A runnable copy of the host in `where`: (argv prefix, the file an upgrade starts again).
    server-c and server-go are the binary itself; server-python runs examples/python/server.py
    under python3, and the script is what a fresh copy starts again."""
    src = hostlib.require_binary(host)
    if host == "python":
        launcher = src.read_text()
        m = re.search(r'"(/[^"]+/examples/python/server\.py)"', launcher)
        assert m, f"cannot find the script in {src}"
        script = where / "server.py"
        shutil.copy(m.group(1), script)
        copy = where / "server-python"
        copy.write_text(launcher.replace(m.group(1), str(script)))
        copy.chmod(0o755)
        return [str(copy)], script
    copy = where / src.name
    shutil.copy(src, copy)
    return [str(copy)], copy


def replace_with_failing_program(path: Path) -> None:
    """Replaces the file by one that exits 3 at once (a new file renamed over it, as a package
    upgrade does; the running process keeps its own copy)."""
    tmp = path.with_name(path.name + ".new")
    if path.suffix == ".py":
        tmp.write_text("raise SystemExit(3)\n")
    else:
        tmp.write_text("#!/bin/sh\nexit 3\n")
        tmp.chmod(0o755)
    os.replace(tmp, path)


def test_upgrade_to_a_failing_program_keeps_serving(native, units, tmp_path):
    """The program on disk was replaced by one that exits 3: SIGHUP starts it, it never reports
    ready, and the old process keeps serving, says why on stderr, and still stops cleanly."""
    host = native
    prefix, program = host_copy(host, tmp_path)
    u = Unit([*prefix, "--addr", "127.0.0.1:0"], host_env({}))
    units.append(u)
    port = int(READY_RE.match(u.wait_out(1)[0]).group(2))  # type: ignore[union-attr]
    replace_with_failing_program(program)
    os.kill(u.pid, signal.SIGHUP)
    m = u.wait_err(rf"^server-{host}: upgrade failed: (.*)$", 20)
    assert re.fullmatch(r"the new process \S+ \(pid \d+\) exited with status 3 before reporting ready; still serving",
                        m.group(1)), m.group(0)
    for _ in range(3):
        r = http(port, "GET", "/")
        assert (r.status, r.body) == (200, b"OK")
    assert u.popen.poll() is None
    os.kill(u.pid, signal.SIGTERM)
    assert u.wait(10) == 0, u.err.text()
    assert u.ready_lines() == [f"listening on 127.0.0.1:{port}"]
    assert hostlib.port_free(port)


def test_bad_fd_fails_the_start(native):
    """--addr fd:N that is not a socket, or a socket that is not listening: exit 1 and one
    stderr line that names the address and the reason."""
    host = native
    binary = str(hostlib.require_binary(host))
    r = subprocess.run([binary, "--addr", "fd:0"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=READY_TIMEOUT_S, env=host_env({}))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.splitlines() == [f"server-{host}: cannot listen on fd:0: fd 0 is not a socket"], r.stderr
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    fd = high_fd(s)
    try:
        r = subprocess.run([binary, "--addr", f"fd:{fd}"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=READY_TIMEOUT_S, env=host_env({}), pass_fds=(fd,))
    finally:
        os.close(fd)
        s.close()
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.splitlines() == [
        f"server-{host}: cannot listen on fd:{fd}: fd {fd} is a socket but not listening (listen() was not called)"
    ], r.stderr
