//! One connection: hyper serves it; this task watches the drain, the idle timeout and the
//! deferral of requests already sent when the drain began.
//!
//! The task is woken for every read and write of its connection, so what it does on a wake
//! beyond polling hyper is kept to a few atomic loads: the drain state, a GOAWAY request and the
//! timers are registered once and only looked at, not polled again (see [`ConnStates`],
//! [`Deadline`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use super::dispatch::{self, Started};
use super::workers::Queue;
use super::{App, ConnState};
use crate::handler::{Response, ResponseBody};
use crate::sys;

/// How long a connection whose socket holds unread bytes when the drain starts may take to
/// turn them into a request before it is closed (see `Drain::Deferred`).
const FIRST_BYTES_GRACE: Duration = Duration::from_millis(500);

/// What every connection task is told ([`ConnState`]), and how they hear of a change: each task
/// keeps one registration on `changed` and, on its ordinary wakes, only compares `state` with
/// what it saw last.
#[derive(Debug)]
pub(super) struct ConnStates {
    state: AtomicU8,
    changed: Notify,
}

impl ConnStates {
    pub(super) fn new() -> Self {
        ConnStates {
            state: AtomicU8::new(ConnState::Serving as u8),
            changed: Notify::new(),
        }
    }

    pub(super) fn get(&self) -> ConnState {
        match self.state.load(Ordering::SeqCst) {
            0 => ConnState::Serving,
            1 => ConnState::PreDrain,
            2 => ConnState::Draining,
            _ => ConnState::Forced,
        }
    }

    /// Tells every connection.
    pub(super) fn set(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

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
pub(super) struct ConnShared {
    pub(super) app: Arc<App>,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// Answers in flight now: from the request until hyper has taken the whole response body
    /// (HTTP/2 may have many). See [`Busy`].
    in_flight: AtomicUsize,
    /// The last write hyper made on the socket could not complete (the client reads slowly):
    /// hyper still holds bytes to send. Set by [`WriteWatch`].
    write_blocked: AtomicBool,
    /// Seen an HTTP/2 request: closing means GOAWAY, not `Connection: close`.
    is_h2: AtomicBool,
    /// Set by a request that wants the (HTTP/2) connection to get GOAWAY; `goaway` wakes the
    /// connection task.
    goaway_wanted: AtomicBool,
    goaway: Notify,
    accepted: Instant,
    /// The job queue of the worker this connection runs on.
    pub(super) queue: Arc<Queue>,
    pub(super) peer: SocketAddr,
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

/// One request: the answer, and the request's place in the counters until it is given (or the
/// client leaves and hyper drops it).
struct Answer {
    /// The request's share of its connection's `in_flight`: handed to the response body when
    /// the answer is given, so it lasts until the body has been sent; `None` after that.
    busy: Option<Busy>,
    /// The request's number on its connection.
    n: u64,
    h2: bool,
    started: Started,
}

/// One answer in flight on a connection (`ConnShared::in_flight`, and the connection counted
/// as busy while it has any); dropped when it is done.
struct Busy(Arc<ConnShared>);

impl Busy {
    fn enter(cs: Arc<ConnShared>) -> Busy {
        if cs.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            cs.app
                .shared
                .counters
                .connections_busy
                .fetch_add(1, Ordering::Relaxed);
        }
        Busy(cs)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0
                .app
                .shared
                .counters
                .connections_busy
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The response body as hyper sees it: the answer's body, keeping its connection counted as
/// busy until hyper has taken all of it (hyper drops the body then). The drain relies on it: a
/// connection whose handler has answered may still be sending a large or streamed body.
pub(super) struct SentBody {
    inner: ResponseBody,
    _busy: Busy,
}

impl http_body::Body for SentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn serve_request(cs: Arc<ConnShared>, req: http::Request<Incoming>) -> Answer {
    let n = cs.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let h2 = req.version() == http::Version::HTTP_2;
    if h2 {
        cs.is_h2.store(true, Ordering::Relaxed);
    }
    let busy = Busy::enter(cs);
    let cs = &busy.0;
    let counters = &cs.app.shared.counters;
    counters.requests_total.fetch_add(1, Ordering::Relaxed);
    counters.requests_active.fetch_add(1, Ordering::Relaxed);
    let started = dispatch::start(cs, req);
    Answer {
        busy: Some(busy),
        n,
        h2,
        started,
    }
}

impl Answer {
    /// Marks the answer as the connection's last when it must be.
    fn finish(cs: &ConnShared, n: u64, h2: bool, mut resp: Response) -> Response {
        let app = &cs.app;
        if closes_after(app, cs, n) {
            if h2 {
                cs.goaway_wanted.store(true, Ordering::SeqCst);
                cs.goaway.notify_one();
            } else {
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        if app.state.get() == ConnState::PreDrain {
            app.shared
                .counters
                .requests_during_delay
                .fetch_add(1, Ordering::Relaxed);
        }
        resp
    }
}

impl Future for Answer {
    type Output = Result<http::Response<SentBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let resp = std::task::ready!(self.started.poll_answer(cx));
        let busy = self.busy.take().expect("answer polled after completion");
        let cs = &busy.0;
        cs.app
            .shared
            .counters
            .requests_active
            .fetch_sub(1, Ordering::Relaxed);
        let resp = Answer::finish(cs, self.n, self.h2, resp);
        Poll::Ready(Ok(resp.map(|inner| SentBody { inner, _busy: busy })))
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // Not answered (the client left, or the stop was forced): the request ends here.
        if let Some(busy) = &self.busy {
            busy.0
                .app
                .shared
                .counters
                .requests_active
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The socket as hyper writes to it, noting whether the last write could not complete
/// (`ConnShared::write_blocked`): hyper ends every turn with a flush that stops only when its
/// buffer is empty or the socket is full, so after a turn "not blocked" means "nothing held".
pub(super) struct WriteWatch<T> {
    io: T,
    cs: Arc<ConnShared>,
}

impl<T> WriteWatch<T> {
    fn note<R>(&self, r: Poll<R>) -> Poll<R> {
        self.cs
            .write_blocked
            .store(r.is_pending(), Ordering::Relaxed);
        r
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteWatch<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.note(r)
    }
}

/// What woke the connection task, beyond hyper's own progress.
enum Event {
    Ended(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    State(ConnState),
    Goaway,
    Aged,
    GraceTick,
    IdleTick,
}

/// Serves one connection until it ends, is drained, or is cut.
pub(super) async fn serve_connection(
    app: Arc<App>,
    stream: sys::Stream,
    peer: SocketAddr,
    queue: Arc<Queue>,
) {
    let counters = &app.shared.counters;
    counters.connections_active.fetch_add(1, Ordering::Relaxed);
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let cs = Arc::new(ConnShared {
        app: app.clone(),
        requests: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        write_blocked: AtomicBool::new(false),
        is_h2: AtomicBool::new(false),
        goaway_wanted: AtomicBool::new(false),
        goaway: Notify::new(),
        accepted: Instant::now(),
        queue,
        peer,
    });
    let svc = {
        let cs = cs.clone();
        service_fn(move |req: http::Request<Incoming>| serve_request(cs.clone(), req))
    };
    let (io, probe) = sys::probe_input(stream);
    // Registered before the state is read, so no change can slip between the two.
    let changed = app.state.changed.notified();
    tokio::pin!(changed);
    changed.as_mut().enable();
    let mut seen = app.state.get();
    let goaway = cs.goaway.notified();
    tokio::pin!(goaway);
    // Boxed: the connection task then stays small, and tokio copies a task's whole future
    // several times when it ends (three 1 KiB copies per connection at the drain, measured).
    let io = WriteWatch { io, cs: cs.clone() };
    let mut conn = Box::pin(app.builder.serve_connection(TokioIo::new(io), svc));

    let mut seen_requests = 0u64;
    let mut drain = Drain::No;
    let idle_sleep = tokio::time::sleep(app.keepalive_idle_timeout);
    tokio::pin!(idle_sleep);
    let mut idle_tick = Deadline::new(idle_sleep);
    let mut grace_tick: Option<tokio::time::Interval> = None;
    // HTTP/2 connections past their age get GOAWAY even when idle (HTTP/1.1 ones close with
    // their next answer).
    let age_sleep = app
        .max_connection_age
        .map(|age| tokio::time::sleep_until((cs.accepted + age).into()));
    tokio::pin!(age_sleep);
    let mut age_limit = age_sleep.as_pin_mut().map(Deadline::new);

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
        // Never sent a complete request head (silent, or stuck in half-sent headers), or an
        // HTTP/1.1 connection idle between requests with every answer sent (no answer in
        // flight, and hyper holds nothing: its last write completed): nothing to finish, close
        // now (dropping the connection closes the socket; what the kernel holds is still sent,
        // then the client reads EOF). An answer in flight counts until hyper has taken its
        // whole body (see `SentBody`): the handler may have answered while a large or streamed
        // body is still being sent. Otherwise hyper's graceful shutdown: `Connection: close`
        // on the answer in flight and a close once it is written (HTTP/1.1), or (HTTP/2, idle
        // or not) a two-phase GOAWAY.
        let h2 = cs.is_h2.load(Ordering::Relaxed);
        let quiet = sys::CLOSE_IDLE_BY_DROP
            && cs.in_flight.load(Ordering::SeqCst) == 0
            && !cs.write_blocked.load(Ordering::Relaxed);
        (started > 0 && (h2 || !quiet)).then_some(Drain::Graceful)
    };

    // A connection accepted during the pre-drain delay, or just as the drain began, must see
    // it too.
    let mut ended_by_force = false;
    match seen {
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

    let mut changed_armed = false;
    let mut goaway_armed = false;
    loop {
        let event = std::future::poll_fn(|cx| {
            // The drain state first: an idle connection the drain closes is not polled again.
            // The first poll registers this task's waker; it stays registered (a task's waker
            // does not change), so later wakes only compare the state.
            if !changed_armed {
                changed_armed = true;
                if changed.as_mut().poll(cx).is_ready() {
                    changed_armed = false;
                }
            }
            let now = app.state.get();
            if now != seen {
                return Poll::Ready(Event::State(now));
            }
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Ended(r));
            }
            if drain == Drain::No {
                if !goaway_armed {
                    goaway_armed = true;
                    let _ = goaway.as_mut().poll(cx);
                }
                if cs.goaway_wanted.load(Ordering::SeqCst) {
                    return Poll::Ready(Event::Goaway);
                }
                if idle_tick.poll_elapsed(cx) {
                    return Poll::Ready(Event::IdleTick);
                }
            }
            if let Some(age) = age_limit.as_mut() {
                if age.poll_elapsed(cx) {
                    return Poll::Ready(Event::Aged);
                }
            }
            if let (Drain::Deferred { .. }, Some(t)) = (drain, grace_tick.as_mut()) {
                if t.poll_tick(cx).is_ready() {
                    return Poll::Ready(Event::GraceTick);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Ended(res) => {
                if let Err(e) = res {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                break;
            }
            Event::State(s) => {
                seen = s;
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
                            } else {
                                grace_tick = Some(tokio::time::interval(Duration::from_millis(2)));
                            }
                            drain = d;
                        }
                    },
                    ConnState::Draining => {}
                }
                // Still open: listen for the next change.
                changed.set(app.state.changed.notified());
                changed.as_mut().enable();
                changed_armed = false;
            }
            Event::Goaway => {
                conn.as_mut().graceful_shutdown();
                drain = Drain::Graceful;
            }
            Event::Aged => {
                age_limit = None;
                if drain == Drain::No && cs.is_h2.load(Ordering::Relaxed) {
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                }
            }
            Event::GraceTick => {
                let Drain::Deferred { until, baseline } = drain else {
                    continue;
                };
                let n = cs.requests.load(Ordering::Relaxed);
                if n > baseline || tokio::time::Instant::now() >= until {
                    if n == 0 {
                        break;
                    }
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                    grace_tick = None;
                }
            }
            Event::IdleTick => {
                let n = cs.requests.load(Ordering::Relaxed);
                if n == seen_requests {
                    tracing::debug!(%peer, "keep-alive idle timeout");
                    conn.as_mut().graceful_shutdown();
                    drain = Drain::Graceful;
                } else {
                    idle_tick.reset_after(app.keepalive_idle_timeout);
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

/// A timer that costs almost nothing on the many wakes of a busy connection. Polling a tokio
/// `Sleep` re-registers the waker each time (about a microsecond per request, measured); this
/// registers once and afterwards only reads whether the deadline has passed. The task's waker
/// does not change between polls, so the registration stays valid.
struct Deadline<'a> {
    sleep: Pin<&'a mut tokio::time::Sleep>,
    registered: bool,
}

impl<'a> Deadline<'a> {
    fn new(sleep: Pin<&'a mut tokio::time::Sleep>) -> Self {
        Deadline {
            sleep,
            registered: false,
        }
    }

    fn reset_after(&mut self, d: Duration) {
        self.sleep.as_mut().reset(tokio::time::Instant::now() + d);
        self.registered = false;
    }

    /// True once the deadline has passed (and stays true until reset).
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        if self.registered && !self.sleep.is_elapsed() {
            return false;
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => true,
            Poll::Pending => {
                self.registered = true;
                false
            }
        }
    }
}
