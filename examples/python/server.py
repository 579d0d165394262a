#!/usr/bin/env python3
"""server-python: the graceserve Python example host (docs/architecture.md §5 The host contract).

    server-python [--addr HOST:PORT|systemd|systemd:NAME|fd:N] [--shutdown-timeout-ms N]
                  [--drain-delay-ms N]

    GET  /            -> 200 "OK"
    GET  /sleep?ms=N  -> 200 "slept N" after N ms
    POST /echo        -> 200, body = request body
    GET  /readyz      -> 200 "ready"; 503 "draining" once a drain is requested (the library)
    GET  /livez       -> 200 "alive" until the server stops (the library)
    anything else     -> 404

Prints "listening on HOST:PORT" once bound. SIGINT/SIGTERM drain gracefully after the
pre-drain delay (a second one forces the stop); SIGHUP upgrades in place (a fresh copy of this
program with the same flags takes over the listener; this one then drains and exits 0, or keeps
serving and says why); with NOTIFY_SOCKET set the library speaks systemd's protocol; the library's lifecycle events (drain started,
stopped) go to stderr, one line each. The exit status is the outcome: 0 graceful, 1 bind
failure or forced drain.
It behaves exactly as examples/c/server.c does, byte for byte on the wire.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Dict, List, Optional, Tuple

import graceserve

PROG = "server-python"
USAGE = f"usage: {PROG} [--addr HOST:PORT|systemd|systemd:NAME|fd:N] [--shutdown-timeout-ms N] [--drain-delay-ms N]\n"
MS_FLAGS = ("--shutdown-timeout-ms", "--drain-delay-ms")
TEXT = {"content-type": "text/plain; charset=utf-8"}
# strtol/strtoul accept leading white space and a sign; so do we, to match the C host.
_INT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")
_UINT = re.compile(r"[ \t\n\v\f\r]*\+?[0-9]+")


def query_ms(query: str) -> int:
    """The value of "ms" in a raw query string; -1 when absent or invalid (as the C host)."""
    for param in query.split("&"):
        if param.startswith("ms="):
            value = param[3:]
            if not _INT.fullmatch(value):
                return -1
            ms = int(value)
            return ms if 0 <= ms <= 3_600_000 else -1
    return -1


def handle(req: graceserve.Request) -> graceserve.HandlerResult:
    method, path = req.method, req.raw_path
    if path == "/" and method == "GET":
        return 200, TEXT, b"OK"
    if path == "/sleep" and method == "GET":
        ms = query_ms(req.query_string)
        if ms < 0:
            return 400, TEXT, b"bad ms\n"
        time.sleep(ms / 1000)
        return 200, TEXT, f"slept {ms}".encode()
    if path == "/echo" and method == "POST":
        return req.body
    return 404, TEXT, b"not found\n"


def parse_args(argv: List[str]) -> Tuple[Optional[int], Optional[str], Dict[str, int]]:
    """(exit status if we must stop now, addr, {ms flag: value}); absent: the library's
    default (127.0.0.1:8080, 5000 ms, no delay, as the host contract says)."""
    addr: Optional[str] = None
    ms: Dict[str, int] = {}
    i = 0
    while i < len(argv):
        a, val = argv[i], None
        inline = [f for f in ("--addr",) + MS_FLAGS if a.startswith(f + "=")]
        if a in ("--addr",) + MS_FLAGS:
            if i + 1 >= len(argv):
                sys.stderr.write(f"{PROG}: {a} needs a value\n{USAGE}")
                return 2, addr, ms
            i += 1
            val = argv[i]
        elif inline:
            a, val = inline[0], a[len(inline[0]) + 1 :]
        elif a in ("-h", "--help"):
            sys.stderr.write(USAGE)
            return 0, addr, ms
        else:
            sys.stderr.write(f"{PROG}: unknown argument {a}\n{USAGE}")
            return 2, addr, ms
        if a == "--addr":
            addr = val
        else:
            if not _UINT.fullmatch(val) or int(val) > 0xFFFFFFFE:
                sys.stderr.write(f"{PROG}: invalid {a} {val}\n")
                return 2, addr, ms
            ms[a] = int(val)
        i += 1
    return None, addr, ms


def on_event(kind: graceserve.EventKind, message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def listening(server: graceserve.Server) -> None:
    print(f"listening on {server.addr}", flush=True)


def main(argv: List[str]) -> int:
    stop, addr, ms = parse_args(argv)
    if stop is not None:
        return stop
    timeout_ms = ms.get("--shutdown-timeout-ms")
    delay_ms = ms.get("--drain-delay-ms")
    # 512 handler threads, as the C host (the library's default), so that as many /sleep
    # requests run at once; the binding's own default is lower (see graceserve.Server).
    server = graceserve.Server(
        addr,
        handle,
        shutdown_timeout=None if timeout_ms is None else timeout_ms / 1000,
        drain_delay=None if delay_ms is None else delay_ms / 1000,
        handler_threads=512,
        readiness_path="/readyz",
        liveness_path="/livez",
        on_event=on_event,
        upgrade_on_sighup=True,
    )
    try:
        # The outcome is printed by on_event (EventKind.STOPPED).
        return server.serve(ready=listening)
    except graceserve.StartError as e:
        sys.stderr.write(f"{PROG}: {e.message}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
