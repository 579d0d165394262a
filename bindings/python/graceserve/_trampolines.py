"""Calls from C: the request and userdata-drop trampolines, and the slab that maps each
server's ``userdata`` key to its handler.

The CFUNCTYPE objects below live as long as the module (the library may call them until a
server is torn down, and after a forced stop until a stuck handler call returns); per-server
state travels as a slab key in ``userdata``. Every server shares the two trampolines.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import os
import platform
import threading
from typing import Any, Callable, Optional, Set, Tuple

from . import _ffi
from ._errors import RequestClosedError
from ._native import LIB
from ._request import HandlerResult, Prepared, Request, Response, prepare
from ._slab import Slab

__all__ = ["ACTIVE", "DISPATCH", "Dispatch", "Handler", "callbacks"]

log = logging.getLogger("graceserve")

#: A request handler: called on a library thread (possibly many at once) with each request.
Handler = Callable[[Request], HandlerResult]

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

#: Thread ids of library threads inside a Python handler call right now (any server).
ACTIVE: Set[int] = set()

_ERROR_500: Prepared = prepare(Response("internal server error\n", 500))
_FAILED: Any = object()


def _pin_thread() -> None:
    ctypes.pythonapi.PyGILState_Ensure()
    _tls.pinned = True


class EventKind(enum.IntEnum):
    """What a lifecycle event reports (the C enum ``server_event_kind``)."""

    DRAIN_STARTED = _ffi.SERVER_EVENT_DRAIN_STARTED
    STOPPED = _ffi.SERVER_EVENT_STOPPED
    UPGRADE_READY = _ffi.SERVER_EVENT_UPGRADE_READY
    UPGRADE_FAILED = _ffi.SERVER_EVENT_UPGRADE_FAILED


#: ``on_event(kind, message)``: called on a library thread with a line the library formats.
EventHandler = Callable[[EventKind, str], None]


class Dispatch:
    """What one started server's callbacks need: the handler and the event callback.
    ``status`` is that server's exit status once it has stopped (read at interpreter exit if a
    call is still running)."""

    __slots__ = ("handler", "on_event", "status")

    def __init__(self, handler: Optional[Handler], on_event: Optional[EventHandler] = None) -> None:
        self.handler = handler
        self.on_event = on_event
        self.status: Optional[int] = None

    def call(self, ptr: int) -> None:
        req = Request(ptr)
        tid = _get_ident()
        ACTIVE.add(tid)
        try:
            try:
                handler = self.handler
                assert handler is not None  # the library calls back only with a handler set
                result: HandlerResult = handler(req)
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
            ACTIVE.discard(tid)


#: userdata key -> Dispatch, for every started server whose userdata the library still holds.
DISPATCH: "Slab[Dispatch]" = Slab()


def _on_request(userdata: Optional[int], ptr: Optional[int]) -> None:
    try:
        if _PIN:
            try:
                _tls.pinned
            except AttributeError:
                _pin_thread()
        d = DISPATCH.get(userdata)
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
        DISPATCH.deallocate(userdata)
    except BaseException:
        pass


def _on_event(userdata: Optional[int], kind: int, message: Optional[bytes]) -> None:
    try:
        d = DISPATCH.get(userdata)
        if d is None or d.on_event is None:
            return
        try:
            k = EventKind(kind)
        except ValueError:
            return  # a kind added by a newer library
        d.on_event(k, (message or b"").decode("utf-8", "replace"))
    except BaseException:  # never unwind into C
        try:
            log.exception("graceserve: the on_event callback raised")
        except BaseException:
            pass


_HANDLER_CB = _ffi.server_handler_fn(_on_request)
_DROP_CB = _ffi.server_userdata_drop_fn(_on_drop)
_EVENT_CB = _ffi.server_event_fn(_on_event)


def callbacks(d: Dispatch) -> Tuple[Any, int, Any, Any]:
    """(handler, userdata, userdata_drop, on_event) for ``server_options``, NULL (None) for a
    callback ``d`` has no use for: ``d`` is in the slab until the library calls the drop (or
    :meth:`Slab.deallocate` when the start never read the options)."""
    return (
        _HANDLER_CB if d.handler is not None else None,
        DISPATCH.allocate(d),
        _DROP_CB,
        _EVENT_CB if d.on_event is not None else None,
    )
