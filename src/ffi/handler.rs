//! The host's handler: the callback typedefs, and the core `Handler` that calls them.

use std::ffi::{c_char, c_void};

use super::request::server_request;
use crate::handler::{Reply, Request};

/// Called once per request, on a handler thread, possibly on many threads at once.
///
/// `req` is owned by the host from this moment: answer it with `server_respond` (or
/// `server_respond_stream`) now or later from any thread, and release it with
/// `server_request_free` exactly once. A request freed unanswered gets `500`.
///
/// The callback must return normally: leaving it by `longjmp`, a C++ exception or
/// `pthread_exit` (as CPython does to threads that call into Python during interpreter
/// finalisation) aborts the process. With `inline_handler` it runs on an async worker and must
/// not block.
pub type server_handler_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut server_request)>;

/// Called exactly once with `userdata` when the library no longer needs it: after the last
/// handler call has returned — normally before `server_wait` returns; after a forced stop with a
/// handler still stuck in host code, when that call returns — and also when the start fails
/// after reading the options. Not called when the start returns `SERVER_ERR_VERSION` or
/// `SERVER_ERR_ALREADY_RUNNING`: the options were not read and `userdata` stays yours.
pub type server_userdata_drop_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

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

impl crate::Handler for FfiHandler {
    fn handle(&self, req: Request, reply: Reply) {
        let raw = server_request::into_raw(req, reply);
        // SAFETY: the host's callback, with its userdata; ownership of the request passes to it.
        unsafe { (self.cb)(self.userdata, raw) };
    }
}

/// Keeps the typedefs referenced so cbindgen emits them next to the options.
#[allow(dead_code)]
fn _uses(_: server_handler_fn, _: server_userdata_drop_fn, _: *const c_char) {}
