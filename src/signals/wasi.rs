//! WASI has no signals. A server with the library signal policy treats stdin as its signal
//! channel: each byte read from it counts as one signal, and so does its end (EOF). A launcher
//! turns SIGINT/SIGTERM into a byte holding the signal number (or closes stdin), so the first
//! starts a drain and the second forces the stop, exactly as signals do natively, and the drain
//! reports the signal that was sent. Any other byte, and the end of stdin, stand for SIGTERM. A
//! [`SignalSender`] reaches one server from inside the guest.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The signal number the end of stdin, or a byte that is no signal number, stands for (SIGTERM).
const STDIN_SIGNAL: i32 = 15;
/// Bytes up to this value are signal numbers (Linux numbers real-time signals up to 64).
const MAX_SIGNUM: u8 = 64;

/// The signal a byte read from stdin stands for.
fn byte_signal(b: u8) -> i32 {
    if (1..=MAX_SIGNUM).contains(&b) {
        i32::from(b)
    } else {
        STDIN_SIGNAL
    }
}
/// How often stdin and the sender are checked (a zero-timeout poll; stdin cannot join tokio's
/// reactor).
const POLL: Duration = Duration::from_millis(10);

/// How a server takes part in the signal path (see the native module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    Own,
    Process,
    Real,
}

/// There is no process-wide signal path on WASI.
pub fn notify_signal(_signum: i32) -> bool {
    false
}

/// Sends signals to one server.
#[derive(Debug, Clone)]
pub struct SignalSender(Arc<Inbox>);

#[derive(Debug, Default)]
struct Inbox {
    pending: AtomicU32,
    last: std::sync::atomic::AtomicI32,
}

impl SignalSender {
    /// Delivers `signum` to this server (the first drains, the next forces). False when
    /// `signum <= 0`.
    pub fn notify(&self, signum: i32) -> bool {
        if signum <= 0 {
            return false;
        }
        self.0.last.store(signum, Ordering::SeqCst);
        self.0.pending.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// One server's place in the signal path.
#[derive(Debug)]
pub(crate) struct SignalGuard {
    stdin: bool,
    inbox: Arc<Inbox>,
}

impl SignalGuard {
    pub(crate) fn claim(listen: Listen, _also: &[i32]) -> Result<SignalGuard, String> {
        Ok(SignalGuard {
            stdin: listen == Listen::Real,
            inbox: Arc::default(),
        })
    }

    pub(crate) fn sender(&self) -> SignalSender {
        SignalSender(self.inbox.clone())
    }

    pub(crate) fn reader(&self) -> SignalReader {
        SignalReader {
            stdin: self.stdin,
            inbox: self.inbox.clone(),
        }
    }

    pub(crate) fn release(&mut self) {}
}

pub(crate) struct SignalReader {
    stdin: bool,
    inbox: Arc<Inbox>,
}

impl SignalReader {
    pub(crate) async fn run(self, on_signal: impl Fn(i32)) {
        let mut stdin = self.stdin;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let n = self.inbox.pending.swap(0, Ordering::SeqCst);
            let last = self.inbox.last.load(Ordering::SeqCst);
            for _ in 0..n {
                on_signal(last);
            }
            if stdin {
                match poll_stdin() {
                    Ok(StdinEvent::Nothing) => {}
                    Ok(StdinEvent::Bytes(bytes)) => {
                        bytes.iter().for_each(|&b| on_signal(byte_signal(b)))
                    }
                    Ok(StdinEvent::End) => {
                        on_signal(STDIN_SIGNAL);
                        stdin = false;
                    }
                    Err(e) => {
                        tracing::error!("cannot watch stdin for the stop trigger: {e}");
                        stdin = false;
                    }
                }
            }
        }
    }
}

enum StdinEvent {
    Nothing,
    Bytes(Vec<u8>),
    End,
}

fn poll_stdin() -> io::Result<StdinEvent> {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 || pfd.revents == 0 {
        return Ok(StdinEvent::Nothing);
    }
    let mut buf = [0u8; 64];
    // SAFETY: reads into a live local buffer of the given length.
    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
            return Ok(StdinEvent::Nothing);
        }
        return Err(e);
    }
    Ok(if r == 0 {
        StdinEvent::End
    } else {
        StdinEvent::Bytes(buf[..r as usize].to_vec())
    })
}
