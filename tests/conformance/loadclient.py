"""Closed-loop load clients that classify every request they send across a drain.

A request ends in exactly one class:
  answered       a complete, correct response
  refused        the TCP connect was refused: the listener was already closed (never accepted),
                 or it closed during the handshake (the connect itself reset; nothing was sent)
  unaccepted     HTTP/1.1: the connection closed or reset before a single byte of the response,
                 i.e. the server never read the request (a keep-alive connection closed as idle,
                 or a connection still in the kernel backlog when the listener closed) -- safe to
                 retry per RFC 9112 §9.3.1; HTTP/2: the stream id is above the final GOAWAY's
                 last_stream_id, or the stream was reset with REFUSED_STREAM (RFC 9113 §6.8)
  failed         anything else: a partial or wrong response, a reset after the response began,
                 an HTTP/2 stream at or below last_stream_id that never completed, a timeout
The goal of the issue is failed == 0.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from h2client import H2Client
from hostlib import Closed, read_response, request_bytes

REFUSED_STREAM = 0x7


@dataclass
class Counts:
    sent: int = 0
    answered: int = 0
    refused: int = 0
    unaccepted: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (sent at, latency) of each answered HTTP/1.1 request, monotonic seconds, when not None
    # (bench/upgrade looks at the latency around a restart).
    samples: Optional[list[tuple[float, float]]] = None

    def add(self, kind: str, detail: str = "", sent_at: Optional[float] = None) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if kind == "failed" and len(self.failures) < 20:
                self.failures.append(detail)
            if kind == "answered" and sent_at is not None and self.samples is not None:
                self.samples.append((sent_at, time.monotonic() - sent_at))

    def line(self) -> str:
        return (f"sent={self.sent} answered={self.answered} refused={self.refused} "
                f"unaccepted={self.unaccepted} failed={self.failed}")


def _h1_worker(port: int, stop: threading.Event, counts: Counts, idx: int) -> None:
    n = 0
    sock: Optional[socket.socket] = None
    while not stop.is_set():
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as e:
                # A reset of the connect itself: the listener closed while the handshake was
                # under way (nothing was sent yet), as a refusal a moment later would say.
                if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                    counts.add("refused")
                    time.sleep(0.01)
                    continue
                counts.add("failed", f"connect: {e!r}")
                continue
        n += 1
        body = f"w{idx}-r{n}".encode()
        if n % 2:
            req, want = request_bytes("POST", "/echo", body), body
        else:
            req, want = request_bytes("GET", "/"), b"OK"
        with counts.lock:
            counts.sent += 1
        sent_at = time.monotonic()
        try:
            sock.sendall(req)
            r = read_response(sock, 10)
        except Closed as e:
            counts.add("unaccepted" if not e.got else "failed", f"closed: {e}")
            sock.close()
            sock = None
            continue
        except (BrokenPipeError, ConnectionResetError) as e:
            counts.add("unaccepted", repr(e))  # the write failed: the server never had it
            sock.close()
            sock = None
            continue
        except (OSError, TimeoutError, ValueError) as e:
            counts.add("failed", repr(e))
            sock.close()
            sock = None
            continue
        if r.status == 200 and r.body == want:
            counts.add("answered", sent_at=sent_at)
        else:
            counts.add("failed", f"status {r.status} body {r.body[:60]!r}, want {want!r}")
        if r.headers.get("connection", "").lower() == "close":
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


def _h2_worker(port: int, stop: threading.Event, counts: Counts, depth: int) -> None:
    while not stop.is_set():
        try:
            c = H2Client(port, 10)
        except OSError as e:
            if isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED:
                counts.add("refused")
                time.sleep(0.01)
                continue
            counts.add("failed", f"connect: {e!r}")
            continue
        open_ids: set[int] = set()
        done_ids: set[int] = set()
        try:
            while not stop.is_set() and not c.goaways and c.closed is None:
                while len(open_ids) < depth and not c.goaways:
                    open_ids.add(c.request("GET", "/"))
                    with counts.lock:
                        counts.sent += 1
                c.pump(lambda cl: any(cl.streams[s].ended or cl.streams[s].reset is not None for s in open_ids), 10)
                for s in [s for s in open_ids if c.streams[s].ended or c.streams[s].reset is not None]:
                    open_ids.discard(s)
                    done_ids.add(s)
                    _classify_h2(c, s, counts, final=False)
            # Drain: the server said GOAWAY (or closed); let the accepted streams finish.
            c.pump(lambda cl: all(cl.streams[s].ended or cl.streams[s].reset is not None for s in open_ids), 10)
            c.wait_closed(10) if c.goaways else None
            for s in open_ids:
                _classify_h2(c, s, counts, final=True)
        finally:
            c.close()


def _classify_h2(c: H2Client, sid: int, counts: Counts, final: bool) -> None:
    st = c.streams[sid]
    if st.ended and st.reset is None:
        if st.status == 200 and bytes(st.body) == b"OK":
            counts.add("answered")
        else:
            counts.add("failed", f"stream {sid}: status {st.status} body {bytes(st.body)[:60]!r}")
        return
    if st.reset == REFUSED_STREAM:
        counts.add("unaccepted")
        return
    last = min((g.last_stream_id for g in c.goaways), default=None)
    if last is not None and sid > last and not st.status:
        counts.add("unaccepted")
        return
    counts.add("failed", f"stream {sid}: ended={st.ended} reset={st.reset} status={st.status} "
                         f"goaways={[(g.last_stream_id, g.error_code) for g in c.goaways]} closed={c.closed}")


def run(port: int, proto: str, workers: int, stop: threading.Event, depth: int = 8,
        samples: bool = False) -> tuple[Counts, list[threading.Thread]]:
    counts = Counts(samples=[] if samples else None)
    threads = []
    for i in range(workers):
        if proto == "h1":
            t = threading.Thread(target=_h1_worker, args=(port, stop, counts, i), daemon=True)
        else:
            t = threading.Thread(target=_h2_worker, args=(port, stop, counts, depth), daemon=True)
        t.start()
        threads.append(t)
    return counts, threads
