//! One connection: hyper serves it; this task watches the drain, the idle timeout and the
//! deferral of requests already sent when the drain began.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{dispatch, App, ConnState};
use crate::sys;

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
pub(super) async fn serve_connection(app: Arc<App>, stream: sys::Stream, peer: SocketAddr) {
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
            dispatch::handle(app.clone(), req, peer)
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
