//! Requests handed to a C handler, and the calls that answer them.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

use bytes::Bytes;

use super::error::{fail, server_result};
use super::options::{server_handler_fn, server_userdata_drop_fn};
use crate::handler::{BodyWriter, Reply, ReplyError, Request};

/// One request, fully read. Opaque. Created by the library for each handler call; owned by the
/// host until it passes it to `server_request_free` (exactly once).
///
/// Lifecycle: handler receives it → read it with the `server_request_*` accessors → answer with
/// `server_respond` or `server_respond_stream` (once) → `server_request_free`.
///
/// Threading: it may move to any thread. Accessors and the answer calls may be used from one
/// thread at a time; `server_request_cancelled` from any thread at any time before the free.
pub struct server_request {
    req: Request,
    reply: Mutex<Option<Reply>>,
    method: CString,
    path: CString,
    query: CString,
    /// Formatted on first use: most handlers never ask.
    remote: std::sync::OnceLock<CString>,
    /// `server_request_head`'s packed copy, made on first use.
    head: std::sync::OnceLock<Vec<u8>>,
}

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

pub(crate) struct FfiHandler {
    cb: unsafe extern "C" fn(*mut c_void, *mut server_request),
    userdata: *mut c_void,
    drop_fn: server_userdata_drop_fn,
}

// SAFETY: the header documents that handler and userdata are used from many threads at once.
unsafe impl Send for FfiHandler {}
// SAFETY: as above.
unsafe impl Sync for FfiHandler {}

impl FfiHandler {
    pub(crate) fn new(
        cb: unsafe extern "C" fn(*mut c_void, *mut server_request),
        userdata: *mut c_void,
        drop_fn: server_userdata_drop_fn,
    ) -> Self {
        FfiHandler {
            cb,
            userdata,
            drop_fn,
        }
    }
}

impl Drop for FfiHandler {
    fn drop(&mut self) {
        if let Some(f) = self.drop_fn {
            // SAFETY: the host gave us this function for this pointer; called exactly once.
            unsafe { f(self.userdata) };
        }
    }
}

fn cstring_lossy(s: &str) -> CString {
    // One copy in the common case; a NUL (possible only in odd paths) is shown as %00.
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "%00")).unwrap_or_default())
}

impl crate::Handler for FfiHandler {
    fn handle(&self, req: Request, reply: Reply) {
        let boxed = Box::new(server_request {
            method: cstring_lossy(req.method.as_str()),
            path: cstring_lossy(&req.path),
            query: cstring_lossy(&req.query),
            remote: std::sync::OnceLock::new(),
            head: std::sync::OnceLock::new(),
            req,
            reply: Mutex::new(Some(reply)),
        });
        // SAFETY: the host's callback, with its userdata; ownership of the request passes to it.
        unsafe { (self.cb)(self.userdata, Box::into_raw(boxed)) };
    }
}

impl server_request {
    /// Answers `503 Service Unavailable` (for a host that no longer takes requests) and frees
    /// the request.
    pub(crate) fn reject_unavailable(self: Box<Self>) {
        let reply = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(reply) = reply {
            let _ = reply.send(crate::handler::text_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable\n",
            ));
        }
    }
}

// Keep the type alias referenced so cbindgen emits it next to the options.
#[allow(dead_code)]
fn _uses(_: server_handler_fn) {}

unsafe fn req_ref<'a>(req: *const server_request) -> Option<&'a server_request> {
    // SAFETY: the caller passes a pointer it got from the library and has not freed.
    unsafe { req.as_ref() }
}

/// Returns the request method (`GET`, `POST`, …) as a NUL-terminated string, or NULL when `req`
/// is NULL. Valid until `server_request_free(req)`.
#[no_mangle]
pub unsafe extern "C" fn server_request_method(req: *const server_request) -> *const c_char {
    ffi_guard!(std::ptr::null(), {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.method.as_ptr())
    })
}

/// Returns the request path (`/sleep`, percent-encoding as sent), NUL-terminated, or NULL when
/// `req` is NULL. Valid until `server_request_free(req)`.
#[no_mangle]
pub unsafe extern "C" fn server_request_path(req: *const server_request) -> *const c_char {
    ffi_guard!(std::ptr::null(), {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.path.as_ptr())
    })
}

/// Returns the query string without `?` (`ms=100`; empty string when there is none),
/// NUL-terminated, or NULL when `req` is NULL. Valid until `server_request_free(req)`.
#[no_mangle]
pub unsafe extern "C" fn server_request_query(req: *const server_request) -> *const c_char {
    ffi_guard!(std::ptr::null(), {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.query.as_ptr())
    })
}

/// Returns the peer address as `IP:PORT`, NUL-terminated (empty where the platform cannot
/// tell, as on WASI), or NULL when `req` is NULL. Valid until `server_request_free(req)`.
#[no_mangle]
pub unsafe extern "C" fn server_request_remote_addr(req: *const server_request) -> *const c_char {
    ffi_guard!(std::ptr::null(), {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| {
            r.remote
                .get_or_init(|| {
                    r.req
                        .remote_addr
                        .map(|a| cstring_lossy(&a.to_string()))
                        .unwrap_or_default()
                })
                .as_ptr()
        })
    })
}

/// Returns the HTTP version of the request: 10, 11 or 20 (0 when `req` is NULL).
#[no_mangle]
pub unsafe extern "C" fn server_request_version(req: *const server_request) -> c_int {
    ffi_guard!(0, {
        match unsafe { req_ref(req) }.map(|r| r.req.version) {
            Some(http::Version::HTTP_10) => 10,
            Some(http::Version::HTTP_11) => 11,
            Some(http::Version::HTTP_2) => 20,
            Some(_) => 0,
            None => 0,
        }
    })
}

/// Points `*out`/`*out_len` at the whole request head packed in one buffer, for bindings in
/// languages where each foreign call is costly: NUL-terminated fields, in this order —
/// method, path (as sent), query (without `?`), peer address (`IP:PORT`, empty when unknown),
/// HTTP version (`1.0`, `1.1` or `2`), body length (decimal), then each header field's
/// lower-case name and value, in the order of `server_request_header_at`. No field contains a
/// NUL byte. Valid until `server_request_free(req)`.
///
/// Returns `SERVER_OK` or `SERVER_ERR_NULL_PARAMETER`. One thread at a time per request.
#[no_mangle]
pub unsafe extern "C" fn server_request_head(
    req: *const server_request,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(req, "req");
        check_null!(out, "out");
        check_null!(out_len, "out_len");
        // SAFETY: checked non-NULL; the caller owns a live request.
        let r = unsafe { &*req };
        let head = r.head.get_or_init(|| {
            let rq = &r.req;
            let version = match rq.version {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                _ => "1.1",
            };
            let remote = rq.remote_addr.map(|a| a.to_string()).unwrap_or_default();
            let body_len = rq.body.len().to_string();
            let mut size =
                r.method.as_bytes().len() + rq.path.len() + rq.query.len() + remote.len() + 16;
            for (n, v) in rq.headers.iter() {
                size += n.as_str().len() + v.as_bytes().len() + 2;
            }
            let mut b = Vec::with_capacity(size);
            for field in [
                r.method.as_bytes(),
                r.path.as_bytes(),
                r.query.as_bytes(),
                remote.as_bytes(),
                version.as_bytes(),
                body_len.as_bytes(),
            ] {
                b.extend_from_slice(field);
                b.push(0);
            }
            for (n, v) in rq.headers.iter() {
                b.extend_from_slice(n.as_str().as_bytes());
                b.push(0);
                // A header value never holds NUL (hyper rejects it), so it cannot split a field.
                b.extend_from_slice(v.as_bytes());
                b.push(0);
            }
            b
        });
        // SAFETY: out and out_len are non-NULL.
        unsafe {
            *out = head.as_ptr();
            *out_len = head.len();
        }
        server_result::SERVER_OK as c_int
    })
}

/// Looks up the first value of header `name` (NUL-terminated, case-insensitive) and points
/// `*out`/`*out_len` at its bytes (not NUL-terminated; may contain any byte but CR/LF/NUL).
/// Valid until `server_request_free(req)`.
///
/// Returns `SERVER_OK`, `SERVER_ERR_NOT_FOUND`, `SERVER_ERR_NULL_PARAMETER`, or
/// `SERVER_ERR_INVALID_ARGUMENT` (name is not a valid header name).
#[no_mangle]
pub unsafe extern "C" fn server_request_header(
    req: *const server_request,
    name: *const c_char,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(req, "req");
        check_null!(name, "name");
        check_null!(out, "out");
        check_null!(out_len, "out_len");
        // SAFETY: checked non-NULL above; pointers come from the caller per the contract.
        let (r, name) = unsafe { (&*req, CStr::from_ptr(name)) };
        let Ok(hn) = http::HeaderName::from_bytes(name.to_bytes()) else {
            return fail(
                server_result::SERVER_ERR_INVALID_ARGUMENT,
                format!("{name:?} is not a valid header name"),
            );
        };
        match r.req.headers.get(&hn) {
            Some(v) => {
                // SAFETY: out and out_len are non-NULL.
                unsafe {
                    *out = v.as_bytes().as_ptr();
                    *out_len = v.as_bytes().len();
                }
                server_result::SERVER_OK as c_int
            }
            None => server_result::SERVER_ERR_NOT_FOUND as c_int,
        }
    })
}

/// Returns the number of header fields in the request (a repeated header counts once per
/// value); 0 when `req` is NULL.
#[no_mangle]
pub unsafe extern "C" fn server_request_header_count(req: *const server_request) -> usize {
    ffi_guard!(0, {
        unsafe { req_ref(req) }.map_or(0, |r| r.req.headers.len())
    })
}

/// Points `*name`/`*name_len` (lower-case) and `*value`/`*value_len` at header field `index`
/// (0-based, in arrival order grouped by name). Valid until `server_request_free(req)`.
///
/// Returns `SERVER_OK`, `SERVER_ERR_NOT_FOUND` (index out of range) or
/// `SERVER_ERR_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn server_request_header_at(
    req: *const server_request,
    index: usize,
    name: *mut *const u8,
    name_len: *mut usize,
    value: *mut *const u8,
    value_len: *mut usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(req, "req");
        check_null!(name, "name");
        check_null!(name_len, "name_len");
        check_null!(value, "value");
        check_null!(value_len, "value_len");
        // SAFETY: checked non-NULL above.
        let r = unsafe { &*req };
        match r.req.headers.iter().nth(index) {
            Some((n, v)) => {
                // SAFETY: all out-pointers are non-NULL.
                unsafe {
                    *name = n.as_str().as_ptr();
                    *name_len = n.as_str().len();
                    *value = v.as_bytes().as_ptr();
                    *value_len = v.as_bytes().len();
                }
                server_result::SERVER_OK as c_int
            }
            None => server_result::SERVER_ERR_NOT_FOUND as c_int,
        }
    })
}

/// Points `*out`/`*out_len` at the whole request body (`*out_len` is 0 for none; `*out` is then
/// a valid non-NULL pointer to zero bytes). Valid until `server_request_free(req)`.
///
/// Returns `SERVER_OK` or `SERVER_ERR_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn server_request_body(
    req: *const server_request,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(req, "req");
        check_null!(out, "out");
        check_null!(out_len, "out_len");
        // SAFETY: checked non-NULL above.
        let r = unsafe { &*req };
        let b: &Bytes = &r.req.body;
        let p = if b.is_empty() {
            std::ptr::NonNull::<u8>::dangling().as_ptr() as *const u8
        } else {
            b.as_ptr()
        };
        // SAFETY: out and out_len are non-NULL.
        unsafe {
            *out = p;
            *out_len = b.len();
        }
        server_result::SERVER_OK as c_int
    })
}

/// Returns 1 when the answer can no longer reach the client (the client went away or the stop
/// was forced), 0 otherwise (also after the request was answered, or when `req` is NULL).
/// Any thread, until `server_request_free(req)`.
#[no_mangle]
pub unsafe extern "C" fn server_request_cancelled(req: *const server_request) -> c_int {
    ffi_guard!(0, {
        let Some(r) = (unsafe { req_ref(req) }) else {
            return 0;
        };
        let g = r.reply.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().is_some_and(|rep| rep.is_closed()) as c_int
    })
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

unsafe fn collect_headers<'a>(
    headers: *const server_header,
    n: usize,
) -> Result<HeaderPairs<'a>, c_int> {
    if n == 0 {
        return Ok(Vec::new());
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
    let mut v = Vec::with_capacity(n);
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
        // SAFETY: non-NULL and the caller promises the lengths.
        let name = unsafe { std::slice::from_raw_parts(h.name, h.name_len) };
        let value = if h.value_len == 0 {
            &[][..]
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(h.value, h.value_len) }
        };
        v.push((name, value));
    }
    Ok(v)
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
    check_len(len, || "headers_len".into(), 10_000 * 2 * MAX_HEADER_FIELD)?;
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

/// Answers `req` with `status`, `n_headers` headers and the `body_len` bytes at `body`. The
/// library copies headers and body before returning. `Content-Length` is set for you. Does not
/// free `req` (call `server_request_free`).
///
/// Returns `SERVER_OK`; `SERVER_ERR_CLOSED` (client gone or stop forced: nothing was sent);
/// `SERVER_ERR_ALREADY_USED` (already answered); `SERVER_ERR_INVALID_ARGUMENT` (bad status or
/// header: the request stays unanswered, so you may answer again); `SERVER_ERR_NULL_PARAMETER`
/// (`req` NULL, or `headers`/`body` NULL with a non-zero count). Any thread, one at a time per
/// request.
#[no_mangle]
pub unsafe extern "C" fn server_respond(
    req: *mut server_request,
    status: u16,
    headers: *const server_header,
    n_headers: usize,
    body: *const u8,
    body_len: usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        // SAFETY: the caller's pointers, per this function's contract.
        unsafe {
            let hs = collect_headers(headers, n_headers);
            respond_with(req, status, hs, body, body_len, |reply, resp| {
                reply.send(resp)
            })
        }
    })
}

/// `server_respond`'s checks and conversions; `deliver` hands the built response over.
pub(crate) unsafe fn respond_with(
    req: *mut server_request,
    status: u16,
    headers: Result<HeaderPairs<'_>, c_int>,
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

/// Sends the status and headers of `req` now and returns, in `*out`, a stream for the body
/// (chunked on HTTP/1.1). Write with `server_stream_write`; end and free with
/// `server_stream_free`. The stream is independent of `req`, which you still free.
///
/// Returns `SERVER_OK`, `SERVER_ERR_CLOSED`, `SERVER_ERR_ALREADY_USED`,
/// `SERVER_ERR_INVALID_ARGUMENT` (request left unanswered) or `SERVER_ERR_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn server_respond_stream(
    req: *mut server_request,
    status: u16,
    headers: *const server_header,
    n_headers: usize,
    out: *mut *mut server_stream,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
        check_null!(req, "req");
        check_null!(out, "out");
        // SAFETY: checked non-NULL.
        let r = unsafe { &*req };
        let hs = match unsafe { collect_headers(headers, n_headers) } {
            Ok(h) => h,
            Err(code) => return code,
        };
        // Validate before consuming the reply, so a bad header leaves the request answerable.
        if crate::handler::build_response(
            status,
            hs.iter().copied(),
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
        match reply.stream(status, hs) {
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
    })
}

/// Appends `len` bytes at `data` to the streamed body, blocking while the client is slower than
/// the writer. Copies the bytes. Must not be called on an async worker thread (an
/// `inline_handler`): use a handler thread or your own thread.
///
/// Returns `SERVER_OK`, `SERVER_ERR_CLOSED` (client gone; stop writing) or
/// `SERVER_ERR_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn server_stream_write(
    stream: *mut server_stream,
    data: *const u8,
    len: usize,
) -> c_int {
    ffi_guard!(server_result::SERVER_ERR_PANIC as c_int, {
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
    })
}

/// Ends the streamed body and frees `stream`. NULL does nothing. Any thread.
#[no_mangle]
pub unsafe extern "C" fn server_stream_free(stream: *mut server_stream) {
    ffi_guard!((), {
        if !stream.is_null() {
            // SAFETY: created by Box::into_raw in server_respond_stream; freed once.
            drop(unsafe { Box::from_raw(stream) });
        }
    })
}

/// Releases `req`. If it was never answered the client gets `500 Internal Server Error`. NULL
/// does nothing. Exactly once per request, from any thread; `req` is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn server_request_free(req: *mut server_request) {
    ffi_guard!((), {
        if !req.is_null() {
            // SAFETY: created by Box::into_raw for the handler call; freed once.
            drop(unsafe { Box::from_raw(req) });
        }
    })
}

impl std::fmt::Debug for server_request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("server_request")
            .field("method", &self.req.method)
            .field("path", &self.req.path)
            .finish_non_exhaustive()
    }
}
