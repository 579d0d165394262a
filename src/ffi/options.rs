//! `server_options`: a versioned struct that can grow without breaking old callers.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::sync::Arc;
use std::time::Duration;

use super::error::{fail, server_result};
use super::handler::{
    server_event_fn, server_handler_fn, server_userdata_drop_fn, FfiHandler, Userdata,
};
use crate::config::{Config, SignalPolicy};

/// The newest options layout this header describes. Pass it to `server_options_init`.
pub const SERVER_OPTIONS_VERSION: u32 = 3;
/// The library handles SIGINT/SIGTERM itself while the server runs (default).
pub const SERVER_SIGNALS_LIBRARY: u32 = 0;
/// The host owns signals; it forwards them (`server_notify_signal` for the default server,
/// `server_instance_notify_signal` for an instance) or calls shutdown itself.
pub const SERVER_SIGNALS_HOST: u32 = 1;
/// `server_options.sd_notify`: speak the systemd notification protocol when `NOTIFY_SOCKET` is
/// set (default).
pub const SERVER_SD_NOTIFY_AUTO: u32 = 0;
/// `server_options.sd_notify`: never send systemd notifications.
pub const SERVER_SD_NOTIFY_OFF: u32 = 1;
/// `server_shutdown(SERVER_TIMEOUT_INFINITE)` drains without a deadline.
pub const SERVER_TIMEOUT_INFINITE: u32 = u32::MAX;

/// Server options. Initialise with `server_options_init(&opts, SERVER_OPTIONS_VERSION)` (or
/// `SERVER_OPTIONS_INIT`), then set fields. A zero numeric field means "the default", except
/// `signal_drain_timeout_ms`.
///
/// Growth: fields are only ever appended, and each `version` has a fixed size. The library
/// reads (and `server_options_init` writes) only the fields of the caller's `version`; fields
/// added later take their defaults. A program built against an older header keeps working
/// with a newer library.
///
/// The library copies everything it needs during the start call; the struct and its strings
/// may be freed once it returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct server_options {
    /// `SERVER_OPTIONS_VERSION` of the header the caller was built with (or any older version).
    pub version: u32,
    /// `HOST:PORT` to listen on, NUL-terminated UTF-8; NULL means `127.0.0.1:8080`. Port 0
    /// picks a free port (read it back with `server_local_port`).
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
    /// Worker threads, each with its own event loop and share of the connections (default: one
    /// per CPU).
    pub worker_threads: u32,
    /// Handler calls that may be in progress (or blocked) at once (default 512); more wait.
    pub handler_threads: u32,
    /// Call `handler` inside the event loop's turn: saves a little CPU per request, but a
    /// handler that blocks stalls its worker's other connections (no hand-over). Only for
    /// handlers that answer at once.
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
    // ---- version 2 ----
    /// Pre-drain delay, ms (default 0: none). When a drain is requested (signal, shutdown call,
    /// notify) the server first keeps accepting and serving this long: the readiness path
    /// answers 503, every HTTP/1.1 answer carries `Connection: close`, every HTTP/2 connection
    /// gets the first GOAWAY, idle keep-alive connections are left open. Then the drain runs;
    /// its deadline counts from the end of the delay, so a process stops within delay +
    /// deadline. A second signal during the delay forces the stop at once; a shutdown with
    /// timeout 0 ends the delay and stops at once.
    pub drain_delay_ms: u32,
    /// After this many requests on one connection its next answer closes it (HTTP/1.1
    /// `Connection: close`, HTTP/2 GOAWAY). 0 (default): no limit.
    pub max_requests_per_connection: u32,
    /// A connection older than this, ms, is closed after its next answer (HTTP/1.1) or gets
    /// GOAWAY (HTTP/2), so L4 balancers rebalance after a rollout. 0 (default): no limit.
    pub max_connection_age_ms: u32,
    /// Readiness path answered by the library before the handler (e.g. `/readyz`): 200
    /// `ready` while serving, 503 `draining` with `Connection: close` from the moment a drain
    /// is requested. NULL or empty (default): off. Copied during the start.
    pub readiness_path: *const c_char,
    /// Liveness path answered by the library before the handler (e.g. `/livez`): 200 `alive`
    /// until the server stops. NULL or empty (default): off. Copied during the start.
    pub liveness_path: *const c_char,
    /// Called with `userdata` on lifecycle events (drain started, stopped) with a one-line
    /// message to print or log; NULL (default): none. Runs on a library thread, never
    /// concurrently with itself for one server; it must not block.
    pub on_event: server_event_fn,
    // ---- version 3 ----
    /// `SERVER_SD_NOTIFY_AUTO` (0, default): when `NOTIFY_SOCKET` is set, send `READY=1` (with
    /// `MAINPID=`) once serving, `STOPPING=1` when a drain is requested, `STATUS=` lines, and
    /// `WATCHDOG=1` at half of `WATCHDOG_USEC` from the server's own runtime (a wedged runtime
    /// stops pinging). Path and abstract (`@`) sockets. `SERVER_SD_NOTIFY_OFF`: never. In a
    /// process with several servers, leave it on for one. The environment is never changed.
    pub sd_notify: u32,
    /// SIGHUP starts an in-place upgrade (`server_instance_upgrade` with this program and its
    /// own arguments): with `SERVER_SIGNALS_LIBRARY` the library catches SIGHUP too; with
    /// `SERVER_SIGNALS_HOST` a forwarded SIGHUP does it. False (default): the library leaves
    /// SIGHUP alone. A failed upgrade is reported through `on_event`.
    pub upgrade_on_sighup: bool,
    /// How long an upgrade waits for the new process to report ready, ms (default 10000).
    pub upgrade_timeout_ms: u32,
}

/// The size of options layout `version`: everything up to and including its last field.
pub(crate) fn options_size(version: u32) -> Option<usize> {
    match version {
        1 => Some(offset_of!(server_options, max_body_bytes) + size_of::<u64>()),
        2 => Some(offset_of!(server_options, on_event) + size_of::<server_event_fn>()),
        3 => Some(offset_of!(server_options, upgrade_timeout_ms) + size_of::<u32>()),
        _ => None,
    }
}

fn version_error(version: u32) -> (server_result, String) {
    (
        server_result::SERVER_ERR_VERSION,
        format!(
            "server_options version {version} is not supported (this library knows 1..={SERVER_OPTIONS_VERSION}); call server_options_init first"
        ),
    )
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
    /// The newest layout filled with the core's defaults.
    fn defaults() -> Self {
        let c = Config::default();
        server_options {
            version: SERVER_OPTIONS_VERSION,
            addr: std::ptr::null(),
            handler: None,
            userdata: std::ptr::null_mut(),
            userdata_drop: None,
            signals: SERVER_SIGNALS_LIBRARY,
            signal_drain_timeout_ms: c.signal_drain_timeout.as_millis() as u32,
            worker_threads: c.worker_threads as u32,
            handler_threads: c.handler_threads as u32,
            inline_handler: c.inline_handler,
            max_connections: c.max_connections as u32,
            header_read_timeout_ms: c.header_read_timeout.as_millis() as u32,
            keepalive_idle_timeout_ms: c.keepalive_idle_timeout.as_millis() as u32,
            max_header_bytes: c.max_header_bytes as u32,
            max_body_bytes: c.max_body_bytes,
            drain_delay_ms: c.drain_delay.as_millis() as u32,
            max_requests_per_connection: c.max_requests_per_connection as u32,
            max_connection_age_ms: c.max_connection_age.map_or(0, |d| d.as_millis() as u32),
            readiness_path: std::ptr::null(),
            liveness_path: std::ptr::null(),
            on_event: None,
            sd_notify: if c.sd_notify {
                SERVER_SD_NOTIFY_AUTO
            } else {
                SERVER_SD_NOTIFY_OFF
            },
            upgrade_on_sighup: c.upgrade_on_sighup,
            upgrade_timeout_ms: c.upgrade_timeout.as_millis() as u32,
        }
    }

    /// Reads the caller's struct: its `version` first, then only the bytes that version has;
    /// newer fields keep their defaults. A C `bool` holding anything but 0 counts as true.
    ///
    /// # Safety
    /// `opts` is non-NULL and points at a `server_options` of at least the size of the version
    /// it states.
    unsafe fn read(opts: *const server_options) -> Result<server_options, (server_result, String)> {
        // SAFETY: every version starts with the u32 version field.
        let version = unsafe { (opts as *const u32).read_unaligned() };
        let size = options_size(version).ok_or_else(|| version_error(version))?;
        let d = server_options::defaults();
        // The bytes go into a struct whose `bool` is a plain byte, so no byte pattern a C
        // caller leaves there is undefined behaviour on the Rust side.
        // SAFETY: `d` is a valid server_options; RawOptions has the same size and layout with
        // `u8` in place of `bool` (checked below).
        let mut raw: RawOptions = unsafe { std::mem::transmute(d) };
        // SAFETY: the caller's struct has `size` readable bytes (its version's size), and
        // `raw` is a full newest-layout struct, at least that large.
        unsafe {
            std::ptr::copy_nonoverlapping(
                opts as *const u8,
                &mut raw as *mut RawOptions as *mut u8,
                size,
            )
        };
        raw.inline_handler = u8::from(raw.inline_handler != 0);
        raw.upgrade_on_sighup = u8::from(raw.upgrade_on_sighup != 0);
        // SAFETY: the only field whose bit patterns differ was normalised to 0 or 1; the
        // handler fields are `Option<fn>`, valid for every pointer value.
        Ok(unsafe { std::mem::transmute::<RawOptions, server_options>(raw) })
    }
}

/// `server_options` with the C `bool` read as a byte (see `server_options::read`).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawOptions {
    version: u32,
    addr: *const c_char,
    handler: server_handler_fn,
    userdata: *mut c_void,
    userdata_drop: server_userdata_drop_fn,
    signals: u32,
    signal_drain_timeout_ms: u32,
    worker_threads: u32,
    handler_threads: u32,
    inline_handler: u8,
    max_connections: u32,
    header_read_timeout_ms: u32,
    keepalive_idle_timeout_ms: u32,
    max_header_bytes: u32,
    max_body_bytes: u64,
    drain_delay_ms: u32,
    max_requests_per_connection: u32,
    max_connection_age_ms: u32,
    readiness_path: *const c_char,
    liveness_path: *const c_char,
    on_event: server_event_fn,
    sd_notify: u32,
    upgrade_on_sighup: u8,
    upgrade_timeout_ms: u32,
}

const _: () = {
    assert!(size_of::<RawOptions>() == size_of::<server_options>());
    assert!(offset_of!(RawOptions, inline_handler) == offset_of!(server_options, inline_handler));
    assert!(offset_of!(RawOptions, max_body_bytes) == offset_of!(server_options, max_body_bytes));
    assert!(offset_of!(RawOptions, on_event) == offset_of!(server_options, on_event));
    assert!(
        offset_of!(RawOptions, upgrade_on_sighup) == offset_of!(server_options, upgrade_on_sighup)
    );
    assert!(
        offset_of!(RawOptions, upgrade_timeout_ms)
            == offset_of!(server_options, upgrade_timeout_ms)
    );
};

ffi_fn! {
    /// Fills `*out` with the defaults for options layout `version`, writing only the bytes of
    /// that version (a program built against an older header passes its own
    /// `SERVER_OPTIONS_VERSION` and gets no write past its struct).
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER` (out is NULL) or `SERVER_ERR_VERSION`.
    /// Any thread.
    unsafe fn server_options_init(out: *mut server_options, version: u32) -> c_int {
        check_null!(out, "out");
        let Some(size) = options_size(version) else {
            let (code, msg) = version_error(version);
            return fail(code, msg);
        };
        let mut d = server_options::defaults();
        d.version = version;
        // SAFETY: out is non-NULL and points at a struct of at least `version`'s size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &d as *const server_options as *const u8,
                out as *mut u8,
                size,
            )
        };
        server_result::SERVER_OK as c_int
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

/// A core config plus the host's handler, if any.
pub(crate) type ReadOptions = (Config, Option<Arc<dyn crate::Handler>>);

/// Which server the options start: the process's default one (`server_start`) or an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Default,
    Instance,
}

/// Reads the caller's options into a core config and handler. The handler (and so the
/// userdata drop) is created first, so that every later failure still drops the userdata once.
pub(crate) unsafe fn read_options(
    opts: *const server_options,
    target: Target,
) -> Result<ReadOptions, (server_result, String)> {
    let mut cfg = Config {
        signals: SignalPolicy::Library,
        ..Config::default()
    };
    if opts.is_null() {
        return Ok((cfg, None));
    }
    // SAFETY: non-NULL; the caller promises a server_options of the version it states.
    let o = unsafe { server_options::read(opts) }?;
    // The handler and the event callback share the userdata; it is dropped (once) when the
    // last of them is gone, or right here when neither will ever use it.
    let userdata = Arc::new(Userdata::new(o.userdata, o.userdata_drop));
    let handler: Option<Arc<dyn crate::Handler>> = o
        .handler
        .map(|cb| Arc::new(FfiHandler::new(cb, userdata.clone())) as Arc<dyn crate::Handler>);
    cfg.on_event = o
        .on_event
        .map(|cb| super::handler::event_hook(cb, userdata.clone()));
    drop(userdata);
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
    cfg.signals = match (o.signals, target) {
        (SERVER_SIGNALS_LIBRARY, _) => SignalPolicy::Library,
        // The default server keeps the fixed names' contract: the process-wide
        // server_notify_signal reaches it. An instance is reached only through its handle.
        (SERVER_SIGNALS_HOST, Target::Default) => SignalPolicy::Host,
        (SERVER_SIGNALS_HOST, Target::Instance) => SignalPolicy::Isolated,
        (other, _) => {
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
    cfg.drain_delay = Duration::from_millis(o.drain_delay_ms as u64);
    cfg.max_requests_per_connection = o.max_requests_per_connection as u64;
    cfg.max_connection_age = (o.max_connection_age_ms > 0)
        .then(|| Duration::from_millis(o.max_connection_age_ms as u64));
    cfg.readiness_path = unsafe { opt_str(o.readiness_path, "readiness_path") }?;
    cfg.liveness_path = unsafe { opt_str(o.liveness_path, "liveness_path") }?;
    cfg.sd_notify = match o.sd_notify {
        SERVER_SD_NOTIFY_AUTO => true,
        SERVER_SD_NOTIFY_OFF => false,
        other => {
            return Err((
                server_result::SERVER_ERR_INVALID_ARGUMENT,
                format!("server_options.sd_notify = {other} is not SERVER_SD_NOTIFY_AUTO (0) or SERVER_SD_NOTIFY_OFF (1)"),
            ))
        }
    };
    cfg.upgrade_on_sighup = o.upgrade_on_sighup;
    cfg.upgrade_timeout = ms(o.upgrade_timeout_ms, cfg.upgrade_timeout);
    Ok((cfg, handler))
}

/// A NULL or empty C string is `None`; anything else must be UTF-8.
unsafe fn opt_str(p: *const c_char, name: &str) -> Result<Option<String>, (server_result, String)> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) };
    match s.to_str() {
        Ok("") => Ok(None),
        Ok(v) => Ok(Some(v.to_owned())),
        Err(_) => Err((
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            format!("server_options.{name} {s:?} is not valid UTF-8"),
        )),
    }
}
