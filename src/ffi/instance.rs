//! `server_instance`: one server, as a handle. Any number may run in one process. The fixed
//! names (`server_start`, `server_shutdown`, `server_wait`, ...) drive the process's default
//! instance through the same functions (see `lifecycle.rs`).

use std::ffi::{c_char, c_int};
use std::time::Duration;

use super::error::{fail, server_result, set_last_error, set_last_error_with_cause};
use super::options::{read_options, server_options, Target, SERVER_TIMEOUT_INFINITE};
use crate::outcome::{Outcome, StopCause};
use crate::server::{Server, StartError, StartErrorKind};
use crate::signals::SignalSender;

/// A server started with `server_instance_start`. Opaque.
///
/// Lifecycle: `server_instance_start` → serve → drain (`server_instance_shutdown`, a signal
/// with `SERVER_SIGNALS_LIBRARY`, or `server_instance_notify_signal`) →
/// `server_instance_wait` → `server_instance_free`. Reading calls (`_local_port`,
/// `_local_addr`, `_get_stats`, `_stop_cause`) work until the free, also after the stop.
///
/// Threading: every call but `server_instance_free` may be made from any thread, concurrently.
/// `server_instance_free` must be the last call on the handle, made once no other call on it is
/// in progress.
pub struct server_instance {
    pub(super) server: Server,
    sender: SignalSender,
}

/// Why a server stopped, as read by `server_instance_stop_cause` / `server_last_stop_cause`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum server_stop_cause {
    /// Not stopped: running, or never started.
    SERVER_CAUSE_NONE = 0,
    /// A signal started the drain; every connection finished in time (exit status 0).
    SERVER_CAUSE_GRACEFUL_SIGNAL = 1,
    /// A shutdown call started the drain; every connection finished in time (exit status 0).
    SERVER_CAUSE_GRACEFUL_CALL = 2,
    /// The listener could not be bound (exit status 1).
    SERVER_CAUSE_BIND_FAILED = 3,
    /// The runtime failed (exit status 1).
    SERVER_CAUSE_RUNTIME_FAILED = 4,
    /// The drain deadline passed; remaining connections were closed (exit status 1).
    SERVER_CAUSE_FORCED_DEADLINE = 5,
    /// A second signal during the drain closed remaining connections at once (exit status 1).
    SERVER_CAUSE_FORCED_SECOND_SIGNAL = 6,
    /// The start rejected the options (version, out-of-range value, bad UTF-8) before anything
    /// started (exit status 1).
    SERVER_CAUSE_INVALID_OPTIONS = 7,
    /// An in-place upgrade handed the listener to a new process and this one drained in time
    /// (exit status 0).
    SERVER_CAUSE_UPGRADED = 8,
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
            StopCause::Upgraded => SERVER_CAUSE_UPGRADED,
        }
    }
}

fn cause_from_u32(v: u32) -> Option<StopCause> {
    Some(match v {
        1 => StopCause::GracefulSignal,
        2 => StopCause::GracefulCall,
        3 => StopCause::BindFailed,
        4 => StopCause::RuntimeFailed,
        5 => StopCause::ForcedDeadline,
        6 => StopCause::ForcedSecondSignal,
        7 => StopCause::InvalidOptions,
        8 => StopCause::Upgraded,
        _ => return None,
    })
}

/// The newest `server_stats` layout this header describes.
pub const SERVER_STATS_VERSION: u32 = 2;

/// Live counters, filled by `server_instance_get_stats` / `server_get_stats`. Set `version`
/// to `SERVER_STATS_VERSION` before the call: the library writes only the fields of that
/// version (counters are only ever appended), so a program built against an older header
/// keeps working with a newer library.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct server_stats {
    /// Set by the caller: the layout it was built with.
    pub version: u32,
    /// Connections open now.
    pub connections_active: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests being handled now.
    pub requests_active: u64,
    /// Requests received since start.
    pub requests_total: u64,
    // ---- version 2 ----
    /// Open connections with no request in flight now (idle keep-alive, or nothing sent yet).
    pub connections_idle: u64,
    /// Connections that ended during the pre-drain delay or the drain without being cut
    /// (closed as idle, or after their last answer said `Connection: close` / GOAWAY).
    pub connections_drained: u64,
    /// Connections cut by force (drain deadline, second signal).
    pub connections_cut: u64,
    /// Requests answered during the pre-drain delay.
    pub requests_during_delay: u64,
}

fn stats_size(version: u32) -> Option<usize> {
    use std::mem::{offset_of, size_of};
    match version {
        1 => Some(offset_of!(server_stats, requests_total) + size_of::<u64>()),
        2 => Some(offset_of!(server_stats, requests_during_delay) + size_of::<u64>()),
        _ => None,
    }
}

pub(super) fn start_code(kind: StartErrorKind) -> server_result {
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

/// What a failed start leaves behind: the code, the message, and the outcome a later wait on
/// the default server reports (exit status 1).
pub(super) struct StartFailure {
    pub(super) code: server_result,
    pub(super) message: String,
    pub(super) outcome: Outcome,
}

/// Reads the options and starts a server: the one start path for instances and the default
/// server. A failure is recorded as the thread's last error, with the cause it amounts to.
pub(super) unsafe fn start(
    opts: *const server_options,
    target: Target,
) -> Result<Server, StartFailure> {
    let r = unsafe { start_inner(opts, target) };
    if let Err(f) = &r {
        set_last_error_with_cause(f.code, f.message.clone(), f.outcome.cause.into());
    }
    r
}

unsafe fn start_inner(opts: *const server_options, target: Target) -> Result<Server, StartFailure> {
    let (cfg, handler) = match unsafe { read_options(opts, target) } {
        Ok(v) => v,
        Err((code, message)) => {
            let cause = if code == server_result::SERVER_ERR_INVALID_ADDRESS {
                StopCause::BindFailed
            } else {
                StopCause::InvalidOptions
            };
            let outcome = Outcome::new(cause, message.clone());
            return Err(StartFailure {
                code,
                message,
                outcome,
            });
        }
    };
    Server::start(cfg, handler).map_err(|e: StartError| StartFailure {
        code: start_code(e.kind),
        outcome: e.outcome(),
        message: e.message,
    })
}

/// `server_shutdown`'s result for an outcome.
pub(super) fn shutdown_code(o: &Outcome) -> c_int {
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

/// `server_wait`'s result for an outcome: the exit status, with the message as last error.
pub(super) fn exit_status(o: &Outcome) -> c_int {
    if o.exit_status() != 0 {
        set_last_error(server_result::SERVER_ERR_FAILED, o.message.clone());
    }
    o.exit_status()
}

fn timeout_of(timeout_ms: u32) -> Option<Duration> {
    (timeout_ms != SERVER_TIMEOUT_INFINITE).then(|| Duration::from_millis(timeout_ms as u64))
}

/// Drains `srv` and waits for it; on one of its own threads only starts the drain.
pub(super) fn shutdown(srv: &Server, timeout_ms: u32) -> Result<Outcome, c_int> {
    srv.shutdown(timeout_of(timeout_ms))
        .map_err(|_| server_result::SERVER_DRAINING as c_int)
}

/// Waits for `srv` (at most `timeout` when given): `Ok(None)` while it still runs.
pub(super) fn wait(srv: &Server, timeout: Option<Duration>) -> Result<Option<Outcome>, c_int> {
    let r = match timeout {
        None => srv.wait().map(Some),
        Some(t) => srv.wait_timeout(t),
    };
    r.map_err(|e| {
        fail(
            server_result::SERVER_ERR_WRONG_THREAD,
            format!("server_wait: {e}"),
        )
    })
}

/// Writes `srv`'s bound address into the caller's buffer.
pub(super) unsafe fn write_addr(
    srv: &Server,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> c_int {
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
}

/// Writes `srv`'s counters into the caller's struct, only the fields of its version.
pub(super) unsafe fn write_stats(srv: &Server, out: *mut server_stats) -> c_int {
    // SAFETY: out is non-NULL; every version starts with the u32 version field.
    let version = unsafe { (out as *const u32).read_unaligned() };
    let Some(size) = stats_size(version) else {
        return fail(
            server_result::SERVER_ERR_VERSION,
            format!("server_stats.version = {version} is not supported (this library knows 1..={SERVER_STATS_VERSION}); set it to SERVER_STATS_VERSION"),
        );
    };
    let st = srv.stats();
    let full = server_stats {
        version,
        connections_active: st.connections_active,
        connections_total: st.connections_total,
        requests_active: st.requests_active,
        requests_total: st.requests_total,
        connections_idle: st.connections_idle,
        connections_drained: st.connections_drained,
        connections_cut: st.connections_cut,
        requests_during_delay: st.requests_during_delay,
    };
    // SAFETY: the caller's struct has `size` writable bytes (its version's size).
    unsafe {
        std::ptr::copy_nonoverlapping(
            &full as *const server_stats as *const u8,
            out as *mut u8,
            size,
        )
    };
    server_result::SERVER_OK as c_int
}

pub(super) fn stop_cause(srv: &Server) -> server_stop_cause {
    srv.outcome()
        .map_or(server_stop_cause::SERVER_CAUSE_NONE, |o| o.cause.into())
}

unsafe fn inst<'a>(srv: *const server_instance) -> Option<&'a server_instance> {
    // SAFETY: the caller passes a handle it got from server_instance_start and has not freed.
    unsafe { srv.as_ref() }
}

ffi_fn! {
    /// Starts a server: validates `opts`, binds synchronously, and serves on background threads
    /// of its own. Any number of instances may run at once (and beside the default server of
    /// `server_start`). `opts` may be NULL for the defaults (`127.0.0.1:8080`, the built-in
    /// `200 OK` handler, library signal handling).
    ///
    /// Signals: with `SERVER_SIGNALS_LIBRARY` the instance listens for SIGINT/SIGTERM: one
    /// signal drains every listening instance (each with its own `signal_drain_timeout_ms`), a
    /// second forces every one still draining; `server_notify_signal` reaches them too. The
    /// handlers are installed while at least one listening server runs and the previous
    /// actions come back when the last one stops. With `SERVER_SIGNALS_HOST` the library never
    /// touches the instance on a signal; forward one with `server_instance_notify_signal`.
    ///
    /// Returns `SERVER_OK` with `*out` set to a new handle, or (with `*out` set to NULL,
    /// nothing running, and `server_last_error()` naming the address and the OS error):
    /// `SERVER_ERR_INVALID_ADDRESS`, `SERVER_ERR_ADDR_IN_USE`, `SERVER_ERR_PERMISSION_DENIED`,
    /// `SERVER_ERR_BIND`, `SERVER_ERR_SIGNALS`, `SERVER_ERR_RUNTIME`, `SERVER_ERR_VERSION`,
    /// `SERVER_ERR_INVALID_ARGUMENT`, `SERVER_ERR_NULL_PARAMETER` (`out` is NULL).
    ///
    /// Ownership: `opts` and its strings are copied; `opts->userdata` is the library's until it
    /// calls `opts->userdata_drop` (exactly once, also when the start fails after reading the
    /// options). The handle is the caller's: release it with `server_instance_free`.
    /// Threading: any thread. Not after `fork()`.
    unsafe fn server_instance_start(
        out: *mut *mut server_instance,
        opts: *const server_options,
    ) -> c_int {
        check_null!(out, "out");
        // SAFETY: out is non-NULL.
        unsafe { *out = std::ptr::null_mut() };
        match unsafe { start(opts, Target::Instance) } {
            Ok(server) => {
                let sender = server.signal_sender();
                let handle = Box::new(server_instance { server, sender });
                // SAFETY: out is non-NULL.
                unsafe { *out = Box::into_raw(handle) };
                server_result::SERVER_OK as c_int
            }
            Err(f) => f.code as c_int,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Drains `srv` gracefully and blocks until it has stopped: stop accepting, close idle
    /// connections, let in-flight requests finish, and at `timeout_ms` from now close whatever
    /// is left (`SERVER_TIMEOUT_INFINITE`: no deadline; 0: at once). A drain already under way
    /// keeps the earlier deadline. Returns with the instance torn down (runtime gone, signal
    /// handlers restored if it was the last listener).
    ///
    /// Returns `SERVER_OK` (every connection finished), `SERVER_ERR_FORCED` (deadline hit),
    /// `SERVER_ERR_RUNTIME`, `SERVER_ERR_NULL_PARAMETER`, or `SERVER_DRAINING` when called from
    /// one of this instance's own handler or runtime threads: the drain has begun, but that
    /// thread cannot wait for a drain that waits for it. Idempotent; any thread, concurrently.
    unsafe fn server_instance_shutdown(srv: *mut server_instance, timeout_ms: u32) -> c_int {
        check_null!(srv, "srv");
        let s = unsafe { inst(srv) }.expect("checked");
        match shutdown(&s.server, timeout_ms) {
            Ok(o) => shutdown_code(&o),
            Err(code) => code,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Blocks until `srv` has stopped (a signal, a shutdown call, a failure), tears its
    /// runtime down on the calling thread and returns the exit status: 0 after a graceful stop,
    /// 1 after a failure or a forced drain (`server_last_error()` then says why). Other values
    /// are misuse: `SERVER_ERR_NULL_PARAMETER`, `SERVER_ERR_WRONG_THREAD` (called from one of
    /// this instance's handler or runtime threads). Any other thread; several may wait at once.
    unsafe fn server_instance_wait(srv: *mut server_instance) -> c_int {
        check_null!(srv, "srv");
        let s = unsafe { inst(srv) }.expect("checked");
        match wait(&s.server, None) {
            Ok(Some(o)) => exit_status(&o),
            Ok(None) => unreachable!("a wait without timeout returns an outcome"),
            Err(code) => code,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Like `server_instance_wait`, but returns `SERVER_STILL_RUNNING` if `srv` has not stopped
    /// within `timeout_ms` (0 polls).
    unsafe fn server_instance_wait_timeout(srv: *mut server_instance, timeout_ms: u32) -> c_int {
        check_null!(srv, "srv");
        let s = unsafe { inst(srv) }.expect("checked");
        match wait(&s.server, Some(Duration::from_millis(timeout_ms as u64))) {
            Ok(Some(o)) => exit_status(&o),
            Ok(None) => server_result::SERVER_STILL_RUNNING as c_int,
            Err(code) => code,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Delivers `signum` to `srv` as if the library's handler had caught it: the first call
    /// starts a graceful drain with the signal drain deadline, a later one forces the stop.
    /// Async-signal-safe (no locks, no allocation): call it from your own signal handler when
    /// the instance runs with `SERVER_SIGNALS_HOST`.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_INVALID_ARGUMENT` (`signum <= 0`) or
    /// `SERVER_ERR_NULL_PARAMETER`. Does not set the last error (that would allocate).
    unsafe fn server_instance_notify_signal(srv: *mut server_instance, signum: c_int) -> c_int {
        let Some(s) = (unsafe { inst(srv) }) else {
            return server_result::SERVER_ERR_NULL_PARAMETER as c_int;
        };
        if s.sender.notify(signum) {
            server_result::SERVER_OK as c_int
        } else {
            server_result::SERVER_ERR_INVALID_ARGUMENT as c_int
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns the port `srv` is bound to (the real one when port 0 was asked for), also after
    /// it stopped; 0 when `srv` is NULL. Any thread.
    unsafe fn server_instance_local_port(srv: *const server_instance) -> u16 {
        unsafe { inst(srv) }.map_or(0, |s| s.server.local_addr().port())
    } ?= 0
}

ffi_fn! {
    /// Writes the address `srv` is bound to as `HOST:PORT` (IPv6 as `[::1]:PORT`),
    /// NUL-terminated, into `buf` of `len` bytes; `*out_len` (may be NULL) receives the length
    /// without the NUL.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER` or `SERVER_ERR_BUFFER_TOO_SMALL`
    /// (`*out_len` still tells the size needed). 64 bytes always fit.
    unsafe fn server_instance_local_addr(
        srv: *const server_instance,
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> c_int {
        check_null!(srv, "srv");
        check_null!(buf, "buf");
        let s = unsafe { inst(srv) }.expect("checked");
        unsafe { write_addr(&s.server, buf, len, out_len) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Fills `*out` with `srv`'s live counters (the fields of `out->version`, which the caller
    /// sets to `SERVER_STATS_VERSION`).
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER` or `SERVER_ERR_VERSION`. Any thread.
    unsafe fn server_instance_get_stats(
        srv: *const server_instance,
        out: *mut server_stats,
    ) -> c_int {
        check_null!(srv, "srv");
        check_null!(out, "out");
        let s = unsafe { inst(srv) }.expect("checked");
        unsafe { write_stats(&s.server, out) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns 1 from the moment a drain of `srv` was requested (signal, shutdown call,
    /// notify), including during the pre-drain delay, else 0 (also for NULL). For hosts and
    /// handlers that fail their own health checks or end long polls. Any thread.
    unsafe fn server_instance_drain_requested(srv: *const server_instance) -> c_int {
        unsafe { inst(srv) }.map_or(0, |s| c_int::from(s.server.drain_requested()))
    } ?= 0
}

ffi_fn! {
    /// Returns why `srv` stopped (`SERVER_CAUSE_NONE` while it runs, or when `srv` is NULL).
    /// Any thread.
    unsafe fn server_instance_stop_cause(srv: *const server_instance) -> server_stop_cause {
        unsafe { inst(srv) }.map_or(server_stop_cause::SERVER_CAUSE_NONE, |s| stop_cause(&s.server))
    } ?= server_stop_cause::SERVER_CAUSE_NONE
}

ffi_fn! {
    /// Releases `srv`. A running instance is stopped first, as `MHD_stop_daemon` does: the
    /// drain is forced at once (deadline 0: in-flight requests are cut) and the call waits
    /// until it is torn down. Called from one of the instance's own handler threads, it forces
    /// the stop without waiting for that thread; the rest is released in the background.
    /// NULL does nothing. Exactly once per handle, as its last call.
    unsafe fn server_instance_free(srv: *mut server_instance) {
        if !srv.is_null() {
            // SAFETY: created by Box::into_raw in server_instance_start; freed once. Dropping
            // the server stops it (see `Server`'s Drop).
            drop(unsafe { Box::from_raw(srv) });
        }
    }
}

/// A path or argument from C bytes, as the OS takes it.
fn os_string(b: &[u8]) -> std::ffi::OsString {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStringExt::from_vec(b.to_vec())
    }
    // WASI has no processes to start (the upgrade fails there anyway); keep it compiling.
    #[cfg(not(unix))]
    {
        String::from_utf8_lossy(b).into_owned().into()
    }
}

/// Reads the optional program path and NULL-terminated argv of an upgrade call.
unsafe fn upgrade_command(
    program: *const c_char,
    argv: *const *const c_char,
) -> Result<Option<crate::upgrade::UpgradeCommand>, c_int> {
    use std::ffi::CStr;
    if program.is_null() {
        if !argv.is_null() {
            return Err(fail(
                server_result::SERVER_ERR_INVALID_ARGUMENT,
                "argv needs a program: pass both, or neither for this program with its own arguments",
            ));
        }
        return Ok(None);
    }
    // SAFETY: non-NULL, NUL-terminated per the contract.
    let p = unsafe { CStr::from_ptr(program) };
    let mut args = Vec::new();
    if argv.is_null() {
        args.push(os_string(p.to_bytes()));
    } else {
        for i in 0..4096 {
            // SAFETY: the caller promises a NULL-terminated array of C strings.
            let a = unsafe { *argv.add(i) };
            if a.is_null() {
                break;
            }
            // SAFETY: as above.
            args.push(os_string(unsafe { CStr::from_ptr(a) }.to_bytes()));
        }
        if args.is_empty() {
            return Err(fail(
                server_result::SERVER_ERR_INVALID_ARGUMENT,
                "argv is empty: it needs at least argv[0]",
            ));
        }
    }
    Ok(Some(crate::upgrade::UpgradeCommand {
        program: os_string(p.to_bytes()).into(),
        args,
    }))
}

/// The shared body of `server_instance_upgrade` and `server_upgrade`.
pub(super) unsafe fn upgrade(
    srv: &Server,
    program: *const c_char,
    argv: *const *const c_char,
    timeout_ms: u32,
    out_pid: *mut u32,
) -> c_int {
    let cmd = match unsafe { upgrade_command(program, argv) } {
        Ok(c) => c,
        Err(code) => return code,
    };
    let timeout = (timeout_ms != 0).then(|| Duration::from_millis(timeout_ms as u64));
    match srv.upgrade(cmd, timeout) {
        Ok(pid) => {
            if !out_pid.is_null() {
                // SAFETY: non-NULL per the check.
                unsafe { *out_pid = pid };
            }
            server_result::SERVER_OK as c_int
        }
        Err(m) => fail(
            server_result::SERVER_ERR_UPGRADE,
            format!("upgrade failed: {m}"),
        ),
    }
}

ffi_fn! {
    /// In-place upgrade: starts `program` with `argv` (a NULL-terminated array, `argv[0]`
    /// first; both NULL: a fresh copy of this very program, by its path, with this process's
    /// own arguments) with `srv`'s listening socket handed over the way `srv` got it: as
    /// descriptor 3 with `LISTEN_FDS=1`, `LISTEN_PID` and `LISTEN_FDNAMES` (the name systemd
    /// passed it with, else `graceserve`), or, for an `fd:N` address, as descriptor N again
    /// without those variables — so a graceserve program given the same address (`HOST:PORT`,
    /// `systemd`, `systemd:NAME`, `fd:N`) adopts it instead of binding. Waits up to
    /// `timeout_ms` (0: the option `upgrade_timeout_ms`) for the new process to report ready —
    /// the systemd protocol, with this process in systemd's place (its `NOTIFY_SOCKET` is
    /// ours) — then starts `srv`'s drain with its pre-drain delay and signal deadline, and
    /// returns: `srv`'s wait then returns 0 with `SERVER_CAUSE_UPGRADED` once it has drained.
    /// Both processes accept on the socket meanwhile, so no connection is refused. Under
    /// systemd, the new process is announced with `MAINPID=` (use `NotifyAccess=all`).
    ///
    /// Returns `SERVER_OK` (`*out_pid`, if not NULL, gets the new process id);
    /// `SERVER_ERR_UPGRADE` when the new process could not start, exited, or did not report
    /// ready in time (it is stopped; `srv` keeps serving; `server_last_error()` says why);
    /// `SERVER_ERR_INVALID_ARGUMENT`, `SERVER_ERR_NULL_PARAMETER`. Blocks up to the timeout:
    /// not from an `inline_handler`. Not on WASI (always `SERVER_ERR_UPGRADE`).
    unsafe fn server_instance_upgrade(
        srv: *mut server_instance,
        program: *const c_char,
        argv: *const *const c_char,
        timeout_ms: u32,
        out_pid: *mut u32,
    ) -> c_int {
        check_null!(srv, "srv");
        let s = unsafe { inst(srv) }.expect("checked");
        unsafe { upgrade(&s.server, program, argv, timeout_ms, out_pid) }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns the exit status a stop cause amounts to, as `server_wait` returns it: 0 for
    /// the graceful causes, 1 for the others. `SERVER_ERR_NOT_RUNNING` for
    /// `SERVER_CAUSE_NONE` (nothing stopped yet) and `SERVER_ERR_INVALID_ARGUMENT` for a value
    /// that is not a cause. Lets bindings translate a cause without deciding the status again.
    fn server_stop_cause_exit_status(cause: u32) -> c_int {
        if cause == server_stop_cause::SERVER_CAUSE_NONE as u32 {
            return server_result::SERVER_ERR_NOT_RUNNING as c_int;
        }
        match cause_from_u32(cause) {
            Some(c) => c.exit_status(),
            None => server_result::SERVER_ERR_INVALID_ARGUMENT as c_int,
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}
