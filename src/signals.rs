//! Signal handling the library owns (DESIGN.md §3).
//!
//! The handler is async-signal-safe: it records the signal in atomics, writes one byte to a
//! non-blocking self-pipe that is created once and never closed, and chains to a previous
//! *custom* handler. The server's runtime reads the pipe and turns each signal into a drain
//! request (first) or a forced stop (second). Handlers are installed with
//! `SA_ONSTACK | SA_RESTART | SA_SIGINFO` so they are safe in Go hosts, and the previous actions
//! are restored when the server stops. tokio's signal module is not used: it lacks `SA_ONSTACK`
//! and never uninstalls.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The signals the library handles when it owns signals.
pub const HANDLED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

static PIPE: OnceLock<(RawFd, RawFd)> = OnceLock::new();
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static PENDING: AtomicU32 = AtomicU32::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Previous handler (as an address) and flags per entry of [`HANDLED`], read by the handler.
static PREV_HANDLER: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static PREV_FLAGS: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];
/// One server at a time receives signals.
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// Previous actions, restored on release.
static SAVED: Mutex<Vec<(libc::c_int, libc::sigaction)>> = Mutex::new(Vec::new());

fn pipe_fds() -> io::Result<(RawFd, RawFd)> {
    if let Some(p) = PIPE.get() {
        return Ok(*p);
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    match PIPE.set((fds[0], fds[1])) {
        Ok(()) => {
            WRITE_FD.store(fds[1], Ordering::SeqCst);
            Ok((fds[0], fds[1]))
        }
        Err(_) => {
            // Another thread won the race; close ours.
            // SAFETY: we own both fds and nobody else saw them.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            Ok(*PIPE.get().expect("pipe set"))
        }
    }
}

/// Records a signal and wakes the server. Async-signal-safe: atomics and one `write(2)`.
fn record(signum: libc::c_int) {
    LAST_SIGNAL.store(signum, Ordering::SeqCst);
    PENDING.fetch_add(1, Ordering::SeqCst);
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: fd is the never-closed, non-blocking write end; a full pipe just drops the
        // byte (PENDING still counts the signal).
        unsafe {
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
        }
    }
}

/// Delivers `signum` to the running server as if the library's handler had caught it: the
/// first one starts a graceful drain (with the signal drain deadline), a later one forces the
/// stop. Async-signal-safe; may be called from inside a host's own signal handler.
pub fn notify_signal(signum: i32) -> bool {
    if signum <= 0 {
        return false;
    }
    if !CLAIMED.load(Ordering::SeqCst) {
        // No running server listens for signals.
        return false;
    }
    record(signum);
    true
}

extern "C" fn on_signal(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: __errno_location is async-signal-safe and returns this thread's errno.
    let saved_errno = unsafe { *libc::__errno_location() };
    record(signum);
    if let Some(i) = HANDLED.iter().position(|&s| s == signum) {
        let prev = PREV_HANDLER[i].load(Ordering::SeqCst);
        let flags = PREV_FLAGS[i].load(Ordering::SeqCst);
        if prev != libc::SIG_DFL && prev != libc::SIG_IGN && prev != 0 {
            // SAFETY: prev was a handler installed by someone else for this signal; we call it
            // the way its flags say it expects to be called.
            unsafe {
                if flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev);
                    f(signum, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev);
                    f(signum);
                }
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Ownership of the process's signal path for one server. Dropping it restores the previous
/// signal actions (when installed) and frees the claim.
#[derive(Debug)]
pub(crate) struct SignalClaim {
    installed: bool,
    read_fd: RawFd,
}

/// Why signals could not be claimed.
#[derive(Debug)]
pub(crate) enum ClaimError {
    Busy,
    Os(io::Error),
}

/// Claims the signal path. With `install`, also installs the library's handlers; without, only
/// [`notify_signal`] reaches this server. Returns `Ok(None)` when another server holds the claim
/// and `install` is false.
pub(crate) fn claim(install: bool) -> Result<Option<SignalClaim>, ClaimError> {
    if CLAIMED
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return if install {
            Err(ClaimError::Busy)
        } else {
            Ok(None)
        };
    }
    let (read_fd, _) = match pipe_fds() {
        Ok(p) => p,
        Err(e) => {
            CLAIMED.store(false, Ordering::SeqCst);
            return Err(ClaimError::Os(e));
        }
    };
    // Forget signals that arrived while nobody was serving.
    drain_pipe(read_fd);
    PENDING.store(0, Ordering::SeqCst);
    let mut claim = SignalClaim {
        installed: false,
        read_fd,
    };
    if install {
        if let Err(e) = install_handlers() {
            drop(claim);
            return Err(ClaimError::Os(e));
        }
        claim.installed = true;
    }
    Ok(Some(claim))
}

fn install_handlers() -> io::Result<()> {
    let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
    for (i, &sig) in HANDLED.iter().enumerate() {
        // SAFETY: zeroed sigaction is a valid starting point; every pointer passed is valid.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_signal as *const () as usize;
            new.sa_flags = libc::SA_ONSTACK | libc::SA_RESTART | libc::SA_SIGINFO;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            // Publish the previous handler before ours can run: read it first.
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            PREV_HANDLER[i].store(old.sa_sigaction, Ordering::SeqCst);
            PREV_FLAGS[i].store(old.sa_flags, Ordering::SeqCst);
            if libc::sigaction(sig, &new, &mut old) != 0 {
                let e = io::Error::last_os_error();
                restore(&mut saved);
                return Err(e);
            }
            saved.push((sig, old));
        }
    }
    Ok(())
}

fn restore(saved: &mut Vec<(libc::c_int, libc::sigaction)>) {
    for (sig, old) in saved.drain(..).rev() {
        // SAFETY: old is the action sigaction gave us for this signal.
        unsafe {
            libc::sigaction(sig, &old, std::ptr::null_mut());
        }
    }
    for i in 0..HANDLED.len() {
        PREV_HANDLER[i].store(0, Ordering::SeqCst);
        PREV_FLAGS[i].store(0, Ordering::SeqCst);
    }
}

fn drain_pipe(fd: RawFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: buf is valid for 64 bytes; fd is non-blocking.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

/// Signals recorded since the last call, with the latest signal number.
pub(crate) fn take_pending(read_fd: RawFd) -> (u32, i32) {
    drain_pipe(read_fd);
    (
        PENDING.swap(0, Ordering::SeqCst),
        LAST_SIGNAL.load(Ordering::SeqCst),
    )
}

impl AsRawFd for SignalClaim {
    fn as_raw_fd(&self) -> RawFd {
        self.read_fd
    }
}

impl Drop for SignalClaim {
    fn drop(&mut self) {
        if self.installed {
            restore(&mut SAVED.lock().unwrap_or_else(|e| e.into_inner()));
        }
        CLAIMED.store(false, Ordering::SeqCst);
    }
}

/// A borrowed view of the pipe's read end for `AsyncFd` (it must never close the fd).
pub(crate) struct PipeReader(pub(crate) RawFd);

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
