"""Servers: options, the lifecycle of each server (a ``server_instance`` handle), signals the
Python way, and the drain at interpreter exit. The C callbacks live in ``_trampolines``."""

from __future__ import annotations

import atexit
import ctypes
import enum
import logging
import math
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Type, Union, overload

from . import _ffi
from ._errors import (
    AlreadyRunningError,
    GraceserveError,
    NotRunningError,
    StartError,
    error_for,
)
from ._native import LIB, last_error
from ._trampolines import ACTIVE, DISPATCH, Dispatch, EventHandler, EventKind, Handler, callbacks

__all__ = ["EventHandler", "EventKind", "Handler", "Server", "Stats", "StopCause", "serve", "serve_all"]

log = logging.getLogger("graceserve")

#: Default ``handler_threads`` for Python handlers (see :class:`Server`): the default size of
#: ``concurrent.futures.ThreadPoolExecutor``. It differs on purpose from the library's default
#: (512): Python handlers share one GIL, so threads beyond what blocking handlers need only add
#: switching (measured in bench/python/RESULTS.md).
DEFAULT_HANDLER_THREADS = min(32, (os.cpu_count() or 1) + 4)

#: How long ``wait()`` blocks inside the library before Python gets a chance to run signal
#: handlers (Ctrl-C) on the main thread.
WAIT_SLICE_S = 0.02

#: At interpreter exit, how long to let handler calls still running (after a forced stop)
#: finish before the process exits without finalizing the interpreter; see ``_at_exit``.
EXIT_GRACE_S = 0.05

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_MAX_U32_MS = 0xFFFFFFFE  # ~49.7 days; 0xFFFFFFFF means "no deadline" to server_shutdown


def _library_defaults() -> _ffi.server_options:
    opts = _ffi.server_options()
    rc = LIB.server_options_init(ctypes.byref(opts), _ffi.SERVER_OPTIONS_VERSION)
    if rc != _ffi.SERVER_OK:
        raise error_for(rc, last_error())
    return opts


#: The library's option defaults (``server_options_init``), the one place they are decided.
_DEFAULTS = _library_defaults()


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
    UPGRADED = _ffi.SERVER_CAUSE_UPGRADED

    @property
    def exit_status(self) -> int:
        """The exit status this cause amounts to, as the library decides it
        (``server_stop_cause_exit_status``): 0 for a graceful stop, 1 otherwise. Raises
        :class:`NotRunningError` for ``NONE`` (nothing has stopped)."""
        rc = LIB.server_stop_cause_exit_status(self.value)
        if rc in (0, 1):
            return rc
        raise error_for(rc, f"StopCause.{self.name} has no exit status")

    @property
    def graceful(self) -> bool:
        """True for a stop whose exit status is 0."""
        return self is not StopCause.NONE and self.exit_status == 0



class Stats(NamedTuple):
    """Live counters of a server."""

    connections_active: int
    connections_total: int
    requests_active: int
    requests_total: int
    #: Open connections with no request in flight (idle keep-alive, or nothing sent yet).
    connections_idle: int = 0
    #: Connections that ended during the pre-drain delay or the drain without being cut.
    connections_drained: int = 0
    #: Connections cut by force (drain deadline, second signal).
    connections_cut: int = 0
    #: Requests answered during the pre-drain delay.
    requests_during_delay: int = 0


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


def _count(name: str, value: Optional[int], hi: int) -> int:
    """An integer option: ``value`` must fit the C field (1..hi); the library checks the rest."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not 1 <= value <= hi:
        raise ValueError(f"{name} must be in 1..{hi}, not {value}")
    return value


class _Handle:
    """One ``server_instance`` handle. Calls borrow it (``with handle as ptr:``); :meth:`free`
    releases it once no call is using it, as the C ABI requires."""

    __slots__ = ("ptr", "_users", "_cv")

    def __init__(self, ptr: int) -> None:
        self.ptr: Optional[int] = ptr
        self._users = 0
        self._cv = threading.Condition()  # an RLock: a signal handler may borrow it re-entrantly

    def __enter__(self) -> int:
        with self._cv:
            ptr = self.ptr
            if ptr is None:
                raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, "the server was closed")
            self._users += 1
            return ptr

    def __exit__(self, *exc: object) -> None:
        with self._cv:
            self._users -= 1
            if self._users == 0:
                self._cv.notify_all()

    def free(self) -> None:
        with self._cv:
            ptr, self.ptr = self.ptr, None
            while self._users:
                self._cv.wait()
        if ptr is not None:
            LIB.server_instance_free(ptr)

    def __del__(self, _free: Callable[[Optional[int]], None] = LIB.server_instance_free) -> None:
        # (_free is bound now: module globals may be gone when this runs at interpreter exit.)
        ptr, self.ptr = self.ptr, None
        if ptr is not None:
            try:
                _free(ptr)
            except BaseException:
                pass


_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"

#: Servers started and not yet waited for, drained at interpreter exit (see ``_at_exit``).
#: Holding them here also keeps a running server alive when the program drops its reference.
_LIVE: Set["Server"] = set()
_LIVE_LOCK = threading.Lock()


class Server:
    """An HTTP/1.1 + h2c server in this process, with a graceful lifecycle.

    ``Server(addr, handler)`` configures it; :meth:`start` binds at once (raising
    :class:`StartError` naming the address and the OS error) and serves on library threads;
    :meth:`shutdown` drains (stop accepting, close idle connections, let in-flight requests
    finish, cut the rest at the deadline); :meth:`wait` returns the exit status: 0 graceful, 1
    failed or forced. :meth:`serve` does start + wait with SIGINT/SIGTERM handled the Python
    way; ``with Server(...) as s:`` starts it and drains on exit.

    Every ``Server`` is independent: any number run at once in one process (an admin port
    beside the public one), each with its own threads, limits, stats and outcome;
    :func:`serve_all` serves several with one Ctrl-C draining them all. A stopped server can be
    started again.

    addr
        ``HOST:PORT`` to listen on (port 0 picks a free port); ``None``: the library's default,
        ``127.0.0.1:8080``.
    handler
        ``handler(request) -> result``: see :class:`Request` and :data:`HandlerResult`. Called on
        library threads, many at once; ``None`` answers every request ``200 OK``.
    shutdown_timeout
        Seconds a drain may take before in-flight requests are cut: for drains started by a
        signal, and the default for :meth:`shutdown` and :meth:`close`. ``None``: the
        library's default (5 s).
    workers
        Async I/O threads (default: one per CPU).
    handler_threads
        Threads that may run handlers at once. Default: ``min(32, os.cpu_count() + 4)``, as
        ``concurrent.futures.ThreadPoolExecutor``, on purpose lower than the C library's 512:
        Python handlers share one GIL, so more threads mostly add switching. Raise it for
        handlers that spend their time blocked on I/O or sleeping.
    inline
        Call the handler inside the I/O loop's turn: only for handlers that answer at once,
        since a handler that blocks (sleeps, waits on I/O or the GIL) stalls the other
        connections of its worker, with no hand-over to another thread. Off by default (the
        default runs handlers on the same thread between turns, and hands the worker's other
        connections over when one blocks).
    max_connections, header_read_timeout, keepalive_idle_timeout, max_header_bytes,
    max_body_bytes
        Limits, as in the C ``server_options`` (``None``: the library's default; the library
        checks the values when the server starts).
    drain_delay
        Seconds of pre-drain delay (default 0): when a drain is requested the server keeps
        accepting and serving this long, readiness answers 503, every answer closes its
        connection, idle keep-alive connections stay open; then the drain runs, its deadline
        counted from the end of the delay (a stop takes at most delay + deadline). For load
        balancers and Kubernetes: they stop routing here before the port closes.
    readiness_path, liveness_path
        Paths the library answers itself before the handler (e.g. ``"/readyz"``,
        ``"/livez"``): readiness 200 ``ready`` while serving and 503 ``draining`` once a drain
        is requested; liveness 200 ``alive`` until the server stops. ``None``: off.
    max_requests_per_connection, max_connection_age
        After this many requests, or this many seconds, a connection's next answer closes it
        (HTTP/2: GOAWAY), so L4 balancers rebalance after a rollout. ``None``: no limit.
    on_event
        ``on_event(kind, message)``, called on a library thread when a drain starts, when the
        server stops and on upgrade news, with a line the library formats (e.g. to print it on
        stderr). It must not block.
    upgrade_on_sighup, upgrade_timeout
        SIGHUP (caught by :meth:`serve` / :func:`serve_all`) upgrades in place: a fresh copy of
        this program with the same arguments takes over the listener, and once it reports
        ready this server drains (:attr:`StopCause.UPGRADED`, status 0); if it never does, this
        server keeps serving and ``on_event`` says why. ``upgrade_timeout`` (seconds) bounds
        the wait (``None``: the library's default). See :meth:`upgrade`.
    sd_notify
        With ``NOTIFY_SOCKET`` set (a systemd ``Type=notify`` service), the library sends
        ``READY=1``, ``STOPPING=1``, ``STATUS=`` and watchdog pings; ``False`` turns it off
        (leave it on for one server of a process).
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        handler: Optional[Handler] = None,
        *,
        shutdown_timeout: Optional[float] = None,
        workers: Optional[int] = None,
        handler_threads: Optional[int] = None,
        inline: Optional[bool] = None,
        max_connections: Optional[int] = None,
        header_read_timeout: Optional[float] = None,
        keepalive_idle_timeout: Optional[float] = None,
        max_header_bytes: Optional[int] = None,
        max_body_bytes: Optional[int] = None,
        drain_delay: Optional[float] = None,
        readiness_path: Optional[str] = None,
        liveness_path: Optional[str] = None,
        max_requests_per_connection: Optional[int] = None,
        max_connection_age: Optional[float] = None,
        on_event: Optional[EventHandler] = None,
        upgrade_on_sighup: bool = False,
        upgrade_timeout: Optional[float] = None,
        sd_notify: bool = True,
    ) -> None:
        if addr is not None and not isinstance(addr, str):
            raise TypeError(f"addr must be a 'HOST:PORT' string, not {addr!r}")
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {on_event!r}")
        paths: Dict[str, bytes] = {}
        for field, path in (("readiness_path", readiness_path), ("liveness_path", liveness_path)):
            if path is not None:
                if not isinstance(path, str):
                    raise TypeError(f"{field} must be a str, not {path!r}")
                paths[field] = path.encode("utf-8")
        self._addr = addr
        self._handler = handler
        self._on_event = on_event
        self._paths = paths
        # Only what the caller chose; every other field keeps server_options_init's value.
        opts: Dict[str, Union[int, bool]] = {
            "handler_threads": _count(
                "handler_threads",
                DEFAULT_HANDLER_THREADS if handler_threads is None else handler_threads,
                2**32 - 1,
            )
        }
        if shutdown_timeout is not None:
            opts["signal_drain_timeout_ms"] = _ms("shutdown_timeout", shutdown_timeout)
            self.shutdown_timeout = float(shutdown_timeout)
        else:
            self.shutdown_timeout = _DEFAULTS.signal_drain_timeout_ms / 1000
        if inline is not None:
            opts["inline_handler"] = bool(inline)
        for name, field, value, hi in (
            ("workers", "worker_threads", workers, 2**32 - 1),
            ("max_connections", "max_connections", max_connections, 2**32 - 1),
            (
                "max_requests_per_connection",
                "max_requests_per_connection",
                max_requests_per_connection,
                2**32 - 1,
            ),
            ("max_header_bytes", "max_header_bytes", max_header_bytes, 2**32 - 1),
            ("max_body_bytes", "max_body_bytes", max_body_bytes, 2**64 - 1),
        ):
            if value is not None:
                opts[field] = _count(name, value, hi)
        for name, field, seconds in (
            ("header_read_timeout", "header_read_timeout_ms", header_read_timeout),
            ("keepalive_idle_timeout", "keepalive_idle_timeout_ms", keepalive_idle_timeout),
            ("max_connection_age", "max_connection_age_ms", max_connection_age),
        ):
            if seconds is not None:
                opts[field] = _ms(name, seconds, allow_zero=False)
        if drain_delay is not None:
            opts["drain_delay_ms"] = _ms("drain_delay", drain_delay)
        if upgrade_timeout is not None:
            opts["upgrade_timeout_ms"] = _ms("upgrade_timeout", upgrade_timeout, allow_zero=False)
        opts["upgrade_on_sighup"] = bool(upgrade_on_sighup)
        opts["sd_notify"] = _ffi.SERVER_SD_NOTIFY_AUTO if sd_notify else _ffi.SERVER_SD_NOTIFY_OFF
        self.upgrade_on_sighup = bool(upgrade_on_sighup)
        self._opts = opts
        self._lock = threading.RLock()
        self._state = _NEW
        self._handle: Optional[_Handle] = None
        self._dispatch: Optional[Dispatch] = None
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
        before, the configured address (empty for the library's default)."""
        return self._bound or self._addr or ""

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
        """This server's counters: live while it runs, final once it has stopped. Raises
        :class:`NotRunningError` before the first start and after :meth:`close`."""
        h = self._handle
        if h is None:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} is not started")
        st = _ffi.server_stats()
        st.version = _ffi.SERVER_STATS_VERSION
        with h as ptr:
            rc = LIB.server_instance_get_stats(ptr, ctypes.byref(st))
        if rc != _ffi.SERVER_OK:
            raise error_for(rc, last_error())
        return Stats(
            st.connections_active,
            st.connections_total,
            st.requests_active,
            st.requests_total,
            st.connections_idle,
            st.connections_drained,
            st.connections_cut,
            st.requests_during_delay,
        )

    def upgrade(
        self,
        program: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        timeout: Optional[float] = None,
    ) -> int:
        """In-place upgrade: starts ``program`` with ``args`` (``argv[0]`` first; both
        ``None``: a fresh copy of this very program with the same arguments) with this server's
        listening socket handed over, waits up to ``timeout`` seconds (``None``: the
        ``upgrade_timeout`` option) for it to report ready, then starts this server's drain
        and returns the new process id. Both accept on the socket meanwhile, so no connection
        is refused. Raises :class:`UpgradeError` (this server keeps serving) when the new
        process cannot start, exits, or never reports ready. Blocks up to the timeout."""
        h = self._handle
        if h is None or self._state != _RUNNING:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} is not running")
        if program is None and args is not None:
            raise ValueError("args needs a program")
        prog = None if program is None else os.fsencode(program)
        argv: Any = None
        if args is not None:
            items = [os.fsencode(a) for a in args] + [None]
            argv = (ctypes.c_char_p * len(items))(*items)
        ms = 0 if timeout is None else _ms("timeout", timeout, allow_zero=False)
        pid = ctypes.c_uint32(0)
        with h as ptr:
            rc = LIB.server_instance_upgrade(ptr, prog, argv, ms, ctypes.byref(pid))
        if rc != _ffi.SERVER_OK:
            raise error_for(rc, last_error())
        return pid.value

    @property
    def drain_requested(self) -> bool:
        """True from the moment a drain of this server was requested (a signal, a shutdown,
        also during the pre-drain delay): to fail your own health checks or end long polls."""
        h = self._handle
        if h is None or self._state != _RUNNING:
            return self._state == _STOPPED
        with h as ptr:
            return bool(LIB.server_instance_drain_requested(ptr))

    def __repr__(self) -> str:
        return f"<graceserve.Server {self.addr or '(default address)'} {self._state}>"

    # -- lifecycle -------------------------------------------------------------------------

    def _options(self) -> _ffi.server_options:
        opts = _library_defaults()
        if self._addr is not None:
            opts.addr = self._addr.encode("utf-8")
        # Python owns signals (see serve()); a signal reaches this server only through
        # server_instance_notify_signal.
        opts.signals = _ffi.SERVER_SIGNALS_HOST
        for name, value in self._opts.items():
            setattr(opts, name, value)
        for name, path in self._paths.items():
            setattr(opts, name, path)  # the bytes live in self._paths during the start
        return opts

    def start(self) -> "Server":
        """Binds and starts serving on library threads; returns self. Raises
        :class:`StartError` (:class:`AddressInUseError`, ...) when it cannot; nothing keeps
        running then. Raises :class:`AlreadyRunningError` if this object is running already
        (other ``Server`` objects may run at the same time). Signals stay with Python (see
        :meth:`serve`)."""
        with self._lock:
            if self._state == _RUNNING:
                raise AlreadyRunningError(_ffi.SERVER_ERR_ALREADY_RUNNING, f"{self!r} is already running")
            old, self._handle = self._handle, None
            if old is not None:
                old.free()
            opts = self._options()
            dispatch: Optional[Dispatch] = None
            key = 0
            native = getattr(self._handler, "_graceserve_native_handler", None)
            native_ud: Optional[int] = None
            if native is not None:
                # A handler implemented in the library itself (graceserve.asgi's request
                # queue): no Python runs per request on library threads. It never blocks, so
                # it runs inline on the I/O threads. native() takes a reference for the server.
                if self._on_event is not None:
                    raise TypeError(
                        "on_event needs a Python handler: the library-implemented handler "
                        "(the ASGI request queue) owns the server's userdata"
                    )
                opts.handler, native_ud, opts.userdata_drop = native()
                opts.userdata = native_ud
                opts.inline_handler = True
            elif self._handler is not None or self._on_event is not None:
                dispatch = Dispatch(self._handler, self._on_event)
                handler_cb, key, drop_cb, event_cb = callbacks(dispatch)
                opts.userdata = key
                opts.userdata_drop = drop_cb
                if handler_cb is not None:  # a NULL callback stays NULL (ctypes takes no None)
                    opts.handler = handler_cb
                if event_cb is not None:
                    opts.on_event = event_cb
            out = ctypes.c_void_p()
            rc = LIB.server_instance_start(ctypes.byref(out), ctypes.byref(opts))
            if rc != _ffi.SERVER_OK or not out.value:
                msg = last_error()
                if key:
                    DISPATCH.deallocate(key)  # for the codes where the library did not take it
                if native_ud is not None and rc == _ffi.SERVER_ERR_VERSION:
                    opts.userdata_drop(native_ud)  # the library did not take that reference
                self._state = _STOPPED
                self._bound = None
                # A failed start leaves no handle: the library keeps its cause per thread.
                self._cause = StopCause(LIB.server_last_error_cause())
                self._status = self._cause.exit_status
                self._message = msg
                raise error_for(rc, msg, StartError)
            handle = _Handle(out.value)
            buf = ctypes.create_string_buffer(64)
            if LIB.server_instance_local_addr(out.value, buf, len(buf), None) == _ffi.SERVER_OK:
                self._bound = buf.value.decode("utf-8")
            self._handle = handle
            self._dispatch = dispatch
            self._state = _RUNNING
            self._status = None
            self._cause = StopCause.NONE
            self._message = ""
            with _LIVE_LOCK:
                _LIVE.add(self)
        return self

    def _settle(self, handle: _Handle, status: int, cause: StopCause, message: str) -> int:
        """Records the outcome the library reported to a wait (the first report wins)."""
        with self._lock:
            if self._state == _RUNNING and self._handle is handle:
                self._message = message
                self._cause = cause
                self._status = status
                self._state = _STOPPED
                if self._dispatch is not None:
                    self._dispatch.status = status
                with _LIVE_LOCK:
                    _LIVE.discard(self)
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
        :meth:`serve` handles the signal. Raises :class:`WrongThreadError` from one of this
        server's own handlers (the stop waits for that very handler)."""
        if self._state == _NEW:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} was never started")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            handle = self._handle
            if self._state == _STOPPED or handle is None:
                return self._status
            if deadline is None:
                slice_s = WAIT_SLICE_S
            else:
                slice_s = min(WAIT_SLICE_S, max(0.0, deadline - time.monotonic()))
            cause, message = StopCause.NONE, ""
            with handle as ptr:
                rc = LIB.server_instance_wait_timeout(ptr, int(slice_s * 1000))
                if rc in (0, 1):  # the exit status; the message is this thread's last error
                    message = last_error() if rc else ""
                    cause = StopCause(LIB.server_instance_stop_cause(ptr))
            if rc in (0, 1):
                # Outside the borrow: close() may hold the lock while it frees the handle.
                return self._settle(handle, rc, cause, message)
            if rc != _ffi.SERVER_STILL_RUNNING:
                raise error_for(rc, last_error())
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def shutdown(self, timeout: Optional[float] = None) -> Optional[int]:
        """Drains and blocks until stopped; returns the exit status (0: every connection
        finished in time, 1: the deadline cut some). ``timeout`` is the drain deadline in
        seconds from now (default :attr:`shutdown_timeout`; ``math.inf`` waits without one;
        0 cuts in-flight requests at once). A drain already under way keeps the earlier
        deadline. Idempotent. Other servers keep serving.

        From inside one of this server's handlers it only starts the drain and returns None
        (the drain waits for that very handler); wait for the status elsewhere."""
        if self._state == _NEW:
            raise NotRunningError(_ffi.SERVER_ERR_NOT_RUNNING, f"{self!r} was never started")
        handle = self._handle
        if self._state == _STOPPED or handle is None:
            return self._status
        t = self.shutdown_timeout if timeout is None else timeout
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isinf(t) and t > 0:
            ms = _ffi.SERVER_TIMEOUT_INFINITE
        else:
            ms = _ms("timeout", t)
        with handle as ptr:
            rc = LIB.server_instance_shutdown(ptr, ms)
        if rc == _ffi.SERVER_DRAINING:
            return None
        return self.wait()

    def close(self) -> None:
        """Drains (deadline :attr:`shutdown_timeout`) and waits, if running, then releases the
        library's handle: :attr:`status`, :attr:`stop_cause` and :attr:`stop_message` stay
        readable, :meth:`stats` no longer. Idempotent; the server may be started again.

        From inside one of this server's handlers it only starts the drain."""
        if self._state == _RUNNING and self.shutdown() is None:
            return
        with self._lock:
            if self._state != _RUNNING:
                handle, self._handle = self._handle, None
                if handle is not None:
                    handle.free()

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
        once (the library decides; Python forwards each signal); no KeyboardInterrupt is
        raised. The previous Python handlers are put back afterwards. A failed start raises
        :class:`StartError`. :func:`serve_all` does the same for several servers.

        ``ready(server)``, if given, is called once the server is bound and the signal handlers
        are in place (e.g. to print the address); if it raises, the server is drained and the
        exception propagates."""
        on_ready = None if ready is None else (lambda: ready(self))
        return _serve((self,), on_ready)

    def _on_signal(self, signum: int, frame: Optional[FrameType] = None) -> None:
        """Forwards ``signum`` to this server (``server_instance_notify_signal``): the first
        drains, a later one forces. Safe in a Python signal handler."""
        handle = self._handle
        if handle is None or self._state != _RUNNING:
            return
        try:
            with handle as ptr:
                LIB.server_instance_notify_signal(ptr, signum)
        except NotRunningError:
            pass  # closed meanwhile


def serve_all(*servers: Server, ready: Optional[Callable[[Sequence[Server]], None]] = None) -> int:
    """Serves several servers until every one has stopped; returns the highest exit status
    (0 only when every server stopped gracefully), for ``sys.exit(graceserve.serve_all(...))``.

    Starts each server that is not running yet; if one fails to start, those this call started
    are drained and the :class:`StartError` propagates. On the main thread, SIGINT/SIGTERM are
    forwarded to every server: the first drains them all (each with its own
    ``shutdown_timeout``), a second forces those still draining; no KeyboardInterrupt is
    raised, and the previous Python handlers come back afterwards. A server shut down on its
    own (say, by an admin handler) stops alone while the others keep serving.

    ``ready(servers)``, if given, is called once all are bound and the signal handlers are in
    place; if it raises, every server is drained and the exception propagates."""
    if not servers:
        raise TypeError("serve_all() needs at least one Server")
    for s in servers:
        if not isinstance(s, Server):
            raise TypeError(f"serve_all() takes Server objects, not {type(s).__name__}")
    if len(set(map(id, servers))) != len(servers):
        raise ValueError("serve_all(): the same Server was given twice")
    on_ready = None if ready is None else (lambda: ready(servers))
    return _serve(servers, on_ready)


def _forward_signal(group: Sequence[Server], signum: int) -> None:
    """A Python signal handler's work: hand ``signum`` to every server of ``group``; the library
    decides what it means (the first drains, a later one forces)."""
    name = signal.Signals(signum).name
    if signum == signal.SIGHUP:
        log.info("graceserve: SIGHUP received; upgrading in place")
        group = [s for s in group if s.upgrade_on_sighup]
    else:
        log.info("graceserve: %s received; draining (again to force)", name)
    for s in group:
        s._on_signal(signum)


def _serve(group: Sequence[Server], ready: Optional[Callable[[], None]]) -> int:
    def forward(signum: int, frame: Optional[FrameType]) -> None:
        _forward_signal(group, signum)

    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        sigs = list(_SIGNALS)
        if any(s.upgrade_on_sighup for s in group):
            sigs.append(signal.SIGHUP)
        for sig in sigs:
            previous[sig] = signal.signal(sig, forward)
    try:
        started: List[Server] = []
        for s in group:
            if not s.running:
                try:
                    s.start()
                except BaseException:
                    for t in started:
                        t.close()
                    raise
                started.append(s)
        if ready is not None:
            try:
                ready()
            except BaseException:
                for s in group:
                    s.close()
                raise
        return max(_wait_all(group))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait_all(group: Sequence[Server]) -> List[int]:
    """Waits for every server of ``group``; returns their exit statuses. Each round blocks one
    wait slice on the first server still running and polls the others, so a server that stops
    early is torn down at once and signal handlers run between slices."""
    statuses: Dict[int, int] = {}
    pending = list(group)
    while pending:
        for i, s in enumerate(list(pending)):
            status = s.wait(WAIT_SLICE_S if i == 0 else 0)
            if status is not None:
                statuses[id(s)] = status
                pending.remove(s)
    return [statuses[id(s)] for s in group]


def serve(
    addr: Optional[str] = None,
    handler: Optional[Handler] = None,
    *,
    ready: Optional[Callable[[Server], None]] = None,
    **options: Any,
) -> int:
    """``Server(addr, handler, **options).serve(ready)``: start, serve until SIGINT/SIGTERM,
    drain, and return the exit status, for ``sys.exit(graceserve.serve(...))``."""
    return Server(addr, handler, **options).serve(ready)


def _at_exit() -> None:
    """Interpreter exit: drain every server still running, then make sure no handler is still
    running Python code while the interpreter finalizes.

    A handler call still running after a forced stop would try to take the GIL while the
    interpreter finalizes; CPython then ends that (library-owned) thread with pthread_exit,
    whose unwinding through the library aborts the process (SIGABRT). So such calls get
    ``EXIT_GRACE_S`` to return; if any is still running then, the process exits at once with
    the exit status of a server whose calls are still around, after flushing stdio and
    logging."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for srv in live:
        try:
            srv.close()
        except GraceserveError:
            pass

    def busy() -> bool:
        # A handler call is running, or has returned but the library has not yet called the
        # userdata drop that follows it (also a call into Python): every server has stopped.
        return bool(ACTIVE) or len(DISPATCH) > 0

    if not busy():
        return
    deadline = time.monotonic() + EXIT_GRACE_S
    while busy() and time.monotonic() < deadline:
        time.sleep(0.005)
    if not busy():
        time.sleep(0.01)  # let the last calls return into the library before finalizing
        return
    status = max((d.status for d in DISPATCH.values() if d.status is not None), default=1)
    try:
        log.info(
            "graceserve: %d handler call(s) still running at exit; exiting now with status %d",
            len(ACTIVE),
            status,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


atexit.register(_at_exit)
