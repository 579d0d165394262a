"""What the WSGI and ASGI adapters share: addresses, the application loader, and the lazy
``serve_wsgi`` / ``serve_asgi`` entry points exported by the package."""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, Callable, Optional, Tuple

__all__ = ["AppLoadError", "detect_interface", "load_app", "serve_asgi", "serve_wsgi", "split_hostport"]


def split_hostport(addr: str) -> Optional[Tuple[str, int]]:
    """``"1.2.3.4:80"`` / ``"[::1]:80"`` → ``("1.2.3.4", 80)`` / ``("::1", 80)``; None when it
    has no usable port (an empty string, as the library reports an unknown peer)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def host_header_addr(host: Optional[str], default_port: int) -> Optional[Tuple[str, int]]:
    """The (name, port) a ``Host`` header names; None without one."""
    if not host:
        return None
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            return name, int(rest[1:])
        return name, default_port
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return host, default_port


class AppLoadError(Exception):
    """``module:attribute`` could not be imported or found."""


def load_app(spec: str) -> Any:
    """Imports ``module:attribute`` (``attribute`` may be dotted; without it, ``app`` and then
    ``application`` are tried, as gunicorn and uvicorn users write them)."""
    module_name, sep, attr = spec.partition(":")
    if not module_name or (sep and not attr):
        raise ValueError(f"{spec!r} is not MODULE:ATTRIBUTE")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise AppLoadError(f"cannot import {module_name!r}: no module named {e.name!r} (sys.path[0] = {sys.path[0]!r})") from None
        raise
    names = [attr] if attr else ["app", "application"]
    for name in names:
        obj: Any = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise AppLoadError(f"module {module_name!r} has no attribute {' or '.join(repr(n) for n in names)}")


def detect_interface(app: Any) -> str:
    """``"asgi"`` for an ``async def`` application (or an object whose ``__call__`` is one),
    ``"wsgi"`` for any other callable; the rule uvicorn and granian use."""
    if not callable(app):
        raise TypeError(f"the application must be callable, not {type(app).__name__}")
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(app, "__call__", None)
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    return "wsgi"


def serve_wsgi(app: Callable[..., Any], addr: str = "127.0.0.1:8080", **kw: Any) -> int:
    """Serves the WSGI application ``app`` until SIGINT/SIGTERM and returns the exit status;
    see :func:`graceserve.wsgi.serve`."""
    from . import wsgi

    return wsgi.serve(app, addr, **kw)


def serve_asgi(app: Callable[..., Any], addr: str = "127.0.0.1:8080", **kw: Any) -> int:
    """Serves the ASGI 3 application ``app`` (lifespan first) until SIGINT/SIGTERM and returns
    the exit status; see :func:`graceserve.asgi.serve`."""
    from . import asgi

    return asgi.serve(app, addr, **kw)
