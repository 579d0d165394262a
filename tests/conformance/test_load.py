"""Requests in bulk across a drain: nothing the server accepted may be lost.

The long runs with wrk and h2load live in bench/load (make bench-load); these are the short
correctness versions, a few seconds per host.
"""

from __future__ import annotations

import selectors
import signal
import socket
import threading
import time

import pytest

import loadclient
from hostlib import Closed, http, read_response, request_bytes
from test_lifecycle import REACH_HANDLER_S, assert_stopped_clean

BURST = 1000


def test_burst_before_signal(serve, host):
    """1,000 requests land right before SIGTERM: every one is answered, then exit 0."""
    p = serve(timeout_ms=20000)
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(BURST):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", p.port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, i)
    # Write each request as soon as its connection is up.
    pending = set(range(BURST))
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            i = key.data
            err = socks[i].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert err == 0, f"connect {i} failed before the signal: errno {err}"
            socks[i].setblocking(True)
            socks[i].sendall(request_bytes("GET", f"/sleep?ms={300 + i % 200}"))
            sel.unregister(socks[i])
            pending.discard(i)
    assert not pending, f"{len(pending)} connections never became writable"
    # The kernel hands connections to accept() in arrival order, so once a probe connection made
    # after all 1,000 is answered, the host has accepted every one of them (none is left in the
    # backlog, where closing the listener would reset it without the server ever seeing it).
    probe = http(p.port, "GET", "/", timeout=30)
    assert (probe.status, probe.body) == (200, b"OK")
    time.sleep(REACH_HANDLER_S)
    t0 = p.signal(signal.SIGTERM)

    answered, failures = 0, list[str]()
    lock = threading.Lock()

    def collect(idx: list[int]) -> None:
        nonlocal answered
        for i in idx:
            try:
                r = read_response(socks[i], 30)
                ok = r.status == 200 and r.body == f"slept {300 + i % 200}".encode()
                detail = f"#{i}: {r.status} {r.body[:40]!r}"
            except (Closed, OSError, TimeoutError) as e:
                ok, detail = False, f"#{i}: {e}"
            with lock:
                if ok:
                    answered += 1
                elif len(failures) < 10:
                    failures.append(detail)
            socks[i].close()

    readers = [threading.Thread(target=collect, args=(list(range(k, BURST, 8)),)) for k in range(8)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(60)
    ex = p.wait_exit(30, t0)
    assert answered == BURST, (f"{BURST - answered} of {BURST} accepted requests not answered, e.g. {failures}; "
                               f"host exit {ex.status}, stderr {ex.stderr[:600]!r}")
    assert_stopped_clean(p, ex, 0)


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_load_across_drain(serve, host, proto):
    """Closed-loop load at full speed; SIGTERM lands mid-run; failed must be 0 (see loadclient)."""
    p = serve(timeout_ms=10000)
    stop = threading.Event()
    counts, threads = loadclient.run(p.port, proto, workers=16 if proto == "h1" else 4, stop=stop)
    try:
        end = time.monotonic() + 20
        while counts.answered < 500 and time.monotonic() < end:
            time.sleep(0.05)
        assert counts.answered >= 500, f"load never got going: {counts.line()}"
        t0 = p.signal(signal.SIGTERM)
        ex = p.wait_exit(20, t0)
    finally:
        time.sleep(0.2)  # let workers see the closed listener (counted as refused)
        stop.set()
        for t in threads:
            t.join(30)
    print(f"{host} {proto}: {counts.line()} exit={ex.status} drain={ex.elapsed_ms:.0f}ms")
    assert counts.failed == 0, f"{counts.line()}; e.g. {counts.failures[:5]}"
    assert_stopped_clean(p, ex, 0)
