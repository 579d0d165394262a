//! One request: body limits, the host handler (on a handler thread or inline), the answer.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{App, Counters, Shared};
use crate::handler::{
    sanitize_framing, text_response, Handler, Reply, Request, Response, ResponseBody,
};

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

struct ActiveRequest<'a>(&'a Counters);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.requests_active.fetch_sub(1, Ordering::Relaxed);
    }
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

pub(super) async fn handle(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Response {
    let counters = &app.shared.counters;
    counters.requests_total.fetch_add(1, Ordering::Relaxed);
    counters.requests_active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveRequest(counters);

    if app.readiness_path.is_some() || app.liveness_path.is_some() {
        if let Some(r) = health(app, req.method(), req.uri().path()) {
            return r;
        }
    }
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body_bytes) {
        return text_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        );
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
                    return text_response(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    );
                }
                tracing::debug!(%peer, "reading request body: {e}");
                return text_response(
                    http::StatusCode::BAD_REQUEST,
                    "could not read the request body\n",
                );
            }
        }
    };

    let Some(handler) = app.handler.clone() else {
        return text_response(http::StatusCode::OK, "OK");
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
        drain: Some(app.shared.drain_requested.clone()),
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
    match rx.await {
        Ok(mut resp) => {
            let streamed = matches!(resp.body(), ResponseBody::Stream(_));
            sanitize_framing(resp.headers_mut(), streamed);
            resp
        }
        Err(_) => text_response(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error\n",
        ),
    }
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
