//! The server: bind, serve HTTP/1.1 + h2c, track connections, drain, enforce the deadline.
//!
//! - `mod.rs` (this file): the public [`Server`], its state shared with the runtime, and the
//!   lifecycle calls (start, shutdown, wait, teardown).
//! - `accept.rs`: the accept loop and the drain (deadline, forced stop, outcome).
//! - `conn.rs`: one connection's state machine (serving, drain deferral, idle timeout).
//! - `dispatch.rs`: one request: health paths, body limits, handing it to the host handler,
//!   the answer.
//! - `workers.rs`: the worker threads, one event loop (shard) each; handler calls run by the
//!   worker's thread between turns, and the watchdog that hands a stuck worker's connections to
//!   another thread (docs/architecture.md §4 Threads, dispatch, memory and failure).

mod accept;
mod conn;
mod dispatch;
mod workers;

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{watch, Notify};

use crate::config::{Config, SignalPolicy};
use crate::events::{EventHook, EventKind};
use crate::handler::Handler;
use crate::outcome::{Outcome, StopCause};
use crate::sdnotify::Notifier;
use crate::signals::{Listen, SignalGuard, SignalSender};
use crate::sys;
use crate::upgrade::{Handover, UpgradeCommand};

/// SIGHUP's number (the same on every Linux target, and WASI has no signals).
const SIGHUP: i32 = 1;

#[cfg(not(target_os = "wasi"))]
fn raw_fd(l: &std::net::TcpListener) -> Option<i32> {
    Some(std::os::fd::AsRawFd::as_raw_fd(l))
}

#[cfg(target_os = "wasi")]
fn raw_fd(_l: &std::net::TcpListener) -> Option<i32> {
    None
}

pub use dispatch::in_handler;
pub(crate) use workers::send_answer;
use workers::{Placement, Workers};

/// Why `start` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartErrorKind {
    /// The address does not parse or resolve.
    InvalidAddress,
    /// A configuration value is out of range.
    InvalidConfig,
    /// Another socket holds the address.
    AddrInUse,
    /// The OS refused the address (privileged port, foreign address).
    PermissionDenied,
    /// Any other bind or listen failure.
    Bind,
    /// Signal handlers could not be installed.
    Signals,
    /// The runtime could not be built.
    Runtime,
}

/// A failed start: what kind, and one line naming the address and the OS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// The kind of failure.
    pub kind: StartErrorKind,
    /// A sentence for humans, e.g. `cannot listen on 127.0.0.1:8080: Address already in use (os error 98)`.
    pub message: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

impl StartError {
    fn new(kind: StartErrorKind, message: impl Into<String>) -> Self {
        StartError {
            kind,
            message: message.into(),
        }
    }

    /// The stop cause a failed start amounts to.
    pub fn cause(&self) -> StopCause {
        match self.kind {
            StartErrorKind::Runtime | StartErrorKind::Signals => StopCause::RuntimeFailed,
            StartErrorKind::InvalidConfig => StopCause::InvalidOptions,
            _ => StopCause::BindFailed,
        }
    }

    /// The outcome a failed start amounts to (exit status 1).
    pub fn outcome(&self) -> Outcome {
        Outcome::new(self.cause(), self.message.clone())
    }
}

/// A blocking call made on a thread the stop itself waits for: inside one of this server's
/// handler calls, or on one of its runtime threads. Waiting there would wait forever, so the
/// call does not block ([`Server::shutdown`] has started the drain all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnThread;

impl std::fmt::Display for OwnThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "called from one of this server's handler or runtime threads: the stop waits for this thread, so the call cannot block here",
        )
    }
}

impl std::error::Error for OwnThread {}

/// Counters a host can read while the server runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections_active: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests being handled now.
    pub requests_active: u64,
    /// Requests received since start.
    pub requests_total: u64,
    /// Open connections with no request in flight now (idle keep-alive, or not yet sent).
    pub connections_idle: u64,
    /// Connections that ended during the pre-drain delay or the drain without being cut:
    /// closed as idle, or after their last answer said `Connection: close` / GOAWAY.
    pub connections_drained: u64,
    /// Connections cut by force (the drain deadline, a second signal).
    pub connections_cut: u64,
    /// Requests answered during the pre-drain delay.
    pub requests_during_delay: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections_active: AtomicUsize,
    connections_total: AtomicU64,
    requests_active: AtomicUsize,
    requests_total: AtomicU64,
    /// Open connections with at least one request in flight.
    connections_busy: AtomicUsize,
    connections_drained: AtomicU64,
    connections_cut: AtomicU64,
    requests_during_delay: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainCause {
    /// The signal number, for the log line.
    Signal(i32),
    Call,
    /// An in-place upgrade handed over to this process id (never on WASI).
    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    Upgrade(u32),
}

/// A requested drain: why, when the pre-drain delay ends, and the drain deadline (which
/// counts from the end of the delay).
#[derive(Debug, Clone, Copy)]
struct DrainRequest {
    cause: DrainCause,
    requested_at: Instant,
    delay_end: Instant,
    deadline: Option<Instant>,
}

/// What has been asked of the server: a drain and/or a forced stop.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    drain: Option<DrainRequest>,
    force: bool,
}

/// What each connection task is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ConnState {
    Serving,
    /// The pre-drain delay: keep serving, but every answer closes its connection.
    PreDrain,
    Draining,
    Forced,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The server whose runtime owns this thread (0: none).
    static RUNTIME_OF: Cell<u64> = const { Cell::new(0) };
}

/// The state shared between the control API (any thread) and the runtime.
#[derive(Debug)]
struct Shared {
    /// Unique in the process; marks this server's threads.
    id: u64,
    control: watch::Sender<Control>,
    done: Mutex<Option<Outcome>>,
    done_cv: Condvar,
    /// Woken with `done_cv`, for a waiter that drives the runtime itself (WASI).
    done_async: Notify,
    counters: Counters,
    signal_timeout: Duration,
    drain_delay: Duration,
    /// Set from the moment a drain is requested (readiness fails, answers close).
    drain_requested: Arc<AtomicBool>,
    /// Handler calls currently inside host code.
    handlers_in_host: AtomicUsize,
    /// Taken at teardown, so the host's userdata goes with the rest before `wait` returns.
    on_event: Mutex<Option<EventHook>>,
    /// The listening socket's descriptor while the accept loop holds it (for an upgrade to
    /// hand over); `None` once the drain closed it.
    listener_fd: Mutex<Option<i32>>,
    /// How an upgrade hands the listener to the successor (as this process got it).
    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    handover: Handover,
    /// SIGHUP upgrades in place (with this timeout); `None`: SIGHUP is an ordinary signal.
    upgrade: Option<Duration>,
    upgrade_timeout: Duration,
    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    upgrading: AtomicBool,
    /// The systemd notification socket, when there is one and the option is on.
    notifier: Option<Notifier>,
    local_addr: SocketAddr,
}

impl Shared {
    /// Asks for a drain with a deadline of `timeout` after the pre-drain delay (`None`: no
    /// deadline). A timeout of zero means "now": it ends the delay and cuts what is left at
    /// once. A drain already under way keeps the earlier deadline.
    fn request_drain(&self, cause: DrainCause, timeout: Option<Duration>) {
        self.control
            .send_modify(|c| self.add_drain(c, cause, timeout, Instant::now()));
    }

    fn add_drain(
        &self,
        c: &mut Control,
        cause: DrainCause,
        timeout: Option<Duration>,
        now: Instant,
    ) {
        let first = c.drain.is_none();
        let req = c.drain.get_or_insert(DrainRequest {
            cause,
            requested_at: now,
            delay_end: now + self.drain_delay,
            deadline: None,
        });
        if timeout == Some(Duration::ZERO) {
            req.delay_end = req.delay_end.min(now);
        }
        let deadline = timeout.map(|t| req.delay_end.max(now) + t);
        req.deadline = match (first, req.deadline, deadline) {
            (true, _, d) => d,
            (false, Some(a), Some(b)) => Some(a.min(b)),
            (false, a, b) => a.or(b),
        };
        if first {
            self.drain_requested.store(true, Ordering::SeqCst);
        }
    }

    /// The signal policy in one place: the first signal drains with the signal deadline (after
    /// the pre-drain delay), any later one forces the stop at once.
    fn on_signal(self: &Arc<Self>, signum: i32) {
        if signum == SIGHUP {
            if let Some(timeout) = self.upgrade {
                // Waiting for the new process takes a while: not on the runtime.
                let sh = self.clone();
                let spawned = std::thread::Builder::new()
                    .name("graceserve-upgrade".into())
                    .spawn(move || {
                        let _ = sh.upgrade(None, timeout);
                    });
                if let Err(e) = spawned {
                    self.emit(EventKind::UpgradeFailed, || {
                        format!("upgrade failed: cannot start a thread for it: {e}; still serving")
                    });
                }
                return;
            }
        }
        let now = Instant::now();
        self.control.send_modify(|c| {
            if c.drain.is_none() {
                tracing::info!(signum, "signal received: draining");
                self.add_drain(
                    c,
                    DrainCause::Signal(signum),
                    Some(self.signal_timeout),
                    now,
                );
            } else {
                tracing::info!(signum, "another signal during the drain: forcing stop");
                c.force = true;
            }
        });
    }

    /// The in-place upgrade (see `upgrade.rs`): start `cmd` (`None`: this program again, same
    /// arguments) with the listener handed over, wait for it to report ready, then drain this
    /// server. On failure this server keeps serving and the error says why.
    fn upgrade(&self, cmd: Option<UpgradeCommand>, timeout: Duration) -> Result<u32, String> {
        let r = self.try_upgrade(cmd, timeout);
        if let Err(m) = &r {
            self.emit(EventKind::UpgradeFailed, || {
                format!("upgrade failed: {m}; still serving")
            });
            if let Some(n) = &self.notifier {
                n.status(&format!(
                    "serving on {} (upgrade failed: {m})",
                    self.local_addr
                ));
            }
        }
        r
    }

    #[cfg(not(target_os = "wasi"))]
    fn try_upgrade(&self, cmd: Option<UpgradeCommand>, timeout: Duration) -> Result<u32, String> {
        if self.drain_requested.load(Ordering::SeqCst) {
            return Err("the server is already draining".into());
        }
        if self.upgrading.swap(true, Ordering::SeqCst) {
            return Err("an upgrade is already under way".into());
        }
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.upgrading);
        let cmd = match cmd {
            Some(c) => c,
            None => UpgradeCommand::this_process()
                .map_err(|e| format!("cannot tell which program this is: {e}"))?,
        };
        // A copy of the listener for the hand-over: the drain may close ours meanwhile.
        let handover = {
            let fd = self.listener_fd.lock().unwrap_or_else(|e| e.into_inner());
            let Some(fd) = *fd else {
                return Err("the listener is already closed".into());
            };
            // SAFETY: duplicating an open descriptor (held open by the lock above).
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
            if dup < 0 {
                return Err(format!(
                    "cannot duplicate the listener: {}",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: a fresh descriptor we own.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) }
        };
        tracing::info!(program = %cmd.program.display(), "upgrade: starting the new process");
        let after = self.notifier.as_ref().and_then(|n| n.after_ready());
        let pid = crate::upgrade::start_successor(
            &cmd,
            std::os::fd::AsRawFd::as_raw_fd(&handover),
            &self.handover,
            after,
            timeout,
            &|| self.drain_requested.load(Ordering::SeqCst),
        )?;
        drop(handover);
        self.emit(EventKind::UpgradeReady, || {
            format!("upgrade: the new process (pid {pid}) is ready; draining this one")
        });
        if let Some(n) = &self.notifier {
            n.hand_over(
                pid,
                &format!(
                    "serving on {} (pid {pid}, upgraded from pid {})",
                    self.local_addr,
                    std::process::id()
                ),
            );
        }
        self.request_drain(DrainCause::Upgrade(pid), Some(self.signal_timeout));
        Ok(pid)
    }

    #[cfg(target_os = "wasi")]
    fn try_upgrade(&self, _cmd: Option<UpgradeCommand>, _timeout: Duration) -> Result<u32, String> {
        Err("in-place upgrades are not available on WASI (no processes to start)".into())
    }

    fn emit(&self, kind: EventKind, message: impl FnOnce() -> String) {
        let hook = self
            .on_event
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook.emit(kind, message());
        }
    }

    fn finish(&self, outcome: Outcome) {
        if self.outcome_now() {
            return;
        }
        tracing::info!(cause = ?outcome.cause, "{}", outcome.message);
        // Reported before any waiter wakes, so a host that exits right after its wait has
        // printed the line; and outside the lock, so the callback may call into the server.
        self.emit(EventKind::Stopped, || outcome.message.clone());
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            *d = Some(outcome);
        }
        drop(d);
        self.done_cv.notify_all();
        self.done_async.notify_waiters();
    }

    fn outcome_now(&self) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn wait_done(&self, timeout: Option<Duration>) -> Option<Outcome> {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(o) = d.as_ref() {
                return Some(o.clone());
            }
            match deadline {
                None => d = self.done_cv.wait(d).unwrap_or_else(|e| e.into_inner()),
                Some(dl) => {
                    let now = Instant::now();
                    if now >= dl {
                        return None;
                    }
                    d = self
                        .done_cv
                        .wait_timeout(d, dl - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Everything a connection task needs.
struct App {
    builder: auto::Builder<TokioExecutor>,
    handler: Option<Arc<dyn Handler>>,
    inline_handler: bool,
    max_body_bytes: u64,
    keepalive_idle_timeout: Duration,
    readiness_path: Option<String>,
    liveness_path: Option<String>,
    max_requests_per_connection: u64,
    max_connection_age: Option<Duration>,
    shared: Arc<Shared>,
    tracker: Arc<accept::Tracker>,
    state: conn::ConnStates,
    /// Which worker each new connection goes to.
    placement: Placement,
}

/// A running (or stopped, not yet waited) server. All methods take `&self` and may be called
/// from any thread; `wait` tears the runtime down on the calling thread. Any number of servers
/// may run in one process.
pub struct Server {
    shared: Arc<Shared>,
    workers: Mutex<Option<Workers>>,
    signals: Mutex<SignalGuard>,
    sender: SignalSender,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn bind_error(addr: &str, e: std::io::Error) -> StartError {
    let kind = match e.kind() {
        std::io::ErrorKind::AddrInUse => StartErrorKind::AddrInUse,
        std::io::ErrorKind::PermissionDenied => StartErrorKind::PermissionDenied,
        _ => StartErrorKind::Bind,
    };
    StartError::new(kind, format!("cannot listen on {addr}: {e}"))
}

/// The listening socket for `addr`: adopted (`systemd`, `systemd:NAME`, `fd:N`, or an
/// inherited socket bound to `HOST:PORT`, as an upgraded process gets) or bound; and how an
/// upgrade hands it to the successor so that the same `addr` adopts it there.
fn bind_listener(addr: &str) -> Result<(std::net::TcpListener, Handover), StartError> {
    #[cfg(not(target_os = "wasi"))]
    {
        use crate::sys::activation::{self, Source};
        let src = activation::source(addr)
            .map_err(|m| StartError::new(StartErrorKind::InvalidAddress, m))?;
        if src != Source::Bind(addr.to_owned()) {
            return activation::adopt_source(&src, addr)
                .map_err(|m| StartError::new(StartErrorKind::Bind, m));
        }
    }
    let addrs =
        sys::resolve(addr).map_err(|m| StartError::new(StartErrorKind::InvalidAddress, m))?;
    #[cfg(not(target_os = "wasi"))]
    if let Some(found) = crate::sys::activation::inherited_for(&addrs) {
        return Ok(found);
    }
    let bound = || Handover::Passed(crate::upgrade::DEFAULT_FDNAME.to_owned());
    let mut last_err = None;
    for a in &addrs {
        match sys::bind(*a) {
            Ok(l) => return Ok((l, bound())),
            Err(e) => last_err = Some(e),
        }
    }
    Err(bind_error(
        addr,
        last_err.unwrap_or_else(|| std::io::Error::other("no address")),
    ))
}

impl Server {
    /// Validates `config`, binds synchronously, and starts serving on a background runtime.
    /// `handler` answers every request; `None` answers `200 OK` to everything.
    pub fn start(config: Config, handler: Option<Arc<dyn Handler>>) -> Result<Server, StartError> {
        crate::logging::init();
        config
            .validate()
            .map_err(|m| StartError::new(StartErrorKind::InvalidConfig, m))?;
        let (std_listener, handover) = bind_listener(&config.addr)?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| bind_error(&config.addr, e))?;

        let listen = match config.signals {
            SignalPolicy::Library => Listen::Real,
            SignalPolicy::Host => Listen::Process,
            SignalPolicy::Isolated => Listen::Own,
        };
        let also: &[i32] = if config.upgrade_on_sighup {
            &[SIGHUP]
        } else {
            &[]
        };
        let signals = SignalGuard::claim(listen, also)
            .map_err(|m| StartError::new(StartErrorKind::Signals, m))?;
        let listener_fd = raw_fd(&std_listener);

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let workers = Workers::start(&config, Arc::new(move || RUNTIME_OF.with(|c| c.set(id))))
            .map_err(|e| {
                StartError::new(
                    StartErrorKind::Runtime,
                    format!("cannot start the runtime: {e}"),
                )
            })?;

        let (control, _) = watch::channel(Control::default());
        let shared = Arc::new(Shared {
            id,
            control,
            done: Mutex::new(None),
            done_cv: Condvar::new(),
            done_async: Notify::new(),
            counters: Counters::default(),
            signal_timeout: config.signal_drain_timeout,
            drain_delay: config.drain_delay,
            drain_requested: Arc::new(AtomicBool::new(false)),
            handlers_in_host: AtomicUsize::new(0),
            on_event: Mutex::new(config.on_event.clone()),
            listener_fd: Mutex::new(listener_fd),
            handover,
            upgrade: config.upgrade_on_sighup.then_some(config.upgrade_timeout),
            upgrade_timeout: config.upgrade_timeout,
            upgrading: AtomicBool::new(false),
            notifier: if config.sd_notify {
                Notifier::from_env()
            } else {
                None
            },
            local_addr,
        });

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes.max(8192))
            .keep_alive(true)
            .half_close(false)
            .writev(sys::USE_WRITEV);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(config.max_header_bytes.min(u32::MAX as usize) as u32)
            .max_concurrent_streams(256);

        let inline_handler = config.inline_handler || sys::FORCE_INLINE_HANDLER;
        if let Some(h) = &handler {
            workers.set_target(dispatch::target(shared.clone(), h.clone()));
        }
        let app = Arc::new(App {
            builder,
            handler,
            inline_handler,
            placement: workers.placement(),
            max_body_bytes: config.max_body_bytes,
            keepalive_idle_timeout: config.keepalive_idle_timeout,
            readiness_path: config.readiness_path.clone(),
            liveness_path: config.liveness_path.clone(),
            max_requests_per_connection: config.max_requests_per_connection,
            max_connection_age: config.max_connection_age,
            shared: shared.clone(),
            tracker: Arc::new(accept::Tracker::default()),
            state: conn::ConnStates::new(),
        });

        let runtime = workers.runtime();
        let listener = {
            let _g = runtime.enter();
            sys::listener(std_listener).map_err(|e| bind_error(&config.addr, e))?
        };

        let reader = signals.reader();
        let sh = shared.clone();
        runtime.spawn(async move {
            reader.run(move |signum| sh.on_signal(signum)).await;
        });

        let max_conns = config.max_connections;
        let main = runtime.spawn(accept::run(listener, app, max_conns));
        let sh = shared.clone();
        let queues = workers.queues();
        runtime.spawn(async move {
            let outcome = match main.await {
                Ok(o) => o,
                Err(e) => Outcome::new(
                    StopCause::RuntimeFailed,
                    format!("the server task failed: {e}"),
                ),
            };
            // Nothing is left to serve: the worker threads may leave their runtimes now, while
            // the waiter wakes, so that `wait` finds them gone instead of stopping them.
            for q in &queues {
                q.stop();
            }
            sh.finish(outcome);
        });

        if let Some(n) = &shared.notifier {
            n.ready(&format!("serving on {local_addr}"));
            if let Some(every) = n.watchdog {
                // From the runtime itself: a wedged runtime stops the pings.
                let sh = shared.clone();
                runtime.spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        if let Some(n) = &sh.notifier {
                            n.send("WATCHDOG=1\n");
                        }
                    }
                });
            }
        }
        tracing::info!(%local_addr, "listening");
        let sender = signals.sender();
        Ok(Server {
            shared,
            workers: Mutex::new(Some(workers)),
            signals: Mutex::new(signals),
            sender,
            local_addr,
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True on a thread the stop waits for: inside one of this server's handler calls, or one
    /// of its runtime threads. Blocking calls refuse to wait there (see [`OwnThread`]).
    pub fn on_own_thread(&self) -> bool {
        dispatch::in_handler_of(self.shared.id) || RUNTIME_OF.with(|c| c.get()) == self.shared.id
    }

    /// Starts a drain without waiting for it: the pre-drain delay first (if configured), then
    /// the drain with `timeout` as its deadline, counted from the end of the delay (`None`: no
    /// deadline). `Some(Duration::ZERO)` stops now: it skips (or ends) the delay and cuts what
    /// is left at once. A drain already under way keeps the earlier of the two deadlines.
    pub fn begin_shutdown(&self, timeout: Option<Duration>) {
        self.shared.request_drain(DrainCause::Call, timeout);
    }

    /// In-place upgrade: starts `cmd` (`None`: a fresh copy of this program with the same
    /// arguments) with this server's listening socket handed over the way this server got it
    /// (descriptor 3 with `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, or descriptor N again
    /// for `fd:N`, so the same address adopts the socket instead of binding), waits up to
    /// `timeout` (`None`: the configured one) for it to report ready (the systemd protocol,
    /// this process playing systemd), then starts this server's drain (the configured delay
    /// and signal deadline) and returns the new process id. Both accept on the socket until
    /// then, so no connection is refused. On failure the new process is stopped, this server
    /// keeps serving, and the error says why. Blocks for up to `timeout`.
    pub fn upgrade(
        &self,
        cmd: Option<UpgradeCommand>,
        timeout: Option<Duration>,
    ) -> Result<u32, String> {
        self.shared
            .upgrade(cmd, timeout.unwrap_or(self.shared.upgrade_timeout))
    }

    /// True from the moment a drain was requested (by a signal or a call), including during
    /// the pre-drain delay: what a host or handler asks to fail its own health checks or end
    /// long polls.
    pub fn drain_requested(&self) -> bool {
        self.shared.drain_requested.load(Ordering::SeqCst)
    }

    /// Starts a drain and blocks until the server has stopped and is torn down; returns how it
    /// ended. On one of this server's own threads (a handler) it only starts the drain and
    /// returns `Err(OwnThread)`: the drain waits for that very thread.
    pub fn shutdown(&self, timeout: Option<Duration>) -> Result<Outcome, OwnThread> {
        self.begin_shutdown(timeout);
        self.wait()
    }

    /// The same path a caught signal takes: first a drain, then a forced stop.
    pub fn signal(&self, signum: i32) {
        self.shared.on_signal(signum);
    }

    /// A handle that delivers signals to this server from anywhere, including a signal
    /// handler (no locks, no allocation): the first drains, the next forces.
    pub fn signal_sender(&self) -> SignalSender {
        self.sender.clone()
    }

    /// Blocks until the server has stopped, tears the runtime down on this thread and restores
    /// signal handlers; returns the outcome. Safe to call more than once and from many threads;
    /// `Err(OwnThread)` on one of this server's own threads.
    pub fn wait(&self) -> Result<Outcome, OwnThread> {
        if self.on_own_thread() {
            return Err(OwnThread);
        }
        self.drive(None);
        let o = self
            .shared
            .wait_done(None)
            .expect("wait without timeout returns an outcome");
        self.teardown();
        Ok(o)
    }

    /// Like [`Server::wait`] but gives up after `timeout`, returning `Ok(None)` while the
    /// server still runs.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<Outcome>, OwnThread> {
        if self.on_own_thread() {
            return Err(OwnThread);
        }
        let rest = self.drive(Some(timeout));
        let Some(o) = self.shared.wait_done(rest) else {
            return Ok(None);
        };
        self.teardown();
        Ok(Some(o))
    }

    /// The outcome, if the server has stopped (it may not be torn down yet).
    pub fn outcome(&self) -> Option<Outcome> {
        self.shared.wait_done(Some(Duration::ZERO))
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let active = c.connections_active.load(Ordering::Relaxed) as u64;
        let busy = c.connections_busy.load(Ordering::Relaxed) as u64;
        Stats {
            connections_active: active,
            connections_total: c.connections_total.load(Ordering::Relaxed),
            requests_active: c.requests_active.load(Ordering::Relaxed) as u64,
            requests_total: c.requests_total.load(Ordering::Relaxed),
            connections_idle: active.saturating_sub(busy),
            connections_drained: c.connections_drained.load(Ordering::Relaxed),
            connections_cut: c.connections_cut.load(Ordering::Relaxed),
            requests_during_delay: c.requests_during_delay.load(Ordering::Relaxed),
        }
    }

    /// Runs the runtime on this thread until the server stops or `timeout` passes, where the
    /// runtime has no threads of its own (WASI); a no-op natively. Returns how long a condvar
    /// wait for the outcome may still take (`timeout` natively, nothing after driving).
    fn drive(&self, timeout: Option<Duration>) -> Option<Duration> {
        let sh = &self.shared;
        sys::drive(&self.workers, &sh.done_async, || sh.outcome_now(), timeout)
    }

    /// Handler calls still in host code. A call that already answered may still be on its way
    /// out (the client can have its response before the callback returns): give those a
    /// moment — up to a second after a graceful stop, where every request was answered, and
    /// only a few milliseconds after a forced one, where a stuck handler must not delay the
    /// exit.
    fn handlers_still_returning(&self) -> usize {
        let graceful = self.outcome().is_some_and(|o| o.cause.is_graceful());
        let grace = Duration::from_millis(if graceful { 1000 } else { 10 });
        let end = Instant::now() + grace;
        loop {
            let n = self.shared.handlers_in_host.load(Ordering::SeqCst);
            if n == 0 || Instant::now() >= end {
                return n;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn teardown(&self) {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut workers) = workers {
            let stuck = self.handlers_still_returning();
            // Join every worker thread here, so that when wait returns the threads, their fds
            // and the handler (with the host's userdata) are gone. Nothing is running, so this
            // takes milliseconds. Handler calls stuck in host code after a forced stop cannot
            // be joined without waiting on the host: they finish on their own, and the
            // handler's userdata is dropped when the last of them returns.
            if stuck > 0 {
                tracing::debug!(stuck, "leaving stuck handler threads behind");
            }
            workers.shutdown(stuck == 0 && tokio::runtime::Handle::try_current().is_err());
        }
        self.signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release();
        self.shared
            .on_event
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

impl Drop for Server {
    /// A server dropped while running is stopped at once (deadline 0) and torn down. Dropped on
    /// one of its own threads, it does not wait for that thread.
    fn drop(&mut self) {
        if self.outcome().is_none() {
            self.begin_shutdown(Some(Duration::ZERO));
            if !self.on_own_thread() {
                let rest = self.drive(Some(Duration::from_secs(5)));
                self.shared.wait_done(rest);
            }
        }
        self.teardown();
    }
}
