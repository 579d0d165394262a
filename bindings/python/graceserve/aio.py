"""asyncio helpers: answer requests from coroutines, and serve from async code.

    import asyncio, graceserve, graceserve.aio

    async def hello(request: graceserve.Request) -> str:
        await asyncio.sleep(0.01)
        return "hello\\n"

    async def main() -> int:
        server = graceserve.Server("127.0.0.1:8080", graceserve.aio.handler(hello))
        return await graceserve.aio.serve(server)

    raise SystemExit(asyncio.run(main()))

Requests still arrive on library threads; :func:`handler` defers each one and runs the
coroutine on the event loop, which answers it (answering is a quick, non-blocking call).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Awaitable, Callable, List, Optional

from ._request import HandlerResult, Request, Response
from ._server import Handler, Server, _forward_signal

__all__ = ["AsyncHandler", "handler", "serve"]

log = logging.getLogger("graceserve")

#: An ``async def handler(request)`` returning anything a plain handler may return.
AsyncHandler = Callable[[Request], Awaitable[HandlerResult]]

_ERROR = Response("internal server error\n", 500)


async def _run(fn: AsyncHandler, req: Request) -> None:
    try:
        result = await fn(req)
    except BaseException:
        log.exception("graceserve: async handler raised on %s; answered 500", req)
        result = _ERROR
    if req.answered:
        return
    if result is None:
        log.error("graceserve: async handler returned None for %s without answering; answered 500", req)
        result = _ERROR
    try:
        req.send(result)
    except (TypeError, ValueError, UnicodeError) as e:
        log.error("graceserve: bad async handler result for %s (%s); answered 500", req, e)
        req.send(_ERROR)


def handler(fn: AsyncHandler, loop: Optional[asyncio.AbstractEventLoop] = None) -> Handler:
    """A server handler that runs ``await fn(request)`` on ``loop`` (default: the loop running
    where ``handler()`` is called) and answers with its result. An exception answers 500
    (logged); a stopped or closed loop answers 503."""
    target = loop if loop is not None else asyncio.get_running_loop()

    def _handle(req: Request) -> None:
        req.defer()
        try:
            asyncio.run_coroutine_threadsafe(_run(fn, req), target)
        except RuntimeError as e:  # the loop is closed
            log.error("graceserve: cannot run %s on its event loop (%s); answered 503", req, e)
            req.respond(503, "service unavailable\n")

    return _handle


async def serve(server: Server, ready: Optional[Callable[[Server], None]] = None) -> int:
    """Starts ``server`` (unless running) and waits for it without blocking the loop; returns
    the exit status. On the main thread SIGINT/SIGTERM drain it (a second one forces) through
    the loop's signal handlers, removed afterwards. If the waiting task is cancelled, the
    server is drained (deadline ``server.shutdown_timeout``) before the cancellation goes on."""
    loop = asyncio.get_running_loop()
    installed: List[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, _forward_signal, (server,), int(sig))
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not a Unix loop
                pass
    try:
        if not server.running:
            server.start()
        if ready is not None:
            ready(server)
        return await loop.run_in_executor(None, server.wait)
    except asyncio.CancelledError:
        await loop.run_in_executor(None, server.close)
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
