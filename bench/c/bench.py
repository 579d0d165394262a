#!/usr/bin/env python3
"""graceserve C-host benchmarks (driven by bench/c/run.sh; not a test).

One interleaved run over graceserve (server-c as shipped, the built-in handler, a C callback
with the default dispatch and with inline_handler) and its peers (a plain tokio+hyper server
built in the same run, libmicrohttpd, CivetWeb, Go net/http):
  1. throughput: wrk (HTTP/1.1 keep-alive) and h2load (h2c) on loopback, server and client
     pinned to different CPUs, ROUNDS interleaved rounds (every server once per round): median
     req/s, p99 (wrk) / mean (h2load) latency, server CPU per request, and ratios to
     libmicrohttpd and to hyper of the same round (median of the per-round ratios);
  2. user-space instructions per request under callgrind (deterministic);
  3. stop: N idle keep-alive connections (each sent one request and read the response), then
     SIGTERM; time until the process has exited (pidfd), exit status and EOF/RST on every idle
     socket checked; the server's CPU time for the stop (perf stat, when perf is installed);
     RSS per idle connection. floor-server (close every socket, exit) is the physical floor.

Every server must answer 200 "OK" and exit 0 on SIGTERM; anything else is reported as an error
and makes the script exit 1. Figures are printed as a table and written to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

# Goals (issue 14), all against libmicrohttpd in the same run.
GOAL_SERVER_C_RPS = 1.0  # server-c as shipped: req/s >= 1.0x libmicrohttpd
GOAL_SERVER_C_CPU = 1.1  # ... and CPU per request <= 1.1x libmicrohttpd's
GOAL_FAST_RPS = 1.1  # built-in and inline: req/s >= 1.1x libmicrohttpd
GOAL_STOP = 0.6  # SIGTERM -> exit with 1000 idle connections <= 0.6x libmicrohttpd's time
TARGET_RSS_PER_CONN = 8 * 1024  # bytes per idle connection (issue 2)


class BenchError(Exception):
    pass


@dataclass
class Variant:
    key: str
    label: str
    argv: list[str]
    path: str = "/"
    h2: bool = True  # serves h2c (prior knowledge)
    graceserve: bool = False


@dataclass
class Sample:
    rps: float
    lat_ms: float
    errors: str = ""
    requests: int = 0
    cpu_us_per_req: float = 0.0  # server process CPU time (user+sys, all threads) per request


@dataclass
class Results:
    wrk: dict[str, list[Sample]] = field(default_factory=dict)
    h2: dict[str, list[Sample]] = field(default_factory=dict)
    insn: dict[str, float] = field(default_factory=dict)
    stop_ms: dict[str, list[float]] = field(default_factory=dict)
    stop_cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    rss_per_conn: dict[str, list[float]] = field(default_factory=dict)
    load: list[str] = field(default_factory=list)


LIVE: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pin_prefix(cpus: str) -> list[str]:
    """taskset for `cpus`; empty means every CPU (children would inherit the driver's own
    affinity, which is the client CPU)."""
    return ["taskset", "-c", cpus or f"0-{(os.cpu_count() or 1) - 1}"]


def start_server(v: Variant, cpus: str, timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], int]:
    argv = pin_prefix(cpus) + v.argv + ["--addr", "127.0.0.1:0"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    LIVE.append(p)
    assert p.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    poller = select.poll()
    poller.register(p.stdout, select.POLLIN)
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(int(left * 1000)):
            stop_quiet(p)
            raise BenchError(f"{v.label}: no 'listening on' line within {timeout:.0f}s")
        chunk = os.read(p.stdout.fileno(), 256)
        if not chunk:
            err = p.stderr.read().decode(errors="replace") if p.stderr else ""
            stop_quiet(p)
            raise BenchError(f"{v.label}: exited before listening (status {p.wait()}): {err.strip()}")
        line += chunk
    m = re.fullmatch(rb"listening on 127\.0\.0\.1:(\d+)\n", line)
    if not m:
        stop_quiet(p)
        raise BenchError(f"{v.label}: unexpected first line {line!r}")
    port = int(m.group(1))
    check_ok(v, port)
    return p, port


def check_ok(v: Variant, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {v.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(b"\r\n\r\nOK"):
        raise BenchError(f"{v.label}: GET {v.path} did not answer 200 'OK': {data[:200]!r}")


def pidfd_wait(p: subprocess.Popen[bytes], timeout: float) -> bool:
    """Waits until the process has exited (without reaping); True if it did in time."""
    fd = os.pidfd_open(p.pid)
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def stop_server(p: subprocess.Popen[bytes], label: str) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        stop_quiet(p)
        raise BenchError(f"{label}: did not exit within 15 s of SIGTERM")
    finally:
        if p in LIVE:
            LIVE.remove(p)
    if status != 0:
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        raise BenchError(f"{label}: exit status {status} after SIGTERM (want 0): {err.strip()}")


def stop_quiet(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.kill()
        p.wait()
    if p in LIVE:
        LIVE.remove(p)


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise BenchError(f"cannot parse latency {value!r}")
    n = float(m.group(1))
    return {"us": n / 1000, "ms": n, "s": n * 1000}[m.group(2)]


def run_wrk(port: int, path: str, args: argparse.Namespace, duration: float) -> Sample:
    cmd = pin_prefix(args.client_cpus) + [
        "wrk", f"-t{args.threads}", f"-c{args.conns}", f"-d{duration:g}s", "--latency",
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"^\s+99%\s+(\S+)", out.stdout, re.M)
    if not rps or not p99:
        raise BenchError(f"cannot parse wrk output:\n{out.stdout}")
    errors = []
    sock = re.search(r"Socket errors: (.*)", out.stdout)
    if sock:
        errors.append("socket errors: " + sock.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if non2xx:
        errors.append(f"{non2xx.group(1)} non-2xx")
    done = re.search(r"(\d+) requests in", out.stdout)
    return Sample(float(rps.group(1)), to_ms(p99.group(1)), "; ".join(errors),
                  int(done.group(1)) if done else 0)


def run_h2load(port: int, path: str, args: argparse.Namespace, duration: float) -> Sample:
    cmd = pin_prefix(args.client_cpus) + [
        "h2load", "-t1", f"-c{args.conns}", f"-m{args.h2_streams}", "-D", str(int(duration)),
        "--warm-up-time=1", f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    rps = re.search(r"finished in \S+, ([\d.]+) req/s", out.stdout)
    req = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
    lat = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out.stdout)
    if out.returncode != 0 or not rps or not req or not lat or not codes:
        raise BenchError(f"h2load failed (status {out.returncode}):\n{out.stdout}{out.stderr}")
    errors = ""
    bad = int(req.group(2)) + int(req.group(3)) + sum(int(codes.group(i)) for i in (2, 3, 4))
    if bad or int(req.group(1)) == 0:
        errors = f"{req.group(1)} ok, {bad} failed/non-2xx"
    return Sample(float(rps.group(1)), to_ms(lat.group(1)), errors, int(req.group(1)))


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def open_idle(port: int, n: int, path: str) -> list[socket.socket]:
    """N keep-alive connections, each having sent one request and read its whole response."""
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        s.sendall(req)
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise BenchError("server closed a connection before answering")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not head.startswith(b"HTTP/1.1 200") or not m:
            raise BenchError(f"unexpected response on an idle-connection setup: {head[:120]!r}")
        while len(body) < int(m.group(1)):
            chunk = s.recv(4096)
            if not chunk:
                raise BenchError("short response body")
            body += chunk
    return socks


def idle_round(v: Variant, cpus: str, key: str, args: argparse.Namespace, res: Results) -> None:
    p, port = start_server(v, cpus)
    socks: list[socket.socket] = []
    perf = None
    try:
        # Warm the allocator and the runtime with one batch first, so the figure is the steady
        # per-connection cost and not one-off growth (arenas, timer wheel, slab pages).
        for s in open_idle(port, args.idle, v.path):
            s.close()
        time.sleep(0.3)
        before = read_rss(p.pid)
        socks = open_idle(port, args.idle, v.path)
        time.sleep(0.3)
        after = read_rss(p.pid)
        res.rss_per_conn.setdefault(key, []).append((after - before) / args.idle)

        # The server's own CPU time for the stop (every thread, until it exits): unlike the
        # wall-clock time, other load on the machine hardly moves it.
        if args.perf:
            perf = subprocess.Popen([args.perf, "stat", "-x,", "-e", "task-clock", "-p", str(p.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
        t0 = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        exited = pidfd_wait(p, 15)
        t1 = time.perf_counter()
        if not exited:
            raise BenchError(f"{v.label}: not exited 15 s after SIGTERM with {args.idle} idle connections")
        status = p.wait()
        LIVE.remove(p)
        if status != 0:
            err = p.stderr.read().decode(errors="replace") if p.stderr else ""
            raise BenchError(f"{v.label}: exit status {status} after SIGTERM (want 0): {err.strip()}")
        if perf is not None:
            _, err = perf.communicate(timeout=10)
            m = re.search(r"^([\d.]+),msec,task-clock", err, re.M)
            res.stop_cpu_ms.setdefault(key, []).append(float(m.group(1)) if m else float("nan"))
            perf = None
        # Every idle connection must have been closed by the server (EOF, or RST).
        for s in socks:
            s.settimeout(5)
            try:
                if s.recv(1) != b"":
                    raise BenchError(f"{v.label}: data on an idle connection after SIGTERM")
            except ConnectionResetError:
                pass
        res.stop_ms.setdefault(key, []).append((t1 - t0) * 1000)
    finally:
        if perf is not None and perf.poll() is None:
            perf.kill()
            perf.wait()
        for s in socks:
            s.close()
        stop_quiet(p)


def callgrind_total(v: Variant, n: int, args: argparse.Namespace) -> int:
    """User-space instructions the server executes from start to exit when it serves n
    HTTP/1.1 keep-alive requests (h2load --h1 -c8) under callgrind; deterministic, unlike time."""
    out = os.path.join(args.out, f"callgrind.{v.key}.{n}.out")
    vg = Variant(v.key, v.label, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + v.argv, v.path)
    p, port = start_server(vg, args.server_cpus, timeout=60)
    try:
        if n:
            r = subprocess.run(pin_prefix(args.client_cpus) + [
                "h2load", "--h1", "-t1", "-c8", f"-n{n}", f"http://127.0.0.1:{port}{v.path}"],
                capture_output=True, text=True, timeout=600)
            ok = re.search(r"(\d+) succeeded", r.stdout)
            if r.returncode != 0 or not ok or int(ok.group(1)) != n:
                raise BenchError(f"{v.label} under callgrind: h2load failed:\n{r.stdout}{r.stderr}")
        stop_server(p, v.label + " (callgrind)")
    finally:
        stop_quiet(p)
    # The file stays, for callgrind_annotate.
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise BenchError(f"no totals in {out}")


def insn_phase(variants: list[Variant], args: argparse.Namespace, res: Results) -> None:
    n1, n2 = 1000, 1000 + args.insn_requests
    for v in variants:
        # The Go runtime and CivetWeb's 128 threads do not run usefully under valgrind.
        if v.key in ("go", "civetweb"):
            continue
        a = callgrind_total(v, n1, args)
        b = callgrind_total(v, n2, args)
        res.insn[v.key] = (b - a) / (n2 - n1)
        log(f"  [insn] {v.key:9} {res.insn[v.key]:8.0f} user instructions/request")


def ratio(samples: list[Sample], base: list[Sample] | None, attr: str) -> float:
    """Median over rounds of variant/base for `attr` in the same round (nan without a base)."""
    if not base:
        return float("nan")
    vals = [getattr(s, attr) / getattr(b, attr) for s, b in zip(samples, base) if getattr(b, attr)]
    return statistics.median(vals) if vals else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build/bin (server-c)")
    ap.add_argument("--bench-server", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--out", required=True, help="directory for the results files")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--h2-streams", type=int, default=10)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--idle-rounds", type=int, default=5)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--insn-requests", type=int, default=10000,
                    help="requests per callgrind measurement (phase 'insn', needs valgrind)")
    ap.add_argument("--mhd", default="", help="libmicrohttpd comparison server (optional)")
    ap.add_argument("--civetweb", default="", help="CivetWeb comparison server (optional)")
    ap.add_argument("--go", default="", help="Go net/http comparison server (optional)")
    ap.add_argument("--floor", default="", help="floor-server, the stop's physical floor (optional)")
    ap.add_argument("--only", default="", help="comma-separated variant keys")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: wrk,h2,insn,idle")
    args = ap.parse_args()
    args.perf = shutil.which("perf") or ""

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.idle + 256
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise BenchError(f"RLIMIT_NOFILE hard limit {hard} < {need} needed for {args.idle} idle connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in parse_cpus(args.client_cpus)})

    bs = args.bench_server
    variants = [
        Variant("server-c", "server-c as shipped", [os.path.join(args.bin, "server-c")], graceserve=True),
        Variant("builtin", "graceserve built-in handler", [bs, "--mode", "builtin"], graceserve=True),
        Variant("pool", "C callback, default dispatch", [bs, "--mode", "pool"], graceserve=True),
        Variant("inline", "C callback, inline_handler", [bs, "--mode", "inline"], graceserve=True),
        Variant("hyper", "plain tokio+hyper", [args.baseline]),
    ]
    if args.mhd:
        variants.append(Variant("mhd", "libmicrohttpd 0.9 epoll pool", [args.mhd], h2=False))
    if args.civetweb:
        variants.append(Variant("civetweb", "CivetWeb 1.15", [args.civetweb], h2=False))
    if args.go:
        variants.append(Variant("go", "Go net/http", [args.go]))
    floor = Variant("floor", "floor (close every socket, exit)", [args.floor], h2=False) if args.floor else None
    if args.only:
        keep = set(args.only.split(","))
        variants = [v for v in variants if v.key in keep or v.key in ("hyper", "mhd")]
    skip = set(filter(None, args.skip.split(",")))
    res = Results()
    res.load.append(loadavg())
    log(f"== load average at the start: {res.load[0]}")

    def load_round(phase: str, r: int) -> None:
        for v in variants:
            if phase == "h2" and not v.h2:
                continue
            p, port = start_server(v, args.server_cpus)
            try:
                if phase == "wrk":
                    run_wrk(port, v.path, args, 1)  # warm-up, not recorded
                # h2load's --warm-up-time second is counted in the CPU time: spread over the
                # requests of the measured period it inflates every variant alike (~1/duration).
                cpu0 = cpu_seconds(p.pid)
                runner = run_wrk if phase == "wrk" else run_h2load
                s = runner(port, v.path, args, args.duration)
                cpu1 = cpu_seconds(p.pid)
                if s.requests:
                    s.cpu_us_per_req = (cpu1 - cpu0) * 1e6 / s.requests
            finally:
                if p.poll() is None:
                    stop_server(p, v.label)
            (res.wrk if phase == "wrk" else res.h2).setdefault(v.key, []).append(s)
            log(f"  [{phase} round {r}] {v.key:9} {s.rps:10.0f} req/s  lat {s.lat_ms:7.3f} ms  "
                f"cpu {s.cpu_us_per_req:6.2f} us/req {s.errors}")

    for phase in ("wrk", "h2"):
        if phase in skip:
            continue
        log(f"== {phase}: {args.rounds} interleaved rounds of {args.duration:g}s, -c{args.conns}")
        for r in range(1, args.rounds + 1):
            load_round(phase, r)
    if "insn" not in skip:
        if shutil.which("valgrind"):
            log("== insn: user-space instructions per request under callgrind (deterministic)")
            insn_phase(variants, args, res)
        else:
            log("bench-c: valgrind not found; skipping the instructions-per-request phase")
    if "idle" not in skip:
        log(f"== idle: {args.idle} keep-alive connections, RSS delta, then SIGTERM -> exit")
        # Not CivetWeb: it serves one connection per thread (128 here), so 1000 idle connections
        # never get past its accept queue.
        idle_variants = ([floor] if floor else []) + [
            v for v in variants if v.key in ("server-c", "builtin", "hyper", "mhd", "go")]
        # Pinned like the load runs (one CPU, so one worker), and with every CPU: the client is
        # idle while the server stops, so the stop may use the whole machine.
        pinnings = [(args.server_cpus, f"CPU {args.server_cpus}")] if args.server_cpus else []
        pinnings.append(("", "all CPUs"))
        for r in range(1, args.idle_rounds + 1):
            for cpus, where in pinnings:
                for v in idle_variants:
                    key = f"{v.key}@{where}"
                    idle_round(v, cpus, key, args, res)
                    cpu = res.stop_cpu_ms.get(key, [float("nan")])[-1]
                    log(f"  [idle round {r}] {key:18} stop {res.stop_ms[key][-1]:7.2f} ms  "
                        f"cpu {cpu:6.2f} ms  rss/conn {res.rss_per_conn[key][-1]:8.0f} B")
        variants_all = variants + ([floor] if floor else [])
    else:
        variants_all = variants
    res.load.append(loadavg())

    report = render(variants_all, res, args)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"bench-c-{stamp}.txt"), "w") as f:
        f.write(report + "\n")
    with open(os.path.join(args.out, f"bench-c-{stamp}.json"), "w") as f:
        json.dump({
            "args": vars(args),
            "load": res.load,
            "wrk": {k: [s.__dict__ for s in v] for k, v in res.wrk.items()},
            "h2load": {k: [s.__dict__ for s in v] for k, v in res.h2.items()},
            "user_instructions_per_request": res.insn,
            "stop_ms": res.stop_ms,
            "stop_cpu_ms": res.stop_cpu_ms,
            "rss_per_conn_bytes": res.rss_per_conn,
        }, f, indent=1)
    errors = [s.errors for d in (res.wrk, res.h2) for v in d.values() for s in v if s.errors]
    if errors:
        log("load-generator errors: " + " | ".join(errors))
        return 1
    return 0


def parse_cpus(spec: str) -> list[int]:
    cpus: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.extend(range(int(a), int(b) + 1))
        else:
            cpus.append(int(part))
    return cpus


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(variants: list[Variant], res: Results, args: argparse.Namespace) -> str:
    med = statistics.median
    lines = [
        f"graceserve C-host benchmark  ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"server on CPU {args.server_cpus or 'any'}, client on CPU {args.client_cpus or 'any'})",
        f"medians of {args.rounds} interleaved rounds; 'x mhd' / 'x hyper' = median over rounds of the "
        "ratio to that server in the same round;",
        "cpu us/req = server process user+sys CPU per request (the figure other load hardly moves)",
        f"load average: {res.load[0]} at the start, {res.load[-1]} at the end",
        "",
    ]
    goals: list[str] = []
    for phase, data, latname, tool, base_key in (
        ("wrk", res.wrk, "p99 ms", f"wrk -t{args.threads} -c{args.conns} -d{args.duration:g}s, HTTP/1.1 keep-alive", "mhd"),
        ("h2", res.h2, "mean ms", f"h2load -t1 -c{args.conns} -m{args.h2_streams} -D {args.duration:g}, h2c "
                                  "(libmicrohttpd and CivetWeb have no HTTP/2)", "go"),
    ):
        if not data:
            continue
        base = data.get(base_key)
        hyper = data.get("hyper")
        lines.append(tool)
        lines.append(f"  {'server':32} {'req/s':>8} {latname:>8} {'cpu us/req':>10} "
                     f"{'req/s x ' + base_key:>12} {'cpu x ' + base_key:>10} {'req/s x hyper':>13} {'cpu x hyper':>11}")
        for v in variants:
            if v.key not in data:
                continue
            s = data[v.key]
            lines.append(
                f"  {v.label:32} {med(x.rps for x in s):8.0f} {med(x.lat_ms for x in s):8.3f} "
                f"{med(x.cpu_us_per_req for x in s):10.2f} {ratio(s, base, 'rps'):11.2f}x "
                f"{ratio(s, base, 'cpu_us_per_req'):9.2f}x {ratio(s, hyper, 'rps'):12.2f}x "
                f"{ratio(s, hyper, 'cpu_us_per_req'):10.2f}x")
        lines.append("")
        if phase == "wrk" and base:
            mhd_p99 = med(x.lat_ms for x in base)
            if "server-c" in data:
                s = data["server-c"]
                rr, cr = ratio(s, base, "rps"), ratio(s, base, "cpu_us_per_req")
                goals.append(f"server-c as shipped >= {GOAL_SERVER_C_RPS}x libmicrohttpd req/s: {rr:.2f}x, "
                             f"{verdict(rr >= GOAL_SERVER_C_RPS)}; CPU/request <= {GOAL_SERVER_C_CPU}x: "
                             f"{cr:.2f}x, {verdict(cr <= GOAL_SERVER_C_CPU)}")
            for key in ("builtin", "inline"):
                if key in data:
                    rr = ratio(data[key], base, "rps")
                    goals.append(f"{key} >= {GOAL_FAST_RPS}x libmicrohttpd req/s: {rr:.2f}x, "
                                 f"{verdict(rr >= GOAL_FAST_RPS)} (CPU/request "
                                 f"{ratio(data[key], base, 'cpu_us_per_req'):.2f}x)")
            for key in ("server-c", "builtin", "pool", "inline"):
                if key in data:
                    p99 = med(x.lat_ms for x in data[key])
                    goals.append(f"{key} p99 no worse than libmicrohttpd's ({mhd_p99:.2f} ms): {p99:.2f} ms, "
                                 f"{verdict(p99 <= mhd_p99)}")
    if res.insn:
        base_i = res.insn.get("hyper")
        lines.append("user-space instructions per request (callgrind, h2load --h1 -c8; kernel work not counted)")
        lines.append(f"  {'server':32} {'instr/req':>10} {'- hyper':>9} {'x hyper':>8}")
        for v in variants:
            if v.key in res.insn:
                i = res.insn[v.key]
                lines.append(f"  {v.label:32} {i:10.0f} {i - base_i if base_i else float('nan'):+9.0f} "
                             f"{i / base_i if base_i else float('nan'):7.2f}x")
        lines.append("")
    if res.stop_ms:
        lines.append(f"{args.idle} idle keep-alive connections: SIGTERM -> exit (median of {args.idle_rounds}), "
                     "the server's CPU time for it (perf stat), RSS per idle connection")
        lines.append(f"  {'server':32} {'on':>8} {'stop ms':>8} {'min-max':>13} {'x mhd':>6} {'x floor':>7} "
                     f"{'cpu ms':>7} {'RSS/conn':>9}")
        wheres = sorted({k.split("@")[1] for k in res.stop_ms}, key=lambda w: w != f"CPU {args.server_cpus}")
        for where in wheres:
            mhd = res.stop_ms.get(f"mhd@{where}")
            fl = res.stop_ms.get(f"floor@{where}")
            for v in variants:
                key = f"{v.key}@{where}"
                if key not in res.stop_ms:
                    continue
                x = res.stop_ms[key]
                cpu = res.stop_cpu_ms.get(key)
                lines.append(
                    f"  {v.label:32} {where:>8} {med(x):8.2f} {min(x):6.1f}-{max(x):<6.1f} "
                    f"{med(x) / med(mhd) if mhd else float('nan'):5.2f}x {med(x) / med(fl) if fl else float('nan'):6.2f}x "
                    f"{med(cpu) if cpu else float('nan'):7.2f} {med(res.rss_per_conn[key]) / 1024:5.2f} KiB")
                if v.key == "server-c" and mhd:
                    peers = [f"{p}@{where}" for p in ("mhd", "hyper", "go") if f"{p}@{where}" in res.stop_ms]
                    fastest = min(med(res.stop_ms[p]) for p in peers)
                    goals.append(f"stop ({where}) <= {GOAL_STOP}x libmicrohttpd: {med(x) / med(mhd):.2f}x "
                                 f"({med(x):.1f} vs {med(mhd):.1f} ms), {verdict(med(x) <= GOAL_STOP * med(mhd))}; "
                                 f"below every peer: {verdict(med(x) < fastest)}")
                if v.graceserve:
                    rss = med(res.rss_per_conn[key])
                    goals.append(f"{v.key} ({where}) <= 8 KiB RSS per idle connection: {rss / 1024:.2f} KiB, "
                                 f"{verdict(rss <= TARGET_RSS_PER_CONN)}")
        lines.append("")
    if goals:
        lines.append("goals (issue 14, same run)")
        lines.extend(f"  {g}" for g in goals)
    return "\n".join(lines)


def on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background (SIG_IGN)
    code = 1
    try:
        code = main()
    except BenchError as e:
        log(f"bench-c: {e}")
    except KeyboardInterrupt:
        log("bench-c: interrupted")
        code = 130
    finally:
        for proc in list(LIVE):
            stop_quiet(proc)
    sys.exit(code)
