#!/usr/bin/env python3
"""bench/python/bench.py — a trivial Python handler through graceserve vs Python's
http.server.ThreadingHTTPServer vs uvicorn, and the framework table (the same Flask app under
graceserve vs gunicorn vs granian, the same Starlette app under graceserve vs uvicorn vs
granian), same client (wrk), same run (`make bench-python`).

Each server answers GET / with "hello". Rounds are interleaved (every server once per round)
and the medians reported, so a slow moment of the shared machine hits every server alike. The
server runs on BENCH_SERVER_CPUS, wrk on BENCH_CLIENT_CPUS (taskset). Server CPU time per
request (from /proc) is reported beside req/s: it does not depend on what else the machine runs.

Also measured, for "where the time goes": the same graceserve server with the library's
built-in handler (no Python per request), with thread states not pinned, with inline handlers,
and microbenchmarks of the ctypes crossings.

The framework table runs unpinned by default (server and wrk share every CPU, as on a small
VM); BENCH_WEB_PIN=1 pins it like the first table. Its server CPU per request sums the whole
process tree (gunicorn's and granian's workers are child processes); for graceserve it is also
split between the library's threads (Rust: I/O, HTTP, handler pool) and Python's.

Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (5 s), BENCH_WARMUP (1 s), BENCH_CONNS
(64), BENCH_SERVER_CPUS (0), BENCH_CLIENT_CPUS (1), BENCH_ONLY (comma-separated keys),
BENCH_WEB_PIN (unset), BENCH_UVICORN_PYTHON / BENCH_VENV_PYTHON (the venv python with the
other servers and the frameworks; run.sh sets them), BENCH_RESULTS (a path: also write the
Markdown results there).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PKG = ROOT / "bindings" / "python"
LIB = Path(os.environ.get("GRACESERVE_LIBRARY", ROOT / "target" / "release" / "libgraceserve.so"))
OUT = ROOT / "bench" / "out"

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "1"))
CONNS = int(os.environ.get("BENCH_CONNS", "64"))
SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "0")
CLIENT_CPUS = os.environ.get("BENCH_CLIENT_CPUS", "1")
ONLY = [k for k in os.environ.get("BENCH_ONLY", "").split(",") if k]
UVICORN_PY = os.environ.get("BENCH_UVICORN_PYTHON", "")
VENV_PY = os.environ.get("BENCH_VENV_PYTHON", "")
WEB_PIN = os.environ.get("BENCH_WEB_PIN", "") not in ("", "0")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    key: str
    label: str
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    cwd: Path = HERE
    pinned: bool = True
    rps: List[float] = field(default_factory=list)
    io_us: List[float] = field(default_factory=list)
    handler_us: List[float] = field(default_factory=list)
    py_us: List[float] = field(default_factory=list)
    cpu_us: List[float] = field(default_factory=list)
    p99_ms: List[float] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    def med(self, xs: List[float]) -> float:
        return statistics.median(xs) if xs else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def servers() -> List[Server]:
    py = sys.executable
    apps = str(HERE / "apps.py")
    gs_env = {"PYTHONPATH": str(PKG), "GRACESERVE_LIBRARY": str(LIB)}
    out = [
        Server("gs", f"graceserve, Python handler (defaults: handler_threads={min(32, (os.cpu_count() or 1) + 4)})", [py, apps, "gs"], gs_env),
        Server("gs-inline", "graceserve, Python handler, inline=True", [py, apps, "gs-inline"], gs_env),
        Server(
            "gs-unpinned",
            "graceserve, Python handler, thread states not pinned",
            [py, apps, "gs"],
            {**gs_env, "GRACESERVE_PIN_THREADSTATE": "0"},
        ),
        Server(
            "gs-ht32",
            "graceserve, Python handler, handler_threads=32",
            [py, apps, "gs"],
            {**gs_env, "GS_HANDLER_THREADS": "32"},
        ),
        Server(
            "gs-ht512",
            "graceserve, Python handler, handler_threads=512 (the C default)",
            [py, apps, "gs"],
            {**gs_env, "GS_HANDLER_THREADS": "512"},
        ),
        Server("gs-builtin", "graceserve, built-in handler (no Python per request)", [py, apps, "gs-builtin"], gs_env),
        Server("ths", "http.server.ThreadingHTTPServer, stock (HTTP/1.0)", [py, apps, "ths"]),
        Server("ths-ka", "http.server.ThreadingHTTPServer, HTTP/1.1 keep-alive + TCP_NODELAY", [py, apps, "ths-keepalive"]),
    ]
    if UVICORN_PY:
        out.append(
            Server(
                "uvicorn",
                "uvicorn (uvloop + httptools, 1 worker)",
                [UVICORN_PY, "-m", "uvicorn", "apps:asgi_app", "--loop", "uvloop", "--http", "httptools",
                 "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port"],
            )
        )
    return [s for s in out if not ONLY or s.key in ONLY]


def web_servers() -> List[Server]:
    """The framework table: every server on the venv's interpreter, unpinned unless asked."""
    if not VENV_PY:
        return []
    gs_env = {"PYTHONPATH": str(PKG), "GRACESERVE_LIBRARY": str(LIB)}
    gs = [VENV_PY, "-m", "graceserve"]
    addr = ["--addr", "127.0.0.1:{port}"]
    granian = [VENV_PY, "-m", "granian", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    gunicorn = [VENV_PY, "-m", "gunicorn", "-k", "gthread", "-b", "127.0.0.1:{port}", "--log-level", "warning"]
    out = [
        Server("web-gs-flask", "Flask: graceserve (`python -m graceserve`, defaults)", gs + ["webapps:flask_app"] + addr, gs_env),
        Server("web-gunicorn", "Flask: gunicorn gthread, 1 worker x 8 threads", gunicorn + ["-w", "1", "--threads", "8", "webapps:flask_app"]),
        Server("web-gunicorn-w2", "Flask: gunicorn gthread, 2 workers x 4 threads", gunicorn + ["-w", "2", "--threads", "4", "webapps:flask_app"]),
        Server("web-granian-wsgi", "Flask: granian --interface wsgi (1 worker)", granian + ["--interface", "wsgi", "webapps:flask_app"]),
        Server("web-gs-starlette", "Starlette: graceserve (`python -m graceserve`, defaults)", gs + ["webapps:starlette_app"] + addr, gs_env),
        Server(
            "web-gs-starlette-uvloop",
            "Starlette: graceserve, `--loop uvloop`",
            gs + ["webapps:starlette_app", "--loop", "uvloop"] + addr,
            gs_env,
        ),
        Server(
            "web-uvicorn",
            "Starlette: uvicorn (uvloop + httptools, 1 worker)",
            [VENV_PY, "-m", "uvicorn", "webapps:starlette_app", "--loop", "uvloop", "--http", "httptools",
             "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", "{port}"],
        ),
        Server("web-granian-asgi", "Starlette: granian --interface asgi (1 worker)", granian + ["--interface", "asgi", "webapps:starlette_app"]),
        Server("web-gs-bare", "bare ASGI app: graceserve (defaults)", gs + ["webapps:bare_asgi"] + addr, gs_env),
        Server(
            "web-uvicorn-bare",
            "bare ASGI app: uvicorn (uvloop + httptools)",
            [VENV_PY, "-m", "uvicorn", "webapps:bare_asgi", "--loop", "uvloop", "--http", "httptools",
             "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", "{port}"],
        ),
        Server("web-granian-bare", "bare ASGI app: granian --interface asgi", granian + ["--interface", "asgi", "webapps:bare_asgi"]),
    ]
    for srv in out:
        srv.pinned = WEB_PIN
    return [srv for srv in out if not ONLY or srv.key in ONLY]


def taskset(cpus: str) -> List[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def proc_ticks(pid: int) -> int:
    """CPU ticks of the process, its live threads included (dead threads are in the process
    totals, which /proc/PID/stat also has)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def tree(pid: int) -> List[int]:
    """pid and its descendants (gunicorn's and granian's workers)."""
    parents: Dict[int, List[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def tree_ticks(pids: List[int]) -> int:
    total = 0
    for p in pids:
        try:
            total += proc_ticks(p)
        except OSError:
            pass
    return total


def thread_ticks(pid: int) -> Dict[str, int]:
    """CPU ticks of a process's live threads: the library's I/O threads (named graceserve),
    its handler threads (graceserve-handler-N: WSGI applications run there) and Python's own
    (the ASGI event loop)."""
    out = {"io": 0, "handler": 0, "py": 0}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        kind = "io" if comm == "graceserve" else "handler" if comm.startswith("graceserve") else "py"
        out[kind] += int(fields[11]) + int(fields[12])
    return out


def wait_ready(p: "subprocess.Popen[bytes]", port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"server exited with {p.returncode}: {p.stderr.read().decode() if p.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def wrk(port: int, seconds: int, pinned: bool = True) -> Dict[str, float]:
    cmd = (taskset(CLIENT_CPUS) if pinned else []) + ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    res: Dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    if m:
        res["p99_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["sockerr"] = float(sum(int(g) for g in m.groups())) if m else 0.0
    return res


def run_one(s: Server) -> None:
    port = free_port()
    if any("{port}" in a for a in s.argv):
        argv = [a.replace("{port}", str(port)) for a in s.argv]
    else:
        argv = s.argv + [str(port)]
    env = {**os.environ, **s.env}
    pin = taskset(SERVER_CPUS) if s.pinned else []
    p = subprocess.Popen(
        pin + argv, cwd=s.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        wait_ready(p, port)
        if WARMUP:
            wrk(port, WARMUP, s.pinned)
        pids = tree(p.pid)
        t0, th0 = tree_ticks(pids), thread_ticks(p.pid)
        r = wrk(port, DURATION, s.pinned)
        t1, th1 = tree_ticks(pids), thread_ticks(p.pid)
        s.rps.append(r["rps"])
        if r["requests"]:
            per = TICKS * r["requests"] / 1e6
            s.cpu_us.append((t1 - t0) / per)
            if s.key.startswith("web-gs") and "flask" not in s.key:
                s.io_us.append((th1["io"] - th0["io"]) / per)
                s.handler_us.append((th1["handler"] - th0["handler"]) / per)
                s.py_us.append((th1["py"] - th0["py"]) / per)
        if "p99_ms" in r:
            s.p99_ms.append(r["p99_ms"])
        if r["non2xx"] or r["sockerr"]:
            s.errors.append(f"non-2xx {int(r['non2xx'])}, socket errors {int(r['sockerr'])}")
        print(f"  {s.key:24} {r['rps']:>10.0f} req/s  cpu {s.cpu_us[-1] if s.cpu_us else float('nan'):6.1f} us/req", file=sys.stderr)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the whole tree (gunicorn's, granian's workers)
            p.wait()


def micro() -> Dict[str, float]:
    """ctypes crossings, measured in this process."""
    sys.path.insert(0, str(PKG))
    os.environ.setdefault("GRACESERVE_LIBRARY", str(LIB))
    import graceserve  # noqa: F401
    from graceserve import _native, _request

    lib = _native.LIB
    n = 300_000
    f = lib.server_abi_version
    t = time.perf_counter()
    for _ in range(n):
        f()
    call_ns = (time.perf_counter() - t) / n * 1e9

    libc = ctypes.CDLL(None)
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    calls = [0]

    def cmp(a: Optional[int], b: Optional[int]) -> int:
        calls[0] += 1
        return 0

    c = CMP(cmp)
    arr = (ctypes.c_int * 20000)()
    libc.qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, CMP]
    t = time.perf_counter()
    libc.qsort(arr, len(arr), ctypes.sizeof(ctypes.c_int), c)
    cb_ns = (time.perf_counter() - t) / max(calls[0], 1) * 1e9

    t = time.perf_counter()
    for _ in range(100_000):
        r = _request.Request(1)
        r._ptr = None
    req_ns = (time.perf_counter() - t) / 100_000 * 1e9
    t = time.perf_counter()
    for _ in range(100_000):
        _request.prepare(b"hello")
    prep_ns = (time.perf_counter() - t) / 100_000 * 1e9
    return {
        "ctypes_call_ns": call_ns,
        "ctypes_callback_ns": cb_ns,
        "request_object_ns": req_ns,
        "prepare_bytes_ns": prep_ns,
    }


def main() -> int:
    if not shutil.which("wrk"):
        print("bench-python: wrk is not installed", file=sys.stderr)
        return 1
    all_servers = servers()
    web = web_servers()
    print(
        f"== bench-python: {ROUNDS} rounds x {DURATION}s, wrk -t1 -c{CONNS}, server on CPU {SERVER_CPUS}, "
        f"wrk on CPU {CLIENT_CPUS}; framework table {'pinned the same way' if WEB_PIN else 'unpinned'}",
        file=sys.stderr,
    )
    for rnd in range(ROUNDS):
        print(f"-- round {rnd + 1}/{ROUNDS}", file=sys.stderr)
        for s in all_servers + web:
            run_one(s)
    m = micro() if all_servers else {}
    by = {s.key: s for s in all_servers + web}

    def ratio(a: str, b: str, what: str = "rps") -> Optional[float]:
        if a not in by or b not in by:
            return None
        if what == "rps":
            return by[a].med(by[a].rps) / by[b].med(by[b].rps)
        return by[b].med(by[b].cpu_us) / by[a].med(by[a].cpu_us)  # higher is better

    lines = []
    if all_servers:
        lines.append("| server (GET / -> \"hello\", trivial handler) | req/s | p99 ms | server CPU us/req |")
        lines.append("|---|---:|---:|---:|")
    for s in all_servers:
        lines.append(f"| {s.label} | {s.med(s.rps):.0f} | {s.med(s.p99_ms):.2f} | {s.med(s.cpu_us):.1f} |")
    if web:
        if lines:
            lines.append("")
        pin = "server and wrk pinned apart" if WEB_PIN else "unpinned: server and wrk share the CPUs"
        lines.append(
            f"| framework app, GET / -> \"hello\" ({pin}) | req/s | p99 ms | server CPU us/req "
            "| ASGI on graceserve: library threads + Python threads |"
        )
        lines.append("|---|---:|---:|---:|---|")
        for s in web:
            lib = s.med(s.io_us) + s.med(s.handler_us) if s.io_us else 0.0
            split = f"{lib:.1f} + {s.med(s.py_us):.1f}" if s.io_us else ""
            lines.append(f"| {s.label} | {s.med(s.rps):.0f} | {s.med(s.p99_ms):.2f} | {s.med(s.cpu_us):.1f} | {split} |")
    goals = []
    for key, label in (("gs", "graceserve (defaults)"), ("gs-inline", "graceserve inline=True")):
        for base, blabel, goal in (
            ("ths", "ThreadingHTTPServer (stock)", 5.0),
            ("ths-ka", "ThreadingHTTPServer (keep-alive)", 5.0),
            ("uvicorn", "uvicorn", 1.0),
        ):
            rr, rc = ratio(key, base), ratio(key, base, "cpu")
            if rr is None or rc is None:
                continue
            verdict = "met" if rr >= goal else "NOT met"
            goals.append(
                f"- {label} vs {blabel}: **{rr:.2f}x** req/s (goal >= {goal:g}x: **{verdict}**); "
                f"{rc:.2f}x less CPU per request"
            )
    for key, base, blabel, goal in (
        ("web-gs-flask", "web-gunicorn", "Flask: graceserve vs gunicorn gthread 1x8", 1.0),
        ("web-gs-flask", "web-gunicorn-w2", "Flask: graceserve vs gunicorn gthread 2x4", 1.0),
        ("web-gs-flask", "web-granian-wsgi", "Flask: graceserve vs granian", None),
        ("web-gs-starlette", "web-uvicorn", "Starlette: graceserve vs uvicorn", 1.0),
        ("web-gs-starlette", "web-granian-asgi", "Starlette: graceserve vs granian", None),
        ("web-gs-starlette-uvloop", "web-uvicorn", "Starlette: graceserve --loop uvloop vs uvicorn", None),
        ("web-gs-bare", "web-uvicorn-bare", "bare ASGI app: graceserve vs uvicorn", 1.0),
        ("web-gs-bare", "web-granian-bare", "bare ASGI app: graceserve vs granian", None),
    ):
        rr, rc = ratio(key, base), ratio(key, base, "cpu")
        if rr is None or rc is None:
            continue
        verdict = f" (goal >= {goal:g}x: **{'met' if rr >= goal else 'NOT met'}**)" if goal else ""
        per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(by[key].rps, by[base].rps))
        goals.append(
            f"- {blabel}: **{rr:.2f}x** req/s{verdict}; {rc:.2f}x less CPU per request; "
            f"req/s ratio per round: {per_round}"
        )
    py_cost = None
    if "gs" in by and "gs-builtin" in by:
        py_cost = by["gs"].med(by["gs"].cpu_us) - by["gs-builtin"].med(by["gs-builtin"].cpu_us)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": ROUNDS,
        "duration_s": DURATION,
        "conns": CONNS,
        "servers": {
            s.key: {
                "label": s.label, "rps": s.rps, "cpu_us": s.cpu_us, "p99_ms": s.p99_ms, "errors": s.errors,
                "io_us": s.io_us, "handler_us": s.handler_us, "py_us": s.py_us, "pinned": s.pinned,
            }
            for s in all_servers + web
        },
        "micro": m,
        "python_path_cpu_us": py_cost,
    }
    text = "\n".join(lines) + "\n\n" + "\n".join(goals) + "\n"
    if m:
        text += "\nctypes crossings (this machine): foreign call {ctypes_call_ns:.0f} ns; C->Python callback on a " \
                "Python thread {ctypes_callback_ns:.0f} ns; Request object {request_object_ns:.0f} ns; " \
                "prepare(bytes) {prepare_bytes_ns:.0f} ns\n".format(**m)
    if py_cost is not None:
        text += f"Python per-request path (graceserve CPU/req minus the built-in handler's): {py_cost:.1f} us\n"
    for s in all_servers + web:
        if s.errors:
            text += f"note: {s.label}: {'; '.join(s.errors)}\n"
    print()
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"bench-python-{stamp}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"bench-python-{stamp}.txt").write_text(text)
    dest = os.environ.get("BENCH_RESULTS")
    if dest:
        Path(dest).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
