"""Requests as a Python handler sees them, responses, and how a handler's return value becomes
an answer."""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import parse_qs, unquote

from . import _ffi
from ._errors import RequestClosedError
from ._native import LIB, last_error

__all__ = [
    "Body",
    "HandlerResult",
    "HeaderItems",
    "Headers",
    "Request",
    "Response",
    "ResponseStream",
]

log = logging.getLogger("graceserve")

#: A response body: bytes as they are, ``str`` encoded as UTF-8.
Body = Union[bytes, bytearray, memoryview, str]
#: Response headers: a mapping, or (name, value) pairs (repeat a name to send it twice). Names
#: and values may be ``str`` (values are encoded as Latin-1, HTTP's historical charset) or bytes.
HeaderItems = Union[Mapping[str, str], Iterable[Tuple[Union[str, bytes], Union[str, bytes]]]]


class Response:
    """A complete response. ``Response("hi")`` is ``200``, ``text/plain; charset=utf-8``;
    ``Response(b"...", 201, {"content-type": "application/json"})`` sets everything.

    ``content_type`` defaults to ``text/plain; charset=utf-8`` for a ``str`` body and is left
    out for bytes (unless ``headers`` has one). ``Content-Length`` is always set for you."""

    __slots__ = ("body", "status", "headers", "content_type")

    def __init__(
        self,
        body: Body = b"",
        status: int = 200,
        headers: Optional[HeaderItems] = None,
        *,
        content_type: Optional[str] = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = headers
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={self.body!r:.60}, headers={self.headers!r})"


#: What a handler may return (or pass to :meth:`Request.send`):
#: a :class:`Response`; a body alone (status 200); ``(status, body)``;
#: ``(status, headers, body)``; or ``None`` when it answered with :meth:`Request.respond` or
#: called :meth:`Request.defer`.
HandlerResult = Union[
    Response,
    Body,
    Tuple[int, Body],
    Tuple[int, HeaderItems, Body],
    None,
]

_TEXT_PLAIN_NAME = b"content-type"
_TEXT_PLAIN_VALUE = b"text/plain; charset=utf-8"


def _make_header_array(pairs: Sequence[Tuple[bytes, bytes]]) -> "ctypes.Array[_ffi.server_header]":
    arr = (_ffi.server_header * len(pairs))()
    for i, (name, value) in enumerate(pairs):
        h = arr[i]
        h.name = name
        h.name_len = len(name)
        h.value = value
        h.value_len = len(value)
    return arr


# Shared, read-only header arrays for the common cases (the library copies them per call).
_TEXT_PLAIN = _make_header_array([(_TEXT_PLAIN_NAME, _TEXT_PLAIN_VALUE)])


def _enc_name(n: Union[str, bytes]) -> bytes:
    return n if isinstance(n, bytes) else n.encode("ascii")


def _enc_value(v: Union[str, bytes]) -> bytes:
    return v if isinstance(v, bytes) else v.encode("latin-1")


def _header_pairs(headers: Optional[HeaderItems]) -> List[Tuple[bytes, bytes]]:
    if headers is None:
        return []
    items: Iterable[Tuple[Union[str, bytes], Union[str, bytes]]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(_enc_name(n), _enc_value(v)) for n, v in items]


def _body_bytes(body: Body) -> Tuple[bytes, bool]:
    """The body as bytes, and whether it was text."""
    if isinstance(body, bytes):
        return body, False
    if isinstance(body, str):
        return body.encode("utf-8"), True
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body), False
    raise TypeError(f"a response body must be bytes or str, not {type(body).__name__}")


Prepared = Tuple[int, Optional["ctypes.Array[_ffi.server_header]"], int, bytes]


def prepare(result: HandlerResult) -> Prepared:
    """Turns a handler result into (status, header array, header count, body bytes)."""
    if isinstance(result, bytes):
        return 200, None, 0, result
    if isinstance(result, str):
        return 200, _TEXT_PLAIN, 1, result.encode("utf-8")
    status: int
    headers: Optional[HeaderItems] = None
    content_type: Optional[str] = None
    if isinstance(result, Response):
        status, headers, body, content_type = (
            result.status,
            result.headers,
            result.body,
            result.content_type,
        )
    elif isinstance(result, tuple):
        if len(result) == 3:
            status, headers, body = result
        elif len(result) == 2:
            status, body = result
        else:
            raise TypeError(f"a handler tuple must be (status, body) or (status, headers, body), got {len(result)} items")
    elif isinstance(result, (bytearray, memoryview)):
        return 200, None, 0, bytes(result)
    else:
        raise TypeError(
            "a handler must return Response, bytes, str, (status, body) or (status, headers, body), "
            f"not {type(result).__name__}"
        )
    if not isinstance(status, int) or isinstance(status, bool):
        raise TypeError(f"the status must be an int, not {type(status).__name__}")
    data, is_text = _body_bytes(body)
    pairs = _header_pairs(headers)
    if content_type is not None:
        pairs.append((_TEXT_PLAIN_NAME, _enc_value(content_type)))
    elif is_text and not any(n.lower() == _TEXT_PLAIN_NAME for n, _ in pairs):
        if not pairs:
            return status, _TEXT_PLAIN, 1, data
        pairs.append((_TEXT_PLAIN_NAME, _TEXT_PLAIN_VALUE))
    if not pairs:
        return status, None, 0, data
    return status, _make_header_array(pairs), len(pairs), data


class Headers(Mapping[str, str]):
    """Request headers: a read-only, case-insensitive mapping of name to value.

    Values are decoded as Latin-1, so every byte survives (``value.encode("latin-1")`` gives
    the bytes back; :attr:`raw` has them as sent). A header sent more than once reads as its
    values joined by ``", "``; :meth:`get_all` gives them one by one."""

    __slots__ = ("_raw", "_index")

    def __init__(self, raw: Sequence[Tuple[bytes, bytes]]) -> None:
        self._raw = list(raw)
        index: Dict[str, List[str]] = {}
        for name, value in self._raw:
            index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self._index = index

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> List[str]:
        """Every value of ``name``, in arrival order (empty when absent)."""
        return list(self._index.get(name.lower(), []))

    @property
    def raw(self) -> List[Tuple[bytes, bytes]]:
        """(lower-case name, value) byte pairs as received, repeated names included."""
        return list(self._raw)

    def __repr__(self) -> str:
        return f"Headers({self._raw!r})"


_HANDLING, _DEFERRED, _DONE = 0, 1, 2


class Request:
    """One HTTP request, fully read (headers and body).

    Read it in the handler; answer by returning a value from the handler, or with
    :meth:`respond` / :meth:`send`. To answer later from another thread (a worker pool, an
    asyncio loop), call :meth:`defer` in the handler, hand the request over, and call
    :meth:`respond` there: exactly once, from any thread. A deferred request that is dropped
    unanswered gets ``500``.

    Attributes are read from the library on first use. Once the request is answered, those
    not read yet are gone: reading one raises :class:`RequestClosedError`.
    """

    __slots__ = (
        "_ptr",
        "_lock",
        "_state",
        "_method",
        "_raw_path",
        "_query_string",
        "_headers",
        "_body",
        "__weakref__",
    )

    def __init__(self, ptr: int) -> None:
        self._ptr: Optional[int] = ptr
        self._lock = threading.Lock()
        self._state = _HANDLING
        self._method: Optional[str] = None
        self._raw_path: Optional[str] = None
        self._query_string: Optional[str] = None
        self._headers: Optional[Headers] = None
        self._body: Optional[bytes] = None

    # -- reading ---------------------------------------------------------------------------

    def _live(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise RequestClosedError(
                _ffi.SERVER_ERR_ALREADY_USED,
                "the request was answered and released; read what you need before answering",
            )
        return ptr

    def _cstr(self, fn: Callable[[Optional[int]], Optional[bytes]]) -> str:
        with self._lock:
            raw = fn(self._live())
        return (raw or b"").decode("utf-8", "surrogateescape")

    @property
    def method(self) -> str:
        """``GET``, ``POST``, ..."""
        v = self._method
        if v is None:
            v = self._method = self._cstr(LIB.server_request_method)
        return v

    @property
    def raw_path(self) -> str:
        """The path as sent, percent-encoding included (``/a%20b``)."""
        v = self._raw_path
        if v is None:
            v = self._raw_path = self._cstr(LIB.server_request_path)
        return v

    @property
    def path(self) -> str:
        """The path, percent-decoded as UTF-8 (``/a b``). Bytes that are not UTF-8 come out as
        surrogate escapes: ``path.encode("utf-8", "surrogateescape")`` gives them back."""
        return unquote(self.raw_path, errors="surrogateescape")

    @property
    def query_string(self) -> str:
        """The query string without ``?`` (empty when there is none)."""
        v = self._query_string
        if v is None:
            v = self._query_string = self._cstr(LIB.server_request_query)
        return v

    @property
    def query(self) -> Dict[str, List[str]]:
        """The query string parsed: each name with the list of its values (blank ones kept)."""
        return parse_qs(self.query_string, keep_blank_values=True, errors="surrogateescape")

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def headers(self) -> Headers:
        """The request headers (case-insensitive)."""
        h = self._headers
        if h is None:
            h = self._headers = Headers(self._read_headers())
        return h

    def _read_headers(self) -> List[Tuple[bytes, bytes]]:
        name, value = ctypes.c_void_p(), ctypes.c_void_p()
        name_len, value_len = ctypes.c_size_t(), ctypes.c_size_t()
        refs = (ctypes.byref(name), ctypes.byref(name_len), ctypes.byref(value), ctypes.byref(value_len))
        out = []
        with self._lock:
            ptr = self._live()
            for i in range(LIB.server_request_header_count(ptr)):
                if LIB.server_request_header_at(ptr, i, *refs) != _ffi.SERVER_OK:
                    break
                out.append(
                    (
                        ctypes.string_at(name.value or 0, name_len.value),
                        ctypes.string_at(value.value or 0, value_len.value) if value_len.value else b"",
                    )
                )
        return out

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (Latin-1 decoded), or ``default``. Cheaper than
        :attr:`headers` when you need one or two."""
        if self._headers is not None:
            values = self._headers.get_all(name)
            return values[0] if values else default
        out, out_len = ctypes.c_void_p(), ctypes.c_size_t()
        try:
            key = name.encode("ascii")
        except UnicodeEncodeError:
            return default
        with self._lock:
            rc = LIB.server_request_header(self._live(), key, ctypes.byref(out), ctypes.byref(out_len))
            if rc != _ffi.SERVER_OK:
                return default
            return ctypes.string_at(out.value or 0, out_len.value).decode("latin-1") if out_len.value else ""

    def _head_fields(self) -> List[bytes]:
        """The whole head in one foreign call (``server_request_head``), for the WSGI and ASGI
        adapters: method, raw path, query, peer, HTTP version, body length, then each header's
        name and value, and a last empty item."""
        out, size = ctypes.c_void_p(), ctypes.c_size_t()
        with self._lock:
            LIB.server_request_head(self._live(), ctypes.byref(out), ctypes.byref(size))
            return ctypes.string_at(out.value or 0, size.value).split(b"\0")

    @property
    def body(self) -> bytes:
        """The whole request body (``b""`` when there is none)."""
        b = self._body
        if b is None:
            data, size = ctypes.c_void_p(), ctypes.c_size_t()
            with self._lock:
                LIB.server_request_body(self._live(), ctypes.byref(data), ctypes.byref(size))
                b = ctypes.string_at(data.value or 0, size.value) if size.value else b""
            self._body = b
        return b

    def text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The body decoded (UTF-8 unless told otherwise)."""
        return self.body.decode(encoding, errors)

    @property
    def remote_addr(self) -> str:
        """The peer as ``IP:PORT``."""
        return self._cstr(LIB.server_request_remote_addr)

    @property
    def http_version(self) -> str:
        """``"1.0"``, ``"1.1"`` or ``"2"``."""
        with self._lock:
            v = LIB.server_request_version(self._live())
        return {10: "1.0", 11: "1.1", 20: "2"}.get(v, "")

    @property
    def cancelled(self) -> bool:
        """True once an answer can no longer reach the client (it left, or the stop was forced).
        A long job working for a deferred request can poll this and give up."""
        with self._lock:
            ptr = self._ptr
            return bool(ptr is not None and LIB.server_request_cancelled(ptr))

    @property
    def drain_requested(self) -> bool:
        """True once the server was asked to drain (also during the pre-drain delay): a long
        poll can answer early so its client reconnects elsewhere."""
        with self._lock:
            ptr = self._ptr
            return bool(ptr is not None and LIB.server_request_drain_requested(ptr))

    @property
    def answered(self) -> bool:
        """True once the request was answered (or released)."""
        return self._state == _DONE

    # -- answering -------------------------------------------------------------------------

    def defer(self) -> "Request":
        """Keep the request open after the handler returns, to answer it later (from any
        thread) with :meth:`respond` or :meth:`send`. Returns the request itself. Whatever
        the handler then returns is ignored."""
        with self._lock:
            if self._state == _DONE:
                raise RequestClosedError(_ffi.SERVER_ERR_ALREADY_USED, "the request was already answered")
            self._state = _DEFERRED
        return self

    def respond(self, status: int = 200, body: Body = b"", headers: Optional[HeaderItems] = None) -> bool:
        """Answers now, from any thread, exactly once. Returns True when the response was handed
        to the connection, False when the client is gone (or the stop was forced).

        Raises :class:`RequestClosedError` when already answered, ``ValueError`` for an invalid
        status or header (the request then stays unanswered), ``TypeError`` for a bad body."""
        return self.send(Response(body, status, headers))

    def send(self, result: HandlerResult) -> bool:
        """Like :meth:`respond`, taking anything a handler may return."""
        if result is None:
            raise TypeError("send(None): nothing to answer with")
        return self._answer(prepare(result))

    def _answer(self, parts: Prepared) -> bool:
        status, headers, n_headers, body = parts
        with self._lock:
            ptr = self._ptr
            if ptr is None or self._state == _DONE:
                raise RequestClosedError(_ffi.SERVER_ERR_ALREADY_USED, "the request was already answered")
            rc = LIB.server_respond(ptr, status, headers, n_headers, body, len(body))
            if rc == _ffi.SERVER_ERR_INVALID_ARGUMENT:
                raise ValueError(last_error())
            self._ptr = None
            self._state = _DONE
            LIB.server_request_free(ptr)
        if rc not in (_ffi.SERVER_OK, _ffi.SERVER_ERR_CLOSED):
            log.error("graceserve: answering %s failed: %s", self, last_error())
        return rc == _ffi.SERVER_OK

    def respond_stream(self, status: int = 200, headers: Optional[HeaderItems] = None) -> "ResponseStream":
        """Answers now with ``status`` and ``headers``, and returns a :class:`ResponseStream` to
        write the body in pieces (chunked on HTTP/1.1 unless ``headers`` has a
        ``Content-Length``). From any thread, exactly once, like :meth:`respond`.

        When the client is already gone the returned stream is closed (``write`` returns
        False). Raises :class:`RequestClosedError` when already answered, ``ValueError`` for an
        invalid status or header (the request then stays unanswered)."""
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"the status must be an int, not {type(status).__name__}")
        pairs = _header_pairs(headers)
        arr = _make_header_array(pairs) if pairs else None
        out = ctypes.c_void_p()
        with self._lock:
            ptr = self._ptr
            if ptr is None or self._state == _DONE:
                raise RequestClosedError(_ffi.SERVER_ERR_ALREADY_USED, "the request was already answered")
            rc = LIB.server_respond_stream(ptr, status, arr, len(pairs), ctypes.byref(out))
            if rc == _ffi.SERVER_ERR_INVALID_ARGUMENT:
                raise ValueError(last_error())
            self._ptr = None
            self._state = _DONE
            LIB.server_request_free(ptr)
        if rc != _ffi.SERVER_OK:
            if rc != _ffi.SERVER_ERR_CLOSED:
                log.error("graceserve: answering %s failed: %s", self, last_error())
            return ResponseStream(None)
        return ResponseStream(out.value)

    def _release(self) -> None:
        """Frees the request unanswered (the client gets 500)."""
        with self._lock:
            ptr = self._ptr
            self._ptr = None
            self._state = _DONE
            if ptr is not None:
                LIB.server_request_free(ptr)

    def __del__(self) -> None:
        if self._ptr is not None:
            if self._state == _DEFERRED:
                log.warning("graceserve: a deferred request was dropped unanswered; the client gets 500")
            self._release()

    def __repr__(self) -> str:
        if self._method is None and self._ptr is None:
            return "<Request (answered)>"
        try:
            return f"<Request {self.method} {self.raw_path}>"
        except RequestClosedError:
            return "<Request (answered)>"


class ResponseStream:
    """The body of a response being sent in pieces (from :meth:`Request.respond_stream`).

    :meth:`write` sends a piece, blocking while the client reads slower than you write; it
    returns False once the client is gone (stop writing then). :meth:`close` ends the body (a
    stream that is dropped unclosed is closed then). ``with request.respond_stream(...) as s:``
    closes it on exit. One thread at a time; never on an I/O thread (``inline=True``
    handlers), where a blocking write would stall other connections."""

    __slots__ = ("_ptr", "_lock")

    def __init__(self, ptr: Optional[int]) -> None:
        self._ptr = ptr
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the client was gone from the start)."""
        return self._ptr is None

    def write(self, data: Body) -> bool:
        """Sends ``data`` (bytes, or ``str`` as UTF-8). Returns True when it was handed to the
        connection, False when the client is gone or the stream is closed."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes):
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"a response body must be bytes or str, not {type(data).__name__}")
            data = bytes(data)
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return False
            return LIB.server_stream_write(ptr, data, len(data)) == _ffi.SERVER_OK

    @property
    def cancelled(self) -> bool:
        """True once the body can no longer reach the client (it left, or the stop was forced).
        Never blocks: while another thread is inside :meth:`write` it answers False (that write
        will tell)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            ptr = self._ptr
            # An empty write never blocks: it only reports whether the client is still there.
            return ptr is not None and LIB.server_stream_write(ptr, None, 0) != _ffi.SERVER_OK
        finally:
            self._lock.release()

    def close(self) -> None:
        """Ends the body. Idempotent."""
        with self._lock:
            ptr = self._ptr
            self._ptr = None
            if ptr is not None:
                LIB.server_stream_free(ptr)

    def __enter__(self) -> "ResponseStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._ptr is not None:
            self.close()

    def __repr__(self) -> str:
        return f"<ResponseStream {'closed' if self._ptr is None else 'open'}>"
