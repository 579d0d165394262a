"""Playing systemd from a test or a benchmark: the listening socket a `.socket` unit holds, the
notification socket of a `Type=notify` service, and starting the service with what systemd passes
(descriptor 3, LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, NOTIFY_SOCKET, WATCHDOG_USEC /
WATCHDOG_PID), directly or through `systemd-socket-activate`. The README's "Under systemd" units
are what this models; tests/conformance/test_systemd.py and bench/upgrade use it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import hostlib
from hostlib import READY_RE, READY_TIMEOUT_S

# The README's units: FileDescriptorName=http on the socket, `--addr systemd:http` in ExecStart.
FDNAME = "http"
PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on: bool) -> None:
    """An upgrade's new process is the old one's child; once the old one exits it is reparented
    to the nearest subreaper (systemd, PID 1, in real life). Making this process one lets it
    collect the successor's exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def listening_socket() -> socket.socket:
    """What a .socket unit (ListenStream=127.0.0.1:PORT) holds: bound and listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s


@dataclass
class Note:
    pid: int
    fields: list[str]
    at: float

    def has(self, f: str) -> bool:
        return f in self.fields

    def value(self, key: str) -> Optional[str]:
        for f in self.fields:
            if f.startswith(key + "="):
                return f[len(key) + 1:]
        return None


class NotifySocket:
    """systemd's notification socket: a datagram socket (path or abstract name) that records
    every message with its sender's pid (SO_PASSCRED, as systemd checks NotifyAccess)."""

    def __init__(self, address: str) -> None:
        self.address = address  # the NOTIFY_SOCKET value
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.notes: list[Note] = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        size = socket.CMSG_SPACE(12)  # struct ucred
        while not self.closed:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, size)
            except socket.timeout:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, blob in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(blob[:4], "little")
            fields = [f for f in data.decode("utf-8", "replace").split("\n") if f]
            with self.cond:
                self.notes.append(Note(pid, fields, time.monotonic()))
                self.cond.notify_all()

    def wait(self, pred: Callable[[list[Note]], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.notes):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"notify socket: no {what} within {timeout}s; got {self.dump()}")
                self.cond.wait(left)

    def snapshot(self) -> list[Note]:
        with self.cond:
            return list(self.notes)

    def dump(self) -> str:
        return "; ".join(f"[{n.pid}] {'|'.join(n.fields)}" for n in self.notes)

    def close(self) -> None:
        self.closed = True
        self.thread.join(2)
        self.sock.close()


class Unit:
    """One process group started the way systemd starts the service; the old process's
    successors share its pipes and its process group."""

    def __init__(self, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env, pass_fds=pass_fds,
        )
        self.pid = self.popen.pid
        self.out = hostlib._Reader(self.popen.stdout)
        self.err = hostlib._Reader(self.popen.stderr)
        self.out.start()
        self.err.start()

    def ready_lines(self) -> list[str]:
        with self.out.cond:
            return [line for line in self.out.lines if READY_RE.match(line)]

    def wait_out(self, n: int, timeout: float = READY_TIMEOUT_S) -> list[str]:
        """Waits for the n-th ready line (one per process that started serving)."""
        end = time.monotonic() + timeout
        with self.out.cond:
            while len([x for x in self.out.lines if READY_RE.match(x)]) < n:
                left = end - time.monotonic()
                if left <= 0 or (self.out.eof and self.popen.poll() is not None):
                    raise AssertionError(f"no ready line #{n} (stdout {self.out.lines!r}, "
                                         f"status {self.popen.poll()}); stderr: {self.err.text()!r}")
                self.out.cond.wait(min(left, 0.1))
            return [x for x in self.out.lines if READY_RE.match(x)]

    def wait_err(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.err.cond:
            while True:
                for line in self.err.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no stderr line matching {pattern!r} within {timeout}s: {self.err.text()!r}")
                self.err.cond.wait(left)

    def wait(self, timeout: float) -> int:
        """Exit status of the process systemd started (Popen's: the status, or -SIG)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"pid {self.pid} still running {timeout}s later; stderr {self.err.text()!r}")

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass


def reap_orphans() -> None:
    """Collects successors that outlived their run (killed with their process group)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_pid(pid: int, timeout: float) -> int:
    """Exit status of a child that is not a Popen's (an upgrade's successor, adopted through
    set_subreaper), as Popen reports it: the status, or -SIG. Kills it after timeout."""
    end = time.monotonic() + timeout
    while True:
        got, st = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(st)
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"pid {pid} still running {timeout}s later; killed it")
        time.sleep(0.01)


def host_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_")) and k != "GRACESERVE_LOG"}
    env.update(extra)
    return env


def high_fd(s: socket.socket) -> int:
    """A copy of the socket at descriptor 20 or above, so the wrapper can move it to 3."""
    return fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 20)


def start_service(host_argv: list[str], sock: socket.socket, notify: Optional[NotifySocket] = None,
                  watchdog_usec: int = 0, activate: bool = False) -> Unit:
    """Starts the service as systemd does with the README's units: the socket as descriptor 3
    with LISTEN_FDS=1, LISTEN_PID=<its pid>, LISTEN_FDNAMES=http; NOTIFY_SOCKET, WATCHDOG_USEC
    (WatchdogSec) and WATCHDOG_PID=<its pid> when given. activate=True puts
    systemd-socket-activate in between: it waits for the first connection, then execs the host
    with the same variables (same pid throughout)."""
    fd = high_fd(sock)
    extra = {"NOTIFY_SOCKET": notify.address} if notify else {}
    if watchdog_usec:
        extra["WATCHDOG_USEC"] = str(watchdog_usec)
    env = host_env(extra)
    watchdog = "WATCHDOG_PID=$$ " if watchdog_usec else ""
    if activate:
        setenv = [f"-E {k}" for k in extra] + (["-E WATCHDOG_PID=$$"] if watchdog_usec else [])
        tail = f'exec systemd-socket-activate --fdname={FDNAME} {" ".join(setenv)} "$@"'
        script = f'exec 3<&{fd} {fd}<&-; LISTEN_FDS=1 LISTEN_PID=$$ {tail}'
    else:
        script = (f'exec 3<&{fd} {fd}<&-; LISTEN_FDS=1 LISTEN_PID=$$ LISTEN_FDNAMES={FDNAME} '
                  f'{watchdog}exec "$@"')
    try:
        return Unit(["bash", "-c", script, "bash", *host_argv], env, pass_fds=(fd,))
    finally:
        os.close(fd)


