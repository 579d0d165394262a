#!/usr/bin/env python3
"""Restarts under load (issue 11): what a restart costs the clients, per host.

Scenarios, each under constant keep-alive load, the event UPGRADE_EVENT_AT seconds (default 1)
into a UPGRADE_SECONDS (default 3) run:
  steady      no restart at all: the latency baseline of the same host in the same run
  restart     restart on an inherited socket, as systemd does it with the README's units: this
              script holds the listening socket (the .socket unit) and starts the host with it as
              descriptor 3 (`--addr systemd:http`, LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES); SIGTERM,
              wait for the exit, start the next process on the same socket
  upgrade     SIGHUP in-place upgrade of a host bound by itself; the old process exits 0 after
              its drain, the new one serves on
  stop-start  the plain way: SIGTERM, wait for the exit, start again binding the same port
              (every host, and the Go net/http reference host as the baseline from outside)
graceserve hosts run with `--drain-delay-ms 500` in every scenario (the README unit's flags);
server-goref has no such flag (net/http's Shutdown closes the listener at once).

Each scenario runs twice: once under wrk (-t2 -c64, count.lua: non-200 answers, wrk's error
classes, latency p50/p99.9/max over the whole run) and once under the suite's classifying client
(tests/conformance/loadclient.py, 16 keep-alive workers: answered / refused / unaccepted / failed,
see that file), which also times each request: `win p99/max` is the latency of the requests sent
in the WINDOW_S seconds (default 2) from the event on -- the spike itself, compared with the same
window of the steady run. `ready` is the time in ms from the signal until the next process is
ready (its ready line; for upgrade the old process's "is ready" line); `none` the time in ms no
process accepted: from the old process's exit to the new one's ready line (0 for upgrade: the new
process accepts before the old one stops).

Hosts: GRACESERVE_HOSTS (default c,python,go; goref always gets steady and stop-start).
Exit status: non-zero when a restart or an upgrade loses a request (exact client: failed or
refused > 0) or a process exits non-zero. Writes the table to bench/out/upgrade.txt too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

import hostlib  # noqa: E402
import loadclient  # noqa: E402
import systemdlib  # noqa: E402
from hostlib import READY_RE  # noqa: E402
from systemdlib import FDNAME, Unit, host_env, listening_socket, start_service, wait_pid  # noqa: E402

SECONDS = float(os.environ.get("UPGRADE_SECONDS", "3"))
EVENT_AT = float(os.environ.get("UPGRADE_EVENT_AT", "1"))
WINDOW_S = float(os.environ.get("UPGRADE_WINDOW_S", "2"))
DELAY_MS = 500
EXACT_WORKERS = 16
LUA = ROOT / "bench" / "upgrade" / "count.lua"
SCENARIOS = ("steady", "restart", "upgrade", "stop-start")
LOSSLESS = ("restart", "upgrade")


class Run:
    """One scenario on one host: the processes it started and what happened to them."""

    def __init__(self, host: str, scenario: str) -> None:
        self.host, self.scenario = host, scenario
        self.binary = str(hostlib.require_binary(host))
        self.units: list[Unit] = []
        self.statuses: list[int] = []
        self.gap_ms: Optional[float] = None  # signal -> the next process is ready
        self.none_ms: Optional[float] = None  # the old process exited -> the next one is ready
        self.flags = [] if host == "goref" else ["--drain-delay-ms", str(DELAY_MS)]
        self.sock = listening_socket() if scenario == "restart" else None
        if self.sock is not None:
            self.last = self._unit(start_service([self.binary, "--addr", f"systemd:{FDNAME}", *self.flags], self.sock))
        else:
            self.last = self._unit(Unit([self.binary, "--addr", "127.0.0.1:0", *self.flags], host_env({})))
        ready = READY_RE.match(self.last.wait_out(1)[0])
        assert ready, "wait_out returns ready lines only"
        self.port = int(ready.group(2))
        self.final_pid = self.last.pid

    def _unit(self, u: Unit) -> Unit:
        self.units.append(u)
        return u

    def event(self) -> None:
        if self.scenario == "steady":
            return
        t0 = time.monotonic()
        old = self.last
        if self.scenario == "upgrade":
            os.kill(old.pid, signal.SIGHUP)
            m = old.wait_err(r"upgrade: the new process \(pid (\d+)\) is ready", 30)
            self.gap_ms = (time.monotonic() - t0) * 1000
            self.none_ms = 0.0  # the new process accepts before the old one stops
            self.final_pid = int(m.group(1))
            self.statuses.append(old.wait(30))
            return
        os.kill(old.pid, signal.SIGTERM)
        self.statuses.append(old.wait(30))
        t_exit = time.monotonic()
        if self.sock is not None:
            new = start_service([self.binary, "--addr", f"systemd:{FDNAME}", *self.flags], self.sock)
        else:
            new = Unit([self.binary, "--addr", f"127.0.0.1:{self.port}", *self.flags], host_env({}))
        self.last = self._unit(new)
        new.wait_out(1)
        self.gap_ms = (time.monotonic() - t0) * 1000
        self.none_ms = (time.monotonic() - t_exit) * 1000
        self.final_pid = new.pid

    def finish(self) -> None:
        os.kill(self.final_pid, signal.SIGTERM)
        if self.final_pid == self.last.pid:
            self.statuses.append(self.last.wait(30))
        else:
            self.statuses.append(wait_pid(self.final_pid, 30))

    def cleanup(self) -> None:
        for u in self.units:
            u.kill()
        systemdlib.reap_orphans()
        if self.sock is not None:
            self.sock.close()


Client = Callable[[int, threading.Event], Callable[[float], dict[str, object]]]


def drive(host: str, scenario: str, client: Client) -> dict[str, object]:
    """Starts the scenario, runs the client for SECONDS with the event at EVENT_AT, stops."""
    run = Run(host, scenario)
    try:
        started = client(run.port, threading.Event())
        t0 = time.monotonic()
        time.sleep(EVENT_AT)
        t_event = time.monotonic()
        run.event()
        time.sleep(max(0.0, SECONDS - (time.monotonic() - t0)))
        row = started(t_event)
        run.finish()
    finally:
        run.cleanup()
    row["gap_ms"] = None if run.gap_ms is None else round(run.gap_ms)
    row["none_ms"] = None if run.none_ms is None else round(run.none_ms)
    row["exits"] = run.statuses
    return row


def wrk_client(port: int, _stop: threading.Event) -> Callable[[float], dict[str, object]]:
    p = subprocess.Popen(["wrk", "-t2", "-c64", f"-d{SECONDS:g}s", "--timeout", "10s", "-s", str(LUA),
                          f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def result(_t_event: float) -> dict[str, object]:
        out, _ = p.communicate(timeout=SECONDS + 30)
        m = re.search(r"^RESULT (.*)$", out, re.M)
        if not m:
            return {"raw": out[-400:]}
        return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}

    return result


def exact_client(port: int, stop: threading.Event) -> Callable[[float], dict[str, object]]:
    counts, threads = loadclient.run(port, "h1", EXACT_WORKERS, stop, samples=True)

    def result(t_event: float) -> dict[str, object]:
        stop.set()
        for t in threads:
            t.join(30)
        window = sorted(lat for sent, lat in counts.samples or [] if t_event <= sent < t_event + WINDOW_S)
        p99 = window[min(len(window) - 1, int(len(window) * 0.99))] if window else None
        return {"answered": counts.answered, "refused": counts.refused, "unaccepted": counts.unaccepted,
                "failed": counts.failed, "examples": counts.failures[:3],
                "win_p99_us": None if p99 is None else int(p99 * 1e6),
                "win_max_us": int(window[-1] * 1e6) if window else None}

    return result


def ms(us: object) -> str:
    return f"{int(us) / 1000:.1f}" if isinstance(us, int) else "?"


def main() -> int:
    raw = os.environ.get("GRACESERVE_HOSTS", "c,python,go")
    hosts = [h for h in raw.split(",") if h and h not in ("wasi", "goref")]
    plan = [(h, s) for h in hosts for s in SCENARIOS] + [("goref", "steady"), ("goref", "stop-start")]
    systemdlib.set_subreaper(True)
    head = (f"restarts under load: event {EVENT_AT:g}s into {SECONDS:g}s runs; --drain-delay-ms {DELAY_MS} (not goref); "
            f"wrk -t2 -c64 (latency ms, whole run); exact = 16 classifying keep-alive workers "
            f"(latency ms of the requests sent in the {WINDOW_S:g}s from the event)")
    cols = (f"{'host':7} {'scenario':11} {'ready':>6} {'none':>5} | {'wrk req':>8} {'non200':>6} {'conn':>5} {'read':>5} "
            f"{'write':>5} {'tmout':>5} {'p50':>5} {'p99.9':>6} {'max':>6} | {'answered':>8} {'refused':>7} "
            f"{'unacc':>5} {'failed':>6} {'win p99':>7} {'win max':>7} | exits")
    lines = [head, "", cols, "-" * len(cols)]
    print("\n".join(lines), flush=True)
    bad = False
    for host, scenario in plan:
        try:
            w = drive(host, scenario, wrk_client)
            e = drive(host, scenario, exact_client)
        except (AssertionError, hostlib.HostMissing, OSError, subprocess.TimeoutExpired) as err:
            lines.append(f"{host:7} {scenario:11} ERROR: {err}")
            print(lines[-1], flush=True)
            bad = True
            continue
        gap = w["gap_ms"] if w["gap_ms"] is not None else "-"
        none = w["none_ms"] if w["none_ms"] is not None else "-"
        line = (f"{host:7} {scenario:11} {gap!s:>6} {none!s:>5} | {w.get('requests', '?')!s:>8} {w.get('non200', '?')!s:>6} "
                f"{w.get('connect', '?')!s:>5} {w.get('read', '?')!s:>5} {w.get('write', '?')!s:>5} "
                f"{w.get('timeout', '?')!s:>5} {ms(w.get('p50')):>5} {ms(w.get('p999')):>6} {ms(w.get('max')):>6} | "
                f"{e['answered']!s:>8} {e['refused']!s:>7} {e['unaccepted']!s:>5} {e['failed']!s:>6} "
                f"{ms(e['win_p99_us']):>7} {ms(e['win_max_us']):>7} | {w['exits']} {e['exits']}")
        lines.append(line)
        if "raw" in w:
            lines.append(f"        wrk output: {w['raw']!r}")
        if e["failed"]:
            lines.append(f"        failures, e.g. {e['examples']}")
        print("\n".join(lines[-1 - ("raw" in w) - bool(e["failed"]):]), flush=True)
        exits = list(w["exits"]) + list(e["exits"])  # type: ignore[call-overload]
        bad = bad or any(x != 0 for x in exits)
        if scenario in LOSSLESS:
            bad = bad or bool(e["failed"]) or bool(e["refused"])
    lines += ["",
              "wrk: write = wrk's reconnects refused by a closed port (a refused non-blocking connect shows as a",
              "     write error; wrk retries at once, so this measures how long the port refused, not requests);",
              "     read = a keep-alive connection closed before its response (closed as idle by a drain).",
              "exact: refused = connect refused (a worker retries after 10 ms); unaccepted = closed before a byte",
              "       of the response (never read by the server, safe to retry); failed = accepted and not",
              "       answered. Goal for restart and upgrade: failed = refused = 0.",
              "RESULT: " + ("FAIL" if bad else "ok: restarts on an inherited socket and upgrades lost no request; "
                                                "every process exited 0")]
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench" / "out" / "upgrade.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n".join(lines[-8:]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
