"""The library's file name and the per-platform folder it ships in, on this machine. No imports
from the package: setup.py loads this file on its own to put the library where _loader.py
looks for it."""

from __future__ import annotations

import platform
import sys


def lib_filename() -> str:
    """The library's file name on this platform."""
    if sys.platform == "darwin":
        return "libgraceserve.dylib"
    if sys.platform == "win32":
        return "graceserve.dll"
    return "libgraceserve.so"


def platform_dir() -> str:
    """The per-platform folder name under ``graceserve/_lib`` (e.g. ``linux-x86_64``)."""
    machine = platform.machine().lower() or "unknown"
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    system = "macos" if sys.platform == "darwin" else sys.platform.rstrip("0123456789")
    return f"{system}-{machine}"
