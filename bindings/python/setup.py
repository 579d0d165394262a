"""Bundles the graceserve shared library into the package when it has been built.

`pip install ./bindings/python` then yields a self-contained install: the library is copied to
graceserve/_lib/<platform>/ (found through $GRACESERVE_LIBRARY, else the repository's
target/release), and the wheel is tagged for this platform. Without a built library the
package installs alone and looks for the library at import time (see graceserve/_loader.py).
Set GRACESERVE_BUNDLE=0 to never bundle.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent


def _loader_names() -> "tuple[str, str]":
    # _loader.py imports the generated _ffi module relatively; read the two helpers by hand.
    import platform

    if sys.platform == "darwin":
        name = "libgraceserve.dylib"
    elif sys.platform == "win32":
        name = "graceserve.dll"
    else:
        name = "libgraceserve.so"
    machine = platform.machine().lower() or "unknown"
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    system = "macos" if sys.platform == "darwin" else sys.platform.rstrip("0123456789")
    return name, f"{system}-{machine}"


def built_library() -> "Path | None":
    if os.environ.get("GRACESERVE_BUNDLE", "1") == "0":
        return None
    name, _ = _loader_names()
    env = os.environ.get("GRACESERVE_LIBRARY")
    for p in ([Path(env)] if env else []) + [HERE.parent.parent / "target" / "release" / name]:
        if p.is_file():
            return p
    return None


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        lib = built_library()
        if lib is not None:
            name, plat = _loader_names()
            dest = Path(self.build_lib) / "graceserve" / "_lib" / plat
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dest / name)
            print(f"graceserve: bundled {lib} as {dest / name}")
        else:
            print("graceserve: no built library found; installing the package without one")


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return built_library() is not None


setup(cmdclass={"build_py": BuildPy}, distclass=BinaryDistribution)
