"""A small HTTP/2 (h2c, prior knowledge) client on a raw socket, built on the `h2` package.

It records what a drain looks like on the wire: every GOAWAY (two-phase drains send two),
each stream's status/body/reset, and how the connection ended.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from hostlib import connect


@dataclass
class Stream:
    status: Optional[int] = None
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: Optional[int] = None  # RST_STREAM error code


@dataclass
class GoAway:
    last_stream_id: int
    error_code: int
    at: float


class H2Client:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock: socket.socket = connect(port, timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.conn.increment_flow_control_window(1 << 24)
        self.streams: dict[int, Stream] = {}
        self.goaways: list[GoAway] = []
        self.closed: Optional[str] = None  # 'eof' or 'reset' once the server closed the socket
        self.protocol_error: Optional[str] = None
        self._inbuf = bytearray()
        self._seen_preface = False
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the read side reports how the connection ended

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        if body:
            headers.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, headers, end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)  # callers keep bodies under 64 KiB
        self.streams[sid] = Stream()
        self._flush()
        return sid

    def _on(self, ev) -> None:
        if isinstance(ev, h2.events.ResponseReceived):
            st = self.streams.setdefault(ev.stream_id, Stream())
            for k, v in ev.headers:
                if k == ":status":
                    st.status = int(v)
        elif isinstance(ev, h2.events.DataReceived):
            self.streams.setdefault(ev.stream_id, Stream()).body += ev.data
            if ev.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
        elif isinstance(ev, h2.events.StreamEnded):
            self.streams.setdefault(ev.stream_id, Stream()).ended = True
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.setdefault(ev.stream_id, Stream()).reset = int(ev.error_code or 0)

    def _filter_goaway(self, data: bytes) -> bytes:
        """Takes GOAWAY frames out of the byte stream and records them here.

        The h2 package closes its state machine on the first GOAWAY and then rejects the frames of
        streams the server is still finishing, which is exactly what a graceful drain sends. So
        GOAWAY never reaches it; every other frame passes through unchanged.
        """
        self._inbuf += data
        out = bytearray()
        while len(self._inbuf) >= 9:
            length = int.from_bytes(self._inbuf[0:3], "big")
            if len(self._inbuf) < 9 + length:
                break
            frame = bytes(self._inbuf[: 9 + length])
            del self._inbuf[: 9 + length]
            if frame[3] == 0x7 and length >= 8:  # GOAWAY
                last = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                code = int.from_bytes(frame[13:17], "big")
                self.goaways.append(GoAway(last, code, time.monotonic()))
            else:
                out += frame
        return bytes(out)

    def pump(self, until: Callable[["H2Client"], bool], timeout: float) -> bool:
        """Reads until until(self) is true, the connection closes, or timeout; returns until(self)."""
        deadline = time.monotonic() + timeout
        while not until(self) and self.closed is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                self.closed = "reset"
                break
            if not data:
                self.closed = "eof"
                break
            try:
                events = self.conn.receive_data(self._filter_goaway(data))
            except h2.exceptions.ProtocolError as e:
                self.protocol_error = repr(e)
                events = []
            for ev in events:
                self._on(ev)
            self._flush()
        return until(self)

    def wait_closed(self, timeout: float) -> Optional[str]:
        self.pump(lambda c: False, timeout)
        return self.closed

    def close(self) -> None:
        self.sock.close()


def get(port: int, path: str, method: str = "GET", body: bytes = b"", timeout: float = 10.0) -> Stream:
    c = H2Client(port, timeout)
    try:
        sid = c.request(method, path, body)
        c.pump(lambda cl: cl.streams[sid].ended or cl.streams[sid].reset is not None, timeout)
        return c.streams[sid]
    finally:
        c.close()
