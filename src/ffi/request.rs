//! `server_request`: one request handed to a C handler, and the calls that read it.

use std::borrow::Cow;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::Mutex;

use bytes::Bytes;

use super::error::{fail, server_result};
use crate::handler::{Reply, Request};

/// One request, fully read. Opaque. Created by the library for each handler call; owned by the
/// host until it passes it to `server_request_free` (exactly once).
///
/// Lifecycle: handler receives it → read it with the `server_request_*` accessors → answer with
/// `server_respond` or `server_respond_stream` (once) → `server_request_free`.
///
/// Threading: it may move to any thread. Accessors and the answer calls may be used from one
/// thread at a time; `server_request_cancelled` from any thread at any time before the free.
pub struct server_request {
    pub(super) req: Request,
    pub(super) reply: Mutex<Option<Reply>>,
    method: Cow<'static, CStr>,
    path: Cow<'static, CStr>,
    query: Cow<'static, CStr>,
    /// Formatted on first use: most handlers never ask.
    remote: std::sync::OnceLock<CString>,
    /// `server_request_head`'s packed copy, made on first use.
    head: std::sync::OnceLock<Vec<u8>>,
}

/// The method as a C string: a constant for the standard methods.
fn method_cstr(m: &http::Method) -> Cow<'static, CStr> {
    use http::Method as M;
    let known: &'static CStr = match *m {
        M::GET => c"GET",
        M::POST => c"POST",
        M::PUT => c"PUT",
        M::DELETE => c"DELETE",
        M::HEAD => c"HEAD",
        M::OPTIONS => c"OPTIONS",
        M::PATCH => c"PATCH",
        M::CONNECT => c"CONNECT",
        M::TRACE => c"TRACE",
        _ => return Cow::Owned(cstring_lossy(m.as_str().to_owned())),
    };
    Cow::Borrowed(known)
}

/// Takes the string over as a C string: the core leaves room for the NUL, so this is the
/// request's own buffer, not a copy. Empty strings are a constant.
fn take_cstr(s: &mut String) -> Cow<'static, CStr> {
    if s.is_empty() {
        return Cow::Borrowed(c"");
    }
    Cow::Owned(cstring_lossy(std::mem::take(s)))
}

fn cstring_lossy(s: String) -> CString {
    // A NUL (impossible in a parsed method or URI, but the type allows it) is shown as %00.
    CString::new(s).unwrap_or_else(|e| {
        let fixed = String::from_utf8_lossy(&e.into_vec()).replace('\0', "%00");
        CString::new(fixed).unwrap_or_default()
    })
}

impl server_request {
    /// Boxes a request for the host; `server_request_free` takes it back.
    pub(super) fn into_raw(mut req: Request, reply: Reply) -> *mut server_request {
        Box::into_raw(Box::new(server_request {
            method: method_cstr(&req.method),
            path: take_cstr(&mut req.path),
            query: take_cstr(&mut req.query),
            remote: std::sync::OnceLock::new(),
            head: std::sync::OnceLock::new(),
            req,
            reply: Mutex::new(Some(reply)),
        }))
    }

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

    /// The head packed for `server_request_head`.
    fn packed_head(&self) -> Vec<u8> {
        let rq = &self.req;
        let version = match rq.version {
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            _ => "1.1",
        };
        let remote = rq.remote_addr.map(|a| a.to_string()).unwrap_or_default();
        let body_len = rq.body.len().to_string();
        let (method, path, query) = (
            self.method.to_bytes(),
            self.path.to_bytes(),
            self.query.to_bytes(),
        );
        let mut size = method.len() + path.len() + query.len() + remote.len() + 16;
        for (n, v) in rq.headers.iter() {
            size += n.as_str().len() + v.as_bytes().len() + 2;
        }
        let mut b = Vec::with_capacity(size);
        for field in [
            method,
            path,
            query,
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
    }
}

impl std::fmt::Debug for server_request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("server_request")
            .field("method", &self.req.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

unsafe fn req_ref<'a>(req: *const server_request) -> Option<&'a server_request> {
    // SAFETY: the caller passes a pointer it got from the library and has not freed.
    unsafe { req.as_ref() }
}

ffi_fn! {
    /// Returns the request method (`GET`, `POST`, …) as a NUL-terminated string, or NULL when
    /// `req` is NULL. Valid until `server_request_free(req)`.
    unsafe fn server_request_method(req: *const server_request) -> *const c_char {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.method.as_ptr())
    } ?= std::ptr::null()
}

ffi_fn! {
    /// Returns the request path (`/sleep`, percent-encoding as sent), NUL-terminated, or NULL
    /// when `req` is NULL. Valid until `server_request_free(req)`.
    unsafe fn server_request_path(req: *const server_request) -> *const c_char {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.path.as_ptr())
    } ?= std::ptr::null()
}

ffi_fn! {
    /// Returns the query string without `?` (`ms=100`; empty string when there is none),
    /// NUL-terminated, or NULL when `req` is NULL. Valid until `server_request_free(req)`.
    unsafe fn server_request_query(req: *const server_request) -> *const c_char {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| r.query.as_ptr())
    } ?= std::ptr::null()
}

ffi_fn! {
    /// Returns the peer address as `IP:PORT`, NUL-terminated (empty where the platform cannot
    /// tell, as on WASI), or NULL when `req` is NULL. Valid until `server_request_free(req)`.
    unsafe fn server_request_remote_addr(req: *const server_request) -> *const c_char {
        unsafe { req_ref(req) }.map_or(std::ptr::null(), |r| {
            r.remote
                .get_or_init(|| {
                    r.req
                        .remote_addr
                        .map(|a| cstring_lossy(a.to_string()))
                        .unwrap_or_default()
                })
                .as_ptr()
        })
    } ?= std::ptr::null()
}

ffi_fn! {
    /// Returns the HTTP version of the request: 10, 11 or 20 (0 when `req` is NULL).
    unsafe fn server_request_version(req: *const server_request) -> c_int {
        match unsafe { req_ref(req) }.map(|r| r.req.version) {
            Some(http::Version::HTTP_10) => 10,
            Some(http::Version::HTTP_11) => 11,
            Some(http::Version::HTTP_2) => 20,
            Some(_) => 0,
            None => 0,
        }
    } ?= 0
}

ffi_fn! {
    /// Points `*out`/`*out_len` at the whole request head packed in one buffer, for bindings in
    /// languages where each foreign call is costly: NUL-terminated fields, in this order —
    /// method, path (as sent), query (without `?`), peer address (`IP:PORT`, empty when
    /// unknown), HTTP version (`1.0`, `1.1` or `2`), body length (decimal), then each header
    /// field's lower-case name and value, in the order of `server_request_header_at`. No field
    /// contains a NUL byte. Valid until `server_request_free(req)`.
    ///
    /// Returns `SERVER_OK` or `SERVER_ERR_NULL_PARAMETER`. One thread at a time per request.
    unsafe fn server_request_head(
        req: *const server_request,
        out: *mut *const u8,
        out_len: *mut usize,
    ) -> c_int {
        check_null!(req, "req");
        check_null!(out, "out");
        check_null!(out_len, "out_len");
        // SAFETY: checked non-NULL; the caller owns a live request.
        let r = unsafe { &*req };
        let head = r.head.get_or_init(|| r.packed_head());
        // SAFETY: out and out_len are non-NULL.
        unsafe {
            *out = head.as_ptr();
            *out_len = head.len();
        }
        server_result::SERVER_OK as c_int
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Looks up the first value of header `name` (NUL-terminated, case-insensitive) and points
    /// `*out`/`*out_len` at its bytes (not NUL-terminated; may contain any byte but CR/LF/NUL).
    /// Valid until `server_request_free(req)`.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NOT_FOUND`, `SERVER_ERR_NULL_PARAMETER`, or
    /// `SERVER_ERR_INVALID_ARGUMENT` (name is not a valid header name).
    unsafe fn server_request_header(
        req: *const server_request,
        name: *const c_char,
        out: *mut *const u8,
        out_len: *mut usize,
    ) -> c_int {
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
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns the number of header fields in the request (a repeated header counts once per
    /// value); 0 when `req` is NULL.
    unsafe fn server_request_header_count(req: *const server_request) -> usize {
        unsafe { req_ref(req) }.map_or(0, |r| r.req.headers.len())
    } ?= 0
}

ffi_fn! {
    /// Points `*name`/`*name_len` (lower-case) and `*value`/`*value_len` at header field
    /// `index` (0-based, in arrival order grouped by name). Valid until
    /// `server_request_free(req)`.
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NOT_FOUND` (index out of range) or
    /// `SERVER_ERR_NULL_PARAMETER`.
    unsafe fn server_request_header_at(
        req: *const server_request,
        index: usize,
        name: *mut *const u8,
        name_len: *mut usize,
        value: *mut *const u8,
        value_len: *mut usize,
    ) -> c_int {
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
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Points `*out`/`*out_len` at the whole request body (`*out_len` is 0 for none; `*out` is
    /// then a valid non-NULL pointer to zero bytes). Valid until `server_request_free(req)`.
    ///
    /// Returns `SERVER_OK` or `SERVER_ERR_NULL_PARAMETER`.
    unsafe fn server_request_body(
        req: *const server_request,
        out: *mut *const u8,
        out_len: *mut usize,
    ) -> c_int {
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
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Returns 1 when the answer can no longer reach the client (the client went away or the
    /// stop was forced), 0 otherwise (also after the request was answered, or when `req` is
    /// NULL). Any thread, until `server_request_free(req)`.
    unsafe fn server_request_cancelled(req: *const server_request) -> c_int {
        let Some(r) = (unsafe { req_ref(req) }) else {
            return 0;
        };
        let g = r.reply.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().is_some_and(|rep| rep.is_closed()) as c_int
    } ?= 0
}

ffi_fn! {
    /// Returns 1 once the server that received `req` has been asked to drain (also during the
    /// pre-drain delay), else 0 (also for NULL): a long poll may end early. Any thread, until
    /// `server_request_free(req)`.
    unsafe fn server_request_drain_requested(req: *const server_request) -> c_int {
        unsafe { req_ref(req) }.map_or(0, |r| c_int::from(r.req.drain_requested()))
    } ?= 0
}

ffi_fn! {
    /// Releases `req`. If it was never answered the client gets `500 Internal Server Error`.
    /// NULL does nothing. Exactly once per request, from any thread; `req` is invalid
    /// afterwards.
    unsafe fn server_request_free(req: *mut server_request) {
        if !req.is_null() {
            // SAFETY: created by Box::into_raw for the handler call; freed once.
            drop(unsafe { Box::from_raw(req) });
        }
    }
}
