"""The README's "Python web apps" section runs as written: its Flask and FastAPI files, started
with its `python -m graceserve` commands, answer, and stop with exit 0 on SIGTERM."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from conftest import ROOT, Host, py_env, request


def section() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Python web apps.*?(?=^## )", text, re.S | re.M)
    assert m, "README.md has a 'Python web apps' section"
    return m.group(0)


class App(Host):
    """`argv` run in `cwd` with the in-repo package."""

    def __init__(self, argv: List[str], cwd: Path) -> None:
        self.exe = Path(argv[-1])
        self.proc = subprocess.Popen(argv, cwd=cwd, env=py_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addr, self.host, self.port = "", "", 0


def examples() -> List[Tuple[str, str, str]]:
    """(file name, its code, the command that runs it) for each application in the section."""
    text = section()
    out = []
    for m in re.finditer(r"in `(\w+\.py)`:\n\n```python\n(.*?)```\n\n```sh\n(python -m graceserve [^\n]*)\n```", text, re.S):
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def test_the_section_has_a_flask_and_a_fastapi_example() -> None:
    found = examples()
    assert [name for name, _, _ in found] == ["app.py", "main.py"]
    assert "from flask import Flask" in found[0][1] and "from fastapi import FastAPI" in found[1][1]


@pytest.mark.parametrize("index,path,want", [(0, "/", b"hello from flask"), (1, "/items/42", b'{"item_id":42}')])
def test_readme_example_runs(tmp_path: Path, index: int, path: str, want: bytes) -> None:
    name, code, command = examples()[index]
    (tmp_path / name).write_text(code)
    argv = shlex.split(command)
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
