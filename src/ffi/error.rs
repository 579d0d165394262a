//! Result codes, their fixed messages, and the per-thread last error.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};

use super::instance::server_stop_cause;

/// Result codes returned by graceserve functions. Values are fixed forever; a retired value is
/// never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum server_result {
    /// Success (and, from `server_wait`, the exit status of a graceful stop).
    SERVER_OK = 0,
    /// The server stopped with a failure or a forced drain (the exit status 1 of `server_wait`).
    SERVER_ERR_FAILED = 1,
    /// A bug inside graceserve was caught at the boundary; details in `server_last_error`.
    SERVER_ERR_PANIC = 2,
    /// A pointer argument that must not be NULL was NULL.
    SERVER_ERR_NULL_PARAMETER = 3,
    /// The request was already answered.
    SERVER_ERR_ALREADY_USED = 4,
    /// An argument is out of range: bad UTF-8, an invalid status code or header, a bad option.
    SERVER_ERR_INVALID_ARGUMENT = 5,
    /// `server_options.version` is not one this library knows.
    SERVER_ERR_VERSION = 6,
    /// The address does not parse as HOST:PORT or does not resolve.
    SERVER_ERR_INVALID_ADDRESS = 7,
    /// The address is already in use.
    SERVER_ERR_ADDR_IN_USE = 8,
    /// The OS refused the address (e.g. a port below 1024 without privilege).
    SERVER_ERR_PERMISSION_DENIED = 9,
    /// Another bind/listen failure (e.g. an address this host does not have).
    SERVER_ERR_BIND = 10,
    /// The runtime could not be started, or failed while serving.
    SERVER_ERR_RUNTIME = 11,
    /// Signal handlers could not be installed.
    SERVER_ERR_SIGNALS = 12,
    /// `server_start` while a server is running.
    SERVER_ERR_ALREADY_RUNNING = 13,
    /// No server has been started (or the call needs a running one).
    SERVER_ERR_NOT_RUNNING = 14,
    /// The call would deadlock on this thread (e.g. `server_wait` inside a handler).
    SERVER_ERR_WRONG_THREAD = 15,
    /// `server_shutdown`: the deadline passed and remaining connections were closed.
    SERVER_ERR_FORCED = 16,
    /// The header asked for is not in the request.
    SERVER_ERR_NOT_FOUND = 17,
    /// The client is gone, or the stop was forced: the response cannot be delivered.
    SERVER_ERR_CLOSED = 18,
    /// `server_wait_timeout`: the server is still running.
    SERVER_STILL_RUNNING = 19,
    /// `server_shutdown` called from a handler thread: the drain has started; it cannot be
    /// waited for from here (the drain waits for this very handler).
    SERVER_DRAINING = 20,
    /// The caller's buffer is too small.
    SERVER_ERR_BUFFER_TOO_SMALL = 21,
    /// An in-place upgrade failed: the new process could not start, exited, or did not report
    /// ready in time. The server keeps serving; `server_last_error` says why.
    SERVER_ERR_UPGRADE = 22,
}

/// The fixed text of a result code.
pub(crate) fn result_text(code: i64) -> &'static str {
    use server_result::*;
    const TABLE: [(server_result, &str); 23] = [
        (SERVER_OK, "ok\0"),
        (
            SERVER_ERR_FAILED,
            "the server stopped with a failure or a forced drain\0",
        ),
        (
            SERVER_ERR_PANIC,
            "internal error (panic caught at the API boundary)\0",
        ),
        (
            SERVER_ERR_NULL_PARAMETER,
            "a required pointer argument was NULL\0",
        ),
        (
            SERVER_ERR_ALREADY_USED,
            "the request was already answered\0",
        ),
        (SERVER_ERR_INVALID_ARGUMENT, "invalid argument\0"),
        (SERVER_ERR_VERSION, "unsupported options version\0"),
        (
            SERVER_ERR_INVALID_ADDRESS,
            "invalid address (expected HOST:PORT)\0",
        ),
        (SERVER_ERR_ADDR_IN_USE, "address already in use\0"),
        (
            SERVER_ERR_PERMISSION_DENIED,
            "permission denied for this address\0",
        ),
        (SERVER_ERR_BIND, "cannot bind or listen on this address\0"),
        (SERVER_ERR_RUNTIME, "the server runtime failed\0"),
        (SERVER_ERR_SIGNALS, "cannot install signal handlers\0"),
        (SERVER_ERR_ALREADY_RUNNING, "a server is already running\0"),
        (SERVER_ERR_NOT_RUNNING, "no server is running\0"),
        (
            SERVER_ERR_WRONG_THREAD,
            "this call would deadlock on this thread\0",
        ),
        (
            SERVER_ERR_FORCED,
            "the drain deadline passed; remaining connections were closed\0",
        ),
        (SERVER_ERR_NOT_FOUND, "not found\0"),
        (
            SERVER_ERR_CLOSED,
            "the connection is closed; the response cannot be delivered\0",
        ),
        (SERVER_STILL_RUNNING, "the server is still running\0"),
        (SERVER_DRAINING, "the drain has started\0"),
        (SERVER_ERR_BUFFER_TOO_SMALL, "the buffer is too small\0"),
        (
            SERVER_ERR_UPGRADE,
            "the in-place upgrade failed; the server keeps serving\0",
        ),
    ];
    TABLE
        .iter()
        .find(|(c, _)| *c as i64 == code)
        .map(|(_, t)| *t)
        .unwrap_or("unknown result code\0")
}

struct LastError {
    code: server_result,
    message: CString,
    /// The stop cause a failed start amounts to (`SERVER_CAUSE_NONE` for other failures).
    cause: server_stop_cause,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        code: server_result::SERVER_OK,
        message: CString::default(),
        cause: server_stop_cause::SERVER_CAUSE_NONE,
    });
}

/// Records the calling thread's last error.
pub(crate) fn set_last_error(code: server_result, message: impl Into<String>) {
    set_last_error_with_cause(code, message, server_stop_cause::SERVER_CAUSE_NONE);
}

/// Records the calling thread's last error, for a failed start with the cause it amounts to.
pub(crate) fn set_last_error_with_cause(
    code: server_result,
    message: impl Into<String>,
    cause: server_stop_cause,
) {
    let mut m = message.into();
    m.retain(|c| c != '\0');
    let message = CString::new(m).unwrap_or_default();
    LAST.with(|l| {
        *l.borrow_mut() = LastError {
            code,
            message,
            cause,
        }
    });
}

/// Records `code` with `message` as the last error and returns the code as `int`.
pub(crate) fn fail(code: server_result, message: impl Into<String>) -> c_int {
    set_last_error(code, message);
    code as c_int
}

ffi_fn! {
    /// Returns the fixed, static, NUL-terminated text for a result code (any `int`; unknown
    /// values give "unknown result code"). Never NULL; never free it. Any thread.
    fn server_result_str(code: c_int) -> *const c_char {
        result_text(code as i64).as_ptr() as *const c_char
    } ?= c"internal error".as_ptr()
}

ffi_fn! {
    /// Returns the detailed message of the last failed graceserve call on the calling thread,
    /// e.g. `cannot listen on 127.0.0.1:8080: Address already in use (os error 98)`, or the
    /// account of a failed/forced stop after `server_wait`. Empty string when there is none.
    /// Never NULL.
    ///
    /// Lifetime: valid until the next graceserve call on the same thread; copy it to keep it.
    /// Thread-safety: per thread; each thread sees its own last error.
    fn server_last_error() -> *const c_char {
        LAST.with(|l| l.borrow().message.as_ptr())
    } ?= c"internal error".as_ptr()
}

ffi_fn! {
    /// Returns the stop cause the calling thread's last failed start amounts to
    /// (`SERVER_CAUSE_BIND_FAILED`, `SERVER_CAUSE_INVALID_OPTIONS`,
    /// `SERVER_CAUSE_RUNTIME_FAILED`), or `SERVER_CAUSE_NONE` when its last failure was not a
    /// start. A failed `server_instance_start` leaves no handle to ask; this is how a binding
    /// reports its cause without deciding it again. Any thread.
    fn server_last_error_cause() -> server_stop_cause {
        LAST.with(|l| l.borrow().cause)
    } ?= server_stop_cause::SERVER_CAUSE_NONE
}

ffi_fn! {
    /// Returns the code of the last failed graceserve call on the calling thread
    /// (`SERVER_OK` when none). Any thread.
    fn server_last_error_code() -> c_int {
        LAST.with(|l| l.borrow().code as c_int)
    } ?= server_result::SERVER_ERR_PANIC as c_int
}
