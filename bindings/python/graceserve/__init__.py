"""graceserve: an embeddable HTTP/1.1 + h2c server with a graceful lifecycle, for Python.

    import sys, graceserve

    def hello(request: graceserve.Request) -> str:
        return f"hello from {request.path}\\n"

    sys.exit(graceserve.serve("127.0.0.1:8080", hello))

WSGI and ASGI applications (Flask, Django, Starlette, FastAPI, ...): ``graceserve.serve_wsgi(app)``,
``graceserve.serve_asgi(app)``, the handlers in :mod:`graceserve.wsgi` and :mod:`graceserve.asgi`,
or ``python -m graceserve module:app`` from the shell.

The server itself is the graceserve shared library (Rust), loaded with ctypes: no compiler is
needed at run time. It is found through ``$GRACESERVE_LIBRARY``, a copy shipped in this
package, or the cargo target directory of the checkout this package lives in; a missing or
mismatched library raises an ``ImportError`` (:class:`LibraryNotFoundError`,
:class:`LibraryVersionError`) that says what was tried.
"""

from __future__ import annotations

from ._errors import (
    AddressInUseError,
    AlreadyRunningError,
    GraceserveError,
    InvalidAddressError,
    NotRunningError,
    PermissionDeniedError,
    RequestClosedError,
    StartError,
    UpgradeError,
    WrongThreadError,
)
from ._loader import ENV_VAR, LibraryNotFoundError, LibraryVersionError
from ._native import LIB as _LIB
from ._native import LIB_PATH as library_path
from ._request import Body, HandlerResult, HeaderItems, Headers, Request, Response, ResponseStream
from ._server import EventHandler, EventKind, Handler, Server, Stats, StopCause, serve, serve_all
from ._web import serve_asgi, serve_wsgi

#: The version of the loaded library (e.g. ``"0.1.0"``).
library_version: str = (_LIB.server_version() or b"").decode()
#: The C ABI version this binding speaks (checked against the library at import).
ABI_VERSION: int = _LIB.server_abi_version()

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION",
    "AddressInUseError",
    "AlreadyRunningError",
    "Body",
    "ENV_VAR",
    "EventHandler",
    "EventKind",
    "GraceserveError",
    "Handler",
    "HandlerResult",
    "HeaderItems",
    "Headers",
    "InvalidAddressError",
    "LibraryNotFoundError",
    "LibraryVersionError",
    "NotRunningError",
    "PermissionDeniedError",
    "Request",
    "RequestClosedError",
    "Response",
    "ResponseStream",
    "Server",
    "StartError",
    "Stats",
    "StopCause",
    "UpgradeError",
    "WrongThreadError",
    "library_path",
    "library_version",
    "serve",
    "serve_all",
    "serve_asgi",
    "serve_wsgi",
]
