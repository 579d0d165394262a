"""Expected differences from the Go reference host, each with its reason.

A test that meets one of these asserts the documented alternative behaviour instead of the
contract's (so the difference is still checked, not ignored) and the table marks the cell `ok*`.
Keys: (scenario, host). A scenario is the test function's name without `test_`.
"""

from __future__ import annotations

DIFFERENCES: dict[tuple[str, str], str] = {
    ("second_signal_forces", "goref"): (
        "Go's idiom (signal.NotifyContext, then stop() once the drain starts) restores the default "
        "disposition, so the second signal kills the process: status -SIG (shell 128+SIG), not 1"
    ),
    ("never_sending_client_closed_at_drain", "goref"): (
        "net/http's Shutdown treats a connection that has not sent a byte yet as idle only once it "
        "is 5 s old (golang/go#22682), so a fresh silent connection holds the drain to the "
        "deadline and the exit is 1 (forced); graceserve closes it at once"
    ),
    ("half_sent_headers_closed_at_drain", "goref"): (
        "net/http marks a connection active on its first byte and Shutdown waits for active "
        "connections, so a client stuck mid-headers holds the drain to the deadline (exit 1); "
        "graceserve closes it at once"
    ),
}


def reason(scenario: str, host: str) -> str | None:
    return DIFFERENCES.get((scenario, host))
