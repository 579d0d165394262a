"""Builds the graceserve package with the graceserve C library compiled into it.

`pip install ./bindings/python` and `pip wheel ./bindings/python` (from a checkout of the
repository) compile the library from the repository's Rust sources (../../Cargo.toml) with
setuptools-rust: `cargo rustc --release --lib --crate-type cdylib --locked`, a plain C-ABI
library, no Python extension module. It is shipped as graceserve/_lib/<platform>/<libname>,
where graceserve/_loader.py looks first, and the wheel is tagged py3-none-<platform>: one wheel
for every Python 3 on this OS and CPU, since the package loads the library with ctypes.

Needs Rust: cargo and rustc at least the `rust-version` of Cargo.toml, which setuptools-rust
checks first (an older or missing rustc gets a message naming that version). Cargo builds in
<repo>/target/python, apart from the target/release of `make lib`, or in $CARGO_TARGET_DIR.

GRACESERVE_LIBRARY=/path/to/libgraceserve.so at build time bundles that prebuilt library
instead of compiling (it must be a library built from the same sources).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools_rust import Binding, RustExtension, build_rust

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parent.parent / "Cargo.toml"
PREBUILT = os.environ.get("GRACESERVE_LIBRARY")


def _platform() -> Any:
    # graceserve/_platform.py decides the file and folder names; it imports nothing from the
    # package, so it loads on its own here (the package itself needs the library to import).
    spec = importlib.util.spec_from_file_location("_graceserve_platform", HERE / "graceserve" / "_platform.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIB_NAME: str = _platform().lib_filename()
PLATFORM_DIR: str = _platform().platform_dir()


class BuildRust(build_rust):  # type: ignore[misc]
    """setuptools-rust names a library after a Python module (libgraceserve.cpython-311-...so);
    this package loads it with ctypes under its own file name."""

    def get_dylib_ext_path(self, ext: RustExtension, target_fname: str) -> str:
        return str(Path(super().get_dylib_ext_path(ext, target_fname)).with_name(LIB_NAME))


class BuildPy(build_py):
    """Bundles $GRACESERVE_LIBRARY, when given, instead of compiling."""

    def run(self) -> None:
        super().run()
        if PREBUILT:
            lib = Path(PREBUILT)
            if not lib.is_file():
                raise SystemExit(f"graceserve: GRACESERVE_LIBRARY={PREBUILT} is not a file")
            dest = Path(self.build_lib) / "graceserve" / "_lib" / PLATFORM_DIR
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dest / LIB_NAME)
            print(f"graceserve: bundled {lib} as {dest / LIB_NAME} (GRACESERVE_LIBRARY)")


class BdistWheel(bdist_wheel):
    """A platform wheel for any Python 3: the library is not tied to a Python ABI."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> Tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


def rust_extensions() -> List[RustExtension]:
    if PREBUILT:
        return []
    if not MANIFEST.is_file():
        raise SystemExit(
            f"graceserve: {MANIFEST} not found: build from a checkout of the graceserve repository "
            "(pip install <repo>/bindings/python), or set GRACESERVE_LIBRARY to a built library"
        )
    env: Dict[str, str] = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(MANIFEST.parent / "target" / "python"))
    msrv = re.search(r'^rust-version = "([0-9.]+)"$', MANIFEST.read_text(), re.M)
    return [
        RustExtension(
            # The module path only places the file; BuildRust gives it the library's name.
            f"graceserve._lib.{PLATFORM_DIR}.libgraceserve",
            path=str(MANIFEST),
            binding=Binding.NoBinding,
            args=["--locked"],
            rust_version=f">={msrv.group(1)}" if msrv else None,
            env=env,
        )
    ]


setup(
    rust_extensions=rust_extensions(),
    cmdclass={"build_rust": BuildRust, "build_py": BuildPy, "bdist_wheel": BdistWheel},
    zip_safe=False,
)
