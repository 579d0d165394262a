//! Everything that differs between native targets and `wasm32-wasip2` lives here: how the
//! runtime is built, how the listener is bound, how a connection is accepted.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `HOST:PORT` into socket addresses, or says why it cannot.
pub(crate) fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    match addr.to_socket_addrs() {
        Ok(it) => {
            let v: Vec<SocketAddr> = it.collect();
            if v.is_empty() {
                Err(format!("invalid address {addr:?}: it resolves to nothing"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!(
            "invalid address {addr:?}: expected HOST:PORT such as 127.0.0.1:8080 ({e})"
        )),
    }
}

#[cfg(not(target_os = "wasi"))]
mod native;
#[cfg(not(target_os = "wasi"))]
pub(crate) use native::*;

#[cfg(target_os = "wasi")]
mod wasi;
#[cfg(target_os = "wasi")]
pub(crate) use wasi::*;

/// Accept errors that concern one connection (or a passing fd shortage), not the listener.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
    )
}

#[cfg(not(target_os = "wasi"))]
const PEEK_FLAGS: libc::c_int = libc::MSG_PEEK | libc::MSG_DONTWAIT;
/// WASI sockets are already non-blocking (see `wasi::accept`).
#[cfg(target_os = "wasi")]
const PEEK_FLAGS: libc::c_int = libc::MSG_PEEK;

/// Tells whether a connection's socket holds bytes the server has not read yet.
pub(crate) struct InputProbe(std::os::fd::RawFd);

impl InputProbe {
    pub(crate) fn new(s: &Stream) -> Self {
        use std::os::fd::AsRawFd;
        InputProbe(s.as_raw_fd())
    }

    /// A non-blocking one-byte `MSG_PEEK`: `Some(true)` when bytes wait, `Some(false)` when none
    /// do (or the peer closed), `None` when the platform cannot tell (wasi-libc may reject
    /// `MSG_PEEK`). Only called while the stream is alive (the probe lives in the connection
    /// task that owns it), so the fd is valid.
    pub(crate) fn pending_input(&self) -> Option<bool> {
        let mut b = 0u8;
        // SAFETY: valid fd (see above) and a one-byte buffer.
        let n = unsafe {
            libc::recv(
                self.0,
                &mut b as *mut u8 as *mut libc::c_void,
                1,
                PEEK_FLAGS,
            )
        };
        if n >= 0 {
            return Some(n > 0);
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::WouldBlock => Some(false),
            _ => None,
        }
    }
}
