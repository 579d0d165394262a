//! Native signals, shared by every server in the process.
//!
//! Each server owns a non-blocking pipe; its runtime reads one byte per signal (the byte is the
//! signal number). A server that listens for signals puts the pipe's write end in a slot of a
//! fixed table. The handler (`on_signal`) is async-signal-safe: it walks the table with atomic
//! loads and writes one byte to every slot that wants the signal, then chains to a previous
//! *custom* handler. Handlers are installed with `SA_ONSTACK | SA_RESTART | SA_SIGINFO` (safe in
//! Go hosts) while at least one server wants a signal, and the previous action comes back when
//! the last one stops. tokio's signal module is not used: it lacks `SA_ONSTACK` and never
//! uninstalls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The signals a server with the library signal policy drains on.
pub(crate) const DRAIN_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Servers that may listen for signals at once.
pub(crate) const MAX_LISTENERS: usize = 256;
/// Signal numbers 1..NSIG fit in a byte and in the masks below.
const NSIG: usize = 65;

/// Write end of each listening server's pipe, or -1.
static SLOTS: [AtomicI32; MAX_LISTENERS] = [const { AtomicI32::new(-1) }; MAX_LISTENERS];
/// Which real signals each slot receives (bit n = signal n); 0 for a server reached only by
/// process-wide notifications.
static SLOT_MASK: [AtomicU64; MAX_LISTENERS] = [const { AtomicU64::new(0) }; MAX_LISTENERS];
/// Handler invocations walking the table right now; a slot is reused only once this is 0.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// The previous handler (as an address) and its flags, per signal, read by `on_signal`.
static PREV_HANDLER: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
static PREV_FLAGS: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

/// Who wants which signal, and the actions to put back; changed only under this lock.
struct Registry {
    users: [usize; NSIG],
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    users: [0; NSIG],
    saved: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn mask_of(signals: &[libc::c_int]) -> u64 {
    signals
        .iter()
        .filter(|&&s| s > 0 && (s as usize) < NSIG)
        .fold(0, |m, &s| m | (1u64 << s))
}

fn byte_of(signum: i32) -> u8 {
    signum.clamp(1, 255) as u8
}

/// Writes one byte (the signal) to `fd`. Async-signal-safe; a full pipe drops the byte (64 KiB
/// of signals nobody read).
fn write_byte(fd: RawFd, signum: i32) -> bool {
    let b = byte_of(signum);
    // SAFETY: a valid one-byte buffer; fd is a pipe write end kept open while it is reachable.
    unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) == 1 }
}

/// Delivers `signum` to every slot whose mask matches (`real`) or to every slot (a process-wide
/// notification). Async-signal-safe: atomics and `write(2)` only. Returns how many got it.
fn broadcast(signum: i32, real: bool) -> usize {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let bit = if (signum as usize) < NSIG {
        1u64 << signum
    } else {
        0
    };
    let mut n = 0;
    for i in 0..MAX_LISTENERS {
        let fd = SLOTS[i].load(Ordering::SeqCst);
        if fd < 0 {
            continue;
        }
        if real && SLOT_MASK[i].load(Ordering::SeqCst) & bit == 0 {
            continue;
        }
        if write_byte(fd, signum) {
            n += 1;
        }
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    n
}

/// Delivers `signum` to every running server that listens for process-wide signals, exactly as
/// a caught SIGINT/SIGTERM would. Async-signal-safe. False when none listens (or `signum <= 0`).
pub fn notify_signal(signum: i32) -> bool {
    signum > 0 && broadcast(signum, false) > 0
}

extern "C" fn on_signal(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: __errno_location is async-signal-safe and returns this thread's errno.
    let saved_errno = unsafe { *libc::__errno_location() };
    broadcast(signum, true);
    if signum > 0 && (signum as usize) < NSIG {
        let prev = PREV_HANDLER[signum as usize].load(Ordering::SeqCst);
        let flags = PREV_FLAGS[signum as usize].load(Ordering::SeqCst);
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

fn install(reg: &mut Registry, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: zeroed sigaction is a valid starting point; every pointer passed is valid.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        // Publish the previous handler before ours can run: read it first.
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        PREV_HANDLER[sig as usize].store(old.sa_sigaction, Ordering::SeqCst);
        PREV_FLAGS[sig as usize].store(old.sa_flags, Ordering::SeqCst);
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_signal as *const () as usize;
        new.sa_flags = libc::SA_ONSTACK | libc::SA_RESTART | libc::SA_SIGINFO;
        libc::sigemptyset(&mut new.sa_mask);
        if libc::sigaction(sig, &new, &mut old) != 0 {
            let e = io::Error::last_os_error();
            PREV_HANDLER[sig as usize].store(0, Ordering::SeqCst);
            PREV_FLAGS[sig as usize].store(0, Ordering::SeqCst);
            return Err(e);
        }
        reg.saved.push((sig, old));
    }
    Ok(())
}

fn uninstall(reg: &mut Registry, sig: libc::c_int) {
    if let Some(i) = reg.saved.iter().position(|(s, _)| *s == sig) {
        let (_, old) = reg.saved.remove(i);
        // SAFETY: old is the action sigaction gave us for this signal.
        unsafe {
            libc::sigaction(sig, &old, std::ptr::null_mut());
        }
    }
    PREV_HANDLER[sig as usize].store(0, Ordering::SeqCst);
    PREV_FLAGS[sig as usize].store(0, Ordering::SeqCst);
}

/// A server's pipe: one byte per signal, read by its runtime. Created at start and closed when
/// the last holder (the server or a [`SignalSender`]) goes, so a sender never writes to a
/// descriptor that was closed and reused.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid array of two ints.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
        unsafe {
            Ok(Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            })
        }
    }
}

/// Sends signals to one server without locks or allocation: usable from a signal handler.
#[derive(Debug, Clone)]
pub struct SignalSender(Arc<Pipe>);

impl SignalSender {
    /// Delivers `signum` to this server as if the library's handler had caught it (the first
    /// drains, the next forces). Async-signal-safe. False when `signum <= 0`.
    pub fn notify(&self, signum: i32) -> bool {
        signum > 0 && write_byte(self.0.write.as_raw_fd(), signum)
    }
}

/// One server's place in the signal path while it runs. [`SignalGuard::release`] (or drop)
/// takes it out and restores the previous signal actions once no server wants them.
#[derive(Debug)]
pub(crate) struct SignalGuard {
    pipe: Arc<Pipe>,
    slot: Option<usize>,
    signals: Vec<libc::c_int>,
}

/// How a server takes part in the process's signal path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Reached only through its own [`SignalSender`].
    Own,
    /// Also reached by [`notify_signal`].
    Process,
    /// Also receives real SIGINT/SIGTERM, through the library's handler.
    Real,
}

impl SignalGuard {
    /// Creates the server's pipe and, unless `listen` is [`Listen::Own`], a slot in the table
    /// (installing the library's handlers for the first server that wants real signals).
    /// `also` adds real signals beyond SIGINT/SIGTERM (SIGHUP for in-place upgrades).
    pub(crate) fn claim(listen: Listen, also: &[libc::c_int]) -> Result<SignalGuard, String> {
        let pipe =
            Arc::new(Pipe::new().map_err(|e| format!("cannot create the signal pipe: {e}"))?);
        let mut guard = SignalGuard {
            pipe,
            slot: None,
            signals: Vec::new(),
        };
        if listen == Listen::Own {
            return Ok(guard);
        }
        let signals: Vec<libc::c_int> = if listen == Listen::Real {
            DRAIN_SIGNALS.iter().chain(also).copied().collect()
        } else {
            Vec::new()
        };
        let mut reg = registry();
        let Some(slot) = (0..MAX_LISTENERS).find(|&i| SLOTS[i].load(Ordering::SeqCst) < 0) else {
            return Err(format!(
                "cannot listen for signals: {MAX_LISTENERS} servers in this process already do"
            ));
        };
        SLOT_MASK[slot].store(mask_of(&signals), Ordering::SeqCst);
        SLOTS[slot].store(guard.pipe.write.as_raw_fd(), Ordering::SeqCst);
        guard.slot = Some(slot);
        // Install after the slot is visible, so no signal caught by our handler finds nobody.
        for &sig in &signals {
            if reg.users[sig as usize] == 0 {
                if let Err(e) = install(&mut reg, sig) {
                    drop(reg);
                    guard.release();
                    return Err(format!("cannot install signal handlers: {e}"));
                }
            }
            reg.users[sig as usize] += 1;
            guard.signals.push(sig);
        }
        Ok(guard)
    }

    /// A sender for this server's pipe.
    pub(crate) fn sender(&self) -> SignalSender {
        SignalSender(self.pipe.clone())
    }

    /// The reader the server's runtime polls.
    pub(crate) fn reader(&self) -> SignalReader {
        SignalReader(self.pipe.clone())
    }

    /// Leaves the table; the last server that wanted a signal restores its previous action.
    /// Idempotent. Signals sent through a [`SignalSender`] still reach the pipe (nobody reads).
    pub(crate) fn release(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let mut reg = registry();
        SLOTS[slot].store(-1, Ordering::SeqCst);
        // A handler that already read the descriptor may still be writing to it: let it finish
        // before the slot can be reused (it never blocks: the pipe is non-blocking).
        while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        SLOT_MASK[slot].store(0, Ordering::SeqCst);
        for sig in self.signals.drain(..) {
            let users = &mut reg.users[sig as usize];
            *users -= 1;
            if *users == 0 {
                uninstall(&mut reg, sig);
            }
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Reads a server's pipe and reports each signal.
pub(crate) struct SignalReader(Arc<Pipe>);

/// A borrowed view of the pipe's read end for `AsyncFd` (which must never close it).
struct ReadEnd(RawFd);

impl AsRawFd for ReadEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl SignalReader {
    pub(crate) async fn run(self, on_signal: impl Fn(i32)) {
        use tokio::io::{unix::AsyncFd, Interest};
        let fd = self.0.read.as_raw_fd();
        // SAFETY: the pipe (and so the fd) lives as long as `self.0`, which outlives the
        // AsyncFd; `ReadEnd` never closes it.
        let reg = unsafe { AsyncFd::register_with_interest(ReadEnd(fd), Interest::READABLE) };
        let afd = match reg {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("cannot watch the signal pipe: {e}");
                return;
            }
        };
        let mut buf = [0u8; 64];
        loop {
            let mut ready = match afd.readable().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("signal pipe: {e}");
                    return;
                }
            };
            loop {
                // SAFETY: buf is valid for its length; fd is non-blocking and open (see above).
                let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if n <= 0 {
                    break;
                }
                for &b in &buf[..n as usize] {
                    on_signal(i32::from(b));
                }
            }
            ready.clear_ready();
        }
    }
}
