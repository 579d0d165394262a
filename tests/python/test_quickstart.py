"""The README's Python examples are files that run: examples/python/quickstart.py and
examples/python/two_ports.py, quoted verbatim in the README's Python section."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, py_env, read_lines

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


TWO_PORTS = ROOT / "examples" / "python" / "two_ports.py"


def test_readme_quotes_the_two_ports_example_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", readme().read_text(), re.S)
    assert TWO_PORTS.read_text() in blocks, "README.md must quote examples/python/two_ports.py verbatim"


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
