"""Several servers in one process: independent lifecycles, per-server outcome and stats,
serve_all() with one signal for all, and what is (and is not) shared between servers."""

from __future__ import annotations

import gc
import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any, Dict, List, Tuple

import pytest

import graceserve
from graceserve import _trampolines
from conftest import addr_of, port_refused, py_env, raw_exchange, read_lines, request, wait_until


def _sleeper(name: str) -> graceserve.Handler:
    def h(req: graceserve.Request) -> str:
        ms = int(req.arg("ms", "0") or 0)
        time.sleep(ms / 1000)
        return f"{name} {req.path} slept {ms}"

    return h


def _get_async(s: graceserve.Server, path: str, out: Dict[str, Any], key: str) -> threading.Thread:
    def go() -> None:
        try:
            c = http.client.HTTPConnection(*addr_of(s), timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            out[key] = (r.status, r.read(), r.getheader("connection"))
            c.close()
        except (OSError, http.client.HTTPException) as e:
            out[key] = e

    t = threading.Thread(target=go)
    t.start()
    return t


def test_three_servers_at_once_with_their_own_handlers_and_stats(server_factory: Any) -> None:
    a = server_factory(lambda req: f"a {req.path}")
    b = server_factory(lambda req: (201, f"b {req.path}"))
    c = server_factory()  # the library's built-in handler
    assert len({a.port, b.port, c.port}) == 3
    for i in range(3):
        assert request(addr_of(a), "GET", f"/{i}")[::2] == (200, f"a /{i}".encode())
    assert request(addr_of(b), "GET", "/x")[::2] == (201, b"b /x")
    assert request(addr_of(c), "GET", "/")[::2] == (200, b"OK")
    assert (a.stats().requests_total, b.stats().requests_total, c.stats().requests_total) == (3, 1, 1)
    assert (a.stats().connections_total, b.stats().connections_total) == (3, 1)
    assert len(_trampolines.DISPATCH) == 2, "one slab entry per server with a Python handler"
    assert [s.shutdown() for s in (a, b, c)] == [0, 0, 0]
    assert len(_trampolines.DISPATCH) == 0
    # Final counters stay readable after the stop.
    assert a.stats() == graceserve.Stats(0, 3, 0, 3)


def test_drain_one_while_the_others_serve(server_factory: Any) -> None:
    a = server_factory(_sleeper("a"))
    b = server_factory(_sleeper("b"))
    out: Dict[str, Any] = {}
    t = _get_async(a, "/slow?ms=600", out, "inflight")
    assert wait_until(lambda: a.stats().requests_active == 1)
    done: Dict[str, Any] = {}
    drainer = threading.Thread(target=lambda: done.setdefault("status", a.shutdown(5)))
    drainer.start()
    assert wait_until(lambda: port_refused(*addr_of(a)), 3), "a stops accepting at once"
    # b is untouched while a drains: it accepts and answers.
    for i in range(5):
        assert request(addr_of(b), "GET", f"/during{i}")[::2] == (200, f"b /during{i} slept 0".encode())
    drainer.join(10)
    t.join(10)
    assert out["inflight"] == (200, b"a /slow slept 600", "close"), "a's in-flight request finished"
    assert done["status"] == 0 and a.status == 0 and a.stop_cause == graceserve.StopCause.GRACEFUL_CALL
    assert b.running and b.status is None and b.stop_cause == graceserve.StopCause.NONE
    assert request(addr_of(b), "GET", "/after")[0] == 200
    assert b.stats().requests_total == 6
    b.shutdown()


def test_each_server_has_its_own_outcome(server_factory: Any) -> None:
    release = threading.Event()

    def stuck(req: graceserve.Request) -> str:
        release.wait(10)
        return "late"

    forced = server_factory(stuck)
    graceful = server_factory(lambda req: "fine")
    out: Dict[str, Any] = {}
    t = _get_async(forced, "/", out, "cut")
    assert wait_until(lambda: forced.stats().requests_active == 1)
    assert forced.shutdown(0.1) == 1
    assert forced.stop_cause == graceserve.StopCause.FORCED_DEADLINE and "forced" in forced.stop_message
    assert graceful.running and request(addr_of(graceful), "GET", "/")[2] == b"fine"
    assert graceful.shutdown() == 0
    assert graceful.stop_cause == graceserve.StopCause.GRACEFUL_CALL and graceful.stop_message == ""
    assert (forced.status, graceful.status) == (1, 0)
    release.set()
    t.join(10)
    assert isinstance(out["cut"], Exception)
    assert wait_until(lambda: not _trampolines.ACTIVE)


def test_the_own_handler_guard_is_per_server(server_factory: Any) -> None:
    """From a handler of `a`: waiting for `a` is refused (it waits for this very handler) and
    shutting `a` down only starts the drain; shutting `b` down blocks and completes."""
    got: Dict[str, Any] = {}

    def admin(req: graceserve.Request) -> str:
        if req.path == "/stop-public":
            got["public"] = public.shutdown(5)
            return f"public stopped: {got['public']}"
        try:
            got["self_wait"] = admin_srv.wait()
        except graceserve.WrongThreadError as e:
            got["self_wait"] = e
        got["self_shutdown"] = admin_srv.shutdown()
        return "admin draining"

    public = server_factory(lambda req: "public")
    admin_srv = server_factory(admin)
    assert request(addr_of(admin_srv), "GET", "/stop-public")[::2] == (200, b"public stopped: 0")
    assert not public.running and public.stop_cause == graceserve.StopCause.GRACEFUL_CALL
    assert admin_srv.running
    assert request(addr_of(admin_srv), "GET", "/quit")[::2] == (200, b"admin draining")
    assert isinstance(got["self_wait"], graceserve.WrongThreadError)
    assert got["self_shutdown"] is None
    assert admin_srv.wait(5) == 0 and admin_srv.stop_cause == graceserve.StopCause.GRACEFUL_CALL


def test_a_dropped_running_server_keeps_serving_until_stopped() -> None:
    s = graceserve.Server("127.0.0.1:0", lambda req: "still here").start()
    a = addr_of(s)
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert request(a, "GET", "/")[2] == b"still here"
    srv = ref()
    assert srv is not None and srv.running
    assert srv.shutdown() == 0


def test_close_releases_the_handle_and_start_cycles_leak_no_fds() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def cycle() -> None:
        servers = [graceserve.Server("127.0.0.1:0", lambda req, i=i: f"s{i}") for i in range(4)]
        for s in servers:
            s.start()
        for i, s in enumerate(servers):
            assert request(addr_of(s), "GET", "/")[2] == f"s{i}".encode()
        for s in servers:
            s.close()
            assert s.status == 0 and s.stop_cause == graceserve.StopCause.GRACEFUL_CALL
            with pytest.raises(graceserve.NotRunningError):
                s.stats()  # the handle is gone

    cycle()  # warm-up: thread pools, logging, lazy imports
    gc.collect()
    before = fds()
    for _ in range(5):
        cycle()
    gc.collect()
    assert fds() <= before + 2, (before, fds())


def test_defaults_come_from_the_library() -> None:
    s = graceserve.Server()
    assert s.shutdown_timeout == 5.0  # server_options_init's signal_drain_timeout_ms
    assert s.addr == "" and s.port == 0  # the library's default address is used at start
    assert graceserve.StopCause.GRACEFUL_SIGNAL.exit_status == 0
    assert graceserve.StopCause.FORCED_SECOND_SIGNAL.exit_status == 1
    assert graceserve.StopCause.INVALID_OPTIONS.graceful is False
    assert graceserve.StopCause.GRACEFUL_CALL.graceful is True
    assert graceserve.StopCause.NONE.graceful is False
    with pytest.raises(graceserve.NotRunningError):
        graceserve.StopCause.NONE.exit_status


def _watchdog(*servers: graceserve.Server, after: float = 15.0) -> threading.Timer:
    """Cuts servers still running after ``after`` seconds, so that a serve_all() that fails to
    stop them fails the test (cause FORCED_DEADLINE) instead of hanging it."""

    def cut() -> None:
        for s in servers:
            if s.running:
                s.shutdown(0)

    t = threading.Timer(after, cut)
    t.daemon = True
    t.start()
    return t


def test_serve_all_in_process_one_sigint_drains_all() -> None:
    a = graceserve.Server("127.0.0.1:0", _sleeper("a"))
    b = graceserve.Server("127.0.0.1:0", _sleeper("b"))
    dog = _watchdog(a, b)
    out: Dict[str, Any] = {}
    seen: List[Any] = []

    def ready(servers: Any) -> None:
        seen.append(tuple(servers))
        threads = [_get_async(a, "/?ms=400", out, "a"), _get_async(b, "/?ms=400", out, "b")]

        def fire() -> None:
            wait_until(lambda: a.stats().requests_active == 1 and b.stats().requests_active == 1)
            os.kill(os.getpid(), signal.SIGINT)
            for t in threads:
                t.join(10)

        threading.Thread(target=fire, daemon=True).start()

    status = graceserve.serve_all(a, b, ready=ready)
    dog.cancel()
    assert (a.stop_cause, b.stop_cause) == (graceserve.StopCause.GRACEFUL_SIGNAL,) * 2
    assert status == 0 and seen == [(a, b)]
    assert out["a"] == (200, b"a / slept 400", "close") and out["b"] == (200, b"b / slept 400", "close")


def test_serve_all_waits_for_every_server_and_returns_the_worst_status() -> None:
    release = threading.Event()

    def stuck(req: graceserve.Request) -> str:
        release.wait(10)
        return "late"

    a = graceserve.Server("127.0.0.1:0", stuck)
    b = graceserve.Server("127.0.0.1:0", lambda req: "b")
    dog = _watchdog(a, b)

    def ready(servers: Any) -> None:
        def script() -> None:
            out: Dict[str, Any] = {}
            _get_async(a, "/", out, "a")
            wait_until(lambda: a.stats().requests_active == 1)
            a.shutdown(0.05)  # forced: a stops alone
            out["b"] = request(addr_of(b), "GET", "/")
            assert out["b"][2] == b"b" and b.running
            b.shutdown()

        threading.Thread(target=script, daemon=True).start()

    assert graceserve.serve_all(a, b, ready=ready) == 1
    dog.cancel()
    assert (a.stop_cause, b.stop_cause) == (graceserve.StopCause.FORCED_DEADLINE, graceserve.StopCause.GRACEFUL_CALL)
    release.set()
    assert wait_until(lambda: not _trampolines.ACTIVE)


def test_serve_all_start_failure_drains_what_it_started() -> None:
    taken = graceserve.Server("127.0.0.1:0").start()
    try:
        first = graceserve.Server("127.0.0.1:0")
        clash = graceserve.Server(taken.addr)
        with pytest.raises(graceserve.AddressInUseError):
            graceserve.serve_all(first, clash)
        assert first.status == 0 and not first.running and port_refused(*addr_of(first))
        assert taken.running, "a server serve_all did not start is left alone"
    finally:
        taken.shutdown()
    with pytest.raises(TypeError):
        graceserve.serve_all()
    s = graceserve.Server("127.0.0.1:0")
    with pytest.raises(ValueError):
        graceserve.serve_all(s, s)


SERVE_ALL = """
import sys, time, graceserve

def sleeper(name):
    def h(req):
        ms = int(req.arg("ms", "0"))
        time.sleep(ms / 1000)
        return f"{name} slept {ms}"
    return h

public = graceserve.Server("127.0.0.1:0", sleeper("public"), shutdown_timeout=float(sys.argv[1]))
admin = graceserve.Server("127.0.0.1:0", sleeper("admin"), shutdown_timeout=float(sys.argv[1]))

def ready(servers):
    for s in servers:
        print("listening on", s.addr, flush=True)

status = graceserve.serve_all(public, admin, ready=ready)
print(public.stop_cause.name, admin.stop_cause.name, flush=True)
sys.exit(status)
"""


def _spawn_serve_all(timeout_s: float) -> Tuple["subprocess.Popen[bytes]", List[Tuple[str, int]]]:
    p = subprocess.Popen(
        [sys.executable, "-c", SERVE_ALL, str(timeout_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=py_env(),
    )
    addrs = []
    for line in read_lines(p.stdout, 2):
        assert line.startswith("listening on "), line
        host, port = line.split()[-1].rsplit(":", 1)
        addrs.append((host, int(port)))
    return p, addrs


def _slow_requests(addrs: List[Tuple[str, int]], ms: int, out: Dict[int, bytes]) -> List[threading.Thread]:
    threads = []
    for i, a in enumerate(addrs):
        payload = f"GET /?ms={ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        t = threading.Thread(target=lambda i=i, a=a, pl=payload: out.__setitem__(i, raw_exchange(a, pl, 10)))
        t.start()
        threads.append(t)
    return threads


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_all_one_signal_drains_every_server_subprocess(sig: int) -> None:
    p, addrs = _spawn_serve_all(5.0)
    try:
        out: Dict[int, bytes] = {}
        threads = _slow_requests(addrs, 800, out)
        time.sleep(0.3)  # both requests are in their handlers (margin for 2 shared CPUs)
        p.send_signal(sig)
        time.sleep(0.2)
        assert all(port_refused(*a) for a in addrs), "both servers stop accepting on one signal"
        for t in threads:
            t.join(10)
        assert p.wait(10) == 0
        stdout, stderr = p.communicate(timeout=5)
        assert stdout.decode().split() == ["GRACEFUL_SIGNAL", "GRACEFUL_SIGNAL"]
        assert b"Traceback" not in stderr, stderr
        for i, name in enumerate(("public", "admin")):
            assert out[i].startswith(b"HTTP/1.1 200") and out[i].endswith(f"{name} slept 800".encode())
            assert b"connection: close" in out[i].lower()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_serve_all_second_signal_forces_every_server_subprocess() -> None:
    p, addrs = _spawn_serve_all(30.0)
    try:
        out: Dict[int, bytes] = {}
        threads = _slow_requests(addrs, 5000, out)
        time.sleep(0.3)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert p.poll() is None, "the first signal only drains"
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 1
        assert time.monotonic() - t0 < 3, "the second signal forces at once, not after 30 s"
        stdout, _ = p.communicate(timeout=5)
        assert stdout.decode().split() == ["FORCED_SECOND_SIGNAL", "FORCED_SECOND_SIGNAL"]
        for t in threads:
            t.join(10)
        assert out[0] == b"" and out[1] == b"", "the cut requests got no response"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
