"""Exceptions: one base class carrying the C result code and message, plus subclasses for the
cases callers branch on."""

from __future__ import annotations

from typing import Dict, Type

from . import _ffi


class GraceserveError(Exception):
    """A graceserve call failed. ``code`` is the C ABI's ``server_result`` value and ``message``
    the library's detailed text (``server_last_error``)."""

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class StartError(GraceserveError):
    """``Server.start()`` failed; nothing keeps running. The message names the address and the OS
    error, e.g. ``cannot listen on 127.0.0.1:8080: Address already in use (os error 98)``."""


class AddressInUseError(StartError):
    """Another socket holds the address."""


class PermissionDeniedError(StartError):
    """The OS refused the address (e.g. a port below 1024 without privilege)."""


class InvalidAddressError(StartError):
    """The address does not parse as ``HOST:PORT`` or does not resolve."""


class AlreadyRunningError(StartError):
    """``start()`` on a ``Server`` object that is running already. (Other ``Server`` objects may
    run at the same time: each is its own server.)"""


class NotRunningError(GraceserveError):
    """The call needs a started server."""


class WrongThreadError(GraceserveError):
    """The call would deadlock on this thread (e.g. ``wait()`` inside a handler)."""


class UpgradeError(GraceserveError):
    """An in-place upgrade failed: the new process could not start, exited, or did not report
    ready in time. The server keeps serving; the message says why."""


class RequestClosedError(GraceserveError):
    """The request was already answered (or released): it cannot be read or answered again."""


_BY_CODE: Dict[int, Type[GraceserveError]] = {
    _ffi.SERVER_ERR_ADDR_IN_USE: AddressInUseError,
    _ffi.SERVER_ERR_PERMISSION_DENIED: PermissionDeniedError,
    _ffi.SERVER_ERR_INVALID_ADDRESS: InvalidAddressError,
    _ffi.SERVER_ERR_ALREADY_RUNNING: AlreadyRunningError,
    _ffi.SERVER_ERR_BIND: StartError,
    _ffi.SERVER_ERR_SIGNALS: StartError,
    _ffi.SERVER_ERR_RUNTIME: StartError,
    _ffi.SERVER_ERR_VERSION: StartError,
    _ffi.SERVER_ERR_INVALID_ARGUMENT: StartError,
    _ffi.SERVER_ERR_NOT_RUNNING: NotRunningError,
    _ffi.SERVER_ERR_WRONG_THREAD: WrongThreadError,
    _ffi.SERVER_ERR_ALREADY_USED: RequestClosedError,
    _ffi.SERVER_ERR_UPGRADE: UpgradeError,
}


def error_for(code: int, message: str, default: Type[GraceserveError] = GraceserveError) -> GraceserveError:
    """The exception for result ``code`` (``default`` for codes without a subclass)."""
    return _BY_CODE.get(code, default)(code, message)
