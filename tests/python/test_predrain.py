"""The binding's issue-10 options in-process: connection age limits, the pre-drain delay with
the health paths, drain_requested, lifecycle events and the v2 stats counters."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any, List, Tuple

import graceserve
from graceserve import _trampolines
from conftest import addr_of, request, wait_until


def _exchange(s: socket.socket, path: str = "/") -> Tuple[int, bool]:
    """One GET on an open keep-alive socket: (status, the answer says Connection: close)."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"closed before a response: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(fields.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        assert chunk, "closed mid-body"
        rest += chunk
    return int(lines[0].split()[1]), fields.get("connection", "").lower() == "close"


def _closed_by_server(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_max_requests_per_connection(server_factory: Any) -> None:
    s = server_factory(None, max_requests_per_connection=3)
    with socket.create_connection(addr_of(s), timeout=10) as c:
        assert _exchange(c) == (200, False)
        assert _exchange(c) == (200, False)
        assert _exchange(c) == (200, True), "the 3rd answer on a connection must say close"
        assert _closed_by_server(c)
    with socket.create_connection(addr_of(s), timeout=10) as c:  # the count is per connection
        assert _exchange(c) == (200, False)
    assert s.shutdown() == 0


def test_max_connection_age(server_factory: Any) -> None:
    s = server_factory(None, max_connection_age=0.3)
    with socket.create_connection(addr_of(s), timeout=10) as c:
        opened = time.monotonic()
        assert _exchange(c) == (200, False)
        time.sleep(max(0.0, 0.35 - (time.monotonic() - opened)))  # past the age limit
        assert _exchange(c) == (200, True), "a connection older than the limit must close after its answer"
        assert _closed_by_server(c)
    assert s.shutdown() == 0


def test_limits_reject_bad_values() -> None:
    for kw in ({"max_requests_per_connection": -1}, {"max_connection_age": -0.5}, {"drain_delay": -1}):
        try:
            graceserve.Server("127.0.0.1:0", None, **kw)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{kw} accepted")


def test_drain_delay_health_events_and_counters(server_factory: Any) -> None:
    events: List[Tuple[graceserve.EventKind, str]] = []
    s = server_factory(
        None,
        drain_delay=0.8,
        shutdown_timeout=5,
        readiness_path="/readyz",
        liveness_path="/livez",
        on_event=lambda kind, msg: events.append((kind, msg)),
    )
    a = addr_of(s)
    assert request(a, "GET", "/readyz")[::2] == (200, b"ready")
    assert request(a, "GET", "/livez")[::2] == (200, b"alive")
    idle = socket.create_connection(a, timeout=10)
    assert _exchange(idle) == (200, False)
    assert wait_until(lambda: s.stats().connections_idle >= 1, 5), s.stats()
    assert not s.drain_requested

    statuses: List[Any] = []
    t = threading.Thread(target=lambda: statuses.append(s.shutdown()))
    t.start()
    assert wait_until(lambda: s.drain_requested, 5), "drain_requested stays False after shutdown()"
    st, hd, body = request(a, "GET", "/readyz")
    assert (st, body, hd.get("connection")) == (503, b"draining", "close")
    assert request(a, "GET", "/livez")[::2] == (200, b"alive")
    assert _exchange(idle) == (200, True), "the idle connection's next answer must say close"
    assert _closed_by_server(idle)
    idle.close()
    assert t.is_alive(), "shutdown() returned inside the pre-drain delay"
    t.join(10)
    assert statuses == [0], statuses

    st2 = s.stats()  # final counters, still readable after the stop
    assert st2.requests_during_delay >= 3, st2  # /readyz, /livez, GET / on the idle connection
    assert st2.connections_drained >= 3, st2
    assert (st2.connections_cut, st2.connections_active, st2.connections_idle) == (0, 0, 0), st2
    kinds = [k for k, _ in events]
    assert kinds == [graceserve.EventKind.DRAIN_STARTED, graceserve.EventKind.STOPPED], events
    assert events[0][1].startswith("draining (shutdown call): pre-drain delay 800 ms, then deadline 5000 ms;"), events
    assert events[1][1].startswith("stopped gracefully in "), events


def test_connections_cut_counted(server_factory: Any) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(req: graceserve.Request) -> bytes:
        entered.set()
        release.wait(10)
        return b"late"

    s = server_factory(slow)
    result: List[Any] = []
    t = threading.Thread(target=lambda: result.append(_try_request(addr_of(s))), daemon=True)
    t.start()
    assert entered.wait(10)
    assert s.shutdown(timeout=0.2) == 1
    assert s.stop_cause == graceserve.StopCause.FORCED_DEADLINE
    assert s.stats().connections_cut == 1, s.stats()
    t.join(10)
    assert result and result[0] is None, f"the cut request was answered: {result}"
    release.set()
    assert wait_until(lambda: not _trampolines.ACTIVE), "the cut handler returns"


def _try_request(addr: Tuple[str, int]) -> Any:
    try:
        return request(addr, "GET", "/", timeout=10)
    except (OSError, http.client.HTTPException):  # the connection was cut: not answered
        return None
