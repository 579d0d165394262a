"""Host parametrisation, process cleanup, and the host x scenario table (`make conformance`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import expected
import hostlib

_RESULTS: dict[tuple[str, str], str] = {}
_NOTES: dict[tuple[str, str], str] = {}
_ORDER: list[str] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host" in metafunc.fixturenames:
        if getattr(metafunc.module, "HOST_SCOPE", "function") == "module":
            metafunc.parametrize("host", hostlib.selected_hosts(), scope="module")
        else:
            metafunc.parametrize("host", hostlib.selected_hosts())


@pytest.fixture
def procs():
    """Tracks the host processes a test starts and kills any still running at teardown."""
    started: list[hostlib.Proc] = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture
def serve(procs, host):
    """serve(timeout_ms=None, delay_ms=None) starts the test's host on 127.0.0.1:0 and waits for its
    ready line (None: the flag is not passed); serve(argv=[...]) passes that command line as is."""

    def _start(timeout_ms: int | None = None, addr: str = "127.0.0.1:0", delay_ms: int | None = None,
               argv: list[str] | None = None) -> hostlib.Proc:
        p = hostlib.start(host, timeout_ms=timeout_ms, addr=addr, delay_ms=delay_ms, argv=argv)
        procs.append(p)
        return p

    return _start


@pytest.fixture
def diff(request, host):
    """diff() -> the documented reason this host differs in this scenario, or None."""

    def _reason() -> str | None:
        scenario = request.node.originalname.removeprefix("test_")
        why = expected.reason(scenario, host)
        if why:
            request.node.user_properties.append(("expected_difference", why))
        return why

    return _reason


def _cell(nodeid: str, item_name: str) -> tuple[str, str] | None:
    if "[" not in item_name:
        return None
    func, _, params = item_name.partition("[")
    parts = params.rstrip("]").split("-")
    hosts = [p for p in parts if p in hostlib.ALL_HOSTS]
    if not hosts:
        return None
    rest = [p for p in parts if p not in hostlib.ALL_HOSTS]
    scenario = func.removeprefix("test_") + ("[" + "-".join(rest) + "]" if rest else "")
    module = nodeid.split("::")[0].split("/")[-1].removeprefix("test_").removesuffix(".py")
    return f"{module}: {scenario}", hosts[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cell = _cell(report.nodeid, report.nodeid.split("::")[-1])
    if cell is None:
        return
    if cell[0] not in _ORDER:
        _ORDER.append(cell[0])
    prev = _RESULTS.get(cell)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.passed:
            note = dict(report.user_properties).get("expected_difference")
            if note:
                _NOTES[cell] = str(note)
            state = "ok*" if note else "ok"
        elif report.skipped:
            state = "skip"
        else:
            state = "FAIL"
        _RESULTS[cell] = state
    elif report.when == "teardown" and report.failed and prev != "FAIL":
        _RESULTS[cell] = "FAIL"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _RESULTS:
        return
    hosts = [h for h in hostlib.ALL_HOSTS if any(k[1] == h for k in _RESULTS)]
    width = max(len(s) for s in _ORDER) + 2
    lines = ["", "host x scenario (ok = contract met, ok* = expected difference from goref, see notes)"]
    lines.append("scenario".ljust(width) + "".join(h.ljust(8) for h in hosts))
    for s in _ORDER:
        lines.append(s.ljust(width) + "".join(_RESULTS.get((s, h), "-").ljust(8) for h in hosts))
    if _NOTES:
        lines.append("")
        lines.append("expected differences:")
        for (s, h), why in sorted(_NOTES.items()):
            lines.append(f"  {s} [{h}]: {why}")
    fails = sorted({h for (s, h), v in _RESULTS.items() if v == "FAIL"})
    lines.append("")
    lines.append("hosts with failures: " + (", ".join(fails) if fails else "none"))
    text = "\n".join(lines) + "\n"
    for line in text.splitlines():
        terminalreporter.write_line(line)
    out = os.environ.get("CONFORMANCE_TABLE")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
