//! In-place upgrade: start a fresh copy of a program with this server's listening socket handed
//! over the way this process got it (`Handover`: descriptor 3 with `LISTEN_FDS`/`LISTEN_PID`,
//! or descriptor N again for `fd:N`), so the same address adopts the socket instead of binding
//! it; wait until it reports ready through the systemd notification protocol (this process
//! playing systemd: the successor's `NOTIFY_SOCKET` is ours), and only then let this server
//! drain. Both accept on the same socket meanwhile, so no connection is refused; if the
//! successor fails to become ready it is stopped and this server keeps serving.
//!
//! The child is started with `fork` + `execve` directly (after `fork` only async-signal-safe
//! calls): `LISTEN_PID` must name the child, which only the child knows, and writing it into a
//! buffer prepared before the fork is the one way to set it without allocating in the child.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

#[cfg(not(target_os = "wasi"))]
pub(crate) use native::start_successor;

/// What to start as the successor: a program and its whole argument vector (`argv[0]`
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeCommand {
    /// The program to execute (a path).
    pub program: PathBuf,
    /// Its arguments, `argv[0]` first.
    pub args: Vec<OsString>,
}

/// How the successor of an upgrade gets the listening socket: the way this process got it, so
/// that the same `--addr` adopts it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handover {
    /// As descriptor 3, announced with `LISTEN_FDS=1`, `LISTEN_PID` and this name in
    /// `LISTEN_FDNAMES` (the name of the socket systemd passed, so `systemd:NAME` finds it;
    /// `graceserve` when it had none). For `HOST:PORT`, `systemd` and `systemd:NAME`.
    Passed(String),
    /// As descriptor N again, without `LISTEN_*` variables: for `fd:N` (never on WASI).
    #[cfg_attr(target_os = "wasi", allow(dead_code))]
    Fd(i32),
}

/// The `LISTEN_FDNAMES` entry of a socket that has no name of its own.
pub(crate) const DEFAULT_FDNAME: &str = "graceserve";

impl Handover {
    /// The descriptor the successor finds the listener at.
    #[cfg(not(target_os = "wasi"))]
    fn target_fd(&self) -> i32 {
        match self {
            Handover::Passed(_) => crate::sys::activation::LISTEN_FDS_START,
            Handover::Fd(n) => *n,
        }
    }
}

impl UpgradeCommand {
    /// This very program, by the path it was started from (so a binary replaced on disk is the
    /// one that starts), with this process's own arguments: the same flags.
    #[cfg(target_os = "wasi")]
    pub fn this_process() -> io::Result<UpgradeCommand> {
        Err(io::Error::other("no processes on WASI"))
    }

    /// This very program, by the path it was started from (so a binary replaced on disk is the
    /// one that starts), with this process's own arguments: the same flags.
    #[cfg(not(target_os = "wasi"))]
    pub fn this_process() -> io::Result<UpgradeCommand> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let exe = std::fs::read_link("/proc/self/exe")?;
        // A replaced binary shows as "<path> (deleted)": the path is what to start.
        let raw = exe.as_os_str().as_bytes();
        let program = match raw.strip_suffix(b" (deleted)") {
            Some(p) => PathBuf::from(OsString::from_vec(p.to_vec())),
            None => exe,
        };
        let cmdline = std::fs::read("/proc/self/cmdline")?;
        let args: Vec<OsString> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        if args.is_empty() {
            return Err(io::Error::other("/proc/self/cmdline is empty"));
        }
        Ok(UpgradeCommand { program, args })
    }
}

#[cfg(not(target_os = "wasi"))]
mod native {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::time::{Duration, Instant};

    use super::{Handover, UpgradeCommand};
    use crate::sdnotify::{NotifyAddr, AFTER_READY_ENV};

    /// The variables the successor gets from us; the rest of the environment is passed on.
    const OURS: [&str; 7] = [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_PID",
        "WATCHDOG_USEC",
        AFTER_READY_ENV,
    ];

    fn cstring(b: &[u8], what: &str) -> Result<CString, String> {
        CString::new(b).map_err(|_| format!("{what} contains a NUL byte"))
    }

    /// Moves a descriptor to `min` or above (at least 10), so the child's `dup2` of the listener
    /// to its target descriptor cannot clobber it.
    fn high(fd: OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the result is a fresh descriptor.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min.max(10)) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: n is new and ours.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    }

    /// The datagram socket the successor reports readiness on: an abstract name unique to this
    /// process and call, with `SO_PASSCRED` so the sender's pid is known.
    fn ready_socket() -> io::Result<(OwnedFd, String)> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "graceserve-upgrade/{}/{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        // SAFETY: plain socket calls with valid arguments; the address is built below.
        unsafe {
            let fd = libc::socket(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            let mut sa: libc::sockaddr_un = std::mem::zeroed();
            sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
            // Abstract: sun_path[0] = 0, then the name.
            for (i, b) in name.bytes().enumerate() {
                sa.sun_path[i + 1] = b as libc::c_char;
            }
            let len =
                (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
            if libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok((high(fd, 10)?, format!("@{name}")))
        }
    }

    /// One datagram and its sender's pid, if one waits.
    fn recv_with_pid(fd: RawFd) -> Option<(Vec<u8>, Option<i32>)> {
        let mut buf = vec![0u8; 4096];
        let mut cmsg = [0u64; 16];
        // SAFETY: a msghdr over live buffers of the stated sizes; recvmsg fills at most those.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
            let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                return None;
            }
            buf.truncate(n as usize);
            let mut pid = None;
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                    let cred = &*(libc::CMSG_DATA(c) as *const libc::ucred);
                    pid = Some(cred.pid);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            Some((buf, pid))
        }
    }

    fn describe_status(status: libc::c_int) -> String {
        if libc::WIFEXITED(status) {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            format!("was killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("ended (wait status {status})")
        }
    }

    /// Stops and reaps a child that did not make it.
    fn kill_and_reap(pid: libc::pid_t) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        }
    }

    /// Starts `cmd` with `listener` handed over as `handover` says (descriptor 3 with the
    /// `LISTEN_*` variables, or descriptor N for `fd:N`) and waits up to `timeout` for it to
    /// report `READY=1`. `after_ready` is where the successor sends its later notifications (systemd's
    /// socket when this process has one). `abort` is polled: when it turns true (a drain of this
    /// server was requested meanwhile) the successor is stopped. Returns the successor's pid, or
    /// why it did not become ready (it is stopped and reaped then).
    pub(crate) fn start_successor(
        cmd: &UpgradeCommand,
        listener: RawFd,
        handover: &Handover,
        after_ready: Option<&NotifyAddr>,
        timeout: Duration,
        abort: &dyn Fn() -> bool,
    ) -> Result<u32, String> {
        let what = cmd.program.display().to_string();
        let (sock, sock_name) =
            ready_socket().map_err(|e| format!("cannot create the readiness socket: {e}"))?;

        // Everything the child needs, built before the fork.
        let program = cstring(cmd.program.as_os_str().as_bytes(), "the program path")?;
        let args: Vec<CString> = cmd
            .args
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<Result<_, _>>()?;
        let mut env: Vec<CString> = Vec::new();
        for (k, v) in std::env::vars_os() {
            if OURS.iter().any(|o| k.as_bytes() == o.as_bytes()) {
                continue;
            }
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            if let Ok(c) = CString::new(kv) {
                env.push(c);
            }
        }
        let after = after_ready.map(|a| a.to_string()).unwrap_or_default();
        let mut vars = vec![
            ("NOTIFY_SOCKET", sock_name.clone()),
            (AFTER_READY_ENV, after),
        ];
        if let Handover::Passed(name) = handover {
            vars.push(("LISTEN_FDS", "1".to_string()));
            vars.push(("LISTEN_FDNAMES", name.clone()));
        }
        for (k, v) in vars {
            env.push(cstring(format!("{k}={v}").as_bytes(), k)?);
        }
        if let Ok(w) = std::env::var("WATCHDOG_USEC") {
            if after_ready.is_some() {
                env.push(cstring(
                    format!("WATCHDOG_USEC={w}").as_bytes(),
                    "WATCHDOG_USEC",
                )?);
            }
        }
        // LISTEN_PID=<child pid>: digits written by the child into this buffer after the fork.
        let mut listen_pid = *b"LISTEN_PID=\0\0\0\0\0\0\0\0\0\0\0\0";
        let listen_pid_ptr = listen_pid.as_mut_ptr();
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        if let Handover::Passed(_) = handover {
            envp.push(listen_pid_ptr as *const libc::c_char);
        }
        envp.push(std::ptr::null());
        let target = handover.target_fd();

        // Tells the parent that exec failed (the errno), or closes on a successful exec.
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!(
                "cannot start {what}: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: pipe2 returned two fresh descriptors.
        let (err_r, err_w) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let err_w = high(err_w, target + 1).map_err(|e| format!("cannot start {what}: {e}"))?;
        let err_w_fd = err_w.as_raw_fd();
        // SAFETY: 11 is within the 23-byte buffer ("LISTEN_PID=" then 12 NULs).
        let pid_slot = unsafe { listen_pid_ptr.add(11) };

        // SAFETY: fork; the child only makes async-signal-safe calls (dup2, fcntl, getpid,
        // sigprocmask, execve, write, _exit) on memory prepared above, then execs or exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!(
                "cannot start {what}: fork: {}",
                io::Error::last_os_error()
            ));
        }
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                if listener == target {
                    let f = libc::fcntl(listener, libc::F_GETFD);
                    libc::fcntl(listener, libc::F_SETFD, f & !libc::FD_CLOEXEC);
                } else {
                    libc::dup2(listener, target);
                }
                let mut n = libc::getpid() as u32;
                let mut digits = [0u8; 10];
                let mut k = digits.len();
                loop {
                    k -= 1;
                    digits[k] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                for (i, d) in digits[k..].iter().enumerate() {
                    *pid_slot.add(i) = *d;
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(err_w_fd, (&errno as *const libc::c_int).cast(), 4);
                libc::_exit(127);
            }
        }
        drop(err_w);
        let mut errno: libc::c_int = 0;
        // SAFETY: reads at most 4 bytes into a c_int; blocks until exec or the child's exit.
        let n = unsafe {
            libc::read(
                err_r.as_raw_fd(),
                (&mut errno as *mut libc::c_int).cast(),
                4,
            )
        };
        if n == 4 {
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            return Err(format!(
                "cannot start {what}: {}",
                io::Error::from_raw_os_error(errno)
            ));
        }

        let started = Instant::now();
        loop {
            while let Some((msg, sender)) = recv_with_pid(sock.as_raw_fd()) {
                let ready = msg.split(|&b| b == b'\n').any(|l| l == b"READY=1");
                if ready && sender == Some(pid) {
                    return Ok(pid as u32);
                }
            }
            let mut st = 0;
            // SAFETY: polling our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                return Err(format!(
                    "the new process {what} (pid {pid}) {} before reporting ready",
                    describe_status(st)
                ));
            }
            if r < 0 {
                return Err(format!(
                    "the new process {what} (pid {pid}) cannot be watched: {}",
                    io::Error::last_os_error()
                ));
            }
            if abort() {
                kill_and_reap(pid);
                return Err(format!(
                "a drain was requested while the new process (pid {pid}) was starting; it was stopped"
            ));
            }
            if started.elapsed() >= timeout {
                kill_and_reap(pid);
                return Err(format!(
                "the new process {what} (pid {pid}) did not report ready within {} ms; it was stopped",
                timeout.as_millis()
            ));
            }
            let mut pfd = libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 20) };
        }
    }
}
