#!/usr/bin/env python3
"""server-python: the graceserve Python example host (DESIGN.md §5 host contract).

    server-python [--addr HOST:PORT] [--shutdown-timeout-ms N]

    GET  /            -> 200 "OK"
    GET  /sleep?ms=N  -> 200 "slept N" after N ms
    POST /echo        -> 200, body = request body
    anything else     -> 404

Prints "listening on HOST:PORT" once bound. SIGINT/SIGTERM drain gracefully (a second one
forces the stop); the exit status is the outcome: 0 graceful, 1 bind failure or forced drain.
It behaves exactly as examples/c/server.c does, byte for byte on the wire.
"""

from __future__ import annotations

import re
import sys
import time
from typing import List, Optional, Tuple

import graceserve

PROG = "server-python"
USAGE = f"usage: {PROG} [--addr HOST:PORT] [--shutdown-timeout-ms N]\n"
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


def parse_args(argv: List[str]) -> Tuple[Optional[int], Optional[str], Optional[int]]:
    """(exit status if we must stop now, addr, timeout ms); None: the library's default
    (127.0.0.1:8080, 5000 ms, as the host contract says)."""
    addr: Optional[str] = None
    timeout_ms: Optional[int] = None
    i = 0
    while i < len(argv):
        a, val = argv[i], None
        if a in ("--addr", "--shutdown-timeout-ms"):
            if i + 1 >= len(argv):
                sys.stderr.write(f"{PROG}: {a} needs a value\n{USAGE}")
                return 2, addr, timeout_ms
            i += 1
            val = argv[i]
        elif a.startswith("--addr="):
            a, val = "--addr", a[len("--addr="):]
        elif a.startswith("--shutdown-timeout-ms="):
            a, val = "--shutdown-timeout-ms", a[len("--shutdown-timeout-ms="):]
        elif a in ("-h", "--help"):
            sys.stderr.write(USAGE)
            return 0, addr, timeout_ms
        else:
            sys.stderr.write(f"{PROG}: unknown argument {a}\n{USAGE}")
            return 2, addr, timeout_ms
        if a == "--addr":
            addr = val
        else:
            if not _UINT.fullmatch(val) or int(val) > 0xFFFFFFFE:
                sys.stderr.write(f"{PROG}: invalid --shutdown-timeout-ms {val}\n")
                return 2, addr, timeout_ms
            timeout_ms = int(val)
        i += 1
    return None, addr, timeout_ms


def listening(server: graceserve.Server) -> None:
    print(f"listening on {server.addr}", flush=True)


def main(argv: List[str]) -> int:
    stop, addr, timeout_ms = parse_args(argv)
    if stop is not None:
        return stop
    # 512 handler threads, as the C host (the library's default), so that as many /sleep
    # requests run at once; the binding's own default is lower (see graceserve.Server).
    timeout = None if timeout_ms is None else timeout_ms / 1000
    server = graceserve.Server(addr, handle, shutdown_timeout=timeout, handler_threads=512)
    try:
        status = server.serve(ready=listening)
    except graceserve.StartError as e:
        sys.stderr.write(f"{PROG}: {e.message}\n")
        return 1
    if status != 0:
        sys.stderr.write(f"{PROG}: {server.stop_message}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
