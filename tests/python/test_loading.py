"""Finding and loading the library: search order, clear ImportErrors, the ABI check, the
generated prototypes, and `pip install`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import graceserve
from graceserve import _ffi
from conftest import LIB, PKG, ROOT, py_env


def run_py(code: str, cwd: Path = ROOT, **env: str) -> "subprocess.CompletedProcess[str]":
    e = py_env(**env)
    for k, v in env.items():
        if v == "":
            del e[k]
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, env=e, timeout=60
    )


def test_ffi_matches_header() -> None:
    """_ffi.py is what tools/gen_ffi.py makes from include/graceserve.h today."""
    pytest.importorskip("pycparser")
    r = subprocess.run([sys.executable, str(PKG / "tools" / "gen_ffi.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_library_has_every_prototype() -> None:
    assert graceserve.ABI_VERSION == _ffi.SERVER_ABI_VERSION
    for name in _ffi.FUNCTIONS:
        assert hasattr(graceserve._LIB.dll, name)
    assert graceserve.library_version.count(".") == 2


def test_library_not_found_is_an_import_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libgraceserve.so"
    r = run_py(
        """
        try:
            import graceserve
        except ImportError as e:
            print(type(e).__name__)
            print(e)
            raise SystemExit(7)
        """,
        GRACESERVE_LIBRARY=str(missing),
    )
    assert r.returncode == 7, r.stderr
    name, _, message = r.stdout.partition("\n")
    assert name == "LibraryNotFoundError"
    assert str(missing) in message and "$GRACESERVE_LIBRARY" in message and "no such file" in message
    assert "cargo build --release" in message


def test_plain_import_failure_message(tmp_path: Path) -> None:
    r = run_py("import graceserve", GRACESERVE_LIBRARY=str(tmp_path / "x.so"))
    assert r.returncode == 1
    assert "LibraryNotFoundError: graceserve: cannot find the graceserve shared library" in r.stderr


def test_search_finds_the_cargo_target_dir() -> None:
    if not (ROOT / "target" / "release" / "libgraceserve.so").exists():
        pytest.skip("no target/release build")
    r = run_py("import graceserve; print(graceserve.library_path)", GRACESERVE_LIBRARY="", CARGO_TARGET_DIR="")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == ROOT / "target" / "release" / "libgraceserve.so"


def test_not_a_graceserve_library() -> None:
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        pytest.skip("no libc at the usual path")
    r = run_py("import graceserve", GRACESERVE_LIBRARY=libc)
    assert r.returncode == 1 and "LibraryVersionError" in r.stderr and "not a graceserve library" in r.stderr


def test_abi_mismatch(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a fake library")
    src = tmp_path / "fake.c"
    src.write_text("unsigned int server_abi_version(void) { return 999; }\n")
    lib = tmp_path / "libgraceserve.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    r = run_py(
        """
        import graceserve
        """,
        GRACESERVE_LIBRARY=str(lib),
    )
    assert r.returncode == 1
    assert "LibraryVersionError" in r.stderr and "ABI version 999" in r.stderr
    assert f"needs version {_ffi.SERVER_ABI_VERSION}" in r.stderr


def test_pip_install_bundles_the_library(tmp_path: Path) -> None:
    """`pip install ./bindings/python` with $GRACESERVE_LIBRARY set at build time bundles that
    library instead of compiling it, into a self-contained package. (Compiling from the sources,
    `pip wheel`, and a fresh venv outside the checkout: `make test-install`.)"""
    pytest.importorskip("setuptools_rust")
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "_lib"))
    site = tmp_path / "site"
    env = py_env(GRACESERVE_LIBRARY=str(LIB))
    env.pop("PYTHONPATH", None)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--target", str(site), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    shipped = list((site / "graceserve" / "_lib").glob("*/libgraceserve.so"))
    assert len(shipped) == 1 and (site / "graceserve" / "py.typed").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("GRACESERVE_LIBRARY", "CARGO_TARGET_DIR")}
    env["PYTHONPATH"] = str(site)
    code = textwrap.dedent(
        """
        import urllib.request, graceserve
        print(graceserve.library_path)
        with graceserve.Server("127.0.0.1:0", lambda r: "installed") as s:
            print(urllib.request.urlopen(s.url).read().decode())
        """
    )
    r2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert r2.returncode == 0, r2.stderr
    path, body = r2.stdout.split()
    assert Path(path) == shipped[0].resolve() and body == "installed"
