//! The calls that answer a request: a whole response, or a streamed body.

use std::ffi::c_int;

use bytes::Bytes;

use super::error::{fail, server_result};
use super::request::server_request;
use crate::handler::{BodyWriter, Reply, ReplyError};

/// A streamed response body. Opaque. Created by `server_respond_stream`, written with
/// `server_stream_write` (one thread at a time), ended and freed by `server_stream_free`.
pub struct server_stream {
    writer: BodyWriter,
}

/// One response header: `name` and `value` are byte strings of the given lengths (no NUL
/// needed). The library copies them during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct server_header {
    /// Header name bytes (a valid HTTP token).
    pub name: *const u8,
    /// Length of `name`.
    pub name_len: usize,
    /// Header value bytes (no CR, LF or NUL).
    pub value: *const u8,
    /// Length of `value`.
    pub value_len: usize,
}

pub(crate) type HeaderPairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Largest header name or value accepted in a response.
const MAX_HEADER_FIELD: usize = 1 << 20;

/// Rejects lengths no real buffer can have (over `isize::MAX`, which `slice::from_raw_parts`
/// forbids) before any memory is touched.
fn check_len(len: usize, what: impl FnOnce() -> String, max: usize) -> Result<(), c_int> {
    if len > max {
        return Err(fail(
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            format!("{} = {len} is absurd (at most {max})", what()),
        ));
    }
    Ok(())
}

/// The caller's headers, each checked for absurd lengths and NULL pointers (not yet for valid
/// HTTP: `build_response` does that).
unsafe fn header_slice<'a>(
    headers: *const server_header,
    n: usize,
) -> Result<&'a [server_header], c_int> {
    if n == 0 {
        return Ok(&[]);
    }
    if headers.is_null() {
        return Err(fail(
            server_result::SERVER_ERR_NULL_PARAMETER,
            "argument `headers` is NULL but n_headers > 0",
        ));
    }
    if n > 10_000 {
        return Err(fail(
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            format!("n_headers = {n} is absurd (at most 10000)"),
        ));
    }
    // SAFETY: the caller promises `n` readable entries.
    let hs = unsafe { std::slice::from_raw_parts(headers, n) };
    for (i, h) in hs.iter().enumerate() {
        check_len(
            h.name_len,
            || format!("headers[{i}].name_len"),
            MAX_HEADER_FIELD,
        )?;
        check_len(
            h.value_len,
            || format!("headers[{i}].value_len"),
            MAX_HEADER_FIELD,
        )?;
        if h.name.is_null() || (h.value.is_null() && h.value_len > 0) {
            return Err(fail(
                server_result::SERVER_ERR_NULL_PARAMETER,
                format!("headers[{i}] has a NULL name or value"),
            ));
        }
    }
    Ok(hs)
}

/// The (name, value) byte pairs of headers checked by `header_slice`.
fn header_pairs(hs: &[server_header]) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    hs.iter().map(|h| {
        // SAFETY: `header_slice` checked the pointers are non-NULL (a value may be NULL only
        // when empty) and the caller promises the lengths.
        let name = unsafe { std::slice::from_raw_parts(h.name, h.name_len) };
        let value = if h.value_len == 0 {
            &[][..]
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(h.value, h.value_len) }
        };
        (name, value)
    })
}

/// Header fields packed as `name\0value\0name\0value\0…` (the layout of
/// `server_request_head`'s headers): `len` bytes at `packed`, NULL when `len` is 0.
pub(crate) unsafe fn packed_headers<'a>(
    packed: *const u8,
    len: usize,
) -> Result<HeaderPairs<'a>, c_int> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if packed.is_null() {
        return Err(fail(
            server_result::SERVER_ERR_NULL_PARAMETER,
            "argument `headers` is NULL but headers_len > 0",
        ));
    }
    check_len(
        len,
        || "headers_len".into(),
        (20_000usize).saturating_mul(MAX_HEADER_FIELD),
    )?;
    // SAFETY: the caller promises `len` readable bytes.
    let buf = unsafe { std::slice::from_raw_parts(packed, len) };
    let Some(body) = buf.strip_suffix(&[0]) else {
        return Err(fail(
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            "packed headers must end with a NUL byte",
        ));
    };
    let fields: Vec<&[u8]> = body.split(|b| *b == 0).collect();
    if fields.len() % 2 != 0 || fields.len() > 20_000 {
        return Err(fail(
            server_result::SERVER_ERR_INVALID_ARGUMENT,
            format!(
                "packed headers hold {} fields: not name/value pairs (at most 10000)",
                fields.len()
            ),
        ));
    }
    Ok(fields.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// `server_respond`'s checks and conversions; `deliver` hands the built response over.
pub(crate) unsafe fn respond_with<'a>(
    req: *mut server_request,
    status: u16,
    headers: Result<impl IntoIterator<Item = (&'a [u8], &'a [u8])>, c_int>,
    body: *const u8,
    body_len: usize,
    deliver: impl FnOnce(Reply, crate::handler::Response) -> Result<(), ReplyError>,
) -> c_int {
    check_null!(req, "req");
    if let Err(code) = check_len(body_len, || "body_len".into(), isize::MAX as usize) {
        return code;
    }
    if body.is_null() && body_len > 0 {
        return fail(
            server_result::SERVER_ERR_NULL_PARAMETER,
            "argument `body` is NULL but body_len > 0",
        );
    }
    // SAFETY: checked non-NULL; the caller owns a live request.
    let r = unsafe { &*req };
    let hs = match headers {
        Ok(h) => h,
        Err(code) => return code,
    };
    let body = if body_len == 0 {
        Bytes::new()
    } else {
        // SAFETY: non-NULL with body_len readable bytes per the contract.
        Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(body, body_len) })
    };
    let resp = match crate::handler::build_response(
        status,
        hs,
        crate::handler::ResponseBody::full(body),
    ) {
        Ok(r) => r,
        Err(_) => return invalid_response(status),
    };
    let reply = match take_reply(r) {
        Ok(rep) => rep,
        Err(code) => return code,
    };
    match deliver(reply, resp) {
        Ok(()) => server_result::SERVER_OK as c_int,
        Err(_) => fail(
            server_result::SERVER_ERR_CLOSED,
            "the client is gone (or the stop was forced); the response was dropped",
        ),
    }
}

fn take_reply(req: &server_request) -> Result<Reply, c_int> {
    req.reply
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| {
            fail(
                server_result::SERVER_ERR_ALREADY_USED,
                "the request was already answered",
            )
        })
}

fn invalid_response(status: u16) -> c_int {
    fail(
        server_result::SERVER_ERR_INVALID_ARGUMENT,
        format!("invalid response: status {status} must be 100..=999 and every header a valid name and value"),
    )
}

ffi_fn! {
    /// Answers `req` with `status`, `n_headers` headers and the `body_len` bytes at `body`. The
    /// library copies headers and body before returning. The library frames the body itself:
    /// it sets `Content-Length` and drops a handler's own `Content-Length`,
    /// `Transfer-Encoding`, `Keep-Alive`, `Proxy-Connection` and `Upgrade`; a `Connection`
    /// header with a `close` token closes the connection after this response (HTTP/1.1). Does
    /// not free `req` (call `server_request_free`).
    ///
    /// Returns `SERVER_OK`; `SERVER_ERR_CLOSED` (client gone or stop forced: nothing was sent);
    /// `SERVER_ERR_ALREADY_USED` (already answered); `SERVER_ERR_INVALID_ARGUMENT` (bad status or
    /// header: the request stays unanswered, so you may answer again); `SERVER_ERR_NULL_PARAMETER`
    /// (`req` NULL, or `headers`/`body` NULL with a non-zero count). Any thread, one at a time per
    /// request.
    unsafe fn server_respond(
        req: *mut server_request,
        status: u16,
        headers: *const server_header,
        n_headers: usize,
        body: *const u8,
        body_len: usize,
    ) -> c_int {
        // SAFETY: the caller's pointers, per this function's contract.
        unsafe {
            let hs = header_slice(headers, n_headers).map(header_pairs);
            respond_with(req, status, hs, body, body_len, |reply, resp| reply.send(resp))
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Sends the status and headers of `req` now and returns, in `*out`, a stream for the body
    /// (chunked on HTTP/1.1). Write with `server_stream_write`; end and free with
    /// `server_stream_free`. The stream is independent of `req`, which you still free.
    /// A valid `Content-Length` among `headers` is kept: the body is then sent with that
    /// length instead of chunked, and must have exactly that many bytes (a shorter one ends
    /// the connection). `Transfer-Encoding` and hop-by-hop headers are dropped.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_CLOSED`, `SERVER_ERR_ALREADY_USED`,
    /// `SERVER_ERR_INVALID_ARGUMENT` (request left unanswered) or `SERVER_ERR_NULL_PARAMETER`.
    unsafe fn server_respond_stream(
        req: *mut server_request,
        status: u16,
        headers: *const server_header,
        n_headers: usize,
        out: *mut *mut server_stream,
    ) -> c_int {
        check_null!(req, "req");
        check_null!(out, "out");
        // SAFETY: checked non-NULL.
        let r = unsafe { &*req };
        let hs = match unsafe { header_slice(headers, n_headers) } {
            Ok(h) => h,
            Err(code) => return code,
        };
        // Validate before consuming the reply, so a bad header leaves the request answerable.
        if crate::handler::build_response(
            status,
            header_pairs(hs),
            crate::handler::ResponseBody::full(Bytes::new()),
        )
        .is_err()
        {
            return invalid_response(status);
        }
        let reply = match take_reply(r) {
            Ok(rep) => rep,
            Err(code) => return code,
        };
        match reply.stream(status, header_pairs(hs)) {
            Ok(writer) => {
                // SAFETY: out is non-NULL.
                unsafe { *out = Box::into_raw(Box::new(server_stream { writer })) };
                server_result::SERVER_OK as c_int
            }
            Err(ReplyError::Invalid) => unreachable!("validated above"),
            Err(ReplyError::Closed) => fail(
                server_result::SERVER_ERR_CLOSED,
                "the client is gone (or the stop was forced); the response was dropped",
            ),
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Appends `len` bytes at `data` to the streamed body, blocking while the client is slower than
    /// the writer. Copies the bytes. Must not be called on an async worker thread (an
    /// `inline_handler`): use a handler thread or your own thread.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_CLOSED` (client gone; stop writing) or
    /// `SERVER_ERR_NULL_PARAMETER`.
    unsafe fn server_stream_write(
        stream: *mut server_stream,
        data: *const u8,
        len: usize,
    ) -> c_int {
        check_null!(stream, "stream");
        if let Err(code) = check_len(len, || "len".into(), isize::MAX as usize) {
            return code;
        }
        if data.is_null() && len > 0 {
            return fail(
                server_result::SERVER_ERR_NULL_PARAMETER,
                "argument `data` is NULL but len > 0",
            );
        }
        // SAFETY: checked non-NULL; the caller owns the stream.
        let s = unsafe { &*stream };
        let chunk = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: non-NULL with len readable bytes.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, len) })
        };
        match s.writer.write_blocking(chunk) {
            Ok(()) => server_result::SERVER_OK as c_int,
            Err(_) => fail(server_result::SERVER_ERR_CLOSED, "the client is gone"),
        }
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Ends the streamed body and frees `stream`. NULL does nothing. Any thread.
    unsafe fn server_stream_free(stream: *mut server_stream) {
        if !stream.is_null() {
            // SAFETY: created by Box::into_raw in server_respond_stream; freed once.
            drop(unsafe { Box::from_raw(stream) });
        }
    }
}
