//! The accept loop and the drain: stop accepting, tell every connection, wait for them until
//! the deadline or a forced stop, and turn what happened into the [`Outcome`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use super::{conn, App, ConnState, DrainCause, DrainRequest};
use crate::events::EventKind;
use crate::outcome::{Outcome, StopCause};
use crate::sys;

/// Counts open connections and wakes the drain when the count reaches zero.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) open: AtomicUsize,
    zero: Notify,
}

pub(super) struct ConnGuard(Arc<Tracker>);

impl Tracker {
    pub(super) fn enter(self: &Arc<Self>) -> ConnGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnGuard(self.clone())
    }

    pub(super) async fn wait_zero(&self) {
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

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn until(at: Option<Instant>) {
    match at {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The line a host prints when the drain is requested.
fn drain_started_message(app: &App, req: &DrainRequest) -> String {
    let why = match req.cause {
        DrainCause::Signal(n) => format!("signal {n}"),
        DrainCause::Call => "shutdown call".to_string(),
        DrainCause::Upgrade(pid) => format!("upgraded to pid {pid}"),
    };
    let delay = req.delay_end.saturating_duration_since(req.requested_at);
    let deadline = match req.deadline {
        Some(d) => format!(
            "deadline {} ms",
            ms(d.saturating_duration_since(req.delay_end))
        ),
        None => "no deadline".to_string(),
    };
    let open = app.tracker.open.load(Ordering::SeqCst);
    if delay.is_zero() {
        format!("draining ({why}): {deadline}; {open} connection(s) open")
    } else {
        format!(
            "draining ({why}): pre-drain delay {} ms, then {deadline}; {open} connection(s) open",
            ms(delay)
        )
    }
}

/// Accepts until a drain is requested and its pre-drain delay is over, then drains; returns
/// the outcome.
pub(super) async fn run(listener: sys::Listener, app: Arc<App>, max_conns: usize) -> Outcome {
    let shared = app.shared.clone();
    let mut control = shared.control.subscribe();
    let permits = Arc::new(Semaphore::new(max_conns));
    let mut failure = None;
    let mut announced = false;

    // Serving, then the pre-drain delay: the listener stays open and accepting throughout.
    loop {
        let c = *control.borrow_and_update();
        if let Some(req) = c.drain {
            if !announced {
                announced = true;
                shared.emit(EventKind::DrainStarted, || {
                    drain_started_message(&app, &req)
                });
                if let Some(n) = &shared.notifier {
                    n.send(&format!(
                        "STOPPING=1\nSTATUS=draining: {} connection(s) open\n",
                        app.tracker.open.load(Ordering::SeqCst)
                    ));
                }
            }
            if c.force || Instant::now() >= req.delay_end {
                break;
            }
            if app.state.get() == ConnState::Serving {
                tracing::info!(
                    delay_ms = ms(req.delay_end - Instant::now()),
                    "pre-drain delay: still accepting, every answer closes its connection"
                );
                app.state.set(ConnState::PreDrain);
            }
        }
        let delay_end = c.drain.map(|r| r.delay_end);
        let permit = tokio::select! {
            biased;
            _ = control.changed() => continue,
            _ = until(delay_end) => continue,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = control.changed() => continue,
            _ = until(delay_end) => continue,
            r = sys::accept(&listener) => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let guard = app.tracker.enter();
                let conn_app = app.clone();
                app.placement
                    .spawn(stream, move |stream, queue| async move {
                        conn::serve_connection(conn_app, stream, peer, queue).await;
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
                shared.request_drain(DrainCause::Call, Some(Duration::ZERO));
                break;
            }
        }
    }
    // Stop accepting: the port is released now and new connections are refused (an adopted
    // socket stays open for whoever else holds it: systemd, a successor).
    *shared.listener_fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
    drop(listener);
    let started = Instant::now();
    app.state.set(ConnState::Draining);
    tracing::info!(open = app.tracker.open.load(Ordering::SeqCst), "draining");

    let mut forced = None;
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    let req = loop {
        let c = *control.borrow_and_update();
        let req = c.drain.expect("drain requested");
        if c.force {
            forced = Some(StopCause::ForcedSecondSignal);
            break req;
        }
        tokio::select! {
            // Biased: with nothing left open, a deadline that has also passed (a shutdown
            // with timeout 0) is no forced stop.
            biased;
            _ = app.tracker.wait_zero() => break req,
            _ = until(req.deadline) => {
                forced = Some(StopCause::ForcedDeadline);
                break req;
            }
            _ = control.changed() => continue,
            _ = status_tick.tick(), if shared.notifier.is_some() => {
                if let Some(n) = &shared.notifier {
                    n.status(&format!(
                        "draining: {} connection(s) open",
                        app.tracker.open.load(Ordering::SeqCst)
                    ));
                }
                continue;
            }
        }
    };

    let elapsed = ms(started.elapsed());
    let total = ms(req.requested_at.elapsed());
    if let Some(e) = failure {
        force_close(&app).await;
        return Outcome::new(
            StopCause::RuntimeFailed,
            format!("the listener failed: {e}"),
        );
    }
    match forced {
        None => Outcome::new(
            match req.cause {
                DrainCause::Signal(_) => StopCause::GracefulSignal,
                DrainCause::Call => StopCause::GracefulCall,
                DrainCause::Upgrade(_) => StopCause::Upgraded,
            },
            if total > elapsed + 1 {
                format!("stopped gracefully in {total} ms: every connection finished ({elapsed} ms drain after the pre-drain delay)")
            } else {
                format!("stopped gracefully in {total} ms: every connection finished ({elapsed} ms drain)")
            },
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
    app.state.set(ConnState::Forced);
    let _ = tokio::time::timeout(Duration::from_secs(1), app.tracker.wait_zero()).await;
}
