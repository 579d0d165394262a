//! The host's handler: the callback typedefs, and the core `Handler` that calls them.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::request::server_request;
use crate::events::{Event, EventHook, EventKind};
use crate::handler::{Reply, Request};

/// Called once per request, possibly on many threads at once. By default it runs on the thread
/// of the worker that serves the connection, between turns of that worker's event loop; a call
/// that blocks (sleeps, waits on a lock or a database) is not a problem: within one to two
/// milliseconds another thread takes over the worker's other connections, and up to
/// `handler_threads` calls may block at once.
///
/// `req` is owned by the host from this moment: answer it with `server_respond` (or
/// `server_respond_stream`) now or later from any thread, and release it with
/// `server_request_free` exactly once. A request freed unanswered gets `500`.
///
/// The callback must return normally: leaving it by `longjmp`, a C++ exception or
/// `pthread_exit` (as CPython does to threads that call into Python during interpreter
/// finalisation) aborts the process. With `inline_handler` it runs inside the event loop's turn
/// and must not block: nothing takes that worker over.
pub type server_handler_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut server_request)>;

/// Called exactly once with `userdata` when the library no longer needs it: after the last
/// handler call has returned — normally before `server_wait` returns; after a forced stop with a
/// handler still stuck in host code, when that call returns — and also when the start fails
/// after reading the options. Not called when the start returns `SERVER_ERR_VERSION` or
/// `SERVER_ERR_ALREADY_RUNNING`: the options were not read and `userdata` stays yours.
pub type server_userdata_drop_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// What a lifecycle event was, passed to `server_event_fn`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum server_event_kind {
    /// A drain was requested: the pre-drain delay (if any) or the drain begins. The message
    /// gives the cause, the delay, the deadline and the connections open.
    SERVER_EVENT_DRAIN_STARTED = 1,
    /// The server stopped: graceful in N ms, or forced with the number of connections cut.
    SERVER_EVENT_STOPPED = 2,
    /// An in-place upgrade's new process reported ready; this server drains now.
    SERVER_EVENT_UPGRADE_READY = 3,
    /// An in-place upgrade failed (the message says why); this server keeps serving.
    SERVER_EVENT_UPGRADE_FAILED = 4,
}

/// Called on lifecycle events with the options' `userdata`, the kind, and a NUL-terminated
/// one-line message valid only during the call (print it, e.g. `fprintf(stderr, "app: %s\n",
/// message)`). Runs on a library thread; must not block, must return normally.
pub type server_event_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, kind: server_event_kind, message: *const c_char),
>;

/// The host's userdata, shared by its handler and its event callback, dropped once with the
/// last of them.
pub(crate) struct Userdata {
    ptr: *mut c_void,
    drop_fn: server_userdata_drop_fn,
}

// SAFETY: the header documents that handler and userdata are used from many threads at once.
unsafe impl Send for Userdata {}
// SAFETY: as above.
unsafe impl Sync for Userdata {}

impl Userdata {
    pub(crate) fn new(ptr: *mut c_void, drop_fn: server_userdata_drop_fn) -> Self {
        Userdata { ptr, drop_fn }
    }
}

impl Drop for Userdata {
    fn drop(&mut self) {
        if let Some(f) = self.drop_fn {
            // SAFETY: the host gave us this function for this pointer; called exactly once.
            unsafe { f(self.ptr) };
        }
    }
}

pub(crate) struct FfiHandler {
    cb: unsafe extern "C" fn(*mut c_void, *mut server_request),
    userdata: Arc<Userdata>,
}

impl FfiHandler {
    pub(crate) fn new(
        cb: unsafe extern "C" fn(*mut c_void, *mut server_request),
        userdata: Arc<Userdata>,
    ) -> Self {
        FfiHandler { cb, userdata }
    }
}

impl crate::Handler for FfiHandler {
    fn handle(&self, req: Request, reply: Reply) {
        let raw = server_request::into_raw(req, reply);
        // SAFETY: the host's callback, with its userdata; ownership of the request passes to it.
        unsafe { (self.cb)(self.userdata.ptr, raw) };
    }
}

/// The core event hook that calls the host's `server_event_fn`.
pub(crate) fn event_hook(
    cb: unsafe extern "C" fn(*mut c_void, server_event_kind, *const c_char),
    userdata: Arc<Userdata>,
) -> EventHook {
    EventHook::new(move |ev: &Event| {
        let kind = match ev.kind {
            EventKind::DrainStarted => server_event_kind::SERVER_EVENT_DRAIN_STARTED,
            EventKind::Stopped => server_event_kind::SERVER_EVENT_STOPPED,
            EventKind::UpgradeReady => server_event_kind::SERVER_EVENT_UPGRADE_READY,
            EventKind::UpgradeFailed => server_event_kind::SERVER_EVENT_UPGRADE_FAILED,
        };
        let msg = CString::new(ev.message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the host's callback with its userdata; the message lives during the call.
        unsafe { cb(userdata.ptr, kind, msg.as_ptr()) };
    })
}

/// Keeps the typedefs referenced so cbindgen emits them next to the options.
#[allow(dead_code)]
fn _uses(_: server_handler_fn, _: server_userdata_drop_fn, _: server_event_fn) {}
