"""Serve any ASGI 3 application — Starlette, FastAPI, Django's ASGI handler, Quart — with
graceserve.

    import graceserve
    from myapp import app                      # a Starlette or FastAPI app

    raise SystemExit(graceserve.serve_asgi(app, "127.0.0.1:8080"))

or from the shell: ``python -m graceserve myapp:app``. With a :class:`graceserve.Server`, the
handler's ``with`` block runs the app's lifespan around the server's:

    with graceserve.asgi.ASGIHandler(app) as h, graceserve.Server(addr, h) as server:
        ...                                    # lifespan startup ran before the server started

How it runs: the application runs on one event loop per handler, in a thread of its own
(``graceserve-asgi``). The library reads each request completely on its I/O threads and puts
it in a queue of its own (``server_queue``) without running any Python; the loop watches the
queue's descriptor and takes the requests in batches, runs each in a task, and the answers go
back to the I/O threads together, once per loop iteration. Per request that is two foreign
calls (the whole head in one, the answer in the other) and no thread switch of its own. A
blocking call inside the application stalls the loop, as under uvicorn.

* ``http`` scope: ``http_version`` (``1.0``, ``1.1``, ``2``), ``method``, ``scheme``, ``path``
  (decoded), ``raw_path``, ``query_string``, ``root_path``, ``headers`` (lower-case names, every
  repeat), ``client``, ``server``, ``state`` (a copy of the lifespan state). ``asgi.spec_version``
  is 2.4: ``send`` raises :class:`ClientDisconnected` (an ``OSError``) once the client is gone.
* ``receive()`` gives the whole body as one ``http.request`` message, then waits for
  ``http.disconnect``: sent when the client leaves, when the drain deadline cuts the request,
  or at once after the response is complete. One timer per handler checks the clients of the
  requests that wait (every :data:`DISCONNECT_POLL_S`), only while some do.
* ``http.response.start`` + ``http.response.body``: a response whose first body message has no
  ``more_body`` is sent whole; otherwise the body streams piece by piece (chunked unless a
  ``content-length`` header was given), each piece handed to the connection off the loop so a
  slow client never blocks it.
* ``lifespan``: startup completes before the server binds (a failure raises
  :class:`LifespanError`: the server never starts); shutdown runs after the drain.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import ctypes
import itertools
import logging
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Coroutine,
    Deque,
    Dict,
    List,
    MutableMapping,
    Optional,
    Set,
    Tuple,
    Type,
)
from urllib.parse import unquote

from . import _ffi
from ._errors import error_for
from ._native import LIB, LIB_PATH, last_error
from ._request import Request, ResponseStream
from ._server import Server
from ._web import host_header_addr, split_hostport

__all__ = [
    "ASGIApp",
    "ASGIHandler",
    "ClientDisconnected",
    "LifespanError",
    "handler",
    "serve",
]

log = logging.getLogger("graceserve.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: ``async def app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How often the clients of requests waiting in ``receive()`` are checked for a disconnect.
DISCONNECT_POLL_S = 0.05
#: Threads that hand streamed body pieces to connections (a write blocks while its client reads
#: slower than the application writes).
STREAM_WRITERS = 64
#: Requests taken from the library's queue per call.
BATCH = 64

_ERROR_BODY = b"internal server error\n"
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_UNAVAILABLE_BODY = b"service unavailable\n"
_B_HOST = b"host"
_NUL = b"\0"

# Python 3.12+ can start a task eagerly: it runs at once, inside the loop callback that creates
# it, until its first real wait, and a request that never waits never goes through the loop's
# queue at all (about 4x cheaper than a scheduled task, measured in bench/python/RESULTS.md).
_TASK_KW: Dict[str, Any] = {"eager_start": True} if sys.version_info >= (3, 12) else {}

# The calls the loop makes per request return at once (no lock waits, no I/O): it keeps the GIL
# through them, which is cheaper than giving it up and taking it back each time.
_FAST = _ffi.Lib(ctypes.PyDLL(str(LIB_PATH)))
_PUSH = ctypes.cast(LIB.dll.server_queue_push, _ffi.server_handler_fn)
_RELEASE = ctypes.cast(LIB.dll.server_queue_release, _ffi.server_userdata_drop_fn)


class ClientDisconnected(OSError):
    """Raised by ``send`` once the client is gone (ASGI spec 2.4)."""


class LifespanError(Exception):
    """The application's lifespan startup (or shutdown) failed; the message says why."""


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def _server_from_host(headers: List[Tuple[bytes, bytes]]) -> Optional[Tuple[str, int]]:
    for name, value in headers:
        if name == _B_HOST:
            return host_header_addr(value.decode("latin-1"), 80)
    return None


def _pack(headers: Any) -> bytes:
    """ASGI response headers as ``name\\0value\\0…`` (what ``server_queue_respond`` takes)."""
    if not headers:
        return b""
    return _NUL.join(itertools.chain.from_iterable(headers)) + _NUL


class _Queue:
    """The library's request queue (``server_queue``): the I/O threads push each request into
    it without running any Python; the loop takes them in batches when its descriptor turns
    readable, and answers through it, flushed once per loop iteration."""

    def __init__(self) -> None:
        out = ctypes.c_void_p()
        rc = LIB.server_queue_new(ctypes.byref(out))
        if rc != _ffi.SERVER_OK:
            raise error_for(rc, last_error())
        self.ptr: Optional[int] = out.value
        self.fd = LIB.server_queue_fd(self.ptr)
        self.batch = (ctypes.c_void_p * BATCH)()

    def native(self) -> Tuple[Any, int, Any]:
        """(handler, userdata, userdata_drop) for ``server_options``, with a new reference."""
        ud = LIB.server_queue_retain(self.ptr)
        assert ud is not None
        return _PUSH, ud, _RELEASE

    def pop(self) -> List[Optional[int]]:
        n = _FAST.server_queue_pop(self.ptr, self.batch, BATCH)
        return self.batch[:n]

    def flush(self) -> None:
        if self.ptr is not None:
            LIB.server_queue_flush(self.ptr)

    def close(self) -> None:
        """Held answers go out; requests still queued, and every later one, get 503; drops
        this reference."""
        ptr, self.ptr = self.ptr, None
        if ptr is not None:
            LIB.server_queue_flush(ptr)
            LIB.server_queue_close(ptr)
            LIB.server_queue_release(ptr)


class _Cycle:
    """One request's life on the loop: its ``receive`` and ``send``.

    The request is either a raw pointer from the queue (``ptr``; answered with
    ``server_queue_respond``, which frees it) or a :class:`Request` (``req``; from a server that
    calls the handler instead). A streamed response turns the pointer into a :class:`Request`
    and uses its :meth:`Request.respond_stream`."""

    __slots__ = (
        "handler",
        "ptr",
        "req",
        "body",
        "body_taken",
        "status",
        "headers",
        "started",
        "complete",
        "gone",
        "stream",
        "waiters",
        "label",
    )

    def __init__(self, handler: "ASGIHandler", ptr: Optional[int], req: Optional[Request], body: bytes, label: str) -> None:
        self.handler = handler
        self.ptr = ptr
        self.req = req
        self.body = body
        self.body_taken = False
        self.status = 0
        self.headers: Any = None
        self.started = False
        self.complete = False
        self.gone = False
        self.stream: Optional[ResponseStream] = None
        self.waiters: Optional[List["asyncio.Future[None]"]] = None
        self.label = label

    # -- the request side ------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.body_taken:
            self.body_taken = True
            body, self.body = self.body, b""
            return {"type": "http.request", "body": body, "more_body": False}
        if not (self.complete or self.gone) and not self.client_gone():
            loop = self.handler._loop
            assert loop is not None
            fut: "asyncio.Future[None]" = loop.create_future()
            waiters = self.waiters
            if waiters is None:
                waiters = self.waiters = []
            waiters.append(fut)
            self.handler._watch(self)
            try:
                await fut
            finally:
                waiters.remove(fut)
                if not waiters:
                    self.handler._unwatch(self)
        return {"type": "http.disconnect"}

    def client_gone(self) -> bool:
        """Asks the library (one call, never blocking) whether the client has left."""
        if self.gone:
            return True
        if self.stream is not None:
            gone = self.stream.cancelled
        elif self.ptr is not None:
            gone = bool(_FAST.server_request_cancelled(self.ptr))
        elif self.req is not None:
            gone = self.req.cancelled
        else:
            gone = False
        if gone:
            self.gone = True
        return gone

    def wake(self) -> None:
        """Ends every wait in :meth:`receive` (the response is complete, or the client left)."""
        for fut in self.waiters or ():
            if not fut.done():
                fut.set_result(None)

    # -- the response side -----------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("ASGI: 'http.response.body' sent before 'http.response.start'")
            if self.complete:
                raise RuntimeError("ASGI: 'http.response.body' sent after the response was complete")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    raise TypeError(f"ASGI: the body must be bytes, not {type(body).__name__}")
                body = bytes(body)
            more = message.get("more_body", False)
            stream = self.stream
            if stream is None:
                if not more:
                    # Also when the client is gone: that releases the request, and an
                    # application that is done has nothing to stop.
                    self.complete = True
                    if not self.respond(self.status, self.headers, body):
                        self.gone = True
                    self.wake()
                    return
                if self.gone:
                    raise ClientDisconnected("the client is gone")
                stream = self.stream = self.request().respond_stream(self.status, self.headers)
                if stream.closed:
                    self.gone = True
                    raise ClientDisconnected("the client is gone")
            if self.gone:
                if not more:
                    self.complete = True
                    stream.close()
                    return
                raise ClientDisconnected("the client is gone")
            if body:
                loop = self.handler._loop
                assert loop is not None
                ok = await loop.run_in_executor(self.handler._writers(), stream.write, body)
                if not ok:
                    self.gone = True
                    self.wake()
                    raise ClientDisconnected("the client is gone")
            if not more:
                self.complete = True
                stream.close()
                self.wake()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI: 'http.response.start' sent twice")
            status = message["status"]
            if type(status) is not int:
                raise TypeError(f"ASGI: the status must be an int, not {status!r}")
            self.status = status
            self.headers = message.get("headers")
            self.started = True
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r} for an 'http' scope")

    def request(self) -> Request:
        """The request as a :class:`Request` (taking over the raw pointer, if any)."""
        if self.req is None:
            ptr, self.ptr = self.ptr, None
            assert ptr is not None
            self.req = Request(ptr)
        return self.req

    def respond(self, status: int, headers: Any, body: bytes) -> bool:
        """Answers in one piece; False when the client is gone. Through the queue (held until
        the loop iteration's flush) when the request came from it."""
        ptr = self.ptr
        h = self.handler
        q = h._queue
        if ptr is None or q is None or q.ptr is None:
            return self.request().respond(status, body, headers or None)
        packed = _pack(headers)
        rc = _FAST.server_queue_respond(q.ptr, ptr, status, packed, len(packed), body, len(body))
        if rc == _ffi.SERVER_OK or rc == _ffi.SERVER_ERR_CLOSED:
            self.ptr = None  # answered and freed by the library
            if not h._flush_pending:
                h._flush_pending = True
                loop = h._loop
                assert loop is not None
                loop.call_soon(h._flush)
            return rc == _ffi.SERVER_OK
        if rc == _ffi.SERVER_ERR_INVALID_ARGUMENT:
            raise ValueError(f"ASGI: invalid response: {last_error()}")
        raise error_for(rc, last_error())

    def fail(self, status: int, body: bytes) -> None:
        """Answers ``status`` if nothing was answered yet."""
        if self.ptr is not None or (self.req is not None and not self.req.answered):
            try:
                self.respond(status, _ERROR_HEADERS, body)
            except Exception:
                log.exception("graceserve.asgi: cannot answer %s", self.label)

    def finish(self) -> None:
        """After the application returned (or raised): nothing may stay open."""
        if self.stream is not None:
            self.stream.close()
        ptr, self.ptr = self.ptr, None
        if ptr is not None:
            _FAST.server_request_free(ptr)  # unanswered: the client gets 500
        self.complete = True
        self.wake()


class ASGIHandler:
    """A :class:`graceserve.Server` handler that runs the ASGI 3 application ``app`` on an
    event loop thread of its own.

    lifespan
        ``"auto"`` (run the ``lifespan`` protocol; an application that raises before taking
        part in it does not support it, and is served without), ``"on"`` (a failure to
        take part is an error), ``"off"``.
    root_path
        The ``root_path`` the application is mounted at (set by a proxy that strips it).
    loop
        ``"asyncio"`` (default) or ``"uvloop"``. Most of the per-request work happens in the
        library, so uvloop gains little here; measured in bench/python/RESULTS.md.

    :meth:`startup` starts the loop thread and runs the lifespan startup; :meth:`shutdown` runs
    the lifespan shutdown and stops the loop. ``with ASGIHandler(app) as h:`` does both.
    Requests that arrive before :meth:`startup` start the loop without a lifespan (logged);
    requests after :meth:`shutdown` get ``503``.

    With :class:`graceserve.Server` the requests reach the loop through the library's request
    queue (the I/O threads run no Python). Called as a plain handler instead (``handler(req)``,
    on a library thread), it hands each request to the loop the slower way. One handler serves
    one server at a time.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: str = "auto",
        root_path: str = "",
        loop: str = "asyncio",
    ) -> None:
        if not callable(app):
            raise TypeError(f"the ASGI application must be callable, not {app!r}")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValueError(f"root_path must start with '/' and not end with one, not {root_path!r}")
        if loop not in ("asyncio", "uvloop"):
            raise ValueError(f"loop must be 'asyncio' or 'uvloop', not {loop!r}")
        self.app = app
        self.lifespan = lifespan
        self.root_path = root_path
        self.loop_kind = loop
        #: The bound address, ``(host, port)``, for the scope's ``server``.
        self.server_addr: Optional[Tuple[str, int]] = None
        #: The lifespan state (``scope["state"]``), copied into every request's scope.
        self.state: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._queue: Optional[_Queue] = None
        self._flush_pending = False
        self._head_out = ctypes.c_void_p()
        self._head_len = ctypes.c_size_t()
        self._head_refs = (ctypes.byref(self._head_out), ctypes.byref(self._head_len))
        self._inbox: Deque[Request] = collections.deque()
        self._wake_pending = False
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._watched: Set[_Cycle] = set()
        self._poll: Optional[asyncio.TimerHandle] = None
        self._writer_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._lifespan_task: Optional["asyncio.Task[None]"] = None
        self._lifespan_queue: Optional["asyncio.Queue[Message]"] = None
        self._startup_done: Optional["asyncio.Future[None]"] = None
        self._shutdown_done: Optional["asyncio.Future[None]"] = None
        self._lifespan_supported = False

    def bind(self, server: Server) -> None:
        """Takes the scope's ``server`` from ``server``'s bound address."""
        self.server_addr = split_hostport(server.addr)

    @property
    def loop(self) -> Optional[asyncio.AbstractEventLoop]:
        """The application's event loop, once started."""
        return self._loop

    # -- the loop thread -------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the ASGI handler was shut down")
            if self._loop is not None:
                return self._loop
            loop = _new_loop(self.loop_kind)
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                try:
                    loop.run_forever()
                finally:
                    try:
                        loop.run_until_complete(loop.shutdown_asyncgens())
                    except Exception:
                        log.exception("graceserve.asgi: shutting down async generators")
                    loop.close()

            t = threading.Thread(target=run, name="graceserve-asgi", daemon=True)
            t.start()
            started.wait()
            self._loop, self._thread = loop, t
            return loop

    def _writers(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._writer_pool
        if pool is None:
            pool = self._writer_pool = concurrent.futures.ThreadPoolExecutor(
                STREAM_WRITERS, thread_name_prefix="graceserve-asgi-writer"
            )
        return pool

    @staticmethod
    def _run(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout: Optional[float] = None
    ) -> Any:
        """Runs ``coro`` on the loop and waits for it here, in slices, so that signal handlers
        run on the main thread meanwhile; if they raise, the coroutine is cancelled."""
        fut: "concurrent.futures.Future[Any]" = asyncio.run_coroutine_threadsafe(coro, loop)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    return fut.result(0.05)
                except concurrent.futures.TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
        except BaseException:
            fut.cancel()
            raise

    # -- lifespan --------------------------------------------------------------------------

    def startup(self) -> None:
        """Starts the loop thread and runs the application's lifespan startup; returns once
        it completed. Raises :class:`LifespanError` when the application reports a failure
        (or, with ``lifespan="on"``, does not take part)."""
        loop = self._ensure_loop()
        if self.lifespan == "off" or self._lifespan_task is not None:
            return
        self._run(loop, self._lifespan_startup())

    async def _lifespan_startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._lifespan_queue = asyncio.Queue()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        self._lifespan_queue.put_nowait({"type": "lifespan.startup"})
        self._lifespan_task = loop.create_task(self._lifespan_main())
        try:
            await asyncio.shield(self._startup_done)
        except asyncio.CancelledError:
            self._lifespan_task.cancel()
            raise

    async def _lifespan_main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        startup_done, shutdown_done = self._startup_done, self._shutdown_done
        assert startup_done is not None and shutdown_done is not None

        def settle(error: Optional[BaseException]) -> None:
            for f in (startup_done, shutdown_done):
                if f.done():
                    continue
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(error)
                    f.exception()  # marked as seen: nobody may wait for the shutdown one

        try:
            await self.app(scope, self._lifespan_receive, self._lifespan_send)
        except asyncio.CancelledError:
            settle(LifespanError("the lifespan was cancelled"))
            raise
        except BaseException as e:
            if not self._lifespan_supported and self.lifespan == "auto":
                log.info("graceserve.asgi: the application does not support the lifespan protocol (%r); serving without", e)
                settle(None)
                return
            log.exception("graceserve.asgi: the application's lifespan raised")
            settle(LifespanError(f"the application's lifespan raised {type(e).__name__}: {e}"))
            return
        # Returning is fine at any point (as under uvicorn): whatever it did not report is done.
        settle(None)

    async def _lifespan_receive(self) -> Message:
        self._lifespan_supported = True
        q = self._lifespan_queue
        assert q is not None
        return await q.get()

    async def _lifespan_send(self, message: Message) -> None:
        self._lifespan_supported = True
        kind = message.get("type")
        startup_done, shutdown_done = self._startup_done, self._shutdown_done
        assert startup_done is not None and shutdown_done is not None
        if kind == "lifespan.startup.complete":
            if not startup_done.done():
                startup_done.set_result(None)
        elif kind == "lifespan.startup.failed":
            if not startup_done.done():
                startup_done.set_exception(LifespanError(message.get("message") or "lifespan startup failed"))
        elif kind == "lifespan.shutdown.complete":
            if not shutdown_done.done():
                shutdown_done.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            if not shutdown_done.done():
                shutdown_done.set_exception(LifespanError(message.get("message") or "lifespan shutdown failed"))
        else:
            raise RuntimeError(f"ASGI: unexpected lifespan message type {kind!r}")

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Runs the application's lifespan shutdown, then stops the loop thread (requests
        still running on it are cancelled first; requests that arrive from now on get 503).
        Raises :class:`LifespanError` when the application reports a failure; the loop is
        stopped either way. Idempotent."""
        with self._lock:
            loop, self._closed = self._loop, True
        thread = self._thread
        if loop is None or thread is None:
            return
        try:
            self._run(loop, self._shutdown(), timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._thread = None
            if self._writer_pool is not None:
                self._writer_pool.shutdown(wait=False)

    def shutdown_quietly(self) -> None:
        """:meth:`shutdown`, logging a lifespan failure instead of raising it."""
        try:
            self.shutdown()
        except LifespanError as e:
            log.error("graceserve.asgi: lifespan shutdown failed: %s", e)

    async def _shutdown(self) -> None:
        q = self._queue
        if q is not None:
            asyncio.get_running_loop().remove_reader(q.fd)
            q.close()
        # Requests that outlived the server (their connections cut by the drain deadline).
        leftover = [t for t in self._tasks if not t.done()]
        for t in leftover:
            t.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
        task, started = self._lifespan_task, self._startup_done
        if task is None or self._shutdown_done is None or self._lifespan_queue is None:
            return
        if started is None or not started.done() or started.cancelled() or started.exception() is not None:
            # The startup never completed: there is no shutdown to run (ASGI lifespan spec).
            if not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
            return
        if not task.done():
            self._lifespan_queue.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.shield(self._shutdown_done)
        finally:
            if not task.done():
                task.cancel()

    def __enter__(self) -> "ASGIHandler":
        self.startup()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.shutdown()

    # -- requests from the library's queue -------------------------------------------------

    def _graceserve_native_handler(self) -> Tuple[Any, int, Any]:
        """For :class:`graceserve.Server`: the requests go to the library's request queue,
        read by the loop, instead of calling :meth:`__call__` on library threads."""
        loop = self._ensure_loop()
        with self._lock:
            q = self._queue
            if q is None:
                q = self._queue = _Queue()
                watching = threading.Event()

                def watch() -> None:
                    loop.add_reader(q.fd, self._take_queue)
                    watching.set()

                loop.call_soon_threadsafe(watch)
                watching.wait()
            return q.native()

    def _take_queue(self) -> None:
        q = self._queue
        if q is None or q.ptr is None:
            return
        loop = self._loop
        assert loop is not None
        handle = self._handle
        start = self._start
        while True:
            ptrs = q.pop()
            for ptr in ptrs:
                start(loop, handle(ptr, None))
            if len(ptrs) < BATCH:
                return

    def _start(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        """Runs one request's coroutine as a task (eagerly where Python can), kept until done."""
        task = asyncio.Task(coro, loop=loop, **_TASK_KW)
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _flush(self) -> None:
        self._flush_pending = False
        q = self._queue
        if q is not None:
            q.flush()

    # -- requests as handler calls ---------------------------------------------------------

    def __call__(self, req: Request) -> None:
        """Called by the library for each request when the server does not use the queue:
        hands the request to the loop."""
        loop = self._loop
        if loop is None:
            try:
                loop = self._ensure_loop()
            except RuntimeError:
                req.respond(503, _UNAVAILABLE_BODY)
                return
            if self.lifespan != "off":
                log.warning("graceserve.asgi: a request arrived before startup(); serving without the lifespan")
        req.defer()
        self._inbox.append(req)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._take_inbox)
            except RuntimeError:  # the loop is closed
                self._wake_pending = False
                while self._inbox:
                    self._inbox.popleft().respond(503, _UNAVAILABLE_BODY)

    def _take_inbox(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        loop = self._loop
        assert loop is not None
        while inbox:
            req = inbox.popleft()
            if self._closed:
                req.respond(503, _UNAVAILABLE_BODY)
                continue
            self._start(loop, self._handle(None, req))

    # -- one request -----------------------------------------------------------------------

    def _head(self, ptr: Optional[int], req: Optional[Request]) -> List[bytes]:
        if req is not None:
            return req._head_fields()
        _FAST.server_request_head(ptr, *self._head_refs)
        return ctypes.string_at(self._head_out.value or 0, self._head_len.value).split(_NUL)

    def _body(self, ptr: Optional[int], req: Optional[Request]) -> bytes:
        if req is not None:
            return req.body
        out, size = ctypes.c_void_p(), ctypes.c_size_t()
        _FAST.server_request_body(ptr, ctypes.byref(out), ctypes.byref(size))
        return ctypes.string_at(out.value or 0, size.value)

    def _scope(self, f: List[bytes]) -> Dict[str, Any]:
        """The ASGI ``http`` scope from the packed head fields (see ``server_request_head``)."""
        raw_path = f[1]
        path = raw_path.decode("utf-8", "surrogateescape")
        if "%" in path:
            path = unquote(path, errors="surrogateescape")
        it = iter(f[6:-1])
        headers = list(zip(it, it))
        root = self.root_path
        server = self.server_addr
        if server is None:
            server = _server_from_host(headers)
        scope: Dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": f[4].decode("ascii"),
            "method": f[0].decode("latin-1"),
            "scheme": "http",
            "path": root + path if root else path,
            "raw_path": root.encode("utf-8") + raw_path if root else raw_path,
            "query_string": f[2],
            "root_path": root,
            "headers": headers,
            "client": split_hostport(f[3].decode("latin-1")),
            "server": server,
        }
        if self.state:
            scope["state"] = dict(self.state)
        return scope

    def scope(self, req: Request) -> Dict[str, Any]:
        """The ASGI ``http`` scope of ``req``."""
        return self._scope(req._head_fields())

    async def _handle(self, ptr: Optional[int], req: Optional[Request]) -> None:
        label = "a request"
        try:
            f = self._head(ptr, req)
            label = f"{f[0].decode('latin-1')} {f[1].decode('latin-1')}"
            scope = self._scope(f)
            body = self._body(ptr, req) if f[5] != b"0" else b""
        except Exception:
            log.exception("graceserve.asgi: cannot read %s; answered 500", label)
            if ptr is not None:
                _FAST.server_request_free(ptr)
            elif req is not None:
                req.respond(500, _ERROR_BODY, _ERROR_HEADERS)
            return
        cycle = _Cycle(self, ptr, req, body, label)
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except BaseException as e:
            if cycle.stream is None and not cycle.complete:  # nothing sent yet
                if isinstance(e, asyncio.CancelledError):
                    cycle.fail(503, _UNAVAILABLE_BODY)
                    raise
                log.exception("graceserve.asgi: the application raised on %s; answered 500", label)
                cycle.fail(500, _ERROR_BODY)
            elif isinstance(e, asyncio.CancelledError):
                raise
            elif not (isinstance(e, OSError) and cycle.gone):
                log.exception("graceserve.asgi: the application raised on %s after the response began", label)
        else:
            if not cycle.started:
                log.error("graceserve.asgi: the application returned without a response for %s; answered 500", label)
                cycle.fail(500, _ERROR_BODY)
            elif not cycle.complete and not cycle.gone:
                if cycle.stream is None:
                    # Started, but no body message at all: an empty body.
                    cycle.complete = True
                    cycle.respond(cycle.status, cycle.headers, b"")
                else:
                    log.warning("graceserve.asgi: the application returned before completing the body of %s", label)
        finally:
            cycle.finish()

    # -- disconnects -----------------------------------------------------------------------

    def _watch(self, cycle: _Cycle) -> None:
        self._watched.add(cycle)
        if self._poll is None:
            loop = self._loop
            assert loop is not None
            self._poll = loop.call_later(DISCONNECT_POLL_S, self._check_clients)

    def _unwatch(self, cycle: _Cycle) -> None:
        self._watched.discard(cycle)

    def _check_clients(self) -> None:
        self._poll = None
        for cycle in list(self._watched):
            if cycle.client_gone():
                self._watched.discard(cycle)
                cycle.wake()
        if self._watched:
            loop = self._loop
            assert loop is not None
            self._poll = loop.call_later(DISCONNECT_POLL_S, self._check_clients)


def handler(app: ASGIApp, **kw: Any) -> ASGIHandler:
    """``ASGIHandler(app, **kw)``; use it as ``with handler(app) as h:`` to run the lifespan."""
    return ASGIHandler(app, **kw)


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise _Interrupted(signum)


class _SignalsRaise:
    """While active (on the main thread): SIGINT/SIGTERM raise :class:`_Interrupted`."""

    def __enter__(self) -> "_SignalsRaise":
        self.previous: List[Tuple[int, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous.append((sig, signal.signal(sig, _raise_on_signal)))
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, h in self.previous:
            signal.signal(sig, h)


def serve(
    app: ASGIApp,
    addr: str = "127.0.0.1:8080",
    *,
    ready: Optional[Callable[[Server], None]] = None,
    lifespan: str = "auto",
    root_path: str = "",
    loop: str = "asyncio",
    **options: Any,
) -> int:
    """Runs the lifespan startup, serves ``app`` on ``addr`` until SIGINT/SIGTERM, drains, runs
    the lifespan shutdown, and returns the exit status (0 graceful; 1 failed, forced, or a
    lifespan shutdown that failed), for ``sys.exit(graceserve.serve_asgi(app))``.

    ``options`` are :class:`graceserve.Server`'s. Raises :class:`LifespanError` when the
    startup fails (the server never binds) and :class:`graceserve.StartError` when the bind
    fails (after running the lifespan shutdown). A signal during the lifespan startup or
    shutdown cancels it and raises ``KeyboardInterrupt``."""
    h = ASGIHandler(app, lifespan=lifespan, root_path=root_path, loop=loop)
    server = Server(addr, h, **options)
    try:
        with _SignalsRaise():
            h.startup()
    except _Interrupted as e:
        h.shutdown_quietly()
        raise KeyboardInterrupt(f"{e} during the lifespan startup") from None
    except BaseException:
        h.shutdown_quietly()
        raise

    def on_ready(s: Server) -> None:
        h.bind(s)
        if ready is not None:
            ready(s)

    try:
        status = server.serve(ready=on_ready)
    except BaseException:
        h.shutdown_quietly()
        raise
    try:
        with _SignalsRaise():
            h.shutdown()
    except _Interrupted as e:
        raise KeyboardInterrupt(f"{e} during the lifespan shutdown") from None
    except LifespanError as e:
        log.error("graceserve.asgi: lifespan shutdown failed: %s", e)
        return 1
    return status

