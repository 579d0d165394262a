"""HTTP/2 (h2c with prior knowledge) routes and drains, observed on the wire."""

from __future__ import annotations

import signal
import time

import pytest

import hostlib
from h2client import H2Client, get
from hostlib import DEADLINE_SLACK_MS, SLACK_MS
from test_lifecycle import REACH_HANDLER_S, assert_forced_lines, assert_stopped_clean

NO_ERROR = 0


def test_h2_routes(serve, host):
    p = serve()
    for method, path, body, status, want in [
        ("GET", "/", b"", 200, b"OK"),
        ("GET", "/sleep?ms=20", b"", 200, b"slept 20"),
        ("POST", "/echo", b"h2 body \x00\xff", 200, b"h2 body \x00\xff"),
        ("GET", "/missing", b"", 404, None),
    ]:
        st = get(p.port, path, method, body)
        assert st.ended and st.reset is None, f"{method} {path}: stream did not end cleanly ({st})"
        assert st.status == status, f"{method} {path}: status {st.status}"
        if want is not None:
            assert bytes(st.body) == want
    # Many concurrent streams on one connection.
    c = H2Client(p.port)
    sids = [c.request("GET", f"/sleep?ms={i % 5}") for i in range(50)]
    assert c.pump(lambda cl: all(cl.streams[s].ended for s in sids), 20), "concurrent streams not all answered"
    assert all(c.streams[s].status == 200 for s in sids)
    c.close()
    ex = p.wait_exit(10, p.signal(signal.SIGTERM))
    assert_stopped_clean(p, ex, 0)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_inflight_h2_completes(serve, host, sig):
    p = serve(timeout_ms=5000)
    c = H2Client(p.port)
    warm = c.request("GET", "/")
    assert c.pump(lambda cl: cl.streams[warm].ended, 10)
    sid = c.request("GET", "/sleep?ms=1500")
    time.sleep(REACH_HANDLER_S)
    t0 = p.signal(getattr(signal, sig))
    assert c.pump(lambda cl: bool(cl.goaways), 1 + SLACK_MS / 1000), "no GOAWAY within 1 s of the signal"
    done = c.pump(lambda cl: cl.streams[sid].ended or cl.streams[sid].reset is not None, 10)
    st = c.streams[sid]
    assert done and st.reset is None, f"in-flight stream: reset={st.reset} closed={c.closed} {c.protocol_error}"
    assert (st.status, bytes(st.body)) == (200, b"slept 1500")
    closed = c.wait_closed(5)
    assert closed is not None, "server kept the h2 connection open after the drain"
    assert all(g.error_code == NO_ERROR for g in c.goaways), f"GOAWAY error codes {c.goaways}"
    assert c.goaways[-1].last_stream_id >= sid, f"final GOAWAY last_stream_id {c.goaways[-1].last_stream_id} < in-flight stream {sid}"
    c.close()
    ex = p.wait_exit(10, t0)
    assert_stopped_clean(p, ex, 0, getattr(signal, sig))


def test_h2_idle_connection_closed_at_drain(serve, host):
    p = serve(timeout_ms=5000)
    clients = []
    for _ in range(10):
        c = H2Client(p.port)
        sid = c.request("GET", "/")
        assert c.pump(lambda cl, s=sid: bool(cl.streams[s].ended), 10)  # type: ignore[misc]
        clients.append(c)
    t0 = p.signal(signal.SIGTERM)
    for c in clients:
        assert c.wait_closed(5) is not None, "idle h2 connection not closed at drain"
        assert c.goaways, "idle h2 connection closed without GOAWAY"
        c.close()
    ex = p.wait_exit(10, t0)
    assert_stopped_clean(p, ex, 0)
    assert ex.elapsed_ms < 1000 + SLACK_MS, f"idle h2 connections held the drain {ex.elapsed_ms:.0f} ms"


def test_h2_deadline_overrun_forced(serve, host):
    deadline = 800
    p = serve(timeout_ms=deadline)
    c = H2Client(p.port)
    sid = c.request("GET", "/sleep?ms=10000")
    time.sleep(REACH_HANDLER_S)
    t0 = p.signal(signal.SIGTERM)
    ex = p.wait_exit(10, t0)
    assert ex.status == 1, f"exit {ex.status}; stderr {ex.stderr!r}"
    assert deadline - 50 <= ex.elapsed_ms <= deadline + 100 + DEADLINE_SLACK_MS, f"stopped after {ex.elapsed_ms:.0f} ms"
    c.wait_closed(5)
    assert not c.streams[sid].ended, "the forced stream claims to have ended normally"
    c.close()
    assert hostlib.port_free(p.port)
    assert_forced_lines(p, ex, "deadline")
