"""The README's Python quick start is a file that runs: examples/python/quickstart.py, quoted
verbatim in the README's Python section."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import ROOT, py_env

QUICKSTART = ROOT / "examples" / "python" / "quickstart.py"


def readme() -> Path:
    return ROOT / "README.md"


def test_readme_quotes_the_quickstart_verbatim() -> None:
    path = readme()
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    assert QUICKSTART.read_text() in blocks, f"{path.name} must quote examples/python/quickstart.py verbatim"


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
