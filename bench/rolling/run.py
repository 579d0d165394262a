#!/usr/bin/env python3
"""Rolling restart behind HAProxy (issue 10, item 7): requests lost with and without the delay.

For every host in build/bin (ROLLING_HOSTS=c,goref to select; default c,python,go,wasi,goref) and
each pre-drain delay (0 and 1000 ms), ROLLING_RUNS runs (default 3) of tests/rolling/rolling.py:
two instances behind HAProxy (round robin, /readyz checked every 100 ms, fall 3 rise 2, no
retries, no redispatch), 16 keep-alive clients through the proxy, each instance in turn SIGTERMed,
waited for, started again on the same port and waited for until the proxy sees it UP. Each run
prints the failed requests (non-2xx from the proxy, connections it cut, timeouts) out of the total
sent. server-goref is Go's net/http with the pre-drain written by hand, as Kubernetes users do.

Delay 0 is the drain every host had before issue 10 (and the seed's): the listener closes at the
signal while the proxy still routes there for up to fall x interval. The exit status is non-zero
when a run with the delay loses a request or an instance does not exit 0.

Writes the table to bench/out/rolling.txt as well as stdout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "rolling"))

import rolling  # noqa: E402  (puts tests/conformance on the path)

import hostlib  # noqa: E402

DELAYS = (0, 1000)
RUNS = int(os.environ.get("ROLLING_RUNS", "3"))
HOSTS = [h.strip() for h in os.environ.get("ROLLING_HOSTS", "c,python,go,wasi,goref").split(",") if h.strip()]


def main() -> int:
    for h in HOSTS:
        hostlib.require_binary(h)
    results: dict[tuple[str, int], list[rolling.Result]] = {}
    bad: list[str] = []
    started = time.monotonic()
    for host in HOSTS:
        for run in range(RUNS):
            for delay in DELAYS:  # interleaved, so drift on a shared machine hits both alike
                res = rolling.run(host, delay)
                results.setdefault((host, delay), []).append(res)
                print(f"run {run + 1}/{RUNS} {res.line()}", flush=True)
                if delay and res.load.failed:
                    bad.append(f"{host} delay {delay}: {res.load.failed} failed, e.g. {res.load.samples[:3]}")
                for r in res.restarts:
                    if r.exit_status != 0:
                        bad.append(f"{host} delay {delay} {r.server}: exit {r.exit_status}: {r.drain_line}")

    lines = [
        "",
        f"rolling restart behind HAProxy {rolling.haproxy_version()}: 2 instances, 16 keep-alive clients, "
        f"checks on /readyz every {rolling.CHECK_INTER_MS} ms (fall {rolling.FALL}, rise {rolling.RISE}), "
        f"no retries; {RUNS} run(s) per cell",
        f"{'host':<7}{'delay ms':>9}  {'failed per run':<22}{'requests per run':<28}{'stop ms (s1/s2, per run)'}",
    ]
    for host in HOSTS:
        for delay in DELAYS:
            rs = results[(host, delay)]
            failed = ", ".join(str(r.load.failed) for r in rs)
            total = ", ".join(str(r.load.total) for r in rs)
            stops = "; ".join("/".join(f"{x.stop_ms:.0f}" for x in r.restarts) for r in rs)
            lines.append(f"{host:<7}{delay:>9}  {failed:<22}{total:<28}{stops}")
    lines.append("")
    lines.append(f"{len(HOSTS) * RUNS * len(DELAYS)} runs in {time.monotonic() - started:.0f} s")
    if bad:
        lines.append("PROBLEMS: " + "; ".join(bad))
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "out" / "rolling.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
