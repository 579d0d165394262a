"""The proof of issue 10 in `make test`: a rolling restart behind HAProxy loses no request.

One host (server-c; ROLLING_HOSTS=c,go,... to choose others) and one run with the 1 s pre-drain
delay. `make bench-rolling` runs every host with and without the delay and shows the loss
without it.
"""

from __future__ import annotations

import os

import pytest

import rolling  # first: it puts tests/conformance (hostlib) on the path

import hostlib  # noqa: E402

HOSTS = [h.strip() for h in os.environ.get("ROLLING_HOSTS", "c").split(",") if h.strip()]
DELAY_MS = 1000


@pytest.mark.parametrize("host", HOSTS)
def test_rolling_restart_loses_nothing(host):
    if not os.access(rolling.HAPROXY, os.X_OK):
        raise AssertionError(f"{rolling.HAPROXY} not found: run `make setup` (.ci/setup.d/70-rolling.sh installs it)")
    hostlib.require_binary(host)
    res = rolling.run(host, DELAY_MS)
    print(f"\n{res.line()}")
    assert res.load.failed == 0, f"{res.line()}; e.g. {res.load.samples}"
    assert res.load.answered >= 1000, f"too little load to prove anything: {res.line()}"
    assert len(res.restarts) == 2
    for r in res.restarts:
        assert r.exit_status == 0, f"{r.server}: exit {r.exit_status}; stderr {r.drain_line!r}"
        lines = hostlib.drain_lines(host, r.drain_line)
        assert lines.delay_ms == DELAY_MS, f"{r.server}: drain line {r.drain_line!r}"
        assert DELAY_MS - 50 <= r.stop_ms <= DELAY_MS + hostlib.SLACK_MS + 1000, f"{r.server}: stopped {r.stop_ms:.0f} ms after SIGTERM"
        # The readiness path failing is what took the instance out of rotation, during the delay.
        assert r.down_before_exit, f"{r.server}: haproxy never marked it DOWN while it was still running"
        assert r.served_after > 0, f"{r.server}: the restarted instance served nothing through the proxy"


@pytest.mark.parametrize("host", HOSTS[:1])
def test_without_delay_the_proxy_loses_requests(host):
    """The same roll without the delay loses requests (the proxy routes to an instance that has
    stopped listening until its health checks catch up): the harness sees what it must prevent."""
    if not os.access(rolling.HAPROXY, os.X_OK):
        raise AssertionError(f"{rolling.HAPROXY} not found: run `make setup` (.ci/setup.d/70-rolling.sh installs it)")
    res = rolling.run(host, 0)
    print(f"\n{res.line()}")
    assert [r.exit_status for r in res.restarts] == [0, 0]
    assert res.load.failed > 0, f"no request lost without the delay: the harness proves nothing. {res.line()}"
