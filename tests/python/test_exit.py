"""Interpreter exit with a server or handler calls still around (each case in a child process)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import textwrap
import threading
import time

from conftest import py_env

PRELUDE = """
import sys, threading, time, urllib.request, graceserve

def busy(req):
    t = time.monotonic()
    while time.monotonic() - t < float(req.arg("s", "3")):   # pure Python: needs the GIL
        pass
    return "done"

def fire(srv, path="/"):
    def go():
        try:
            urllib.request.urlopen(srv.url + path, timeout=10).read()
        except Exception:
            pass
    threading.Thread(target=go, daemon=True).start()
    while srv.stats().requests_active == 0:
        time.sleep(0.01)
"""


def run(code: str, timeout: float = 30) -> "tuple[subprocess.CompletedProcess[str], float]":
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=py_env(),
        timeout=timeout,
    )
    return r, time.monotonic() - t0


def test_busy_straggler_after_forced_stop_exits_with_the_status_not_sigabrt() -> None:
    """Without the binding's exit guard CPython's finalization ends the straggler thread with
    pthread_exit and the process aborts (status 134): the guard exits with the status."""
    r, elapsed = run(
        """
        srv = graceserve.Server("127.0.0.1:0", busy).start()
        fire(srv, "/?s=5")
        assert srv.shutdown(0.1) == 1
        sys.exit(srv.status)
        """
    )
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert elapsed < 4, "the exit must not wait for the straggler"
    assert "Fatal" not in r.stderr and "exception not rethrown" not in r.stderr


def test_straggler_that_finishes_in_the_grace_keeps_the_exit_code() -> None:
    r, _ = run(
        """
        srv = graceserve.Server("127.0.0.1:0", busy).start()
        fire(srv, "/?s=0.3")
        assert srv.shutdown(0.05) == 1
        sys.exit(5)
        """
    )
    # The handler ends ~0.25 s after the forced stop, inside EXIT_GRACE_S: a normal exit.
    assert r.returncode in (5, 1), (r.returncode, r.stderr)
    assert "Fatal" not in r.stderr


def test_server_left_running_is_drained_at_exit() -> None:
    r, elapsed = run(
        """
        srv = graceserve.Server("127.0.0.1:0", lambda req: "x").start()
        print(urllib.request.urlopen(srv.url).read().decode())
        # falls off the end with the server running
        """
    )
    assert r.returncode == 0 and r.stdout == "x\n" and r.stderr == "", r.stderr
    assert elapsed < 5


def test_every_running_server_is_drained_at_exit() -> None:
    """Two servers left running when the program ends: both drain, and the requests in flight
    on each finish with their responses before the process exits 0."""
    code = PRELUDE + textwrap.dedent(
        """
        def slow(req):
            time.sleep(0.4)
            return "drained " + req.path
        a = graceserve.Server("127.0.0.1:0", slow).start()
        b = graceserve.Server("127.0.0.1:0", slow).start()
        print(a.port, b.port, flush=True)
        while a.stats().requests_active + b.stats().requests_active < 2:
            time.sleep(0.01)
        # falls off the end with both servers running and a request in flight on each
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=py_env())
    try:
        assert p.stdout is not None
        ports = [int(x) for x in p.stdout.readline().split()]
        results: "dict[int, tuple[int, bytes]]" = {}

        def get(port: int) -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", f"/{port}")
            r = c.getresponse()
            results[port] = (r.status, r.read())

        threads = [threading.Thread(target=get, args=(port,)) for port in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert p.wait(15) == 0
        assert results == {port: (200, f"drained /{port}".encode()) for port in ports}
        assert p.stderr is not None and p.stderr.read() == b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
