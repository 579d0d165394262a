"""The server: options, lifecycle, signals the Python way, and the C callbacks (trampolines)."""

from __future__ import annotations

import atexit
import ctypes
import enum
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Callable, Dict, NamedTuple, Optional, Set, Type, Union, overload

from . import _ffi
from ._errors import (
    AlreadyRunningError,
    GraceserveError,
    NotRunningError,
    RequestClosedError,
    StartError,
    error_for,
)
from ._native import LIB, last_error
from ._request import HandlerResult, Prepared, Request, Response, prepare
from ._slab import Slab

__all__ = ["Handler", "Server", "Stats", "StopCause", "serve"]

log = logging.getLogger("graceserve")

#: A request handler: called on a library thread (possibly many at once) with each request.
Handler = Callable[[Request], HandlerResult]

#: Default ``handler_threads`` for Python handlers (see :class:`Server`): the default size of
#: ``concurrent.futures.ThreadPoolExecutor``. Python handlers share one GIL, so threads beyond
#: what blocking handlers need only add switching (measured in bench/python/RESULTS.md).
DEFAULT_HANDLER_THREADS = min(32, (os.cpu_count() or 1) + 4)

#: How long ``wait()`` blocks inside the library before Python gets a chance to run signal
#: handlers (Ctrl-C) on the main thread.
WAIT_SLICE_S = 0.02

#: At interpreter exit, how long to let handler calls still running (after a forced stop)
#: finish before the process exits without finalizing the interpreter; see ``_at_exit``.
EXIT_GRACE_S = 0.05

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_MAX_U32_MS = 0xFFFFFFFE  # ~49.7 days; 0xFFFFFFFF means "no deadline" to server_shutdown


class StopCause(enum.IntEnum):
    """Why the server stopped (the C enum ``server_stop_cause``)."""

    NONE = _ffi.SERVER_CAUSE_NONE
    GRACEFUL_SIGNAL = _ffi.SERVER_CAUSE_GRACEFUL_SIGNAL
    GRACEFUL_CALL = _ffi.SERVER_CAUSE_GRACEFUL_CALL
    BIND_FAILED = _ffi.SERVER_CAUSE_BIND_FAILED
    RUNTIME_FAILED = _ffi.SERVER_CAUSE_RUNTIME_FAILED
    FORCED_DEADLINE = _ffi.SERVER_CAUSE_FORCED_DEADLINE
    FORCED_SECOND_SIGNAL = _ffi.SERVER_CAUSE_FORCED_SECOND_SIGNAL
    INVALID_OPTIONS = _ffi.SERVER_CAUSE_INVALID_OPTIONS

    @property
    def graceful(self) -> bool:
        return self in (StopCause.GRACEFUL_SIGNAL, StopCause.GRACEFUL_CALL)

    @property
    def exit_status(self) -> int:
        """0 for a graceful stop, 1 otherwise."""
        return 0 if self.graceful else 1


class Stats(NamedTuple):
    """Live counters of a running server."""

    connections_active: int
    connections_total: int
    requests_active: int
    requests_total: int


# --------------------------------------------------------------------------------------------
# Calls from C. The CFUNCTYPE objects below live as long as the module (the library may call
# them until the server is torn down); per-server state travels as a slab key in `userdata`.
# --------------------------------------------------------------------------------------------

# ctypes wraps every callback on a thread Python did not create in PyGILState_Ensure/Release,
# which builds and destroys a whole thread state each time, and forgets thread-locals between
# calls. One extra PyGILState_Ensure per library thread keeps that thread's state alive:
# callbacks then only take the GIL (about twice the throughput on a trivial handler), and
# threading.local works in handlers. The cost is one small thread state per library thread
# that ever ran a handler, kept until the process exits. GRACESERVE_PIN_THREADSTATE=0 turns
# it off.
_PIN = (
    platform.python_implementation() == "CPython"
    and os.environ.get("GRACESERVE_PIN_THREADSTATE", "1") != "0"
)
_tls = threading.local()
_get_ident = threading.get_ident

#: Thread ids of library threads inside a Python handler call right now.
_ACTIVE: Set[int] = set()

_ERROR_500: Prepared = prepare(Response("internal server error\n", 500))


def _pin_thread() -> None:
    ctypes.pythonapi.PyGILState_Ensure()
    _tls.pinned = True


class _Dispatch:
    """What one server's handler calls need: the handler."""

    __slots__ = ("handler",)

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def call(self, ptr: int) -> None:
        req = Request(ptr)
        tid = _get_ident()
        _ACTIVE.add(tid)
        try:
            try:
                result = self.handler(req)
            except BaseException:
                if req._state != 0:
                    log.exception("graceserve: handler raised on %s after answering or deferring it", req)
                    return
                log.exception("graceserve: handler raised on %s; answered 500", req)
                result = _FAILED
            if req._state != 0:  # answered with respond(), or deferred
                return
            if result is None:
                log.error(
                    "graceserve: handler returned None for %s without answering or "
                    "deferring it; answered 500",
                    req,
                )
                result = _FAILED
            if result is _FAILED:
                parts = _ERROR_500
            else:
                try:
                    parts = prepare(result)
                except (TypeError, ValueError, UnicodeError) as e:
                    log.error("graceserve: bad handler result for %s (%s); answered 500", req, e)
                    parts = _ERROR_500
            try:
                req._answer(parts)
            except ValueError as e:
                log.error("graceserve: invalid response for %s (%s); answered 500", req, e)
                req._answer(_ERROR_500)
            except RequestClosedError:
                pass  # answered meanwhile from another thread
        finally:
            _ACTIVE.discard(tid)


_FAILED: Any = object()
_DISPATCH: "Slab[_Dispatch]" = Slab()


def _on_request(userdata: Optional[int], ptr: Optional[int]) -> None:
    try:
        if _PIN:
            try:
                _tls.pinned
            except AttributeError:
                _pin_thread()
        d = _DISPATCH.get(userdata)
        if d is None or not ptr:
            if ptr:
                LIB.server_request_free(ptr)
            return
        d.call(ptr)
    except BaseException:  # never unwind into C
        try:
            log.exception("graceserve: internal error in the request callback")
        except BaseException:
            pass


def _on_drop(userdata: Optional[int]) -> None:
    try:
        _DISPATCH.deallocate(userdata)
    except BaseException:
        pass


_HANDLER_CB = _ffi.server_handler_fn(_on_request)
_DROP_CB = _ffi.server_userdata_drop_fn(_on_drop)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"
_lock = threading.RLock()
_current: Optional["Server"] = None
_last_status: Optional[int] = None


def _ms(name: str, seconds: Optional[float], allow_zero: bool = True) -> int:
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
        raise TypeError(f"{name} must be a number of seconds, not {seconds!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {seconds!r}")
    if math.isinf(seconds):
        return _MAX_U32_MS
    return min(int(round(seconds * 1000)), _MAX_U32_MS)


def _count(name: str, value: Optional[int], lo: int, hi: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
    return value


class Server:
    """An HTTP/1.1 + h2c server running in this process, with a graceful lifecycle.

    ``Server(addr, handler)`` configures it; :meth:`start` binds at once (raising
    :class:`StartError` naming the address and the OS error) and serves on library threads;
    :meth:`shutdown` drains (stop accepting, close idle connections, let in-flight requests
    finish, cut the rest at the deadline); :meth:`wait` returns the exit status: 0 graceful, 1
    failed or forced. :meth:`serve` does start + wait with SIGINT/SIGTERM handled the Python
    way; ``with Server(...) as s:`` starts it and drains on exit.

    One server runs per process at a time (the library's design); a stopped one can be started
    again, or a new one started.

    handler
        ``handler(request) -> result``: see :class:`Request` and :data:`HandlerResult`. Called on
        library threads, many at once; ``None`` answers every request ``200 OK``.
    shutdown_timeout
        Seconds a drain may take before in-flight requests are cut: for drains started by a
        signal, and the default for :meth:`shutdown` and :meth:`close`.
    workers
        Async I/O threads (default: one per CPU).
    handler_threads
        Threads that may run handlers at once. Default: ``min(32, os.cpu_count() + 4)``, as
        ``concurrent.futures.ThreadPoolExecutor`` (the C library's is 512): Python handlers
        share one GIL, so more threads mostly add switching. Raise it for handlers that spend
        their time blocked on I/O or sleeping.
    inline
        Run the handler on the I/O thread itself: the fastest for handlers that answer at
        once, but a handler that blocks (sleeps, waits on I/O or the GIL) stalls other
        connections. Off by default.
    max_connections, header_read_timeout, keepalive_idle_timeout, max_header_bytes,
    max_body_bytes
        Limits, as in the C ``server_options`` (``None``: the library's default).
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:8080",
        handler: Optional[Handler] = None,
        *,
        shutdown_timeout: float = 5.0,
        workers: Optional[int] = None,
        handler_threads: Optional[int] = None,
        inline: bool = False,
        max_connections: Optional[int] = None,
        header_read_timeout: Optional[float] = None,
        keepalive_idle_timeout: Optional[float] = None,
        max_header_bytes: Optional[int] = None,
        max_body_bytes: Optional[int] = None,
    ) -> None:
        if not isinstance(addr, str):
            raise TypeError(f"addr must be a 'HOST:PORT' string, not {addr!r}")
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        self._addr = addr
        self._handler = handler
        self.shutdown_timeout = float(shutdown_timeout)
        self._opts: Dict[str, Union[int, bool]] = {
            "signal_drain_timeout_ms": _ms("shutdown_timeout", shutdown_timeout),
            "worker_threads": _count("workers", workers, 1, 1024),
            "handler_threads": _count(
                "handler_threads",
                DEFAULT_HANDLER_THREADS if handler_threads is None else handler_threads,
                1,
                65536,
            ),
            "inline_handler": bool(inline),
            "max_connections": _count("max_connections", max_connections, 1, 2**32 - 1),
            "header_read_timeout_ms": _ms("header_read_timeout", header_read_timeout, False),
            "keepalive_idle_timeout_ms": _ms("keepalive_idle_timeout", keepalive_idle_timeout, False),
            "max_header_bytes": _count("max_header_bytes", max_header_bytes, 8192, 2**32 - 1),
            "max_body_bytes": _count("max_body_bytes", max_body_bytes, 1, 2**64 - 1),
        }
        self._state = _NEW
        self._bound: Optional[str] = None
        self._status: Optional[int] = None
        self._cause = StopCause.NONE
        self._message = ""

    # -- state -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True from a successful :meth:`start` until the stop is waited for."""
        return self._state == _RUNNING

    @property
    def addr(self) -> str:
        """The bound ``HOST:PORT`` (the real port when port 0 was asked for) once started;
        the configured address before."""
        return self._bound or self._addr

    @property
    def port(self) -> int:
        """The bound port (0 before start)."""
        if self._bound is None:
            return 0
        return int(self._bound.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the bound address."""
        return f"http://{self.addr}"

    @property
    def status(self) -> Optional[int]:
        """The exit status once stopped (0 graceful, 1 failure or forced), else None."""
        return self._status

    @property
    def stop_cause(self) -> StopCause:
        """Why it stopped (``StopCause.NONE`` while running or before start)."""
        return self._cause

    @property
    def stop_message(self) -> str:
        """The library's account of a failed or forced stop (empty after a graceful one)."""
        return self._message

    def stats(self) -> Stats:
        """Live counters; raises :class:`NotRunningError` unless running."""
        st = _ffi.server_stats()
        rc = LIB.server_get_stats(ctypes.byref(st))
        if rc != _ffi.SERVER_OK:
            raise error_for(rc, last_error())
        return Stats(st.connections_active, st.connections_total, st.requests_active, st.requests_total)

    def __repr__(self) -> str:
        return f"<graceserve.Server {self.addr} {self._state}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Server":
        """Binds and starts serving on library threads; returns self. Raises
        :class:`StartError` (:class:`AddressInUseError`, ...) when it cannot; nothing keeps
        running then. Signals stay with Python (see :meth:`serve`)."""
        global _current
        with _lock:
            if self._state == _RUNNING:
                raise AlreadyRunningError(_ffi.SERVER_ERR_ALREADY_RUNNING, f"{self!r} is already running")
            other = _current
            if other is not None and other._state == _RUNNING:
                # A server drained by someone else but not waited for yet is finished here.
                if other.wait(0) is None:
                    raise AlreadyRunningError(
                        _ffi.SERVER_ERR_ALREADY_RUNNING,
                        f"another server ({other.addr}) is running in this process; shut it down first",
                    )
            opts = _ffi.server_options()
            LIB.server_options_init(ctypes.byref(opts), _ffi.SERVER_OPTIONS_VERSION)
            opts.addr = self._addr.encode("utf-8")
            opts.signals = _ffi.SERVER_SIGNALS_HOST
            for name, value in self._opts.items():
                if value or name in ("signal_drain_timeout_ms", "inline_handler"):
                    setattr(opts, name, value)
            key = 0
            native = getattr(self._handler, "_graceserve_native_handler", None)
            native_ud: Optional[int] = None
            if native is not None:
                # A handler implemented in the library itself (graceserve.asgi's request
                # queue): no Python runs per request on library threads. It never blocks, so
                # it runs inline on the I/O threads. native() takes a reference for the server.
                opts.handler, native_ud, opts.userdata_drop = native()
                opts.userdata = native_ud
                opts.inline_handler = True
            elif self._handler is not None:
                key = _DISPATCH.allocate(_Dispatch(self._handler))
                opts.handler = _HANDLER_CB
                opts.userdata = key
                opts.userdata_drop = _DROP_CB
            rc = LIB.server_start(ctypes.byref(opts))
            if rc != _ffi.SERVER_OK:
                msg = last_error()
                if key:
                    _DISPATCH.deallocate(key)  # when the library never took the userdata
                if native_ud is not None and rc in (_ffi.SERVER_ERR_ALREADY_RUNNING, _ffi.SERVER_ERR_VERSION):
                    opts.userdata_drop(native_ud)  # the library did not take that reference
                if rc != _ffi.SERVER_ERR_ALREADY_RUNNING:
                    self._state = _STOPPED
                    self._status = 1
                    self._cause = StopCause(LIB.server_last_stop_cause())
                    self._message = msg
                raise error_for(rc, msg, StartError)
            buf = ctypes.create_string_buffer(64)
            if LIB.server_local_addr(buf, len(buf), None) == _ffi.SERVER_OK:
                self._bound = buf.value.decode("utf-8")
            self._state = _RUNNING
            self._status = None
            self._cause = StopCause.NONE
            self._message = ""
            _current = self
        return self

    def _finished(self, status: int) -> int:
        global _current, _last_status
        with _lock:
            if self._state == _RUNNING:
                self._state = _STOPPED
                self._status = status
                self._message = last_error() if status else ""
                self._cause = StopCause(LIB.server_last_stop_cause())
                _last_status = status
                if _current is self:
                    _current = None
        return self._status if self._status is not None else status

    @overload
    def wait(self) -> int: ...

    @overload
    def wait(self, timeout: Optional[float]) -> Optional[int]: ...

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Blocks until the server has stopped (a signal, :meth:`shutdown`, or a failure) and
        returns the exit status: 0 graceful, 1 failed or forced. With ``timeout`` (seconds)
        returns None if it is still running then. Waits in short slices, so Ctrl-C on the main
        thread interrupts it (with KeyboardInterrupt, the server still running) unless
        :meth:`serve` handles the signal."""
        if self._state == _STOPPED:
            return self._status
        if self._state == _NEW:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} was never started")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if deadline is None:
                slice_s = WAIT_SLICE_S
            else:
                slice_s = min(WAIT_SLICE_S, max(0.0, deadline - time.monotonic()))
            rc = LIB.server_wait_timeout(int(slice_s * 1000))
            if rc in (0, 1):
                return self._finished(rc)
            if rc != _ffi.SERVER_STILL_RUNNING:
                if self._state == _STOPPED:
                    return self._status
                raise error_for(rc, last_error())
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def shutdown(self, timeout: Optional[float] = None) -> Optional[int]:
        """Drains and blocks until stopped; returns the exit status (0: every connection
        finished in time, 1: the deadline cut some). ``timeout`` is the drain deadline in
        seconds from now (default :attr:`shutdown_timeout`; ``math.inf`` waits without one;
        0 cuts in-flight requests at once). A drain already under way keeps the earlier
        deadline. Idempotent.

        From inside a handler it only starts the drain and returns None (the drain waits for
        that very handler); wait for the status elsewhere."""
        if self._state == _STOPPED:
            return self._status
        if self._state == _NEW:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} was never started")
        t = self.shutdown_timeout if timeout is None else timeout
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isinf(t) and t > 0:
            ms = _ffi.SERVER_TIMEOUT_INFINITE
        else:
            ms = _ms("timeout", t)
        rc = LIB.server_shutdown(ms)
        if rc == _ffi.SERVER_DRAINING:
            return None
        return self.wait()

    def close(self) -> None:
        """Drains (deadline :attr:`shutdown_timeout`) and waits, if running. Idempotent."""
        if self._state == _RUNNING:
            self.shutdown()

    def __enter__(self) -> "Server":
        if self._state != _RUNNING:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def serve(self, ready: Optional[Callable[["Server"], None]] = None) -> int:
        """Starts (unless running) and waits; returns the exit status, for
        ``sys.exit(server.serve())``.

        On the main thread, SIGINT (Ctrl-C) and SIGTERM are handled while it runs: the first
        drains gracefully (deadline :attr:`shutdown_timeout`), a second forces the stop at
        once; no KeyboardInterrupt is raised. The previous Python handlers are put back
        afterwards. A failed start raises :class:`StartError`.

        ``ready(server)``, if given, is called once the server is bound and the signal handlers
        are in place (e.g. to print the address); if it raises, the server is drained and the
        exception propagates."""
        previous: Dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            if self._state != _RUNNING:
                self.start()
            if ready is not None:
                try:
                    ready(self)
                except BaseException:
                    self.close()
                    raise
            return self.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        rc = LIB.server_notify_signal(signum)
        if rc == _ffi.SERVER_OK:
            log.info("graceserve: %s received; draining (again to force)", signal.Signals(signum).name)


def serve(
    addr: str = "127.0.0.1:8080",
    handler: Optional[Handler] = None,
    *,
    ready: Optional[Callable[[Server], None]] = None,
    **options: Any,
) -> int:
    """``Server(addr, handler, **options).serve(ready)``: start, serve until SIGINT/SIGTERM,
    drain, and return the exit status, for ``sys.exit(graceserve.serve(...))``."""
    return Server(addr, handler, **options).serve(ready)


def current() -> Optional[Server]:
    """The server running in this process, if any."""
    srv = _current
    return srv if srv is not None and srv.running else None


def _at_exit() -> None:
    """Interpreter exit: drain a server still running, then make sure no handler is still
    running Python code while the interpreter finalizes.

    A handler call still running after a forced stop would try to take the GIL while the
    interpreter finalizes; CPython then ends that (library-owned) thread with pthread_exit,
    whose unwinding through the library aborts the process (SIGABRT). So such calls get
    ``EXIT_GRACE_S`` to return; if any is still running then, the process exits at once with
    the last server's exit status, after flushing stdio and logging."""
    srv = current()
    if srv is not None:
        try:
            srv.close()
        except GraceserveError:
            pass

    def busy() -> bool:
        # A handler call is running, or has returned but the library has not yet called the
        # userdata drop that follows it (also a call into Python) for a stopped server.
        return bool(_ACTIVE) or (current() is None and len(_DISPATCH) > 0)

    if not busy():
        return
    deadline = time.monotonic() + EXIT_GRACE_S
    while busy() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not busy():
        time.sleep(0.01)  # let the last calls return into the library before finalizing
        return
    status = _last_status if _last_status is not None else 1
    try:
        log.info(
            "graceserve: %d handler call(s) still running at exit; exiting now with status %d",
            len(_ACTIVE),
            status,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


atexit.register(_at_exit)
