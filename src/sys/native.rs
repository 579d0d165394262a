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

/// One worker's event loop: a current-thread runtime, driven by a worker thread (see
/// `server::workers`). The threads its blocking pool starts block SIGPIPE, so a write to a
/// vanished client returns EPIPE instead of killing a host that never ignored SIGPIPE, and the
/// host's disposition is left alone; then they run `on_start` (the server marks its own
/// threads). The worker threads do the same through [`thread_start`].
pub(crate) fn runtime(
    _cfg: &Config,
    on_start: Arc<dyn Fn() + Send + Sync>,
) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .thread_name("graceserve")
        .on_thread_start(move || {
            thread_start();
            on_start();
        })
        .enable_all()
        .build()
}

/// Threads exist: each worker has its own, and handlers that block are handed over.
pub(crate) const THREADS: bool = true;

/// An idle connection whose every write completed may be closed by dropping it: what it wrote
/// is in the kernel, which still sends it before the FIN.
pub(crate) const CLOSE_IDLE_BY_DROP: bool = true;

/// Run first on every thread the server starts.
pub(crate) fn thread_start() {
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

/// Moves an accepted connection to another worker's runtime and serves it there: the stream
/// leaves this runtime's reactor and joins that one's.
pub(crate) fn move_stream<F, Fut>(to: &tokio::runtime::Handle, stream: Stream, serve: F)
where
    F: FnOnce(Stream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("cannot move a connection to another worker: {e}");
            return;
        }
    };
    to.spawn(async move {
        match Stream::from_std(std_stream) {
            Ok(s) => serve(s).await,
            Err(e) => tracing::debug!("cannot register a connection with its worker: {e}"),
        }
    });
}

/// The runtimes have their own worker threads: nothing to drive (see the WASI `drive`).
pub(crate) fn drive(
    _runtime: &std::sync::Mutex<Option<impl AsRef<tokio::runtime::Runtime>>>,
    _done: &tokio::sync::Notify,
    _is_done: impl Fn() -> bool,
    timeout: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    timeout
}

/// Handlers may run off the event loop.
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
