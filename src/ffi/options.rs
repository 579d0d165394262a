//! `server_options`: a versioned struct that can grow without breaking old callers.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;
use std::time::Duration;

use super::error::{fail, server_result};
use super::request::FfiHandler;
use crate::config::{self, Config, SignalPolicy};

/// The options layout this header describes. Pass it to `server_options_init`.
pub const SERVER_OPTIONS_VERSION: u32 = 1;
/// The library handles SIGINT/SIGTERM itself while the server runs (default).
pub const SERVER_SIGNALS_LIBRARY: u32 = 0;
/// The host owns signals; it calls `server_notify_signal` or `server_shutdown` itself.
pub const SERVER_SIGNALS_HOST: u32 = 1;
/// `server_shutdown(SERVER_TIMEOUT_INFINITE)` drains without a deadline.
pub const SERVER_TIMEOUT_INFINITE: u32 = u32::MAX;

/// Called once per request, on a handler thread, possibly on many threads at once.
///
/// `req` is owned by the host from this moment: answer it with `server_respond` (or
/// `server_respond_stream`) now or later from any thread, and release it with
/// `server_request_free` exactly once. A request freed unanswered gets `500`.
///
/// The callback must return normally: leaving it by `longjmp`, a C++ exception or
/// `pthread_exit` (as CPython does to threads that call into Python during interpreter
/// finalisation) aborts the process. With `inline_handler` it runs on an async worker and must
/// not block.
pub type server_handler_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut super::request::server_request)>;

/// Called exactly once with `userdata` when the library no longer needs it: after the last
/// handler call has returned — normally before `server_wait` returns; after a forced stop with a
/// handler still stuck in host code, when that call returns — and also when `server_start`
/// fails after reading the options. Not called when `server_start` returns
/// `SERVER_ERR_VERSION` or `SERVER_ERR_ALREADY_RUNNING`: the
/// options were not read and `userdata` stays yours.
pub type server_userdata_drop_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Server options. Initialise with `server_options_init(&opts, SERVER_OPTIONS_VERSION)` (or
/// `SERVER_OPTIONS_INIT`), then set fields. A zero numeric field means "the default", except
/// `signal_drain_timeout_ms`. Fields are only ever appended; `version`
/// tells the library how much of the struct the caller knows.
///
/// The library copies everything it needs during `server_start`; the struct and the `addr`
/// string may be freed once it returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct server_options {
    /// Must be `SERVER_OPTIONS_VERSION` (or an older version this library accepts).
    pub version: u32,
    /// `HOST:PORT` to listen on, NUL-terminated UTF-8; NULL means `127.0.0.1:8080`. Port 0 picks
    /// a free port (read it back with `server_local_port`).
    pub addr: *const c_char,
    /// Request handler; NULL answers every request with `200 OK` and body `OK`.
    pub handler: server_handler_fn,
    /// Passed to every `handler` call.
    pub userdata: *mut c_void,
    /// Frees `userdata`; may be NULL.
    pub userdata_drop: server_userdata_drop_fn,
    /// `SERVER_SIGNALS_LIBRARY` (0, default) or `SERVER_SIGNALS_HOST`.
    pub signals: u32,
    /// Drain deadline for drains started by a signal, ms, taken literally: 0 closes in-flight
    /// connections at once. `server_options_init` sets 5000, as does a NULL `opts`.
    pub signal_drain_timeout_ms: u32,
    /// Async worker threads (default: one per CPU).
    pub worker_threads: u32,
    /// Threads that may run handlers at once (default 512).
    pub handler_threads: u32,
    /// Call `handler` directly on the async worker thread: lowest latency, but a handler that
    /// blocks stalls other connections. Only for handlers that answer at once.
    pub inline_handler: bool,
    /// Connections open at once (default 10000); more clients wait in the backlog.
    pub max_connections: u32,
    /// Time a client has to send a complete request head, ms (default 30000).
    pub header_read_timeout_ms: u32,
    /// Idle keep-alive connections are closed after this long, ms (default 60000).
    pub keepalive_idle_timeout_ms: u32,
    /// Largest request head in bytes (default 65536, minimum 8192); larger gets 431.
    pub max_header_bytes: u32,
    /// Largest request body in bytes (default 8 MiB); larger gets 413.
    pub max_body_bytes: u64,
}

fn ms(v: u32, default: Duration) -> Duration {
    if v == 0 {
        default
    } else {
        Duration::from_millis(v as u64)
    }
}

fn or_default<T: Copy + PartialEq + Default>(v: T, default: T) -> T {
    if v == T::default() {
        default
    } else {
        v
    }
}

impl server_options {
    fn defaults(version: u32) -> Self {
        server_options {
            version,
            addr: std::ptr::null(),
            handler: None,
            userdata: std::ptr::null_mut(),
            userdata_drop: None,
            signals: SERVER_SIGNALS_LIBRARY,
            signal_drain_timeout_ms: config::DEFAULT_SIGNAL_DRAIN_TIMEOUT.as_millis() as u32,
            worker_threads: 0,
            handler_threads: config::DEFAULT_HANDLER_THREADS as u32,
            inline_handler: false,
            max_connections: config::DEFAULT_MAX_CONNECTIONS as u32,
            header_read_timeout_ms: config::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u32,
            keepalive_idle_timeout_ms: config::DEFAULT_KEEPALIVE_IDLE_TIMEOUT.as_millis() as u32,
            max_header_bytes: config::DEFAULT_MAX_HEADER_BYTES as u32,
            max_body_bytes: config::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Fills `*out` with the defaults for options layout `version`.
///
/// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER` (out is NULL) or `SERVER_ERR_VERSION`.
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn server_options_init(out: *mut server_options, version: u32) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(out, "out");
        if version == 0 || version > SERVER_OPTIONS_VERSION {
            return fail(
                server_result::SERVER_ERR_VERSION,
                format!("server_options version {version} is not supported (this library knows 1..={SERVER_OPTIONS_VERSION})"),
            );
        }
        // SAFETY: out is non-NULL and the caller promises it points at a server_options.
        unsafe { out.write(server_options::defaults(version)) };
        server_result::SERVER_OK as c_int
    })
}

/// A core config plus the host's handler, if any.
pub(crate) type ReadOptions = (Config, Option<Arc<dyn crate::Handler>>);

/// Reads the caller's options into a core config and handler. The handler (and so the
/// userdata drop) is created first, so that every later failure still drops the userdata once.
pub(crate) unsafe fn read_options(
    opts: *const server_options,
) -> Result<ReadOptions, (server_result, String)> {
    let mut cfg = Config {
        signals: SignalPolicy::Library,
        ..Config::default()
    };
    if opts.is_null() {
        return Ok((cfg, None));
    }
    // SAFETY: non-NULL; the caller promises a server_options of at least version 1 layout.
    let o = unsafe { &*opts };
    if o.version == 0 || o.version > SERVER_OPTIONS_VERSION {
        return Err((
            server_result::SERVER_ERR_VERSION,
            format!(
                "server_options version {} is not supported (this library knows 1..={}); call server_options_init first",
                o.version, SERVER_OPTIONS_VERSION
            ),
        ));
    }
    let handler: Option<Arc<dyn crate::Handler>> = match o.handler {
        Some(cb) => Some(Arc::new(FfiHandler::new(cb, o.userdata, o.userdata_drop))),
        None => {
            if let Some(drop_fn) = o.userdata_drop {
                // No handler will ever use the userdata: release it now, once.
                // SAFETY: the host gave us this function for this pointer.
                unsafe { drop_fn(o.userdata) };
            }
            None
        }
    };
    if !o.addr.is_null() {
        // SAFETY: non-NULL, NUL-terminated per the contract.
        let s = unsafe { CStr::from_ptr(o.addr) };
        cfg.addr = s
            .to_str()
            .map_err(|_| {
                (
                    server_result::SERVER_ERR_INVALID_ADDRESS,
                    format!("invalid address {s:?}: not valid UTF-8"),
                )
            })?
            .to_owned();
    }
    cfg.signals = match o.signals {
        SERVER_SIGNALS_LIBRARY => SignalPolicy::Library,
        SERVER_SIGNALS_HOST => SignalPolicy::Host,
        other => {
            return Err((
                server_result::SERVER_ERR_INVALID_ARGUMENT,
                format!("server_options.signals = {other} is not SERVER_SIGNALS_LIBRARY (0) or SERVER_SIGNALS_HOST (1)"),
            ))
        }
    };
    cfg.signal_drain_timeout = Duration::from_millis(o.signal_drain_timeout_ms as u64);
    cfg.worker_threads = o.worker_threads as usize;
    cfg.handler_threads = or_default(o.handler_threads as usize, cfg.handler_threads);
    cfg.inline_handler = o.inline_handler;
    cfg.max_connections = or_default(o.max_connections as usize, cfg.max_connections);
    cfg.header_read_timeout = ms(o.header_read_timeout_ms, cfg.header_read_timeout);
    cfg.keepalive_idle_timeout = ms(o.keepalive_idle_timeout_ms, cfg.keepalive_idle_timeout);
    cfg.max_header_bytes = or_default(o.max_header_bytes as usize, cfg.max_header_bytes);
    cfg.max_body_bytes = or_default(o.max_body_bytes, cfg.max_body_bytes);
    if cfg.worker_threads > 1024 || cfg.handler_threads > 65_536 {
        return Err((
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            format!(
                "worker_threads ({}) must be at most 1024 and handler_threads ({}) at most 65536",
                cfg.worker_threads, cfg.handler_threads
            ),
        ));
    }
    Ok((cfg, handler))
}
