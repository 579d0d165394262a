"""`python -m graceserve MODULE:APP`: the host lifecycle
(docs/architecture.md §5 The host contract) for real WSGI and ASGI applications, in subprocesses:
one `listening on` line, in-flight requests completing through SIGTERM/SIGINT with exit 0, the
lifespan around the drain, exit statuses 1 and 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from conftest import Host, port_refused, py_env, request

APPS = Path(__file__).parent / "apps"


class Cli(Host):
    """`python -m graceserve ARGS...` run from tests/python/apps."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.exe = Path("python -m graceserve")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graceserve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=APPS,
            env=py_env(**(env or {})),
        )
        self.addr, self.host, self.port = "", "", 0


@pytest.fixture
def cli() -> Any:
    started: List[Cli] = []

    def start(*args: str, env: Optional[Dict[str, str]] = None, listening: bool = True) -> Cli:
        c = Cli(*args, env=env)
        started.append(c)
        if listening:
            c.wait_listening(20)
        return c

    yield start
    for c in started:
        c.kill()


def inflight(c: Cli, path: str, result: Dict[str, Any]) -> threading.Thread:
    def client() -> None:
        conn = c.conn()
        conn.request("GET", path)
        r = conn.getresponse()
        result.update(status=r.status, body=r.read(), connection=r.getheader("connection"))

    t = threading.Thread(target=client)
    t.start()
    return t


@pytest.mark.parametrize("app,signame", [("flask_app:app", "SIGTERM"), ("starlette_app:app", "SIGINT")])
def test_inflight_request_completes_through_the_signal(cli: Any, tmp_path: Path, app: str, signame: str) -> None:
    log = tmp_path / "lifespan.log"
    c: Cli = cli(app, "--addr", "127.0.0.1:0", env={"LIFESPAN_LOG": str(log)})
    assert c.host == "127.0.0.1" and c.port > 0
    status, _, body = request((c.host, c.port), "GET", "/hello/x?a=1")
    assert status == 200 and b'"name":"x"' in body.replace(b" ", b"")
    result: Dict[str, Any] = {}
    t = inflight(c, "/sleep?ms=1200", result)
    time.sleep(0.4)  # the request is in the application now (margin for 2 shared CPUs)
    c.signal(getattr(signal, signame))
    time.sleep(0.3)
    assert port_refused(c.host, c.port), "new connections are refused during the drain"
    t.join(10)
    assert c.wait() == 0
    assert result == {"status": 200, "body": b"slept 1200", "connection": "close"}
    out, err = c.outputs()
    assert out == "", "exactly one line on stdout"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    if app.startswith("starlette"):
        # startup before the server listened; shutdown after the drain (after the request)
        assert log.read_text() == "startup\nshutdown\n"


def test_drain_delay_and_readiness_behind_a_load_balancer(cli: Any) -> None:
    c: Cli = cli("flask_app:app", "--addr", "127.0.0.1:0", "--drain-delay-ms", "800",
                 "--readiness-path", "/readyz", "--liveness-path", "/livez")
    assert request((c.host, c.port), "GET", "/readyz")[::2] == (200, b"ready")
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    time.sleep(0.2)
    # during the delay: still accepting and answering, readiness fails, every answer closes
    status, headers, body = request((c.host, c.port), "GET", "/readyz")
    assert (status, body, headers.get("connection")) == (503, b"draining", "close")
    assert request((c.host, c.port), "GET", "/livez")[::2] == (200, b"alive")
    status, headers, _ = request((c.host, c.port), "GET", "/hello/x")
    assert (status, headers.get("connection")) == (200, "close")
    assert time.monotonic() - t0 < 0.7, "all of that inside the delay"
    assert c.wait() == 0
    assert time.monotonic() - t0 >= 0.75, "the process stops only after the delay"


def test_deadline_cuts_the_request_exit_1(cli: Any) -> None:
    c: Cli = cli("starlette_app:app", "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "300")
    result: Dict[str, Any] = {}

    def client() -> None:
        try:
            request((c.host, c.port), "GET", "/sleep?ms=5000")
        except (OSError, Exception) as e:  # the connection is cut
            result["error"] = type(e).__name__

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.4)
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    assert c.wait() == 1
    assert time.monotonic() - t0 < 3
    t.join(10)
    assert "error" in result
    _, err = c.outputs()
    assert "deadline" in err


def test_lifespan_startup_failure_exit_1_with_the_message(cli: Any) -> None:
    c: Cli = cli("starlette_app:app", "--addr", "127.0.0.1:0", env={"LIFESPAN_FAIL": "startup"}, listening=False)
    assert c.wait() == 1
    out, err = c.outputs()
    assert out == "", "never listened"
    assert "lifespan startup failed" in err and "the database is unreachable" in err


def test_bind_failure_exit_1_one_line(cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for app in ("flask_app:app", "starlette_app:app"):
            c: Cli = cli(app, "--addr", f"127.0.0.1:{port}", listening=False)
            assert c.wait() == 1
            out, err = c.outputs()
            assert out == ""
            lines = [line for line in err.splitlines() if line.startswith("graceserve:")]
            assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["flask_app:app", "--interface", "cgi"],
        ["flask_app:app", "--shutdown-timeout-ms", "-1"],
        ["flask_app:app", "--handler-threads", "0"],
        ["flask_app:app", "--bogus"],
        ["flask_app:"],
        ["flask_app:app", "--root-path", "api/"],
        ["starlette_app:app", "--handler-threads", "4"],
    ],
)
def test_usage_errors_exit_2(cli: Any, args: List[str]) -> None:
    c: Cli = cli(*args, listening=False)
    assert c.wait() == 2
    out, err = c.outputs()
    assert out == "" and "usage:" in err


@pytest.mark.parametrize(
    "spec,message",
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("flask_app:nope", "has no attribute 'nope'"),
        ("starlette_app:events", "must be callable, not list"),
    ],
)
def test_application_that_cannot_load_exit_1(cli: Any, spec: str, message: str) -> None:
    c: Cli = cli(spec, listening=False)
    assert c.wait() == 1
    out, err = c.outputs()
    assert out == "" and message in err


def test_interface_detection_and_override(cli: Any) -> None:
    # auto: Flask is WSGI, Starlette is ASGI; forcing the wrong one fails in the application
    c: Cli = cli("flask_app", "--addr", "127.0.0.1:0")  # default attribute: app
    assert request((c.host, c.port), "GET", "/")[::2] == (200, b"hello from flask")
    c.signal(signal.SIGTERM)
    assert c.wait() == 0
    c = cli("starlette_app:app", "--interface", "asgi", "--addr", "127.0.0.1:0", "--lifespan", "off")
    # without the lifespan the request state is missing: the application answers 500
    assert request((c.host, c.port), "GET", "/")[0] == 500
    assert request((c.host, c.port), "GET", "/hello/x")[0] == 200
    c.signal(signal.SIGTERM)
    assert c.wait() == 0
