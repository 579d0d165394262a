//! What a host handler sees (a fully read [`Request`]) and how it answers (a [`Reply`], usable
//! from any thread, inside the handler call or later).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};

/// A request whose head and body have been read completely.
#[derive(Debug)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: Method,
    /// The path, percent-encoding left as sent (`/sleep`).
    pub path: String,
    /// The query string without `?`, empty when absent.
    pub query: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub version: http::Version,
    /// The request headers.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
    /// The peer's address; `None` where the platform cannot tell (WASI).
    pub remote_addr: Option<SocketAddr>,
    /// The server's "drain requested" flag.
    pub(crate) drain: Option<Arc<AtomicBool>>,
}

impl Request {
    /// True once the server that received this request has been asked to drain (also during
    /// the pre-drain delay): a long poll may end early, a handler may fail its own health
    /// check.
    pub fn drain_requested(&self) -> bool {
        self.drain
            .as_ref()
            .is_some_and(|d| d.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Why a reply could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// The client went away, or the drain deadline cut the connection.
    Closed,
    /// The status code or a header was not valid HTTP.
    Invalid,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Closed => {
                f.write_str("the connection is gone (client left or stop forced)")
            }
            ReplyError::Invalid => f.write_str("invalid status code or header"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// The body of a response: all at once, or streamed from a [`BodyWriter`].
#[derive(Debug)]
pub enum ResponseBody {
    /// The whole body.
    Full(Option<Bytes>),
    /// Chunks sent by a [`BodyWriter`]; ends when the writer is dropped or finished.
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ResponseBody::Full(if b.is_empty() { None } else { Some(b) })
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// The response type the server writes.
pub type Response = http::Response<ResponseBody>;

/// The one-shot right to answer a request. Send it to another thread to answer later; drop it
/// unanswered and the client gets `500 Internal Server Error`.
#[derive(Debug)]
pub struct Reply {
    tx: oneshot::Sender<Response>,
}

/// Streams a response body. Dropping it (or [`BodyWriter::finish`]) ends the body.
#[derive(Debug)]
pub struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
}

impl Reply {
    pub(crate) fn channel() -> (Reply, oneshot::Receiver<Response>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, rx)
    }

    /// True once the answer can no longer reach the client (client gone, or stop forced).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Answers with a complete response.
    pub fn send(self, response: Response) -> Result<(), ReplyError> {
        if crate::server::send_answer(self.tx, response) {
            Ok(())
        } else {
            Err(ReplyError::Closed)
        }
    }

    /// Answers with `status`, `headers` and a complete `body`.
    pub fn send_parts<'a>(
        self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body: impl Into<Bytes>,
    ) -> Result<(), ReplyError> {
        let resp = build_response(status, headers, ResponseBody::full(body))?;
        self.send(resp)
    }

    /// Sends the status and headers now and returns a writer for the body.
    pub fn stream<'a>(
        self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<BodyWriter, ReplyError> {
        let (tx, rx) = mpsc::channel(16);
        let resp = build_response(status, headers, ResponseBody::Stream(rx))?;
        // Sent at once (never deferred like `send`): the writer may block on the client before
        // the handler returns.
        self.tx.send(resp).map_err(|_| ReplyError::Closed)?;
        Ok(BodyWriter { tx })
    }
}

impl BodyWriter {
    /// Sends one chunk, waiting while the client is slower than the writer. Must not be called
    /// from inside an async task (it blocks); use [`BodyWriter::send`] there.
    pub fn write_blocking(&self, chunk: impl Into<Bytes>) -> Result<(), ReplyError> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return if self.tx.is_closed() {
                Err(ReplyError::Closed)
            } else {
                Ok(())
            };
        }
        self.tx.blocking_send(chunk).map_err(|_| ReplyError::Closed)
    }

    /// Sends one chunk from async code.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), ReplyError> {
        self.tx
            .send(chunk.into())
            .await
            .map_err(|_| ReplyError::Closed)
    }

    /// True once the client can no longer receive the body.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Ends the body (the same as dropping the writer).
    pub fn finish(self) {}
}

/// Builds a response from raw status, header bytes and a body, validating each piece.
pub fn build_response<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    body: ResponseBody,
) -> Result<Response, ReplyError> {
    let status = StatusCode::from_u16(status).map_err(|_| ReplyError::Invalid)?;
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    let map = resp.headers_mut();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name).map_err(|_| ReplyError::Invalid)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| ReplyError::Invalid)?;
        map.append(name, value);
    }
    Ok(resp)
}

/// Takes the framing out of the handler's hands, for every host alike: the library sets
/// `Content-Length` from a complete body (a handler's own value could only disagree with it)
/// and chooses `Transfer-Encoding` itself; a streamed body keeps a valid single
/// `Content-Length` (a download of known size is sent with it, not chunked, as PEP 3333 and
/// net/http do). Hop-by-hop headers (`Keep-Alive`, `Proxy-Connection`, `Upgrade`) are dropped,
/// and `Connection` keeps only its meaning the library honours: a `close` token asks for the
/// connection to close after this response (HTTP/1.1; HTTP/2 has no such header).
pub(crate) fn sanitize_framing(resp: &mut Response) {
    let streamed = matches!(resp.body(), ResponseBody::Stream(_));
    let headers = resp.headers_mut();
    // Most answers carry none of these: look before changing anything (each removal hashes).
    let framing = headers.keys().any(|k| {
        k == http::header::CONTENT_LENGTH
            || k == http::header::TRANSFER_ENCODING
            || k == http::header::CONNECTION
            || k == http::header::UPGRADE
            || k.as_str() == "keep-alive"
            || k.as_str() == "proxy-connection"
    });
    if !framing {
        return;
    }
    let keep_length = streamed && {
        let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
        matches!(
            (values.next(), values.next()),
            (Some(v), None) if !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit)
        )
    };
    if !keep_length {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    headers.remove(http::header::TRANSFER_ENCODING);
    for hop in ["keep-alive", "proxy-connection", "upgrade"] {
        headers.remove(hop);
    }
    if let http::header::Entry::Occupied(e) = headers.entry(http::header::CONNECTION) {
        let close = e.iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        });
        let (_, _) = e.remove_entry_mult();
        if close {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// A plain-text response with a fixed status.
pub(crate) fn text_response(status: StatusCode, body: &'static str) -> Response {
    let mut resp = http::Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Answers requests. Called on a worker thread between turns of its event loop (inside the turn
/// when the config asks for inline handlers), possibly on many threads at once. A call that
/// blocks has its worker's other connections handed to another thread (see
/// [`crate::Config::handler_threads`]).
pub trait Handler: Send + Sync + 'static {
    /// Handle one request; answer through `reply` now or later, from any thread.
    fn handle(&self, request: Request, reply: Reply);
}

impl<F> Handler for F
where
    F: Fn(Request, Reply) + Send + Sync + 'static,
{
    fn handle(&self, request: Request, reply: Reply) {
        self(request, reply)
    }
}
