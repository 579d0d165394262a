"""h2spec (the HTTP/2 conformance suite) against every host over h2c with prior knowledge.

Every failing case must be listed in H2SPEC_EXCEPTIONS with its reason; anything else fails the
test with the case ids, so a regression (or a new exception) is never silent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from test_lifecycle import assert_stopped_clean

# Case id = "<h2spec package>/<position in its section>", as h2spec prints it (e.g. http2/3.5/2).
# Value: (hosts the exception applies to, reason). The graceserve hosts share one core, so their
# list must stay identical; goref's entries are Go's own h2 behaviour, recorded for comparison.
GRACESERVE = frozenset({"c", "python", "go", "wasi"})
GOREF = frozenset({"goref"})
H2SPEC_EXCEPTIONS: dict[str, tuple[frozenset[str], str]] = {
    "http2/3.5/2": (GRACESERVE | GOREF, (
        "'Sends invalid connection preface': HTTP/1.1 and h2c share the port "
        "(docs/architecture.md §2 The lifecycle), so bytes that are not the h2 preface are read as an HTTP/1.1 request and answered 400 "
        "before the close, where h2spec wants a bare close (Go's net/http does the same)"
    )),
    "http2/4.2/3": (GOREF, (
        "Go advertises SETTINGS_MAX_FRAME_SIZE = 1 MiB, so h2spec's 'too large' HEADERS frame "
        "(sized against the 16 KiB default) is legal for it"
    )),
    "http2/6.5.3/1": (GOREF, "Go's h2 server closes the connection on repeated SETTINGS_INITIAL_WINDOW_SIZE values"),
    "http2/8.1.2.2/1": (GOREF, "Go's h2 server tolerates connection-specific header fields instead of PROTOCOL_ERROR"),
    "http2/8.1.2.2/2": (GOREF, "Go's h2 server tolerates a TE header other than 'trailers' instead of PROTOCOL_ERROR"),
}


def h2spec_binary() -> str:
    found = shutil.which("h2spec") or str(Path.home() / "go" / "bin" / "h2spec")
    assert os.access(found, os.X_OK), "h2spec not installed (.ci/setup.d/60-conformance.sh installs it with go install)"
    return found


def run_h2spec(port: int) -> tuple[list[str], list[str], int, str]:
    """Returns (failed ids, skipped ids, total cases, text output)."""
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "h2spec.xml"
        cp = subprocess.run(
            [h2spec_binary(), "-h", "127.0.0.1", "-p", str(port), "-o", "3", "-j", str(report)],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        assert report.exists(), f"h2spec wrote no report (exit {cp.returncode}): {cp.stdout[-2000:]} {cp.stderr[-2000:]}"
        root = ET.parse(report).getroot()
    failed, skipped, total = [], [], 0
    for suite in root.iter("testsuite"):
        for i, case in enumerate(suite.iter("testcase"), start=1):
            total += 1
            cid = f"{case.get('package')}/{i}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(cid)
            elif case.find("skipped") is not None:
                skipped.append(cid)
    return failed, skipped, total, cp.stdout


def test_h2spec(serve, host, request):
    p = serve()
    failed, skipped, total, out = run_h2spec(p.port)
    explained = [f for f in failed if host in H2SPEC_EXCEPTIONS.get(f, (frozenset(), ""))[0]]
    unexplained = [f for f in failed if f not in explained]
    print(f"h2spec {host}: {total} cases, {total - len(failed) - len(skipped)} passed, "
          f"{len(skipped)} skipped, {len(failed)} failed {failed}")
    if host == "goref" and unexplained:
        # Go's h2 server is the yardstick, not the subject: a case it fails only sometimes (seen:
        # http2/8.1.2.6/1 on a loaded machine) is recorded, not failed.
        request.node.user_properties.append(("expected_difference", f"goref also failed {unexplained} this run (Go's behaviour, informational)"))
        unexplained = []
    assert not unexplained, f"h2spec failures without a documented reason: {unexplained}\n{out[-4000:]}"
    if explained:
        why = "; ".join(f"{f}: {H2SPEC_EXCEPTIONS[f][1]}" for f in explained)
        request.node.user_properties.append(("expected_difference", f"h2spec exceptions {why}"))
    assert total > 100, f"h2spec ran only {total} cases"
    assert p.running(), "host died during h2spec"
    ex = p.wait_exit(15, p.signal(signal.SIGTERM))
    assert_stopped_clean(p, ex, 0)

