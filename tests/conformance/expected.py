"""Expected differences from the Go reference host, each with its reason.

A test that meets one of these asserts the documented alternative behaviour instead of the
contract's (so the difference is still checked, not ignored) and the table marks the cell `ok*`.
Keys: (scenario, host). A scenario is the test function's name without `test_`.
"""

from __future__ import annotations

DIFFERENCES: dict[tuple[str, str], str] = {
    ("second_signal_forces", "goref"): (
        "Go's idiom (signal.Notify or NotifyContext, stopped once the drain starts) restores the "
        "default disposition, so the second signal kills the process: status -SIG (shell 128+SIG), "
        "not 1"
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
    ("http1_robustness[garbage_request_line]", "goref"): (
        "net/http with unencrypted HTTP/2 enabled reads 24 bytes to tell the h2 preface from "
        "HTTP/1.1, so a broken request shorter than that waits (no read timeout set) instead of "
        "getting 400; graceserve answers 400 at once"
    ),
    ("http1_robustness[missing_version]", "goref"): (
        "same as garbage_request_line: under 24 bytes, net/http's h2c sniffing waits for more"
    ),
    ("http1_robustness[oversize_header_value]", "goref"): (
        "net/http's default MaxHeaderBytes is 1 MiB, so a 200 KB head is served (200); "
        "graceserve's default limit is 64 KiB (431)"
    ),
    ("http1_robustness[too_many_headers]", "goref"): (
        "the 20,000 headers fit in net/http's 1 MiB default head limit (200); graceserve: 431"
    ),
    ("http1_robustness[content_length_huge]", "goref"): (
        "net/http has no default body limit: the handler waits for a 10^17-byte body; "
        "graceserve refuses it at once (413, max_body_bytes default 8 MiB)"
    ),
    ("http1_robustness[content_length_over_limit]", "goref"): (
        "as content_length_huge: net/http has no default body limit, so it waits for the 8 MiB + 1 "
        "body; graceserve answers 413 from the header"
    ),
    ("non_utf8_bytes", "goref"): (
        "net/http refuses only control bytes in the request target, so a raw 0xE9 is part of the "
        "path (404 from the handler); graceserve's parser refuses a non-ASCII target (400)"
    ),
    ("second_signal_during_delay_forces", "goref"): (
        "the hand-written pre-drain stops listening for signals when the first arrives (as the seed "
        "does), so a second signal during the delay gets the default action: status -SIG, not 1"
    ),
    ("h2_goaway_at_delay_start", "goref"): (
        "net/http has no pre-drain: the hand-written delay can only add `Connection: close` to "
        "answers, which its HTTP/2 server turns into a GOAWAY after the next answer on that "
        "connection; an h2 connection whose streams began before the signal hears nothing until "
        "Shutdown after the delay (one GOAWAY, last stream id = the last stream, not 2^31-1)"
    ),
    ("silent_connections_do_not_hold_the_stop", "goref"): (
        "as never_sending_client_closed_at_drain: net/http's Shutdown waits for a silent "
        "connection until it is 5 s old (golang/go#22682), so the stop waits for the deadline"
    ),
}


def reason(scenario: str, host: str) -> str | None:
    return DIFFERENCES.get((scenario, host))
