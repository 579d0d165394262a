//! Server configuration: every knob a host can turn, with the defaults a host gets when it
//! turns none of them. The numbers themselves live in `defaults.rs` (shared with the C header).

use std::time::Duration;

pub use crate::defaults::{
    DEFAULT_ADDR, DEFAULT_HANDLER_THREADS, DEFAULT_HEADER_READ_TIMEOUT_MS,
    DEFAULT_KEEPALIVE_IDLE_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_SIGNAL_DRAIN_TIMEOUT_MS, DEFAULT_UPGRADE_TIMEOUT_MS,
};

/// Default drain deadline for drains started by a signal.
pub const DEFAULT_SIGNAL_DRAIN_TIMEOUT: Duration =
    Duration::from_millis(DEFAULT_SIGNAL_DRAIN_TIMEOUT_MS as u64);
/// Default time a client has to send a complete request head (slowloris guard).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration =
    Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS as u64);
/// Default time an idle keep-alive connection is kept open between requests.
pub const DEFAULT_KEEPALIVE_IDLE_TIMEOUT: Duration =
    Duration::from_millis(DEFAULT_KEEPALIVE_IDLE_TIMEOUT_MS as u64);

/// Who turns SIGINT/SIGTERM into a drain, and which calls reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalPolicy {
    /// The library installs its own `sigaction` handlers for SIGINT and SIGTERM while at least
    /// one such server runs (restoring the previous ones when the last stops); every such server
    /// receives each signal, and [`crate::notify_signal`] reaches it too.
    Library,
    /// The host owns signals and forwards them with the process-wide [`crate::notify_signal`]
    /// (or [`crate::Server::signal_sender`]); the library installs nothing.
    Host,
    /// The host owns signals; only this server's own handle reaches it
    /// ([`crate::Server::signal`], [`crate::Server::signal_sender`]). Process-wide
    /// notifications pass it by.
    Isolated,
}

/// Everything [`crate::Server::start`] needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pre-drain delay (0: none). When a drain is requested the server keeps accepting and
    /// serving this long — readiness answers 503, every HTTP/1.1 answer says
    /// `Connection: close`, every HTTP/2 connection gets the first GOAWAY, idle keep-alive
    /// connections are left alone — so load balancers stop routing here before the listener
    /// closes. The drain deadline counts from the end of the delay.
    pub drain_delay: Duration,
    /// Path answered by the library itself with 200 `ready` while serving and 503 `draining`
    /// (with `Connection: close`) once a drain is requested. `None`: off.
    pub readiness_path: Option<String>,
    /// Path answered by the library itself with 200 `alive` until the server stops. `None`:
    /// off.
    pub liveness_path: Option<String>,
    /// After this many requests on one connection its next answer closes it (HTTP/1.1
    /// `Connection: close`, HTTP/2 GOAWAY). 0: no limit.
    pub max_requests_per_connection: u64,
    /// A connection older than this is closed after its next answer (HTTP/1.1) or gets GOAWAY
    /// (HTTP/2), so an L4 balancer rebalances after a rollout. `None`: no limit.
    pub max_connection_age: Option<Duration>,
    /// Called on lifecycle events (drain started, stopped, upgrade) with a one-line message,
    /// on a library thread: it must not block.
    pub on_event: Option<crate::events::EventHook>,
    /// Speak the systemd notification protocol when `NOTIFY_SOCKET` is set: `READY=1` once
    /// serving, `STOPPING=1` when a drain is requested, `STATUS=` lines, `WATCHDOG=1` pings at
    /// half of `WATCHDOG_USEC`. In a process with several servers, leave it on for one.
    pub sd_notify: bool,
    /// SIGHUP (with [`SignalPolicy::Library`], or delivered through the signal paths) starts an
    /// in-place upgrade to a fresh copy of this program with the same arguments
    /// ([`crate::Server::upgrade`]). Off: the library leaves SIGHUP alone.
    pub upgrade_on_sighup: bool,
    /// How long an upgrade waits for the new process to report ready.
    pub upgrade_timeout: Duration,
    /// `HOST:PORT` to bind; port 0 picks a free port (read it back with `local_addr`).
    pub addr: String,
    /// Who handles SIGINT/SIGTERM.
    pub signals: SignalPolicy,
    /// Drain deadline for drains started by a signal.
    pub signal_drain_timeout: Duration,
    /// Worker threads, each with its own event loop and its share of the connections (0 = one
    /// per CPU).
    pub worker_threads: usize,
    /// Host handler calls that may be in progress at once; more wait for one to return. Handler
    /// calls run on the worker's thread between turns of its event loop, and a call that blocks
    /// has its worker's other connections handed to another thread within one to two
    /// milliseconds, so this is also how many calls may block at once.
    pub handler_threads: usize,
    /// Run the host handler inside the event loop's turn. Saves the hand-back of the answer (a
    /// little CPU per request), but a handler that blocks stalls every connection on that
    /// worker, with no hand-over: only for handlers that answer at once.
    pub inline_handler: bool,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// Largest request head accepted; larger ones get 431.
    pub max_header_bytes: usize,
    /// Idle keep-alive connections are closed after this long without a request.
    pub keepalive_idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            drain_delay: Duration::ZERO,
            readiness_path: None,
            liveness_path: None,
            max_requests_per_connection: 0,
            max_connection_age: None,
            on_event: None,
            sd_notify: true,
            upgrade_on_sighup: false,
            upgrade_timeout: Duration::from_millis(DEFAULT_UPGRADE_TIMEOUT_MS as u64),
            addr: DEFAULT_ADDR.to_string(),
            signals: SignalPolicy::Host,
            signal_drain_timeout: DEFAULT_SIGNAL_DRAIN_TIMEOUT,
            worker_threads: 0,
            handler_threads: DEFAULT_HANDLER_THREADS as usize,
            inline_handler: false,
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES as usize,
            keepalive_idle_timeout: DEFAULT_KEEPALIVE_IDLE_TIMEOUT,
        }
    }
}

impl Config {
    /// A default configuration listening on `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        Config {
            addr: addr.into(),
            ..Config::default()
        }
    }

    /// Checks the values a host can get wrong; the message names the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.handler_threads == 0 {
            return Err("handler_threads must be at least 1".into());
        }
        for (name, p) in [
            ("readiness_path", &self.readiness_path),
            ("liveness_path", &self.liveness_path),
        ] {
            if let Some(p) = p {
                if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(format!(
                        "{name} {p:?} must be a path starting with '/' without spaces or control characters"
                    ));
                }
            }
        }
        if self.readiness_path.is_some() && self.readiness_path == self.liveness_path {
            return Err("readiness_path and liveness_path must differ".into());
        }
        if self.worker_threads > 1024 || self.handler_threads > 65_536 {
            return Err(format!(
                "worker_threads ({}) must be at most 1024 and handler_threads ({}) at most 65536",
                self.worker_threads, self.handler_threads
            ));
        }
        Ok(())
    }

    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    pub(crate) fn effective_workers(&self) -> usize {
        if self.worker_threads > 0 {
            self.worker_threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }
}
