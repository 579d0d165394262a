//! The lifecycle: `server_start`, `server_shutdown`, `server_wait` and friends, over the one
//! process-wide server.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{fail, server_result, set_last_error};
use super::options::{read_options, server_options, SERVER_TIMEOUT_INFINITE};
use crate::outcome::{Outcome, StopCause};
use crate::server::{Server, StartErrorKind};

pub use super::abi::SERVER_ABI_VERSION;

/// Why the server stopped, as read by `server_last_stop_cause`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum server_stop_cause {
    /// Not stopped: running, or never started.
    SERVER_CAUSE_NONE = 0,
    /// A signal started the drain; every connection finished in time (exit status 0).
    SERVER_CAUSE_GRACEFUL_SIGNAL = 1,
    /// `server_shutdown` started the drain; every connection finished in time (exit status 0).
    SERVER_CAUSE_GRACEFUL_CALL = 2,
    /// The listener could not be bound (exit status 1).
    SERVER_CAUSE_BIND_FAILED = 3,
    /// The runtime failed (exit status 1).
    SERVER_CAUSE_RUNTIME_FAILED = 4,
    /// The drain deadline passed; remaining connections were closed (exit status 1).
    SERVER_CAUSE_FORCED_DEADLINE = 5,
    /// A second signal during the drain closed remaining connections at once (exit status 1).
    SERVER_CAUSE_FORCED_SECOND_SIGNAL = 6,
    /// `server_start` rejected the options (version, out-of-range value, bad UTF-8) before
    /// anything started (exit status 1).
    SERVER_CAUSE_INVALID_OPTIONS = 7,
}

impl From<StopCause> for server_stop_cause {
    fn from(c: StopCause) -> Self {
        use server_stop_cause::*;
        match c {
            StopCause::GracefulSignal => SERVER_CAUSE_GRACEFUL_SIGNAL,
            StopCause::GracefulCall => SERVER_CAUSE_GRACEFUL_CALL,
            StopCause::BindFailed => SERVER_CAUSE_BIND_FAILED,
            StopCause::InvalidOptions => SERVER_CAUSE_INVALID_OPTIONS,
            StopCause::RuntimeFailed => SERVER_CAUSE_RUNTIME_FAILED,
            StopCause::ForcedDeadline => SERVER_CAUSE_FORCED_DEADLINE,
            StopCause::ForcedSecondSignal => SERVER_CAUSE_FORCED_SECOND_SIGNAL,
        }
    }
}

/// Live counters, filled by `server_get_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct server_stats {
    /// Connections open now.
    pub connections_active: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests being handled now.
    pub requests_active: u64,
    /// Requests received since start.
    pub requests_total: u64,
}

enum Slot {
    /// Never started in this process.
    Empty,
    /// Started; maybe draining or drained, not yet waited.
    Running(Arc<Server>),
    /// Waited for (or failed to start): the outcome stays readable.
    Stopped(Outcome),
}

static SLOT: Mutex<Slot> = Mutex::new(Slot::Empty);

fn slot() -> std::sync::MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(|e| e.into_inner())
}

/// True on a thread where blocking for the drain would wait on ourselves: a handler call, or
/// any thread of an async runtime.
fn blocking_forbidden() -> bool {
    crate::in_handler() || tokio::runtime::Handle::try_current().is_ok()
}

fn start_code(kind: StartErrorKind) -> server_result {
    use server_result::*;
    match kind {
        StartErrorKind::InvalidAddress => SERVER_ERR_INVALID_ADDRESS,
        StartErrorKind::InvalidConfig => SERVER_ERR_INVALID_ARGUMENT,
        StartErrorKind::AddrInUse => SERVER_ERR_ADDR_IN_USE,
        StartErrorKind::PermissionDenied => SERVER_ERR_PERMISSION_DENIED,
        StartErrorKind::Bind => SERVER_ERR_BIND,
        StartErrorKind::Signals => SERVER_ERR_SIGNALS,
        StartErrorKind::Runtime => SERVER_ERR_RUNTIME,
    }
}

fn shutdown_code(o: &Outcome) -> c_int {
    match o.cause {
        c if c.is_graceful() => server_result::SERVER_OK as c_int,
        c if c.is_forced() => fail(server_result::SERVER_ERR_FORCED, o.message.clone()),
        StopCause::BindFailed | StopCause::InvalidOptions => fail(
            server_result::SERVER_ERR_NOT_RUNNING,
            format!("the server never started: {}", o.message),
        ),
        _ => fail(server_result::SERVER_ERR_RUNTIME, o.message.clone()),
    }
}

fn exit_status(o: &Outcome) -> c_int {
    if o.exit_status() != 0 {
        set_last_error(server_result::SERVER_ERR_FAILED, o.message.clone());
    }
    o.exit_status()
}

/// Starts the server: validates `opts`, binds synchronously, installs signal handlers (unless
/// `opts->signals` is `SERVER_SIGNALS_HOST`), and serves on background threads. `opts` may be
/// NULL for the defaults: `127.0.0.1:8080`, the built-in `200 OK` handler, library signal
/// handling, a 5000 ms drain deadline for signal-started drains.
///
/// Returns `SERVER_OK`, or on failure (nothing keeps running; `server_last_error()` names the
/// address and the OS error; `server_wait()` then returns 1):
/// `SERVER_ERR_INVALID_ADDRESS`, `SERVER_ERR_ADDR_IN_USE`, `SERVER_ERR_PERMISSION_DENIED`,
/// `SERVER_ERR_BIND`, `SERVER_ERR_SIGNALS`, `SERVER_ERR_RUNTIME`, `SERVER_ERR_VERSION`,
/// `SERVER_ERR_INVALID_ARGUMENT`, or `SERVER_ERR_ALREADY_RUNNING` (a server is running; it is
/// left alone).
///
/// Ownership: `opts` and its strings are copied; `opts->userdata` is the library's until it calls
/// `opts->userdata_drop` (exactly once, also when start fails after reading the options).
/// Threading: any thread; concurrent starts are serialised and only one succeeds. A drained but
/// not yet waited server is torn down first. Not after `fork()`.
#[no_mangle]
pub unsafe extern "C" fn server_start(opts: *const server_options) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        let mut s = slot();
        if let Slot::Running(srv) = &*s {
            match srv.outcome() {
                Some(_) if !blocking_forbidden() => {
                    let o = srv.wait();
                    *s = Slot::Stopped(o);
                }
                _ => {
                    return fail(
                        server_result::SERVER_ERR_ALREADY_RUNNING,
                        "a server is already running in this process; shut it down and wait for it first",
                    )
                }
            }
        }
        let (cfg, handler) = match unsafe { read_options(opts) } {
            Ok(v) => v,
            Err((code, msg)) => {
                // A failed start, like a failed bind: server_wait() now returns 1.
                let cause = if code == server_result::SERVER_ERR_INVALID_ADDRESS {
                    StopCause::BindFailed
                } else {
                    StopCause::InvalidOptions
                };
                *s = Slot::Stopped(Outcome::new(cause, msg.clone()));
                return fail(code, msg);
            }
        };
        match Server::start(cfg, handler) {
            Ok(srv) => {
                *s = Slot::Running(Arc::new(srv));
                server_result::SERVER_OK as c_int
            }
            Err(e) => {
                *s = Slot::Stopped(Outcome::new(e.cause(), e.message.clone()));
                fail(start_code(e.kind), e.message)
            }
        }
    })
}

fn running() -> Result<Arc<Server>, Option<Outcome>> {
    match &*slot() {
        Slot::Running(s) => Ok(s.clone()),
        Slot::Stopped(o) => Err(Some(o.clone())),
        Slot::Empty => Err(None),
    }
}

fn not_running() -> c_int {
    fail(
        server_result::SERVER_ERR_NOT_RUNNING,
        "no server has been started in this process",
    )
}

/// Records the final outcome once the server is torn down.
fn settle(srv: &Arc<Server>, o: &Outcome) {
    let mut s = slot();
    if let Slot::Running(cur) = &*s {
        if Arc::ptr_eq(cur, srv) {
            *s = Slot::Stopped(o.clone());
        }
    }
}

/// Starts a graceful drain and blocks until it ends: stop accepting, close idle connections,
/// let in-flight requests finish, and at `timeout_ms` from now close whatever is left. A drain
/// already under way keeps the earlier deadline. `SERVER_TIMEOUT_INFINITE` waits without a
/// deadline; 0 closes in-flight connections at once. When it returns from a non-handler thread
/// the server is fully stopped (runtime gone, signal handlers restored).
///
/// Returns `SERVER_OK` (every connection finished), `SERVER_ERR_FORCED` (deadline hit),
/// `SERVER_ERR_RUNTIME`, `SERVER_ERR_NOT_RUNNING` (never started, or start failed), or
/// `SERVER_DRAINING` when called from a handler thread: the drain has begun, but that thread
/// cannot wait for a drain that waits for its own request.
///
/// Idempotent: later calls return the same result. Any thread, concurrently.
#[no_mangle]
pub extern "C" fn server_shutdown(timeout_ms: u32) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        let srv = match running() {
            Ok(s) => s,
            Err(Some(o)) => return shutdown_code(&o),
            Err(None) => return not_running(),
        };
        let timeout = (timeout_ms != SERVER_TIMEOUT_INFINITE)
            .then(|| Duration::from_millis(timeout_ms as u64));
        if blocking_forbidden() {
            srv.begin_shutdown(timeout);
            return server_result::SERVER_DRAINING as c_int;
        }
        srv.shutdown(timeout);
        let o = srv.wait();
        settle(&srv, &o);
        shutdown_code(&o)
    })
}

/// Blocks until the server has fully stopped (after a signal or `server_shutdown`), tears the
/// runtime down on the calling thread, restores signal handlers, and returns the exit status for
/// `main`: 0 after a graceful stop, 1 after a failure (including a failed `server_start`) or a
/// forced drain; `server_last_error()` then describes it. Other values are API misuse:
/// `SERVER_ERR_NOT_RUNNING` (no start in this process), `SERVER_ERR_WRONG_THREAD` (called from a
/// handler or runtime thread), `SERVER_ERR_PANIC`.
///
/// Any thread that is not a handler thread; several threads may wait at once.
#[no_mangle]
pub extern "C" fn server_wait() -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, { wait_for(None) })
}

/// Like `server_wait`, but returns `SERVER_STILL_RUNNING` if the server has not stopped within
/// `timeout_ms` (0 polls). Lets hosts such as Python wait in slices and stay interruptible.
#[no_mangle]
pub extern "C" fn server_wait_timeout(timeout_ms: u32) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        wait_for(Some(Duration::from_millis(timeout_ms as u64)))
    })
}

fn wait_for(timeout: Option<Duration>) -> c_int {
    let srv = match running() {
        Ok(s) => s,
        Err(Some(o)) => return exit_status(&o),
        Err(None) => return not_running(),
    };
    if blocking_forbidden() {
        return fail(
            server_result::SERVER_ERR_WRONG_THREAD,
            "server_wait cannot be called from a handler or runtime thread: the stop waits for that thread",
        );
    }
    let o = match timeout {
        None => srv.wait(),
        Some(t) => match srv.wait_timeout(t) {
            Some(o) => o,
            None => return server_result::SERVER_STILL_RUNNING as c_int,
        },
    };
    settle(&srv, &o);
    exit_status(&o)
}

/// Delivers `signum` to the running server as if the library's own handler had caught it: the
/// first call starts a graceful drain with the signal drain deadline, a later one forces the
/// stop. Async-signal-safe (no locks, no allocation): call it from your own signal handler when
/// you run with `SERVER_SIGNALS_HOST`.
///
/// Returns `SERVER_OK`, `SERVER_ERR_INVALID_ARGUMENT` (`signum <= 0`) or
/// `SERVER_ERR_NOT_RUNNING`. Does not set the last error (that would allocate).
#[no_mangle]
pub extern "C" fn server_notify_signal(signum: c_int) -> c_int {
    if signum <= 0 {
        return server_result::SERVER_ERR_INVALID_ARGUMENT as c_int;
    }
    if crate::notify_signal(signum) {
        server_result::SERVER_OK as c_int
    } else {
        server_result::SERVER_ERR_NOT_RUNNING as c_int
    }
}

/// Returns why the last server stopped (`SERVER_CAUSE_NONE` while it runs or before any start).
/// Any thread.
#[no_mangle]
pub extern "C" fn server_last_stop_cause() -> server_stop_cause {
    ffi_guard!(server_stop_cause::SERVER_CAUSE_NONE, {
        match running() {
            Ok(s) => s
                .outcome()
                .map_or(server_stop_cause::SERVER_CAUSE_NONE, |o| o.cause.into()),
            Err(Some(o)) => o.cause.into(),
            Err(None) => server_stop_cause::SERVER_CAUSE_NONE,
        }
    })
}

/// Returns the bound port of the running (or drained, not yet waited) server; 0 when there is
/// none. Any thread.
#[no_mangle]
pub extern "C" fn server_local_port() -> u16 {
    ffi_guard!(0, { running().map_or(0, |s| s.local_addr().port()) })
}

/// Writes the bound address as `HOST:PORT` (IPv6 as `[::1]:PORT`), NUL-terminated, into `buf`
/// of `len` bytes; `*out_len` (may be NULL) receives the length without the NUL.
///
/// Returns `SERVER_OK`, `SERVER_ERR_NOT_RUNNING`, `SERVER_ERR_NULL_PARAMETER` or
/// `SERVER_ERR_BUFFER_TOO_SMALL` (`*out_len` still tells the size needed). 64 bytes always fit.
#[no_mangle]
pub unsafe extern "C" fn server_local_addr(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(buf, "buf");
        let Ok(srv) = running() else {
            return not_running();
        };
        let s = srv.local_addr().to_string();
        if !out_len.is_null() {
            // SAFETY: non-NULL per the check.
            unsafe { *out_len = s.len() };
        }
        if s.len() + 1 > len {
            return fail(
                server_result::SERVER_ERR_BUFFER_TOO_SMALL,
                format!(
                    "the address needs {} bytes, the buffer has {len}",
                    s.len() + 1
                ),
            );
        }
        // SAFETY: buf has at least s.len()+1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, s.len());
            *buf.add(s.len()) = 0;
        }
        server_result::SERVER_OK as c_int
    })
}

/// Fills `*out` with live counters of the running server.
///
/// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER` or `SERVER_ERR_NOT_RUNNING`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn server_get_stats(out: *mut server_stats) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(out, "out");
        let Ok(srv) = running() else {
            return not_running();
        };
        let st = srv.stats();
        // SAFETY: out is non-NULL.
        unsafe {
            out.write(server_stats {
                connections_active: st.connections_active,
                connections_total: st.connections_total,
                requests_active: st.requests_active,
                requests_total: st.requests_total,
            })
        };
        server_result::SERVER_OK as c_int
    })
}

/// Returns the library version, e.g. `"0.1.0"`: static, never NULL, never free it.
#[no_mangle]
pub extern "C" fn server_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Returns `SERVER_ABI_VERSION` as compiled into the library, for bindings to check at load time.
#[no_mangle]
pub extern "C" fn server_abi_version() -> u32 {
    SERVER_ABI_VERSION
}
