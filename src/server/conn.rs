//! One connection: hyper serves it; this task watches the drain, the idle timeout and the
//! deferral of requests already sent when the drain began.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::{dispatch, App, ConnState, Counters};
use crate::handler::Response;
use crate::sys;

/// How long a connection whose socket holds unread bytes when the drain starts may take to
/// turn them into a request before it is closed (see `Drain::Deferred`).
const FIRST_BYTES_GRACE: Duration = Duration::from_millis(500);

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

/// What the connection task and its requests share.
struct ConnShared {
    /// Requests started on this connection.
    requests: AtomicU64,
    /// Requests in flight now (HTTP/2 may have many).
    in_flight: AtomicUsize,
    /// Seen an HTTP/2 request: closing means GOAWAY, not `Connection: close`.
    is_h2: AtomicBool,
    /// Set by a request that wants the (HTTP/2) connection to get GOAWAY.
    goaway: Notify,
    accepted: Instant,
}

/// Counts a request in flight on its connection (and the connection as busy) until dropped,
/// also when the client goes away and hyper drops the request.
struct InFlight<'a>(&'a ConnShared, &'a Counters);

impl<'a> InFlight<'a> {
    fn enter(cs: &'a ConnShared, counters: &'a Counters) -> Self {
        if cs.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            counters.connections_busy.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(cs, counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.1.connections_busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// True when this answer should be the connection's last: a drain was requested (pre-drain
/// delay or drain), or the connection reached its request or age limit.
fn closes_after(app: &App, cs: &ConnShared, n: u64) -> bool {
    app.shared.drain_requested.load(Ordering::Relaxed)
        || (app.max_requests_per_connection > 0 && n >= app.max_requests_per_connection)
        || app
            .max_connection_age
            .is_some_and(|age| cs.accepted.elapsed() >= age)
}

/// Serves one request and marks its answer as the connection's last when it must be.
async fn serve_request(
    app: Arc<App>,
    cs: Arc<ConnShared>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response, Infallible> {
    let counters = &app.shared.counters;
    let n = cs.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let h2 = req.version() == http::Version::HTTP_2;
    if h2 {
        cs.is_h2.store(true, Ordering::Relaxed);
    }
    let _in_flight = InFlight::enter(&cs, counters);
    let mut resp = dispatch::handle(&app, req, peer).await;
    if closes_after(&app, &cs, n) {
        if h2 {
            cs.goaway.notify_one();
        } else {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    if *app.state.borrow() == ConnState::PreDrain {
        counters
            .requests_during_delay
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(resp)
}

/// Serves one connection until it ends, is drained, or is cut.
pub(super) async fn serve_connection(app: Arc<App>, stream: sys::Stream, peer: SocketAddr) {
    let counters = &app.shared.counters;
    counters.connections_active.fetch_add(1, Ordering::Relaxed);
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let cs = Arc::new(ConnShared {
        requests: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        is_h2: AtomicBool::new(false),
        goaway: Notify::new(),
        accepted: Instant::now(),
    });
    let svc = {
        let app = app.clone();
        let cs = cs.clone();
        service_fn(move |req: http::Request<Incoming>| {
            serve_request(app.clone(), cs.clone(), req, peer)
        })
    };
    let (io, probe) = sys::probe_input(stream);
    let mut state = app.state.subscribe();
    let conn = app.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);

    let idle = app.keepalive_idle_timeout;
    let mut seen_requests = 0u64;
    let mut drain = Drain::No;
    let mut idle_tick = IdleTick::new(idle);
    let mut grace_tick = tokio::time::interval(Duration::from_millis(2));
    // HTTP/2 connections past their age get GOAWAY even when idle (HTTP/1.1 ones close with
    // their next answer).
    let age_limit = async {
        match app.max_connection_age {
            Some(age) => tokio::time::sleep_until((cs.accepted + age).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(age_limit);
    let mut aged = false;

    // What to do when the drain reaches this connection: close it now (`None`), defer, or
    // shut it down gracefully.
    let on_drain = || -> Option<Drain> {
        let started = cs.requests.load(Ordering::Relaxed);
        // Unread bytes (a request the client already sent): give them their chance.
        if !cs.is_h2.load(Ordering::Relaxed) && probe.pending_input() {
            return Some(Drain::Deferred {
                until: tokio::time::Instant::now() + FIRST_BYTES_GRACE,
                baseline: started,
            });
        }
        // Never sent a complete request head (silent, or stuck in half-sent headers):
        // nothing to finish, close now. Otherwise, idle keep-alive: closed at once; in flight:
        // `Connection: close` on the response (HTTP/1.1) or a two-phase GOAWAY (HTTP/2).
        (started > 0).then_some(Drain::Graceful)
    };

    // A connection accepted during the pre-drain delay, or just as the drain began, must see
    // it too.
    let initial = *state.borrow_and_update();
    let mut ended_by_force = false;
    match initial {
        ConnState::Serving | ConnState::PreDrain => {}
        ConnState::Draining => match on_drain() {
            Some(d) => {
                if d == Drain::Graceful {
                    conn.as_mut().graceful_shutdown();
                }
                drain = d;
            }
            None => {
                counters.connections_drained.fetch_add(1, Ordering::Relaxed);
                counters.connections_active.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        },
        ConnState::Forced => {
            counters.connections_cut.fetch_add(1, Ordering::Relaxed);
            counters.connections_active.fetch_sub(1, Ordering::Relaxed);
            return;
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
                    // HTTP/2 gets the first GOAWAY now and may finish its streams; HTTP/1.1
                    // connections stay open (a proxy may be about to reuse them) and close
                    // with their next answer.
                    ConnState::PreDrain => {
                        if drain == Drain::No && cs.is_h2.load(Ordering::Relaxed) {
                            conn.as_mut().graceful_shutdown();
                            drain = Drain::Graceful;
                        }
                    }
                    ConnState::Forced => {
                        ended_by_force = true;
                        break;
                    }
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
            _ = cs.goaway.notified(), if drain == Drain::No => {
                conn.as_mut().graceful_shutdown();
                drain = Drain::Graceful;
            }
            _ = &mut age_limit, if !aged => {
                aged = true;
                if drain == Drain::No && cs.is_h2.load(Ordering::Relaxed) {
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
            }
            _ = grace_tick.tick(), if matches!(drain, Drain::Deferred { .. }) => {
                let Drain::Deferred { until, baseline } = drain else { unreachable!() };
                let n = cs.requests.load(Ordering::Relaxed);
                if n > baseline || tokio::time::Instant::now() >= until {
                    if n == 0 {
                        break;
                    }
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
            }
            _ = &mut idle_tick, if drain == Drain::No => {
                let n = cs.requests.load(Ordering::Relaxed);
                if n == seen_requests {
                    tracing::debug!(%peer, "keep-alive idle timeout");
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
                seen_requests = n;
            }
        }
    }
    if ended_by_force {
        counters.connections_cut.fetch_add(1, Ordering::Relaxed);
    } else if app.shared.drain_requested.load(Ordering::Relaxed) {
        counters.connections_drained.fetch_add(1, Ordering::Relaxed);
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
