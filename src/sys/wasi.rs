//! `wasm32-wasip2`: one thread, a current-thread runtime, no signals (stdin stands in for
//! them, see `signals`), accept through wasi-libc after a readiness wait, no vectored writes.

use std::io;
use std::net::SocketAddr;

use crate::config::Config;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::Interest;

/// Binds and listens, non-blocking. The runtime grants the socket (`-S inherit-network`).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).map_err(posix_wording)?;
    // std listens with a backlog of 128: a burst of connections overflows it, and the
    // kernel then completes some of them only after later ones (SYN-ACK retransmits), so
    // a drain can close the listener on connections their clients already count as
    // accepted. Ask for the native hosts' backlog (wasi-libc turns a second listen() into
    // wasi:sockets set-listen-backlog-size).
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid listening socket descriptor owned by `l`.
        let rc = unsafe { libc::listen(l.as_raw_fd(), 1024) };
        if rc != 0 {
            tracing::debug!(
                "cannot raise the listen backlog: {}",
                io::Error::last_os_error()
            );
        }
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

/// wasi-libc words two common bind errors differently from the native hosts ("Address in
/// use"): use the usual wording so every host's bind-failure line reads the same, keeping
/// the WASI errno.
fn posix_wording(e: io::Error) -> io::Error {
    let text = match e.kind() {
        io::ErrorKind::AddrInUse => "Address already in use",
        io::ErrorKind::AddrNotAvailable => "Cannot assign requested address",
        _ => return e,
    };
    match e.raw_os_error() {
        Some(n) => io::Error::new(e.kind(), format!("{text} (wasi errno {n})")),
        None => io::Error::new(e.kind(), text),
    }
}

/// There are no threads: a current-thread runtime, driven by whoever waits for the server
/// (see [`drive`]).
pub(crate) fn runtime(
    _cfg: &Config,
    on_start: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> io::Result<tokio::runtime::Runtime> {
    // The waiter's own thread runs the runtime: mark it as the server's while it drives.
    let _ = on_start;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs the runtime on the calling thread until `done()` holds or `timeout` passes. Natively
/// the runtime has its own threads and this is a no-op; here nothing else would run it.
pub(crate) fn drive(
    runtime: &Mutex<Option<impl AsRef<tokio::runtime::Runtime>>>,
    done: &tokio::sync::Notify,
    is_done: impl Fn() -> bool,
    timeout: Option<Duration>,
) -> Option<Duration> {
    // Without threads a condvar wait could only sleep: whatever driving did not finish,
    // nothing else will while this thread waits.
    let rest = Some(Duration::ZERO);
    let guard = runtime.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rt) = guard.as_ref().map(|r| r.as_ref()) else {
        return rest;
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    rt.block_on(async {
        loop {
            let notified = done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if is_done() {
                return;
            }
            match deadline {
                None => notified.await,
                Some(d) => {
                    if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rest
}

/// No handler threads: handlers run on the runtime's only thread, and must answer through
/// a spawned task when they need to wait.
pub(crate) const FORCE_INLINE_HANDLER: bool = true;

/// No threads: one worker, the waiter's thread.
pub(crate) const THREADS: bool = false;

/// A WASI output stream buffers writes in the runtime, out of our sight (a write "completes"
/// into that buffer): an idle connection closes through hyper's shutdown, which flushes first.
pub(crate) const CLOSE_IDLE_BY_DROP: bool = false;

pub(crate) fn thread_start() {}

/// Never called: with one worker every connection stays where it was accepted.
pub(crate) fn move_stream<F, Fut>(to: &tokio::runtime::Handle, stream: Stream, serve: F)
where
    F: FnOnce(Stream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    to.spawn(serve(stream));
}

pub(crate) type Stream = tokio::net::TcpStream;

/// hyper's vectored writes stall keep-alive responses by ~44 ms per request under wasmtime.
pub(crate) const USE_WRITEV: bool = false;

/// The listening socket, plus a tokio registration of the same descriptor used only to wait
/// for readiness: tokio's own `accept` fails on wasip2 (mio sets O_NONBLOCK on the accepted
/// socket with `fcntl(F_SETFL)`, which wasi-libc rejects for sockets, wasi-libc#536), so the
/// accept itself is a plain `accept` (see `accept_raw`).
pub(crate) struct Listener {
    ready: Option<tokio::net::TcpStream>,
    std: std::net::TcpListener,
    /// The unspecified address of the listener's family, reported as every peer's address.
    unknown_peer: std::net::IpAddr,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Deregister, then forget the borrowed descriptor: `std` owns and closes it.
        if let Some(r) = self.ready.take() {
            if let Ok(s) = r.into_std() {
                let _ = s.into_raw_fd();
            }
        }
    }
}

pub(crate) fn listener(l: std::net::TcpListener) -> io::Result<Listener> {
    // SAFETY: the stream view shares the listener's descriptor; `Listener::drop` releases it
    // without closing, and `std` (dropped after it) closes the descriptor once.
    let view = unsafe { std::net::TcpStream::from_raw_fd(l.as_raw_fd()) };
    let ready = match tokio::net::TcpStream::from_std(view) {
        Ok(r) => r,
        Err(e) => {
            // Registration failed and the view was dropped inside `from_std`, closing the
            // shared descriptor: keep `l` from closing it a second time.
            let _ = l.into_raw_fd();
            return Err(e);
        }
    };
    let unknown_peer = match l.local_addr()? {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    Ok(Listener {
        ready: Some(ready),
        std: l,
        unknown_peer,
    })
}

pub(crate) async fn accept(l: &Listener) -> io::Result<(Stream, SocketAddr)> {
    let ready = l.ready.as_ref().expect("registered until dropped");
    loop {
        ready.readable().await?;
        match ready.try_io(Interest::READABLE, || accept_raw(&l.std)) {
            Ok(s) => {
                // The peer's address is never asked for: `getpeername` aborts the guest
                // too when the client has reset (see `accept_raw`), and no check before it
                // can close that race. Handlers see the unspecified address instead.
                let peer = SocketAddr::new(l.unknown_peer, 0);
                // A failure from here on concerns this connection only (the core keeps
                // accepting after ConnectionAborted).
                let setup = || -> io::Result<Stream> {
                    // `set_nonblocking` is an ioctl (FIONBIO), which wasi-libc accepts.
                    s.set_nonblocking(true)?;
                    let _ = s.set_nodelay(true);
                    tokio::net::TcpStream::from_std(s)
                };
                return match setup() {
                    Ok(stream) => Ok((stream, peer)),
                    Err(e) => Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("cannot set up an accepted connection: {e}"),
                    )),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `accept` without asking for the peer address: std's `accept` asks for it, and wasi-libc
/// (Rust 1.95) then aborts the whole guest (`unreachable`) when the client has already reset
/// the connection, because it cannot fetch the remote address of a reset socket (a client
/// that connects and resets at once, like a port probe, would take the server down).
fn accept_raw(l: &std::net::TcpListener) -> io::Result<std::net::TcpStream> {
    // SAFETY: accept on a listening descriptor we own, with no address buffer.
    let fd = unsafe { libc::accept(l.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { std::net::TcpStream::from_raw_fd(fd) })
}

/// wasi-libc cannot `MSG_PEEK`. Instead the probe reads what waits without blocking and puts
/// it back in front of the stream, so hyper reads those bytes first: the same answer as a
/// peek, with nothing lost.
pub(crate) struct InputProbe {
    fd: std::os::fd::RawFd,
    back: std::sync::Arc<Mutex<Vec<u8>>>,
}

/// A stream with bytes put back in front of it (see [`InputProbe`]).
pub(crate) struct Rewind {
    inner: Stream,
    back: std::sync::Arc<Mutex<Vec<u8>>>,
}

/// The stream hyper serves, and a probe for unread input on it.
pub(crate) fn probe_input(s: Stream) -> (Rewind, InputProbe) {
    let back = std::sync::Arc::new(Mutex::new(Vec::new()));
    let fd = s.as_raw_fd();
    (
        Rewind {
            inner: s,
            back: back.clone(),
        },
        InputProbe { fd, back },
    )
}

impl InputProbe {
    /// True when bytes wait (they are put back for hyper); false when none do or the peer
    /// closed. Only called while the stream is alive (the probe lives in the connection task
    /// that owns it), so the fd is valid.
    pub(crate) fn pending_input(&self) -> bool {
        let mut buf = [0u8; 4096];
        // SAFETY: valid fd (see above) and a live buffer of its length; WASI sockets are
        // non-blocking.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return false;
        }
        let mut back = self.back.lock().unwrap_or_else(|e| e.into_inner());
        back.extend_from_slice(&buf[..n as usize]);
        true
    }
}

impl tokio::io::AsyncRead for Rewind {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        {
            let mut back = self.back.lock().unwrap_or_else(|e| e.into_inner());
            if !back.is_empty() {
                let n = back.len().min(buf.remaining());
                buf.put_slice(&back[..n]);
                back.drain(..n);
                return std::task::Poll::Ready(Ok(()));
            }
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Rewind {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
