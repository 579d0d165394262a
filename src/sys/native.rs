//! Native targets: a multi-threaded runtime, sockets through socket2 and tokio.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;

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

/// The multi-threaded runtime. Every thread it starts blocks SIGPIPE, so a write to a vanished
/// client returns EPIPE instead of killing a host that never ignored SIGPIPE, and the host's
/// disposition is left alone; then it runs `on_start` (the server marks its own threads).
pub(crate) fn runtime(
    cfg: &Config,
    on_start: Arc<dyn Fn() + Send + Sync>,
) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.effective_workers())
        // The hot handler threads count against the handler thread budget.
        .max_blocking_threads(
            cfg.handler_threads
                .saturating_sub(hot_handler_threads(cfg))
                .max(1),
        )
        .thread_name("graceserve")
        .on_thread_start(move || {
            block_sigpipe();
            on_start();
        })
        .enable_all()
        .build()
}

/// How many always-ready handler threads a server keeps: one per async worker, within the
/// handler thread budget (when the budget is that small, the hot threads are all there is: see
/// `HandlerPool::start`).
pub(crate) fn hot_handler_threads(cfg: &Config) -> usize {
    cfg.effective_workers().min(cfg.handler_threads.max(1))
}

/// Run first on every hot handler thread.
pub(crate) fn handler_thread_start() {
    block_sigpipe();
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

/// The runtime has its own worker threads: nothing to drive (see the WASI `drive`).
pub(crate) fn drive(
    _runtime: &std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    _done: &tokio::sync::Notify,
    _is_done: impl Fn() -> bool,
    timeout: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    timeout
}

/// Handlers may run on handler threads.
pub(crate) const FORCE_INLINE_HANDLER: bool = false;

pub(crate) type Listener = tokio::net::TcpListener;
pub(crate) type Stream = tokio::net::TcpStream;

/// Vectored writes are fine natively.
pub(crate) const USE_WRITEV: bool = true;

pub(crate) fn listener(l: std::net::TcpListener) -> io::Result<Listener> {
    tokio::net::TcpListener::from_std(l)
}

pub(crate) async fn accept(l: &Listener) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let (s, peer) = l.accept().await?;
    let _ = s.set_nodelay(true);
    Ok((s, peer))
}

/// Tells whether a connection's socket holds bytes the server has not read yet.
pub(crate) struct InputProbe(std::os::fd::RawFd);

/// The stream hyper serves, and a probe for unread input on it. Natively the probe peeks.
pub(crate) fn probe_input(s: Stream) -> (Stream, InputProbe) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    (s, InputProbe(fd))
}

impl InputProbe {
    /// A non-blocking one-byte `MSG_PEEK`: true when bytes wait (false when none do, or the
    /// peer closed). Only called while the stream is alive (the probe lives in the connection
    /// task that owns it), so the fd is valid.
    pub(crate) fn pending_input(&self) -> bool {
        let mut b = 0u8;
        // SAFETY: valid fd (see above) and a one-byte buffer.
        let n = unsafe {
            libc::recv(
                self.0,
                &mut b as *mut u8 as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n > 0
    }
}
