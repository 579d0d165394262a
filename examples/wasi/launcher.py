#!/usr/bin/env python3
"""server-wasi: runs the graceserve WASI component under wasmtime so that, from outside, it obeys
the host contract (docs/architecture.md §5 The host contract) exactly like server-c.

    server-wasi [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]

The flags are checked here as server-c checks them (usage errors exit 2, which a WASI command
cannot report itself), then passed to the guest unchanged. WASI has no signals, so
SIGINT/SIGTERM sent to this launcher become one byte each on the guest's stdin (the signal
number), which the guest treats as that signal: the first drains with the signal deadline, the
second forces the stop. The guest's stdout (the `listening on` line) and stderr are the launcher's, and the exit
status is the guest's.

Not on WASI: `--addr systemd|systemd:NAME|fd:N`, NOTIFY_SOCKET and the SIGHUP in-place upgrade of
the native hosts (no descriptors passed into the sandbox, no unix sockets, no processes to start;
see examples/wasi/main.rs). SIGHUP is not handled here: it ends this launcher (status 129), and
the guest drains as for the end of stdin.

wasmtime runs in its own session, so a terminal's Ctrl-C reaches only this launcher (wasmtime
itself would kill the guest at once). If the launcher dies, the guest sees stdin end, which also
counts as a signal: it drains and exits instead of being orphaned.

Environment: WASMTIME (path of the wasmtime CLI; default: `wasmtime` on PATH, then
~/.cargo/bin/wasmtime), SERVER_WASI_WASM (the component; default: server-wasi.wasm next to this
script).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from types import FrameType
from typing import Optional

NAME = "server-wasi"


def find_wasmtime() -> Optional[str]:
    env = os.environ.get("WASMTIME")
    if env:
        return env
    found = shutil.which("wasmtime")
    if found:
        return found
    home = os.path.expanduser("~/.cargo/bin/wasmtime")
    return home if os.access(home, os.X_OK) else None


def find_component() -> str:
    env = os.environ.get("SERVER_WASI_WASM")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.realpath(__file__)), "server-wasi.wasm")


def usage() -> None:
    print(f"usage: {NAME} [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]", file=sys.stderr)


FLAGS = ("--addr", "--shutdown-timeout-ms", "--drain-delay-ms")


def check_args(argv: list[str]) -> Optional[int]:
    """Rejects a bad command line the way server-c does; returns the exit status, or None to go
    on. The guest parses the same flags with the same rules, but a WASI command can only exit
    with success or failure (wasi:cli/exit carries no code), so the usage status 2 and `--help`'s
    0 have to be decided here."""
    i = 0
    while i < len(argv):
        a = argv[i]
        inline = [f for f in FLAGS if a.startswith(f + "=")]
        if a in FLAGS:
            if i + 1 >= len(argv):
                print(f"{NAME}: {a} needs a value", file=sys.stderr)
                usage()
                return 2
            i += 1
            flag, val = a, argv[i]
        elif inline:
            flag, val = inline[0], a[len(inline[0]) + 1 :]
        elif a in ("-h", "--help"):
            usage()
            return 0
        else:
            print(f"{NAME}: unknown argument {a}", file=sys.stderr)
            usage()
            return 2
        if flag != "--addr" and not (val.isascii() and val.isdigit() and int(val) < 2**32 - 1):
            print(f"{NAME}: invalid {flag} {val}", file=sys.stderr)
            return 2
        i += 1
    return None


def main(argv: list[str]) -> int:
    status = check_args(argv)
    if status is not None:
        return status
    wasmtime = find_wasmtime()
    if wasmtime is None:
        print(f"{NAME}: cannot find the wasmtime CLI (set WASMTIME, or run .ci/setup.d/50-wasi.sh)",
              file=sys.stderr)
        return 1
    path = find_component()
    if not os.path.isfile(path):
        print(f"{NAME}: cannot find the component {path} (build it with `make host-wasi`)",
              file=sys.stderr)
        return 1
    # wasmtime caches the compiled component, so only the first start pays for compilation.
    cmd = [wasmtime, "run", "-S", "inherit-network", path, *argv]

    pending: list[int] = []  # signal numbers not yet written to the guest
    child: Optional[subprocess.Popen[bytes]] = None

    def deliver() -> None:
        if child is None or child.stdin is None:
            return
        while pending:
            # Taken before the write, so a signal handled in between (which re-enters here)
            # cannot make one signal two bytes.
            signum = pending.pop(0)
            try:
                # Unbuffered: this also runs inside the signal handler.
                os.write(child.stdin.fileno(), bytes([signum]))
            except (BrokenPipeError, ValueError, OSError):
                return  # the guest is gone (or going): nothing left to stop

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        pending.append(signum)
        deliver()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        print(f"{NAME}: cannot run {wasmtime}: {e}", file=sys.stderr)
        return 1
    deliver()  # a signal that arrived while wasmtime was starting
    rc = child.wait()
    if rc < 0:
        print(f"{NAME}: wasmtime was killed by signal {-rc}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
