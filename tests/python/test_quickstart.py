"""Every Python block of the documentation (README.md, docs/*.md, bindings/*/README.md) is run
by a test:

- a block that quotes a file of examples/python verbatim is that file, which a test here runs
  (the quick start and the two-ports example);
- an application shown with its `python -m graceserve` command runs in test_readme_web.py;
- every other block is a complete program, run here: it must exit 0, quietly, within a minute.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest

from conftest import ROOT, py_env, read_lines
from test_readme_web import doc_pages, web_examples

QUICKSTART = ROOT / "examples" / "python" / "quickstart.py"
TWO_PORTS = ROOT / "examples" / "python" / "two_ports.py"
# The examples/python files a test of this module runs (the others are hosts with suites of
# their own, and are not quoted).
RUN_HERE = (QUICKSTART, TWO_PORTS)


class Block(NamedTuple):
    page: str
    line: int
    code: str


def python_blocks() -> List[Block]:
    out = []
    for page in doc_pages():
        text = page.read_text()
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            out.append(Block(page.relative_to(ROOT).as_posix(), text.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


def programs() -> List[Block]:
    """The blocks that are neither a quoted example file nor a web application."""
    quoted = {f.read_text() for f in RUN_HERE}
    apps = {ex.code for ex in web_examples()}
    return [b for b in python_blocks() if b.code not in quoted and b.code not in apps]


def test_the_docs_quote_the_examples_verbatim() -> None:
    blocks: Dict[str, List[str]] = {}
    for b in python_blocks():
        blocks.setdefault(b.page, []).append(b.code)
    for page in ("README.md", "docs/python.md", "bindings/python/README.md"):
        assert QUICKSTART.read_text() in blocks.get(page, []), f"{page} must quote examples/python/quickstart.py verbatim"
    assert TWO_PORTS.read_text() in blocks.get("docs/python.md", []), "docs/python.md must quote examples/python/two_ports.py verbatim"


def test_no_block_quotes_an_example_that_no_test_here_runs() -> None:
    others = {f.read_text(): f for f in (ROOT / "examples" / "python").glob("*.py") if f not in RUN_HERE}
    for b in python_blocks():
        assert b.code not in others, f"{b.page}:{b.line} quotes {others[b.code]}, which this module does not run"


def test_the_docs_have_programs_to_run() -> None:
    assert programs(), "no standalone Python program in the documentation"


@pytest.mark.parametrize("block", programs(), ids=lambda b: f"{b.page}:{b.line}")
def test_doc_program_runs(tmp_path: Path, block: Block) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.code)
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=py_env(), capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", (
        f"{block.page}:{block.line}: exit status {p.returncode}\n--- stdout\n{p.stdout.decode()}\n"
        f"--- stderr\n{p.stderr.decode()}"
    )


def test_quickstart_runs_and_stops_cleanly_on_ctrl_c() -> None:
    p = subprocess.Popen(
        [sys.executable, str(QUICKSTART), "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=py_env(),
    )
    try:
        assert p.stdout is not None
        assert select.select([p.stdout], [], [], 10)[0], "no output from the quick start"
        line = p.stdout.readline().decode()
        m = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", line)
        assert m, line
        body = urllib.request.urlopen(m.group(1) + "/?name=docs", timeout=10).read()
        assert body == b"hello, docs\n"
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
        out, err = p.communicate(timeout=5)
        assert out == b"" and err == b"", err  # no KeyboardInterrupt traceback
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_two_ports_example_drains_public_from_admin_then_stops_on_ctrl_c() -> None:
    p = subprocess.Popen(
        [sys.executable, str(TWO_PORTS), "127.0.0.1:0", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=py_env(),
    )
    try:
        urls = []
        for line in read_lines(p.stdout, 2):
            m = re.fullmatch(r"serving on (http://127\.0\.0\.1:\d+)", line)
            assert m, line
            urls.append(m.group(1))
        public, admin = urls

        def get(url: str, data: "bytes | None" = None) -> bytes:
            return bytes(urllib.request.urlopen(url, data=data, timeout=10).read())

        assert get(public + "/?name=ops") == b"hello, ops\n"
        assert get(admin + "/stats") == b"requests=1 active=0\n"
        assert get(admin + "/drain", data=b"") == b"public drained, status 0\n"
        with pytest.raises(OSError):
            get(public + "/")  # the public port is closed ...
        assert get(admin + "/stats") == b"requests=1 active=0\n"  # ... the admin port serves on
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
        out, err = p.communicate(timeout=5)
        assert out == b"" and err == b"", err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
