"""Runs one program built outside the repository and checks what a user would see: it prints
`listening on HOST:PORT` (port 0 asked), GET / answers 200 with the expected body, SIGTERM stops
it with exit status 0 and the port is free again. Also checks which graceserve library the
process mapped (/proc/PID/maps): the one under --lib-under, or none for a static build.

usage: drive.py NAME --body TEXT (--lib-under DIR | --static) [--cwd DIR] -- CMD [ARG...]
Prints one `ok:` line, or the reason and the program's output, and exits 1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, NoReturn

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def fail(name: str, msg: str, proc: "subprocess.Popen[bytes] | None" = None) -> NoReturn:
    print(f"FAIL: {name}: {msg}", file=sys.stderr)
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
        print(f"--- stdout\n{out.decode(errors='replace')}--- stderr\n{err.decode(errors='replace')}", file=sys.stderr)
    sys.exit(1)


def mapped_graceserve(pid: int) -> List[str]:
    paths = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and "libgraceserve" in os.path.basename(parts[5].strip()):
                paths.add(parts[5].strip())
    return sorted(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--body", required=True)
    lib = ap.add_mutually_exclusive_group(required=True)
    lib.add_argument("--lib-under", type=Path)
    lib.add_argument("--static", action="store_true")
    ap.add_argument("--cwd", type=Path, default=Path.cwd())
    if "--" not in sys.argv:
        ap.error("the command to run follows --")
    split = sys.argv.index("--")
    a = ap.parse_args(sys.argv[1:split])
    cmd = sys.argv[split + 1 :]
    if not cmd:
        ap.error("no command after --")
    name = a.name

    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=a.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    if not ready:
        fail(name, f"no `listening on` line within {READY_TIMEOUT:.0f} s", proc)
    line = proc.stdout.readline().decode(errors="replace").strip()
    m = re.fullmatch(r"listening on (127\.0\.0\.1):(\d+)", line)
    if not m or m.group(2) == "0":
        fail(name, f"first stdout line is {line!r}, not `listening on 127.0.0.1:PORT`", proc)
    host, port = m.group(1), int(m.group(2))
    started_ms = (time.monotonic() - t0) * 1000

    libs = mapped_graceserve(proc.pid)
    if a.static:
        if libs:
            fail(name, f"a static build mapped {libs}", proc)
    else:
        under = a.lib_under.resolve()
        if not libs or any(not Path(p).resolve().is_relative_to(under) for p in libs):
            fail(name, f"mapped libgraceserve {libs or 'nowhere'}, expected one under {under}", proc)

    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        status, body = resp.status, resp.read().decode(errors="replace")
    except OSError as e:
        fail(name, f"GET / failed: {e}", proc)
    finally:
        conn.close()
    if status != 200 or body != a.body:
        fail(name, f"GET / -> {status} {body!r}, expected 200 {a.body!r}", proc)

    t1 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(name, f"still running {STOP_TIMEOUT:.0f} s after SIGTERM", proc)
    stop_ms = (time.monotonic() - t1) * 1000
    if code != 0:
        fail(name, f"exit status {code} after SIGTERM, expected 0", proc)
    with socket.socket() as s:
        if s.connect_ex((host, port)) == 0:
            fail(name, f"port {port} still accepts connections after the exit")
    where = "static, no libgraceserve mapped" if a.static else f"library {libs[0]}"
    print(
        f"ok: {name}: ready in {started_ms:.0f} ms ({where}); GET / -> 200 {body!r}; "
        f"SIGTERM -> exit 0 in {stop_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
