"""The documentation's web-app examples run as written: every application file shown as
"... in `NAME.py`:" followed by the `python -m graceserve` command that serves it, in README.md,
docs/*.md and bindings/*/README.md, is written to a directory, started with that command,
answers, and stops with exit 0 on SIGTERM."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

import pytest

from conftest import ROOT, Host, py_env, request


def doc_pages() -> List[Path]:
    """Every page whose code blocks the snippet tests cover (the same set as
    tests/readme/check_c_snippets.sh and bindings/go/readme_test.go)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("bindings/*/README.md"))]


class WebExample(NamedTuple):
    page: str
    line: int
    name: str
    code: str
    command: str


WEB_EXAMPLE = re.compile(r"in `(\w+\.py)`:\n\n```python\n(.*?)```\n\n```sh\n(python -m graceserve [^\n]*)\n```", re.S)


def web_examples() -> List[WebExample]:
    """(page, line, file name, its code, the command that runs it) for each application shown
    with its command."""
    out = []
    for page in doc_pages():
        text = page.read_text()
        for m in WEB_EXAMPLE.finditer(text):
            line = text.count("\n", 0, m.start(2)) + 1
            out.append(WebExample(page.relative_to(ROOT).as_posix(), line, m.group(1), m.group(2), m.group(3)))
    return out


# What each application answers on the path the test asks for, keyed by its import.
EXPECTED: Dict[str, Tuple[str, bytes]] = {
    "from flask import Flask": ("/", b"hello from flask"),
    "from fastapi import FastAPI": ("/items/42", b'{"item_id":42}'),
}


def expected(code: str) -> Tuple[str, bytes]:
    for marker, want in EXPECTED.items():
        if marker in code:
            return want
    raise AssertionError(f"no expected answer for this application; add it to EXPECTED:\n{code}")


class App(Host):
    """`argv` run in `cwd` with the in-repo package."""

    def __init__(self, argv: List[str], cwd: Path) -> None:
        self.exe = Path(argv[-1])
        self.proc = subprocess.Popen(argv, cwd=cwd, env=py_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addr, self.host, self.port = "", "", 0


def test_the_docs_show_a_flask_and_a_fastapi_app() -> None:
    found = web_examples()
    by_page: Dict[str, List[str]] = {}
    for ex in found:
        by_page.setdefault(ex.page, []).append(ex.name)
    assert by_page.get("docs/web-apps.md") == ["app.py", "main.py"], by_page
    assert by_page.get("README.md") == ["app.py"], by_page
    codes = [ex.code for ex in found]
    assert any("from flask import Flask" in c for c in codes) and any("from fastapi import FastAPI" in c for c in codes)


def unique_examples() -> List[WebExample]:
    seen, out = set(), []
    for ex in web_examples():
        if (ex.name, ex.code, ex.command) not in seen:
            seen.add((ex.name, ex.code, ex.command))
            out.append(ex)
    return out


@pytest.mark.parametrize("ex", unique_examples(), ids=lambda ex: f"{ex.page}:{ex.line}:{ex.name}")
def test_doc_web_example_runs(tmp_path: Path, ex: WebExample) -> None:
    path, want = expected(ex.code)
    (tmp_path / ex.name).write_text(ex.code)
    argv = shlex.split(ex.command)
    assert argv[:3] == ["python", "-m", "graceserve"]
    argv = [sys.executable, "-m", "graceserve"] + [a if a != "127.0.0.1:8000" else "127.0.0.1:0" for a in argv[3:]]
    h = App(argv, tmp_path)
    try:
        h.wait_listening(20)
        assert request((h.host, h.port), "GET", path)[::2] == (200, want)
        h.signal(signal.SIGTERM)
        assert h.wait() == 0
        out, err = h.outputs()
        assert out == "" and "Traceback" not in err
    finally:
        h.kill()
