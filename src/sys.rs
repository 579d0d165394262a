//! Everything that differs between native targets and `wasm32-wasip2` lives here: how the
//! runtime is built, how the listener is bound, how a connection is accepted.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::Config;

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
mod imp {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};

    /// Binds and listens, non-blocking, with `SO_REUSEADDR` so a restart finds the port free.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        sock.set_nonblocking(true)?;
        Ok(sock.into())
    }

    /// The multi-threaded runtime. Every thread it starts blocks SIGPIPE, so a write to a
    /// vanished client returns EPIPE instead of killing a host that never ignored SIGPIPE, and
    /// the host's disposition is left alone.
    pub(crate) fn runtime(cfg: &Config) -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.effective_workers())
            .max_blocking_threads(cfg.handler_threads.max(1))
            .thread_name("graceserve")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
    }

    fn block_sigpipe() {
        // SAFETY: plain signal-mask manipulation on the current thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }

    pub(crate) type Listener = tokio::net::TcpListener;
    pub(crate) type Stream = tokio::net::TcpStream;

    /// Vectored writes are fine natively.
    pub(crate) const USE_WRITEV: bool = true;

    /// The process's signal path, held by one server while it runs.
    #[derive(Debug)]
    pub(crate) struct SignalGuard(Option<crate::signals::SignalClaim>);

    /// Reads the self-pipe and reports each recorded signal.
    pub(crate) struct SignalReader(std::os::fd::RawFd);

    impl SignalGuard {
        /// Claims signals for this server; `install` also installs the library's handlers.
        pub(crate) fn claim(install: bool) -> Result<SignalGuard, String> {
            use crate::signals::{claim, ClaimError};
            match claim(install) {
                Ok(c) => Ok(SignalGuard(c)),
                Err(ClaimError::Busy) => Err(
                    "cannot install signal handlers: another server in this process owns them"
                        .into(),
                ),
                Err(ClaimError::Os(e)) => Err(format!("cannot install signal handlers: {e}")),
            }
        }

        pub(crate) fn reader(&self) -> Option<SignalReader> {
            use std::os::fd::AsRawFd;
            self.0.as_ref().map(|c| SignalReader(c.as_raw_fd()))
        }
    }

    impl SignalReader {
        pub(crate) async fn run(self, on_signal: impl Fn(i32)) {
            use tokio::io::{unix::AsyncFd, Interest};
            // SAFETY: the pipe's read end is created once and never closed, so the fd stays
            // valid (and is not reused) for as long as this AsyncFd exists.
            let reg = unsafe {
                AsyncFd::register_with_interest(
                    crate::signals::PipeReader(self.0),
                    Interest::READABLE,
                )
            };
            let afd = match reg {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("cannot watch the signal pipe: {e}");
                    return;
                }
            };
            loop {
                let mut ready = match afd.readable().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("signal pipe: {e}");
                        return;
                    }
                };
                ready.clear_ready();
                let (n, signum) = crate::signals::take_pending(self.0);
                for _ in 0..n {
                    on_signal(signum);
                }
            }
        }
    }

    pub(crate) fn listener(l: std::net::TcpListener) -> io::Result<Listener> {
        tokio::net::TcpListener::from_std(l)
    }

    pub(crate) async fn accept(l: &Listener) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
        let (s, peer) = l.accept().await?;
        let _ = s.set_nodelay(true);
        Ok((s, peer))
    }
}

#[cfg(not(target_os = "wasi"))]
pub(crate) use imp::*;

/// Accept errors that concern one connection (or a passing fd shortage), not the listener.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) {
        return true;
    }
    #[cfg(not(target_os = "wasi"))]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
        )
    }
    #[cfg(target_os = "wasi")]
    {
        false
    }
}
