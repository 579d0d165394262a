//! `server_queue`: requests delivered to a queue the host drains from its own thread (an event
//! loop), instead of calling the host on library threads.
//!
//! A host whose code runs on one thread (Python's asyncio, any event loop) pays dearly for a
//! callback on a library thread: each call takes the host's lock (the GIL) away from the loop
//! thread and wakes it. With a queue the library threads never enter host code: the handler is
//! the library's own [`server_queue_push`], which queues the request and makes a file descriptor
//! readable; the loop watches that descriptor and takes the requests in batches.

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex};

use super::error::{fail, server_result};
use super::request::server_request;
use super::response::{packed_headers, respond_with};
use crate::handler::{Reply, Response};

/// A queue of requests for a host that takes them on a thread of its own. Opaque; reference
/// counted.
///
/// Lifecycle: `server_queue_new` (one reference, the host's) → start a server with
/// `handler = server_queue_push`, `userdata = server_queue_retain(q)`,
/// `userdata_drop = server_queue_release` (and preferably `inline_handler = true`: the push
/// never blocks) → watch `server_queue_fd(q)`; when it is readable, `server_queue_pop` →
/// answer and free each request as usual → `server_queue_close` when the host stops taking
/// requests → `server_queue_release(q)`.
///
/// Threading: every function may be called from any thread, concurrently.
pub struct server_queue {
    state: Mutex<QueueState>,
    wake: wake::WakeFd,
    outbox: Mutex<Outbox>,
}

/// Answers held back until `server_queue_flush`, and the runtime that delivers them.
#[derive(Default)]
struct Outbox {
    replies: Vec<(Reply, Response)>,
    runtime: Option<tokio::runtime::Handle>,
}

struct QueueState {
    requests: VecDeque<Box<server_request>>,
    closed: bool,
}

impl server_queue {
    fn push(&self, req: Box<server_request>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            drop(st);
            req.reject_unavailable();
            return;
        }
        let was_empty = st.requests.is_empty();
        if was_empty {
            // Pushes run on the server's threads: remember its runtime for the flushes (once
            // per batch; a queue may outlive a server and serve the next one).
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                self.outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .runtime = Some(h);
            }
        }
        st.requests.push_back(req);
        if was_empty {
            // Under the lock, so a concurrent pop that empties the queue cannot clear this
            // wake-up after the request is in.
            self.wake.set();
        }
    }
}

unsafe fn queue_ref<'a>(q: *const c_void) -> Option<&'a server_queue> {
    // SAFETY: the caller passes a pointer from server_queue_new that still has a reference.
    unsafe { (q as *const server_queue).as_ref() }
}

ffi_fn! {
    /// Creates an empty queue and stores it in `*out` with one reference, the caller's (drop it
    /// with `server_queue_release`).
    ///
    /// Returns `SERVER_OK`, `SERVER_ERR_NULL_PARAMETER`, or `SERVER_ERR_RUNTIME` when the
    /// descriptor cannot be created (or the platform has none, as WASI). Any thread.
    unsafe fn server_queue_new(out: *mut *mut server_queue) -> c_int {
        check_null!(out, "out");
        let wake = match wake::WakeFd::new() {
            Ok(w) => w,
            Err(e) => {
                return fail(
                    server_result::SERVER_ERR_RUNTIME,
                    format!("cannot create the queue's wake-up descriptor: {e}"),
                )
            }
        };
        let q = Arc::new(server_queue {
            state: Mutex::new(QueueState {
                requests: VecDeque::new(),
                closed: false,
            }),
            wake,
            outbox: Mutex::new(Outbox::default()),
        });
        // SAFETY: out is non-NULL.
        unsafe { *out = Arc::into_raw(q) as *mut server_queue };
        server_result::SERVER_OK as c_int
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Adds a reference to `queue` and returns it (as `void *`, for `server_options.userdata`).
    /// NULL returns NULL. Any thread.
    unsafe fn server_queue_retain(queue: *mut server_queue) -> *mut c_void {
        if queue.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: a live queue from server_queue_new; one more reference.
        unsafe { Arc::increment_strong_count(queue as *const server_queue) };
        queue as *mut c_void
    } ?= std::ptr::null_mut()
}

ffi_fn! {
    /// Drops one reference to `queue` (a `server_queue *` passed as `void *`, so that it also
    /// serves as `server_options.userdata_drop`). The last reference frees the queue; requests
    /// still in it are answered `503 Service Unavailable` and freed. NULL does nothing. Any thread.
    unsafe fn server_queue_release(queue: *mut c_void) {
        if !queue.is_null() {
            // SAFETY: a reference handed out by server_queue_new or server_queue_retain.
            let q = unsafe { Arc::from_raw(queue as *const server_queue) };
            if Arc::strong_count(&q) == 1 {
                let rest =
                    std::mem::take(&mut q.state.lock().unwrap_or_else(|e| e.into_inner()).requests);
                for req in rest {
                    req.reject_unavailable();
                }
            }
        }
    }
}

ffi_fn! {
    /// The handler for `server_options.handler` with a queue as `userdata`: queues `req` (or, once
    /// the queue is closed, answers it `503 Service Unavailable`) and makes the queue's descriptor
    /// readable. Never blocks and never calls host code, so it suits `inline_handler`. Any thread.
    unsafe fn server_queue_push(queue: *mut c_void, req: *mut server_request) {
        if req.is_null() {
            return;
        }
        // SAFETY: the library hands over ownership of a request it boxed.
        let req = unsafe { Box::from_raw(req) };
        // SAFETY: the server holds a reference to the queue until it calls userdata_drop.
        match unsafe { queue_ref(queue) } {
            Some(q) => q.push(req),
            None => req.reject_unavailable(),
        }
    }
}

ffi_fn! {
    /// Returns a file descriptor that is readable while requests wait in `queue` (for `poll`,
    /// `epoll` or an event loop's reader). Do not read, write or close it; it lives as long as the
    /// queue. -1 when `queue` is NULL. Any thread.
    unsafe fn server_queue_fd(queue: *const server_queue) -> c_int {
        // SAFETY: a live queue, or NULL.
        unsafe { queue_ref(queue as *const c_void) }.map_or(-1, |q| q.wake.fd())
    } ?= -1
}

ffi_fn! {
    /// Moves up to `max` waiting requests into `out[0..n)`, oldest first, and returns `n`. Each is
    /// the caller's, exactly as if a handler had received it: answer it, then
    /// `server_request_free`. When `n < max` the queue is empty and its descriptor is not readable
    /// until the next request arrives. 0 when `queue` or `out` is NULL. Any thread.
    unsafe fn server_queue_pop(
        queue: *mut server_queue,
        out: *mut *mut server_request,
        max: usize,
    ) -> usize {
        if out.is_null() || max == 0 {
            return 0;
        }
        // SAFETY: a live queue, or NULL.
        let Some(q) = (unsafe { queue_ref(queue as *const c_void) }) else {
            return 0;
        };
        let mut st = q.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = max.min(st.requests.len());
        for i in 0..n {
            let req = st.requests.pop_front().expect("counted above");
            // SAFETY: the caller promises `max` writable slots.
            unsafe { *out.add(i) = Box::into_raw(req) };
        }
        if st.requests.is_empty() {
            q.wake.clear();
        }
        n
    } ?= 0
}

ffi_fn! {
    /// Answers `req` like `server_respond` and frees it, but holds the answer in `queue` until
    /// `server_queue_flush`, which hands every held answer to the server's threads at once: one
    /// wake-up for a batch instead of one per request. The headers come packed in one buffer,
    /// `name\0value\0name\0value\0…` (`headers_len` bytes; 0 for none), as
    /// `server_request_head` packs them. Two foreign calls per request in all (this one and
    /// `server_request_head`), for hosts where each call is costly.
    ///
    /// Returns `SERVER_OK` (held; `req` freed), `SERVER_ERR_CLOSED` (the client was already gone;
    /// `req` freed), or, with `req` left unanswered and still the caller's:
    /// `SERVER_ERR_INVALID_ARGUMENT` (bad status or header), `SERVER_ERR_ALREADY_USED`,
    /// `SERVER_ERR_NULL_PARAMETER`. One thread at a time per request.
    unsafe fn server_queue_respond(
        queue: *mut server_queue,
        req: *mut server_request,
        status: u16,
        headers: *const u8,
        headers_len: usize,
        body: *const u8,
        body_len: usize,
    ) -> c_int {
        check_null!(queue, "queue");
        // SAFETY: a live queue.
        let q = unsafe { &*queue };
        // SAFETY: the caller's pointers, per this function's contract.
        let rc = unsafe {
            let hs = packed_headers(headers, headers_len);
            respond_with(req, status, hs, body, body_len, |reply, resp| {
                if reply.is_closed() {
                    return Err(crate::handler::ReplyError::Closed);
                }
                q.outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .replies
                    .push((reply, resp));
                Ok(())
            })
        };
        if rc == server_result::SERVER_OK as c_int
            || rc == server_result::SERVER_ERR_CLOSED as c_int
        {
            // SAFETY: answered; the caller hands the request over with this call.
            drop(unsafe { Box::from_raw(req) });
        }
        rc
    } ?= server_result::SERVER_ERR_PANIC as c_int
}

ffi_fn! {
    /// Delivers every answer held by `server_queue_respond` (one wake-up of the server's threads).
    /// NULL does nothing. Any thread.
    unsafe fn server_queue_flush(queue: *mut server_queue) {
        // SAFETY: a live queue, or NULL.
        if let Some(q) = unsafe { queue_ref(queue as *const c_void) } {
            let (replies, runtime) = {
                let mut ob = q.outbox.lock().unwrap_or_else(|e| e.into_inner());
                (std::mem::take(&mut ob.replies), ob.runtime.clone())
            };
            if replies.is_empty() {
                return;
            }
            let deliver = move || {
                for (reply, resp) in replies {
                    let _ = reply.send(resp);
                }
            };
            match runtime {
                Some(rt) => {
                    rt.spawn(async move { deliver() });
                }
                None => deliver(),
            }
        }
    }
}

ffi_fn! {
    /// Closes `queue`: requests waiting in it, and every request pushed from now on, are answered
    /// `503 Service Unavailable` and freed. For a host that stops taking requests while a server
    /// may still deliver some. Idempotent; NULL does nothing. Any thread.
    unsafe fn server_queue_close(queue: *mut server_queue) {
        // SAFETY: a live queue, or NULL.
        if let Some(q) = unsafe { queue_ref(queue as *const c_void) } {
            let rest = {
                let mut st = q.state.lock().unwrap_or_else(|e| e.into_inner());
                st.closed = true;
                q.wake.clear();
                std::mem::take(&mut st.requests)
            };
            for req in rest {
                req.reject_unavailable();
            }
        }
    }
}

/// The descriptor that says "requests are waiting": an eventfd on Linux, a pipe on other Unix
/// systems; none on WASI (no host there runs an event loop over this ABI).
mod wake {
    use std::io;

    #[cfg(target_os = "linux")]
    pub(super) struct WakeFd(std::os::fd::OwnedFd);

    #[cfg(target_os = "linux")]
    impl WakeFd {
        pub(super) fn new() -> io::Result<WakeFd> {
            use std::os::fd::FromRawFd;
            // SAFETY: plain syscall; the result is checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor we own.
            Ok(WakeFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
        }

        pub(super) fn fd(&self) -> i32 {
            use std::os::fd::AsRawFd;
            self.0.as_raw_fd()
        }

        pub(super) fn set(&self) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64; a full counter (EAGAIN) is still readable.
            unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
        }

        pub(super) fn clear(&self) {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64; EAGAIN (already clear) is fine.
            unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
        }
    }

    #[cfg(all(unix, not(target_os = "linux")))]
    pub(super) struct WakeFd {
        read: std::os::fd::OwnedFd,
        write: std::os::fd::OwnedFd,
    }

    #[cfg(all(unix, not(target_os = "linux")))]
    impl WakeFd {
        pub(super) fn new() -> io::Result<WakeFd> {
            use std::os::fd::FromRawFd;
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: fds has room for two descriptors; the result is checked.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: descriptors we just created.
                unsafe {
                    libc::fcntl(
                        fd,
                        libc::F_SETFL,
                        libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                    );
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            // SAFETY: fresh descriptors we own.
            unsafe {
                Ok(WakeFd {
                    read: std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                    write: std::os::fd::OwnedFd::from_raw_fd(fds[1]),
                })
            }
        }

        pub(super) fn fd(&self) -> i32 {
            use std::os::fd::AsRawFd;
            self.read.as_raw_fd()
        }

        pub(super) fn set(&self) {
            use std::os::fd::AsRawFd;
            // SAFETY: one byte from a live buffer; a full pipe is still readable.
            unsafe { libc::write(self.write.as_raw_fd(), b"q".as_ptr().cast(), 1) };
        }

        pub(super) fn clear(&self) {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a live buffer until the pipe is empty (EAGAIN).
            while unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }

    #[cfg(not(unix))]
    pub(super) struct WakeFd;

    #[cfg(not(unix))]
    impl WakeFd {
        pub(super) fn new() -> io::Result<WakeFd> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "request queues need a Unix descriptor",
            ))
        }
        pub(super) fn fd(&self) -> i32 {
            -1
        }
        pub(super) fn set(&self) {}
        pub(super) fn clear(&self) {}
    }
}
