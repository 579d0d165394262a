//! The fixed names — `server_start`, `server_shutdown`, `server_wait` and their friends — over
//! the process's default instance. They share every step with the `server_instance_*` calls
//! (`instance.rs`); this file only keeps the default instance in its slot.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{fail, server_result};
use super::instance::{self, server_stats, server_stop_cause};
use super::options::{server_options, Target};
use crate::outcome::Outcome;
use crate::server::Server;

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

/// Records the final outcome once the default server is torn down.
fn settle(srv: &Arc<Server>, o: &Outcome) {
    let mut s = slot();
    if let Slot::Running(cur) = &*s {
        if Arc::ptr_eq(cur, srv) {
            *s = Slot::Stopped(o.clone());
        }
    }
}

ffi_fn! {
    /// Starts the process's default server: validates `opts`, binds synchronously, installs
    /// signal handlers (unless `opts->signals` is `SERVER_SIGNALS_HOST`), and serves on
    /// background threads. `opts` may be NULL for the defaults: `127.0.0.1:8080`, the built-in
    /// `200 OK` handler, library signal handling, a 5000 ms drain deadline for signal-started
    /// drains. Instances (`server_instance_start`) may run beside it.
    ///
    /// Returns `SERVER_OK`, or on failure (nothing keeps running; `server_last_error()` names
    /// the address and the OS error; `server_wait()` then returns 1):
    /// `SERVER_ERR_INVALID_ADDRESS`, `SERVER_ERR_ADDR_IN_USE`, `SERVER_ERR_PERMISSION_DENIED`,
    /// `SERVER_ERR_BIND`, `SERVER_ERR_SIGNALS`, `SERVER_ERR_RUNTIME`, `SERVER_ERR_VERSION`,
    /// `SERVER_ERR_INVALID_ARGUMENT`, or `SERVER_ERR_ALREADY_RUNNING` (the default server is
    /// running; it is left alone).
    ///
    /// Ownership: `opts` and its strings are copied; `opts->userdata` is the library's until it
    /// calls `opts->userdata_drop` (exactly once, also when start fails after reading the
    /// options). Threading: any thread; concurrent starts are serialised and only one succeeds.
    /// A drained but not yet waited default server is torn down first. Not after `fork()`.
    unsafe fn server_start(opts: *const server_options) -> c_int {
        let mut s = slot();
        if let Slot::Running(srv) = &*s {
            // A drained server not yet waited for is torn down here (not from its own thread).
            match srv.outcome().map(|_| srv.wait()) {
                Some(Ok(o)) => *s = Slot::Stopped(o),
                _ => {
                    return fail(
                        server_result::SERVER_ERR_ALREADY_RUNNING,
                        "a server is already running in this process; shut it down and wait for it first",
                    )
                }
            }
        }
        match unsafe { instance::start(opts, Target::Default) } {
            Ok(srv) => {
                *s = Slot::Running(Arc::new(srv));
                server_result::SERVER_OK as c_int
            }
            Err(f) => {
                // A failed start, like a failed bind: server_wait() now returns 1.
                *s = Slot::Stopped(f.outcome);
                f.code as c_int
            }
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Starts a graceful drain of the default server and blocks until it ends: stop accepting,
    /// close idle connections, let in-flight requests finish, and at `timeout_ms` from now
    /// close whatever is left. A drain already under way keeps the earlier deadline.
    /// `SERVER_TIMEOUT_INFINITE` waits without a deadline; 0 closes in-flight connections at
    /// once. When it returns from a non-handler thread the server is fully stopped (runtime
    /// gone, signal handlers restored).
    ///
    /// Returns `SERVER_OK` (every connection finished), `SERVER_ERR_FORCED` (deadline hit),
    /// `SERVER_ERR_RUNTIME`, `SERVER_ERR_NOT_RUNNING` (never started, or start failed), or
    /// `SERVER_DRAINING` when called from one of its handler threads: the drain has begun,
    /// but that thread cannot wait for a drain that waits for its own request.
    ///
    /// Idempotent: later calls return the same result. Any thread, concurrently.
    fn server_shutdown(timeout_ms: u32) -> c_int {
        let srv = match running() {
            Ok(s) => s,
            Err(Some(o)) => return instance::shutdown_code(&o),
            Err(None) => return not_running(),
        };
        match instance::shutdown(&srv, timeout_ms) {
            Ok(o) => {
                settle(&srv, &o);
                instance::shutdown_code(&o)
            }
            Err(code) => code,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

fn wait_for(timeout: Option<Duration>) -> c_int {
    let srv = match running() {
        Ok(s) => s,
        Err(Some(o)) => return instance::exit_status(&o),
        Err(None) => return not_running(),
    };
    match instance::wait(&srv, timeout) {
        Ok(Some(o)) => {
            settle(&srv, &o);
            instance::exit_status(&o)
        }
        Ok(None) => server_result::SERVER_STILL_RUNNING as c_int,
        Err(code) => code,
    }
}

ffi_fn! {
    /// Blocks until the default server has fully stopped (after a signal or
    /// `server_shutdown`), tears the runtime down on the calling thread, restores signal
    /// handlers, and returns the exit status for `main`: 0 after a graceful stop, 1 after a
    /// failure (including a failed `server_start`) or a forced drain; `server_last_error()` then
    /// describes it. Other values are API misuse: `SERVER_ERR_NOT_RUNNING` (no start in this
    /// process), `SERVER_ERR_WRONG_THREAD` (called from one of its handler or runtime threads),
    /// `SERVER_ERR_PANIC`.
    ///
    /// Any thread that is not one of its handler threads; several threads may wait at once.
    fn server_wait() -> c_int {
        wait_for(None)
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Like `server_wait`, but returns `SERVER_STILL_RUNNING` if the default server has not
    /// stopped within `timeout_ms` (0 polls). Lets hosts such as Python wait in slices and stay
    /// interruptible.
    fn server_wait_timeout(timeout_ms: u32) -> c_int {
        wait_for(Some(Duration::from_millis(timeout_ms as u64)))
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Delivers `signum` to every server that listens for process-wide signals, as if the
    /// library's own handler had caught it: every instance started with
    /// `SERVER_SIGNALS_LIBRARY`, and the default server whatever its signal policy (so a host
    /// that owns signals forwards them to it with this call). On each, the first call starts a
    /// graceful drain with its signal drain deadline, a later one forces the stop. Instances
    /// started with `SERVER_SIGNALS_HOST` are not touched (use `server_instance_notify_signal`).
    /// Async-signal-safe (no locks, no allocation): call it from your own signal handler.
    ///
    /// Returns `SERVER_OK` (at least one server got it), `SERVER_ERR_INVALID_ARGUMENT`
    /// (`signum <= 0`) or `SERVER_ERR_NOT_RUNNING` (none listens). Does not set the last error
    /// (that would allocate).
    fn server_notify_signal(signum: c_int) -> c_int {
        if signum <= 0 {
            return server_result::SERVER_ERR_INVALID_ARGUMENT as c_int;
        }
        if crate::notify_signal(signum) {
            server_result::SERVER_OK as c_int
        } else {
            server_result::SERVER_ERR_NOT_RUNNING as c_int
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns why the default server stopped (`SERVER_CAUSE_NONE` while it runs or before any
    /// start). Any thread.
    fn server_last_stop_cause() -> server_stop_cause {
        match running() {
            Ok(s) => instance::stop_cause(&s),
            Err(Some(o)) => o.cause.into(),
            Err(None) => server_stop_cause::SERVER_CAUSE_NONE,
        }
    } ?= server_stop_cause::SERVER_CAUSE_NONE
}

ffi_fn! {
    /// `server_instance_upgrade` for the default server: starts a successor with the
    /// listener handed over, waits for it to report ready, then drains. Returns `SERVER_OK`,
    /// `SERVER_ERR_UPGRADE` (the default server keeps serving; `server_last_error()` says
    /// why), `SERVER_ERR_INVALID_ARGUMENT` or `SERVER_ERR_NOT_RUNNING`.
    unsafe fn server_upgrade(
        program: *const c_char,
        argv: *const *const c_char,
        timeout_ms: u32,
        out_pid: *mut u32,
    ) -> c_int {
        let Ok(srv) = running() else {
            return not_running();
        };
        unsafe { instance::upgrade(&srv, program, argv, timeout_ms, out_pid) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns 1 from the moment a drain of the default server was requested (including
    /// during the pre-drain delay), else 0 (also when none runs). Any thread.
    fn server_drain_requested() -> c_int {
        running().map_or(0, |s| c_int::from(s.drain_requested()))
    } ?= 0
}

ffi_fn! {
    /// Returns the bound port of the running (or drained, not yet waited) default server; 0
    /// when there is none. Any thread.
    fn server_local_port() -> u16 {
        running().map_or(0, |s| s.local_addr().port())
    } ?= 0
}

ffi_fn! {
    /// Writes the bound address of the default server as `HOST:PORT` (IPv6 as `[::1]:PORT`),
    /// NUL-terminated, into `buf` of `len` bytes; `*out_len` (may be NULL) receives the length
    /// without the NUL.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NOT_RUNNING`, `SERVER_ERR_NULL_PARAMETER` or
    /// `SERVER_ERR_BUFFER_TOO_SMALL` (`*out_len` still tells the size needed). 64 bytes always
    /// fit.
    unsafe fn server_local_addr(buf: *mut c_char, len: usize, out_len: *mut usize) -> c_int {
        check_null!(buf, "buf");
        let Ok(srv) = running() else {
            return not_running();
        };
        unsafe { instance::write_addr(&srv, buf, len, out_len) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Fills `*out` with live counters of the running default server (the fields of
    /// `out->version`, which the caller sets to `SERVER_STATS_VERSION`).
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER`, `SERVER_ERR_VERSION` or
    /// `SERVER_ERR_NOT_RUNNING`. Any thread.
    unsafe fn server_get_stats(out: *mut server_stats) -> c_int {
        check_null!(out, "out");
        let Ok(srv) = running() else {
            return not_running();
        };
        unsafe { instance::write_stats(&srv, out) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns the library version, e.g. `"0.1.0"`: static, never NULL, never free it.
    fn server_version() -> *const c_char {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
    } ?= c"?".as_ptr()
}

ffi_fn! {
    /// Returns `SERVER_ABI_VERSION` as compiled into the library, for bindings to check at
    /// load time.
    fn server_abi_version() -> u32 {
        super::abi::SERVER_ABI_VERSION
    } ?= 0
}
