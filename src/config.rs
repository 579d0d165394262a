//! Server configuration: every knob a host can turn, with the defaults a host gets when it
//! turns none of them.

use std::time::Duration;

/// Default listen address when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default drain deadline for drains started by a signal.
pub const DEFAULT_SIGNAL_DRAIN_TIMEOUT: Duration = Duration::from_millis(5000);
/// Default cap on concurrently open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a client has to send a complete request head (slowloris guard).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a request body.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default cap on the bytes of a request head (request line plus headers).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default time an idle keep-alive connection is kept open between requests.
pub const DEFAULT_KEEPALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on threads that run host handlers.
pub const DEFAULT_HANDLER_THREADS: usize = 512;

/// Who turns SIGINT/SIGTERM into a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalPolicy {
    /// The library installs its own `sigaction` handlers for SIGINT and SIGTERM while the
    /// server runs (the C default), and restores the previous ones when it stops.
    Library,
    /// The host owns signals; it calls [`crate::notify_signal`] (or shuts down) itself.
    Host,
}

/// Everything [`crate::Server::start`] needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HOST:PORT` to bind; port 0 picks a free port (read it back with `local_addr`).
    pub addr: String,
    /// Who handles SIGINT/SIGTERM.
    pub signals: SignalPolicy,
    /// Drain deadline for drains started by a signal.
    pub signal_drain_timeout: Duration,
    /// Async worker threads (0 = one per CPU).
    pub worker_threads: usize,
    /// Threads that may run host handlers at once.
    pub handler_threads: usize,
    /// Run the host handler directly on the async worker instead of a handler thread. Faster,
    /// but a handler that blocks stalls every connection on that worker: only for handlers that
    /// answer at once.
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
            addr: DEFAULT_ADDR.to_string(),
            signals: SignalPolicy::Host,
            signal_drain_timeout: DEFAULT_SIGNAL_DRAIN_TIMEOUT,
            worker_threads: 0,
            handler_threads: DEFAULT_HANDLER_THREADS,
            inline_handler: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
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
