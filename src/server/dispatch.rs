//! One request: health paths, body limits, handing it to the host handler (run by the worker's
//! thread between turns of its event loop, or inline), the answer.
//!
//! [`start`] does everything that needs no waiting at once, so the future hyper keeps per
//! request ([`Started`]) is small: an answer already made, the receiver of the handler's
//! answer, or (only for a request with a body to read) a boxed future.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use super::conn::ConnShared;
use super::workers::{Call, Target};
use super::{App, Shared};
use crate::handler::{sanitize_framing, text_response, Handler, Reply, Request, Response};

thread_local! {
    /// The server whose handler this thread is running right now (0: none).
    static IN_HANDLER: Cell<u64> = const { Cell::new(0) };
}

/// True on a thread that is inside a host handler call (of any server) right now.
pub fn in_handler() -> bool {
    IN_HANDLER.with(|c| c.get()) != 0
}

/// True on a thread that is inside a handler call of server `id`.
pub(super) fn in_handler_of(id: u64) -> bool {
    IN_HANDLER.with(|c| c.get()) == id
}

/// Where a request's answer comes from.
pub(super) enum Started {
    /// Answered already (by the library, or by an inline handler during its call).
    Ready(Option<Response>),
    /// The handler answers through this.
    Handler(oneshot::Receiver<Response>),
    /// The body is being read first.
    Body(Pin<Box<dyn Future<Output = Response> + Send>>),
}

impl Started {
    /// The answer, once there is one.
    pub(super) fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Response> {
        match self {
            Started::Ready(r) => Poll::Ready(r.take().expect("answer polled after completion")),
            Started::Handler(rx) => Pin::new(rx).poll(cx).map(|r| from_handler(r.ok())),
            Started::Body(f) => f.as_mut().poll(cx),
        }
    }
}

/// The answer a handler gave, its framing taken in hand; a `500` when it gave none (it
/// panicked, or dropped its reply unanswered).
fn from_handler(r: Option<Response>) -> Response {
    match r {
        Some(mut r) => {
            sanitize_framing(&mut r);
            r
        }
        None => text_response(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error\n",
        ),
    }
}

fn too_large() -> Response {
    text_response(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large\n",
    )
}

/// The library's own answer on the health paths, if `path` is one of them: readiness is 200
/// `ready` until a drain is requested and 503 `draining` from then on; liveness is 200
/// `alive` for as long as the server answers at all.
fn health(app: &App, method: &http::Method, path: &str) -> Option<Response> {
    let ready = app.readiness_path.as_deref() == Some(path);
    if !ready && app.liveness_path.as_deref() != Some(path) {
        return None;
    }
    if method != http::Method::GET && method != http::Method::HEAD {
        let mut r = text_response(http::StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return Some(r);
    }
    Some(if !ready {
        text_response(http::StatusCode::OK, "alive")
    } else if app.shared.drain_requested.load(Ordering::SeqCst) {
        // The connection closes after this answer (see conn::closes_after).
        text_response(http::StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        text_response(http::StatusCode::OK, "ready")
    })
}

/// Starts answering `req`: at once when no waiting is needed.
pub(super) fn start(cs: &Arc<ConnShared>, req: http::Request<Incoming>) -> Started {
    let app = &cs.app;
    if app.readiness_path.is_some() || app.liveness_path.is_some() {
        if let Some(r) = health(app, req.method(), req.uri().path()) {
            return Started::Ready(Some(r));
        }
    }
    let (parts, body) = req.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return call(cs, parts, Bytes::new());
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body_bytes) {
        return Started::Ready(Some(too_large()));
    }
    let cs = cs.clone();
    Started::Body(Box::pin(async move {
        let limit = cs.app.max_body_bytes as usize;
        let body = match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return too_large();
                }
                tracing::debug!(peer = %cs.peer, "reading request body: {e}");
                return text_response(
                    http::StatusCode::BAD_REQUEST,
                    "could not read the request body\n",
                );
            }
        };
        let mut started = call(&cs, parts, body);
        std::future::poll_fn(|cx| started.poll_answer(cx)).await
    }))
}

/// A string with room for one more byte, so that a C host can have it NUL-terminated without a
/// copy (see `ffi::request`).
fn owned(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let mut o = String::with_capacity(s.len() + 1);
    o.push_str(s);
    o
}

/// Hands the request to the host's handler (or answers `200 OK` without one).
fn call(cs: &ConnShared, parts: http::request::Parts, body: Bytes) -> Started {
    let app = &cs.app;
    let Some(handler) = app.handler.as_ref() else {
        return Started::Ready(Some(text_response(http::StatusCode::OK, "OK")));
    };
    let request = Request {
        path: owned(parts.uri.path()),
        query: owned(parts.uri.query().unwrap_or("")),
        method: parts.method,
        version: parts.version,
        headers: parts.headers,
        body,
        // WASI accepts without asking for the peer (see sys::accept): an unspecified
        // address there means "unknown", never a real client.
        remote_addr: (!cs.peer.ip().is_unspecified()).then_some(cs.peer),
        drain: Some(app.shared.drain_requested.clone()),
    };
    let (reply, mut rx) = Reply::channel();
    if app.inline_handler {
        call_handler(&app.shared, &**handler, request, reply);
        // Answered during the call (the usual case): no need to wait for it.
        return match rx.try_recv() {
            Ok(r) => Started::Ready(Some(from_handler(Some(r)))),
            Err(oneshot::error::TryRecvError::Empty) => Started::Handler(rx),
            Err(oneshot::error::TryRecvError::Closed) => Started::Ready(Some(from_handler(None))),
        };
    }
    // Run by the thread that drives this worker, once its ready tasks have run (see
    // `workers`). If the worker stops first, the call is dropped, the reply with it, and the
    // client gets a 500.
    let mut request = request;
    detach(&mut request);
    cs.queue.submit(Call { request, reply });
    Started::Handler(rx)
}

/// Bodies up to this size are copied out of the connection's read buffer (see [`detach`]).
const DETACH_BODY_MAX: usize = 4096;

/// Gives a request that waits for its handler its own copy of what hyper hands out as slices of
/// the connection's read buffer (header values, a small body). Otherwise the buffer stays shared
/// while the handler runs, and hyper, reading on meanwhile, has to allocate a fresh one for
/// every request (an 8 KiB allocation on malloc's slow path: 0.5 us per request, measured);
/// this costs two small allocations and a copy of a few bytes.
fn detach(request: &mut Request) {
    let headers = &mut request.headers;
    let total: usize = headers.values().map(|v| v.len()).sum();
    if total > 0 {
        let mut buf = bytes::BytesMut::with_capacity(total);
        for v in headers.values() {
            buf.extend_from_slice(v.as_bytes());
        }
        let all = buf.freeze();
        let mut at = 0;
        // values_mut() visits the values in the order values() did.
        for v in headers.values_mut() {
            let n = v.len();
            // SAFETY: the bytes are a copy of `v`'s, which a HeaderValue already holds, so
            // they are a valid header value.
            let mut own =
                unsafe { http::HeaderValue::from_maybe_shared_unchecked(all.slice(at..at + n)) };
            own.set_sensitive(v.is_sensitive());
            *v = own;
            at += n;
        }
    }
    let body = &mut request.body;
    if !body.is_empty() && body.len() <= DETACH_BODY_MAX {
        *body = Bytes::copy_from_slice(body);
    }
}

/// What the worker threads run for each queued call.
pub(super) fn target(shared: Arc<Shared>, handler: Arc<dyn Handler>) -> Target {
    Arc::new(move |request, reply| call_handler(&shared, &*handler, request, reply))
}

fn call_handler(shared: &Shared, handler: &dyn Handler, request: Request, reply: Reply) {
    let outer = IN_HANDLER.with(|c| c.replace(shared.id));
    shared.handlers_in_host.fetch_add(1, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler.handle(request, reply)
    }));
    shared.handlers_in_host.fetch_sub(1, Ordering::SeqCst);
    IN_HANDLER.with(|c| c.set(outer));
    if let Err(p) = r {
        tracing::error!(
            "handler panicked: {}; answered 500",
            crate::panic::message(&*p)
        );
    }
}
