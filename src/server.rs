//! The server: bind, serve HTTP/1.1 + h2c, track connections, drain, enforce the deadline.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{watch, Notify, Semaphore};

use crate::config::{Config, SignalPolicy};
use crate::handler::{text_response, Handler, Reply, Request, Response};
use crate::outcome::{Outcome, StopCause};
use crate::pool::HandlerPool;
use crate::sys;

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
    /// Signal handlers could not be installed (or another server owns them).
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
}

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
}

#[derive(Debug, Default)]
struct Counters {
    connections_active: AtomicUsize,
    connections_total: AtomicU64,
    requests_active: AtomicUsize,
    requests_total: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainCause {
    Signal,
    Call,
}

/// What has been asked of the server: a drain (with its deadline) and/or a forced stop.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    drain: Option<(DrainCause, Option<Instant>)>,
    force: bool,
}

/// What each connection task is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Serving,
    Draining,
    Forced,
}

thread_local! {
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// True on a thread that is inside a host handler call right now.
pub fn in_handler() -> bool {
    IN_HANDLER.with(|c| c.get())
}

/// The state shared between the control API (any thread) and the runtime.
#[derive(Debug)]
struct Shared {
    control: watch::Sender<Control>,
    done: Mutex<Option<Outcome>>,
    done_cv: Condvar,
    /// Woken with `done_cv`, for a waiter that drives the runtime itself (WASI).
    done_async: Notify,
    counters: Counters,
    signal_timeout: Duration,
    /// Handler calls currently inside host code.
    handlers_in_host: AtomicUsize,
}

impl Shared {
    fn request_drain(&self, cause: DrainCause, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.control.send_modify(|c| match &mut c.drain {
            None => c.drain = Some((cause, deadline)),
            Some((_, old)) => {
                *old = match (*old, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        });
    }

    fn on_signal(&self, signum: i32) {
        let timeout = self.signal_timeout;
        self.control.send_modify(|c| {
            if c.drain.is_none() {
                tracing::info!(signum, "signal received: draining");
                c.drain = Some((DrainCause::Signal, Some(Instant::now() + timeout)));
            } else {
                tracing::info!(signum, "second signal during drain: forcing stop");
                c.force = true;
            }
        });
    }

    fn finish(&self, outcome: Outcome) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            tracing::info!(cause = ?outcome.cause, "{}", outcome.message);
            *d = Some(outcome);
        }
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

/// Counts open connections and wakes the drain when the count reaches zero.
#[derive(Debug, Default)]
struct Tracker {
    open: AtomicUsize,
    zero: Notify,
}

struct ConnGuard(Arc<Tracker>);

impl Tracker {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnGuard(self.clone())
    }

    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
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
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    state: watch::Sender<ConnState>,
    /// Hot handler threads (absent for inline handlers).
    pool: Option<Arc<HandlerPool>>,
}

/// A running (or stopped, not yet waited) server. All methods take `&self` and may be called
/// from any thread; `wait` tears the runtime down on the calling thread.
pub struct Server {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pool: Option<Arc<HandlerPool>>,
    signals: Mutex<Option<sys::SignalGuard>>,
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
        std::io::ErrorKind::AddrNotAvailable => StartErrorKind::Bind,
        _ => StartErrorKind::Bind,
    };
    StartError::new(kind, format!("cannot listen on {addr}: {e}"))
}

impl Server {
    /// Validates `config`, binds synchronously, and starts serving on a background runtime.
    /// `handler` answers every request; `None` answers `200 OK` to everything.
    pub fn start(config: Config, handler: Option<Arc<dyn Handler>>) -> Result<Server, StartError> {
        crate::logging::init();
        if config.max_connections == 0 {
            return Err(StartError::new(
                StartErrorKind::InvalidConfig,
                "max_connections must be at least 1",
            ));
        }
        let addrs = sys::resolve(&config.addr)
            .map_err(|m| StartError::new(StartErrorKind::InvalidAddress, m))?;
        let mut last_err = None;
        let mut std_listener = None;
        for a in &addrs {
            match sys::bind(*a) {
                Ok(l) => {
                    std_listener = Some(l);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let std_listener = match std_listener {
            Some(l) => l,
            None => {
                return Err(bind_error(
                    &config.addr,
                    last_err.unwrap_or_else(|| std::io::Error::other("no address")),
                ))
            }
        };
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| bind_error(&config.addr, e))?;

        let signals = sys::SignalGuard::claim(config.signals == SignalPolicy::Library)
            .map_err(|m| StartError::new(StartErrorKind::Signals, m))?;

        let runtime = sys::runtime(&config).map_err(|e| {
            StartError::new(
                StartErrorKind::Runtime,
                format!("cannot start the runtime: {e}"),
            )
        })?;

        let (control, _) = watch::channel(Control::default());
        let shared = Arc::new(Shared {
            control,
            done: Mutex::new(None),
            done_cv: Condvar::new(),
            done_async: Notify::new(),
            counters: Counters::default(),
            signal_timeout: config.signal_drain_timeout,
            handlers_in_host: AtomicUsize::new(0),
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

        let (state, _) = watch::channel(ConnState::Serving);
        let inline_handler = config.inline_handler || sys::FORCE_INLINE_HANDLER;
        let pool = (handler.is_some() && !inline_handler).then(|| {
            let hot = sys::hot_handler_threads(&config);
            HandlerPool::start(
                hot,
                hot >= config.handler_threads,
                sys::handler_thread_start,
            )
        });
        let app = Arc::new(App {
            builder,
            handler,
            inline_handler,
            pool: pool.clone(),
            max_body_bytes: config.max_body_bytes,
            keepalive_idle_timeout: config.keepalive_idle_timeout,
            shared: shared.clone(),
            tracker: Arc::new(Tracker::default()),
            state,
        });

        let listener = {
            let _g = runtime.enter();
            sys::listener(std_listener).map_err(|e| bind_error(&config.addr, e))?
        };

        if let Some(reader) = signals.reader() {
            let sh = shared.clone();
            runtime.spawn(async move {
                reader.run(move |signum| sh.on_signal(signum)).await;
            });
        }

        let max_conns = config.max_connections;
        let main = runtime.spawn(run(listener, app, max_conns));
        let sh = shared.clone();
        runtime.spawn(async move {
            let outcome = match main.await {
                Ok(o) => o,
                Err(e) => Outcome::new(
                    StopCause::RuntimeFailed,
                    format!("the server task failed: {e}"),
                ),
            };
            sh.finish(outcome);
        });

        tracing::info!(%local_addr, "listening");
        Ok(Server {
            shared,
            runtime: Mutex::new(Some(runtime)),
            pool,
            signals: Mutex::new(Some(signals)),
            local_addr,
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a drain without waiting for it. `timeout` is the deadline from now (`None`: no
    /// deadline). A drain already under way keeps the earlier of the two deadlines.
    pub fn begin_shutdown(&self, timeout: Option<Duration>) {
        self.shared.request_drain(DrainCause::Call, timeout);
    }

    /// Starts a drain and blocks until it ends; returns how it ended. Do not call it from a
    /// thread that must finish for the drain to finish (a handler): use `begin_shutdown` there.
    pub fn shutdown(&self, timeout: Option<Duration>) -> Outcome {
        self.begin_shutdown(timeout);
        self.drive(None);
        self.shared
            .wait_done(None)
            .expect("wait without timeout returns an outcome")
    }

    /// The same path a caught signal takes: first a drain, then a forced stop.
    pub fn signal(&self, signum: i32) {
        self.shared.on_signal(signum);
    }

    /// Blocks until the server has stopped, tears the runtime down on this thread and restores
    /// signal handlers; returns the outcome. Safe to call more than once and from many threads.
    pub fn wait(&self) -> Outcome {
        self.drive(None);
        let o = self
            .shared
            .wait_done(None)
            .expect("wait without timeout returns an outcome");
        self.teardown();
        o
    }

    /// Like [`Server::wait`] but gives up after `timeout`, returning `None` while still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Outcome> {
        let rest = self.drive(Some(timeout));
        let o = self.shared.wait_done(rest)?;
        self.teardown();
        Some(o)
    }

    /// The outcome, if the server has stopped.
    pub fn outcome(&self) -> Option<Outcome> {
        self.shared.wait_done(Some(Duration::ZERO))
    }

    /// Live counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            connections_active: c.connections_active.load(Ordering::Relaxed) as u64,
            connections_total: c.connections_total.load(Ordering::Relaxed),
            requests_active: c.requests_active.load(Ordering::Relaxed) as u64,
            requests_total: c.requests_total.load(Ordering::Relaxed),
        }
    }

    /// Runs the runtime on this thread until the server stops or `timeout` passes, where the
    /// runtime has no threads of its own (WASI); a no-op natively. Returns how long a condvar
    /// wait for the outcome may still take (`timeout` natively, nothing after driving).
    fn drive(&self, timeout: Option<Duration>) -> Option<Duration> {
        let sh = &self.shared;
        sys::drive(&self.runtime, &sh.done_async, || sh.outcome_now(), timeout)
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
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            let stuck = self.handlers_still_returning();
            if let Some(pool) = &self.pool {
                pool.stop(stuck == 0);
            }
            if stuck == 0 && tokio::runtime::Handle::try_current().is_err() {
                // Join every runtime thread here, so that when wait returns the threads, their
                // fds and the handler (with the host's userdata) are gone. Nothing is running,
                // so this takes milliseconds; the bound only guards against the unforeseen.
                rt.shutdown_timeout(Duration::from_secs(2));
            } else {
                // Handler calls stuck in host code after a forced stop cannot be joined
                // without waiting on the host: they finish on their own, and the handler's
                // userdata is dropped when the last of them returns.
                tracing::debug!(stuck, "leaving stuck handler threads behind");
                rt.shutdown_background();
            }
        }
        self.signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.outcome().is_none() {
            self.begin_shutdown(Some(Duration::ZERO));
            let rest = self.drive(Some(Duration::from_secs(5)));
            self.shared.wait_done(rest);
        }
        self.teardown();
    }
}

/// Accepts until a drain is requested, then drains; returns the outcome.
async fn run(listener: sys::Listener, app: Arc<App>, max_conns: usize) -> Outcome {
    let shared = app.shared.clone();
    let mut control = shared.control.subscribe();
    let permits = Arc::new(Semaphore::new(max_conns));
    let mut failure = None;

    loop {
        if control.borrow_and_update().drain.is_some() {
            break;
        }
        let permit = tokio::select! {
            biased;
            _ = control.changed() => continue,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = control.changed() => continue,
            r = sys::accept(&listener) => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let guard = app.tracker.enter();
                let app = app.clone();
                tokio::spawn(async move {
                    serve_connection(app, stream, peer).await;
                    drop(permit);
                    drop(guard);
                });
            }
            Err(e) if sys::accept_error_is_transient(&e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => {
                tracing::error!("accept failed, stopping: {e}");
                failure = Some(e);
                shared.request_drain(DrainCause::Call, Some(shared.signal_timeout));
                break;
            }
        }
    }
    // Stop accepting: the port is released now and new connections are refused.
    drop(listener);
    let started = Instant::now();
    app.state.send_replace(ConnState::Draining);
    tracing::info!(open = app.tracker.open.load(Ordering::SeqCst), "draining");

    let mut forced = None;
    let cause = loop {
        let c = *control.borrow_and_update();
        let (cause, deadline) = c.drain.expect("drain requested");
        if c.force {
            forced = Some(StopCause::ForcedSecondSignal);
            break cause;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = app.tracker.wait_zero() => break cause,
            _ = sleep => {
                forced = Some(StopCause::ForcedDeadline);
                break cause;
            }
            _ = control.changed() => continue,
        }
    };

    let elapsed = started.elapsed().as_millis();
    if let Some(e) = failure {
        force_close(&app).await;
        return Outcome::new(
            StopCause::RuntimeFailed,
            format!("the listener failed: {e}"),
        );
    }
    match forced {
        None => Outcome::new(
            match cause {
                DrainCause::Signal => StopCause::GracefulSignal,
                DrainCause::Call => StopCause::GracefulCall,
            },
            format!("stopped gracefully: every connection finished ({elapsed} ms drain)"),
        ),
        Some(fc) => {
            let left = app.tracker.open.load(Ordering::SeqCst);
            force_close(&app).await;
            let why = match fc {
                StopCause::ForcedSecondSignal => "a second signal arrived during the drain",
                _ => "the drain deadline passed",
            };
            Outcome::new(
                fc,
                format!("stop forced: {why} after {elapsed} ms with {left} connection(s) still open; they were closed"),
            )
        }
    }
}

async fn force_close(app: &App) {
    app.state.send_replace(ConnState::Forced);
    let _ = tokio::time::timeout(Duration::from_secs(1), app.tracker.wait_zero()).await;
}

/// Serves one connection until it ends, is drained, or is cut.
/// How long a connection whose socket holds unread bytes when the drain starts may take to
/// turn them into a request before it is closed (see `Drain::Deferred`).
const FIRST_BYTES_GRACE: Duration = Duration::from_millis(500);

/// The same grace where the platform cannot peek (WASI) and a connection has not started a
/// request: longer, because there it may be silent or its request may be waiting for a guest
/// that is busy with a burst (CI saw a 1,000-request burst need more than 500 ms).
const UNKNOWN_BYTES_GRACE: Duration = Duration::from_millis(1000);

/// Where one connection stands in the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Serving normally.
    No,
    /// The drain began while request bytes sat unread in the socket (a request the client
    /// already sent on a new or kept-alive connection). hyper would close such a connection as
    /// idle, dropping that request; instead it gets until `until` to start it, and the graceful
    /// shutdown follows as soon as it has (so its response carries `Connection: close`).
    Deferred {
        until: tokio::time::Instant,
        baseline: u64,
    },
    /// `graceful_shutdown` was called: in-flight work finishes, then the connection ends.
    Graceful,
}

/// Serves one connection until it ends, is drained, or is cut.
async fn serve_connection(app: Arc<App>, stream: sys::Stream, peer: SocketAddr) {
    let counters = &app.shared.counters;
    counters.connections_active.fetch_add(1, Ordering::Relaxed);
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let requests = Arc::new(AtomicU64::new(0));
    let is_h2 = Arc::new(AtomicBool::new(false));
    let svc = {
        let app = app.clone();
        let requests = requests.clone();
        let is_h2 = is_h2.clone();
        service_fn(move |req: http::Request<Incoming>| {
            requests.fetch_add(1, Ordering::Relaxed);
            if req.version() == http::Version::HTTP_2 {
                is_h2.store(true, Ordering::Relaxed);
            }
            handle(app.clone(), req, peer)
        })
    };
    let probe = sys::InputProbe::new(&stream);
    let mut state = app.state.subscribe();
    let conn = app.builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);

    let idle = app.keepalive_idle_timeout;
    let mut seen_requests = 0u64;
    let mut drain = Drain::No;
    let mut idle_tick = IdleTick::new(idle);
    let mut grace_tick = tokio::time::interval(Duration::from_millis(2));

    // What to do when the drain reaches this connection: close it now (`None`), defer, or
    // shut it down gracefully.
    let on_drain = || -> Option<Drain> {
        let started = requests.load(Ordering::Relaxed);
        // Unread bytes: give them their chance. Where the platform cannot peek, a connection
        // that has not started a request yet gets the chance too (a silent one then closes
        // after the grace instead of at once), a kept-alive one closes as idle.
        let grace = match probe.pending_input() {
            Some(true) => Some(FIRST_BYTES_GRACE),
            None if started == 0 => Some(UNKNOWN_BYTES_GRACE),
            _ => None,
        };
        if let (false, Some(grace)) = (is_h2.load(Ordering::Relaxed), grace) {
            return Some(Drain::Deferred {
                until: tokio::time::Instant::now() + grace,
                baseline: started,
            });
        }
        // Never sent a complete request head (silent, or stuck in half-sent headers):
        // nothing to finish, close now. Otherwise, idle keep-alive: closed at once; in flight:
        // `Connection: close` on the response (HTTP/1.1) or a two-phase GOAWAY (HTTP/2).
        (started > 0).then_some(Drain::Graceful)
    };

    // A connection accepted just as the drain began must see it too.
    let initial = *state.borrow_and_update();
    if initial != ConnState::Serving {
        match on_drain() {
            Some(d) if initial == ConnState::Draining => {
                if d == Drain::Graceful {
                    conn.as_mut().graceful_shutdown();
                }
                drain = d;
            }
            _ => {
                counters.connections_active.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }

    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                break;
            }
            changed = state.changed() => {
                let s = if changed.is_ok() { *state.borrow_and_update() } else { ConnState::Forced };
                match s {
                    ConnState::Serving => {}
                    ConnState::Forced => break,
                    ConnState::Draining if drain == Drain::No => match on_drain() {
                        None => break,
                        Some(d) => {
                            if d == Drain::Graceful {
                                conn.as_mut().graceful_shutdown();
                            }
                            drain = d;
                        }
                    },
                    ConnState::Draining => {}
                }
            }
            _ = grace_tick.tick(), if matches!(drain, Drain::Deferred { .. }) => {
                let Drain::Deferred { until, baseline } = drain else { unreachable!() };
                let n = requests.load(Ordering::Relaxed);
                if n > baseline || tokio::time::Instant::now() >= until {
                    if n == 0 {
                        break;
                    }
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
            }
            _ = &mut idle_tick, if drain == Drain::No => {
                let n = requests.load(Ordering::Relaxed);
                if n == seen_requests {
                    tracing::debug!(%peer, "keep-alive idle timeout");
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
                seen_requests = n;
            }
        }
    }
    counters.connections_active.fetch_sub(1, Ordering::Relaxed);
}

/// A periodic tick for the keep-alive idle check that costs almost nothing on the many wakes
/// of a busy connection. A tokio `Interval` polled on every wake re-registers its waker each
/// time (about a microsecond per request, measured); this registers once per period and
/// otherwise only reads whether the deadline has passed. The task's waker does not change
/// between polls, so the registration stays valid.
struct IdleTick {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    registered: bool,
}

impl IdleTick {
    fn new(period: Duration) -> Self {
        IdleTick {
            sleep: Box::pin(tokio::time::sleep(period)),
            period,
            registered: false,
        }
    }
}

impl std::future::Future for IdleTick {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = &mut *self;
        if this.registered && !this.sleep.is_elapsed() {
            return std::task::Poll::Pending;
        }
        match this.sleep.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => {
                let next = tokio::time::Instant::now() + this.period;
                this.sleep.as_mut().reset(next);
                this.registered = false;
                std::task::Poll::Ready(())
            }
            std::task::Poll::Pending => {
                this.registered = true;
                std::task::Poll::Pending
            }
        }
    }
}

struct ActiveRequest<'a>(&'a Counters);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.requests_active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    app: Arc<App>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response, Infallible> {
    let counters = &app.shared.counters;
    counters.requests_total.fetch_add(1, Ordering::Relaxed);
    counters.requests_active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveRequest(counters);

    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body_bytes) {
        return Ok(text_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ));
    }
    let body = if http_body::Body::is_end_stream(&body) {
        Bytes::new()
    } else {
        match Limited::new(body, app.max_body_bytes as usize)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Ok(text_response(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    ));
                }
                tracing::debug!(%peer, "reading request body: {e}");
                return Ok(text_response(
                    http::StatusCode::BAD_REQUEST,
                    "could not read the request body\n",
                ));
            }
        }
    };

    let Some(handler) = app.handler.clone() else {
        return Ok(text_response(http::StatusCode::OK, "OK"));
    };
    let request = Request {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        method: parts.method,
        version: parts.version,
        headers: parts.headers,
        body,
        // WASI accepts without asking for the peer (see sys::accept): an unspecified
        // address there means "unknown", never a real client.
        remote_addr: (!peer.ip().is_unspecified()).then_some(peer),
    };
    let (reply, rx) = Reply::channel();
    if app.inline_handler {
        call_handler(&app.shared, &*handler, request, reply);
    } else {
        // If the blocking pool refuses (runtime shutting down) the closure is dropped, the
        // reply with it, and the client gets a 500 below.
        let shared = app.shared.clone();
        let job = move || call_handler(&shared, &*handler, request, reply);
        // A waiting hot thread if there is one, else a thread of the blocking pool.
        match &app.pool {
            Some(pool) => {
                if let Err(job) = pool.try_submit(Box::new(job)) {
                    tokio::task::spawn_blocking(job);
                }
            }
            None => {
                tokio::task::spawn_blocking(job);
            }
        }
    }
    Ok(match rx.await {
        Ok(resp) => resp,
        Err(_) => text_response(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error\n",
        ),
    })
}

fn call_handler(shared: &Shared, handler: &dyn Handler, request: Request, reply: Reply) {
    IN_HANDLER.with(|c| c.set(true));
    shared.handlers_in_host.fetch_add(1, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler.handle(request, reply)
    }));
    shared.handlers_in_host.fetch_sub(1, Ordering::SeqCst);
    IN_HANDLER.with(|c| c.set(false));
    if let Err(p) = r {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        tracing::error!("handler panicked: {msg}; answered 500");
    }
}
