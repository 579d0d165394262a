"""Finds and loads the graceserve shared library, and checks that it speaks this binding's ABI.

Search order (the first that applies wins):

1. ``$GRACESERVE_LIBRARY``: the path of the library itself. When set, nothing else is tried, so
   a typo fails loudly instead of silently loading another build.
2. A copy shipped inside the package: ``graceserve/_lib/<platform>/<libname>``, which
   ``pip install ./bindings/python`` and ``pip wheel`` compile from the repository's Rust
   sources and bundle (see setup.py).
3. The repository's cargo target directory, when the package is used from a checkout:
   ``$CARGO_TARGET_DIR/{release,debug}`` and ``<repo>/target/{release,debug}``.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import List, Optional, Tuple

from . import _ffi
from ._platform import lib_filename, platform_dir

ENV_VAR = "GRACESERVE_LIBRARY"

__all__ = [
    "ENV_VAR",
    "LibraryNotFoundError",
    "LibraryVersionError",
    "candidates",
    "lib_filename",
    "load",
    "platform_dir",
]


class LibraryNotFoundError(ImportError):
    """The graceserve shared library could not be found or loaded. The message lists every
    place that was tried and how to fix it."""


class LibraryVersionError(ImportError):
    """The shared library that was found speaks another ABI version than this binding (or lacks
    functions the binding needs): rebuild one or the other."""


def _repo_roots() -> List[Path]:
    """Checkouts this package may live in: parents holding graceserve's Cargo.toml."""
    roots = []
    for parent in Path(__file__).resolve().parents:
        cargo = parent / "Cargo.toml"
        try:
            if cargo.is_file() and 'name = "graceserve"' in cargo.read_text(errors="replace"):
                roots.append(parent)
        except OSError:
            continue
    return roots


def candidates() -> List[Tuple[str, Path]]:
    """Where the library is looked for, in order, as (origin, path) pairs."""
    name = lib_filename()
    env = os.environ.get(ENV_VAR)
    if env:
        return [(f"${ENV_VAR}", Path(env))]
    out = [("shipped with the package", Path(__file__).resolve().parent / "_lib" / platform_dir() / name)]
    target = os.environ.get("CARGO_TARGET_DIR")
    dirs = [Path(target)] if target else []
    dirs += [root / "target" for root in _repo_roots()]
    for d in dirs:
        for profile in ("release", "debug"):
            out.append((f"cargo target dir ({profile})", d / profile / name))
    return out


def _describe(tried: List[Tuple[str, Path, str]]) -> str:
    return "\n".join(f"  - {p} ({origin}): {why}" for origin, p, why in tried)


def load() -> Tuple[_ffi.Lib, Path]:
    """Loads the library and checks its ABI version; raises an ImportError subclass if it can't."""
    tried: List[Tuple[str, Path, str]] = []
    for origin, path in candidates():
        if not path.is_file():
            tried.append((origin, path, "no such file"))
            continue
        try:
            dll = ctypes.CDLL(str(path))
        except OSError as e:
            tried.append((origin, path, f"cannot load: {e}"))
            continue
        return _check(dll, path), path
    hint = (
        f"Install the package with `pip install <graceserve repository>/bindings/python`, which "
        f"compiles the library into it; or build it with `cargo build --release` (or `make lib`) "
        f"in the graceserve repository; or set {ENV_VAR} to the path of {lib_filename()}."
    )
    raise LibraryNotFoundError(
        f"graceserve: cannot find the graceserve shared library. Tried:\n{_describe(tried)}\n{hint}",
        name=lib_filename(),
    )


def _check(dll: ctypes.CDLL, path: Path) -> _ffi.Lib:
    try:
        abi = dll.server_abi_version
    except AttributeError:
        raise LibraryVersionError(
            f"graceserve: {path} is not a graceserve library (it has no server_abi_version)",
            path=str(path),
        ) from None
    abi.argtypes = []
    abi.restype = ctypes.c_uint32
    found = int(abi())
    if found != _ffi.SERVER_ABI_VERSION:
        raise LibraryVersionError(
            f"graceserve: {path} has ABI version {found}, but this binding needs version "
            f"{_ffi.SERVER_ABI_VERSION}: rebuild the library or install the matching binding",
            path=str(path),
        )
    missing: Optional[str] = next((f for f in _ffi.FUNCTIONS if not hasattr(dll, f)), None)
    if missing is not None:
        raise LibraryVersionError(
            f"graceserve: {path} lacks {missing}: it is older than this binding; rebuild it",
            path=str(path),
        )
    return _ffi.Lib(dll)
