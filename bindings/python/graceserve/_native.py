"""The loaded library: one per process, loaded (and ABI-checked) when graceserve is imported."""

from __future__ import annotations

from pathlib import Path

from . import _ffi
from ._loader import load

LIB: _ffi.Lib
LIB_PATH: Path
LIB, LIB_PATH = load()


def last_error() -> str:
    """The calling thread's last error message from the library."""
    return (LIB.server_last_error() or b"").decode("utf-8", "replace")


def result_str(code: int) -> str:
    """The fixed text of a result code."""
    return (LIB.server_result_str(code) or b"").decode("utf-8", "replace")
