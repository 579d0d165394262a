//! Everything that differs between native targets and `wasm32-wasip2` lives here: how the
//! runtime is built, how the listener is bound, how a connection is accepted.
//!
//! - `native.rs` / `wasi.rs`: the two sides, re-exported under the same names.
//! - `activation.rs` (native only): listening sockets the process inherits instead of binding
//!   them (socket activation, `fd:N`, an upgrade's hand-over).

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
pub(crate) mod activation;
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
