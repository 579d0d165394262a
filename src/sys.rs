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
            // The hot handler threads count against the handler thread budget.
            .max_blocking_threads(
                cfg.handler_threads
                    .saturating_sub(hot_handler_threads(cfg))
                    .max(1),
            )
            .thread_name("graceserve")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
    }

    /// How many always-ready handler threads a server keeps: one per async worker, within
    /// the handler thread budget (when the budget is that small, the hot threads are all
    /// there is: see `HandlerPool::start`).
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

    /// Handlers may run on the blocking pool.
    pub(crate) const FORCE_INLINE_HANDLER: bool = false;

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

#[cfg(target_os = "wasi")]
mod imp {
    //! `wasm32-wasip2`: one thread, a current-thread runtime, no signals (stdin stands in for
    //! them), accept through wasi-libc after a readiness wait, no vectored writes.
    use super::*;
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
    pub(crate) fn runtime(_cfg: &Config) -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }

    /// Runs the runtime on the calling thread until `done()` holds or `timeout` passes. Natively
    /// the runtime has its own threads and this is a no-op; here nothing else would run it.
    pub(crate) fn drive(
        runtime: &Mutex<Option<tokio::runtime::Runtime>>,
        done: &tokio::sync::Notify,
        is_done: impl Fn() -> bool,
        timeout: Option<Duration>,
    ) -> Option<Duration> {
        // Without threads a condvar wait could only sleep: whatever driving did not finish,
        // nothing else will while this thread waits.
        let rest = Some(Duration::ZERO);
        let guard = runtime.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rt) = guard.as_ref() else {
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

    /// Never used (handlers are inline), but the core names them.
    pub(crate) fn hot_handler_threads(_cfg: &Config) -> usize {
        0
    }

    pub(crate) fn handler_thread_start() {}

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

    /// WASI has no signals. With the library signal policy, stdin is the signal channel: each
    /// byte read from it counts as one signal, and so does its end (EOF). A launcher turns
    /// SIGINT/SIGTERM into a byte (or closes stdin), so the first starts a drain and the second
    /// forces the stop, exactly as signals do natively.
    #[derive(Debug)]
    pub(crate) struct SignalGuard(bool);

    pub(crate) struct SignalReader;

    /// The signal number a stdin event stands for (SIGTERM).
    const STDIN_SIGNAL: i32 = 15;
    /// How often stdin is checked (a zero-timeout poll; stdin cannot join tokio's reactor).
    const STDIN_POLL: Duration = Duration::from_millis(10);

    impl SignalGuard {
        pub(crate) fn claim(install: bool) -> Result<SignalGuard, String> {
            Ok(SignalGuard(install))
        }

        pub(crate) fn reader(&self) -> Option<SignalReader> {
            self.0.then_some(SignalReader)
        }
    }

    impl SignalReader {
        pub(crate) async fn run(self, on_signal: impl Fn(i32)) {
            let mut tick = tokio::time::interval(STDIN_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut pfd = libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, zero timeout.
                let n = unsafe { libc::poll(&mut pfd, 1, 0) };
                if n < 0 {
                    tracing::error!(
                        "cannot watch stdin for the stop trigger: {}",
                        io::Error::last_os_error()
                    );
                    return;
                }
                if n == 0 || pfd.revents == 0 {
                    continue;
                }
                let mut buf = [0u8; 64];
                // SAFETY: reads into a live local buffer of the given length.
                let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted
                    {
                        continue;
                    }
                    tracing::error!("cannot read stdin for the stop trigger: {e}");
                    return;
                }
                if r == 0 {
                    on_signal(STDIN_SIGNAL);
                    return;
                }
                for _ in 0..r {
                    on_signal(STDIN_SIGNAL);
                }
            }
        }
    }
}

#[cfg(target_os = "wasi")]
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
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
    )
}

#[cfg(not(target_os = "wasi"))]
const PEEK_FLAGS: libc::c_int = libc::MSG_PEEK | libc::MSG_DONTWAIT;
/// WASI sockets are already non-blocking (see `accept` above).
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
