//! Listening sockets handed to the process instead of bound by it: systemd socket activation
//! (`LISTEN_FDS` / `LISTEN_PID` / `LISTEN_FDNAMES`), an explicit `fd:N`, and the listener an
//! in-place upgrade hands to its successor (see `upgrade.rs`).
//!
//! The environment is only read, never changed (a host may read it from other threads). Adopted
//! descriptors get `FD_CLOEXEC`, so processes the host starts later do not inherit them.

use std::ffi::OsStr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};

use crate::upgrade::{Handover, DEFAULT_FDNAME};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Where the listener comes from, as the address string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `HOST:PORT`: bind it, unless an inherited socket is bound to that address.
    Bind(String),
    /// `systemd` (`None`: the first passed socket) or `systemd:NAME`.
    Systemd(Option<String>),
    /// `fd:N`.
    Fd(RawFd),
}

/// Parses the address forms beyond `HOST:PORT`.
pub(crate) fn source(addr: &str) -> Result<Source, String> {
    if addr == "systemd" {
        return Ok(Source::Systemd(None));
    }
    if let Some(name) = addr.strip_prefix("systemd:") {
        if name.is_empty() || name.contains(':') || name.bytes().any(|b| b < 0x20) {
            return Err(format!(
                "invalid address {addr:?}: systemd:NAME needs a socket name (FileDescriptorName=)"
            ));
        }
        return Ok(Source::Systemd(Some(name.to_owned())));
    }
    if let Some(n) = addr.strip_prefix("fd:") {
        return match n.parse::<RawFd>() {
            Ok(fd) if fd >= 0 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(Source::Fd(fd)),
            _ => Err(format!(
                "invalid address {addr:?}: fd:N needs a descriptor number such as fd:3"
            )),
        };
    }
    Ok(Source::Bind(addr.to_owned()))
}

/// The sockets systemd passed to this process: (fd, name) for each, when `LISTEN_PID` is this
/// process. Empty otherwise.
fn passed(env: &dyn Fn(&str) -> Option<String>) -> Vec<(RawFd, Option<String>)> {
    let Some(pid) = env("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok()) else {
        return Vec::new();
    };
    if pid != std::process::id() {
        return Vec::new();
    }
    let Some(n) = env("LISTEN_FDS").and_then(|n| n.trim().parse::<i32>().ok()) else {
        return Vec::new();
    };
    let names: Vec<String> = env("LISTEN_FDNAMES")
        .map(|s| s.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    (0..n.clamp(0, 4096))
        .map(|i| (LISTEN_FDS_START + i, names.get(i as usize).cloned()))
        .collect()
}

fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| OsStr::to_string_lossy(&v).into_owned())
}

/// Checks that `fd` is a listening TCP socket and returns its local address.
fn check_listening_tcp(fd: RawFd, what: &str) -> Result<SocketAddr, String> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt with a valid out-buffer of the given length; fd may be anything.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EBADF) => format!("{what} is not an open descriptor"),
            Some(libc::ENOTSOCK) => format!("{what} is not a socket"),
            _ => format!("{what}: {e}"),
        });
    }
    if ty != libc::SOCK_STREAM {
        return Err(format!("{what} is not a stream (TCP) socket"));
    }
    let mut acc: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut acc as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || acc == 0 {
        return Err(format!(
            "{what} is a socket but not listening (listen() was not called)"
        ));
    }
    local_addr(fd).ok_or_else(|| format!("{what} is not an IPv4 or IPv6 socket"))
}

/// The IPv4/IPv6 address a socket is bound to.
fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is valid; getsockname writes at most its size.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid out-buffer of `len` bytes.
    if unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return None;
    }
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// Takes ownership of a checked listening descriptor: close-on-exec, non-blocking.
fn adopt(fd: RawFd) -> io::Result<std::net::TcpListener> {
    // SAFETY: plain fcntl calls on a descriptor checked to be an open socket.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: the process handed this descriptor to us (LISTEN_FDS, fd:N): we own it now.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A listener for `systemd`, `systemd:NAME` or `fd:N`, checked to be a listening TCP socket,
/// and how to hand it to the successor of an upgrade.
pub(crate) fn adopt_source(
    src: &Source,
    addr: &str,
) -> Result<(std::net::TcpListener, Handover), String> {
    let (fd, handover) = match src {
        Source::Fd(fd) => (*fd, Handover::Fd(*fd)),
        Source::Systemd(name) => {
            let fds = passed(&env_var);
            if fds.is_empty() {
                return Err(format!(
                    "cannot listen on {addr}: no socket was passed to this process (LISTEN_FDS/LISTEN_PID are not set for it; start it from a systemd .socket unit or systemd-socket-activate)"
                ));
            }
            let found = match name {
                None => &fds[0],
                Some(n) => match fds.iter().find(|(_, name)| name.as_deref() == Some(n)) {
                    Some(found) => found,
                    None => {
                        let have: Vec<String> = fds
                            .iter()
                            .map(|(fd, name)| {
                                format!("fd {fd} = {}", name.as_deref().unwrap_or("(unnamed)"))
                            })
                            .collect();
                        return Err(format!(
                            "cannot listen on {addr}: no passed socket is named {n:?} (LISTEN_FDNAMES: {})",
                            have.join(", ")
                        ));
                    }
                },
            };
            (found.0, passed_handover(&found.1))
        }
        Source::Bind(_) => unreachable!("bound, not adopted"),
    };
    check_listening_tcp(fd, &format!("fd {fd}"))
        .and_then(|_| adopt(fd).map_err(|e| format!("fd {fd}: {e}")))
        .map(|l| (l, handover))
        .map_err(|m| format!("cannot listen on {addr}: {m}"))
}

/// Descriptor 3 with the `LISTEN_*` variables, under the name the socket was passed with.
fn passed_handover(name: &Option<String>) -> Handover {
    Handover::Passed(
        name.as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_FDNAME)
            .to_owned(),
    )
}

/// An inherited listener (passed with `LISTEN_FDS` to this process) bound to one of `addrs`;
/// port 0 in `addrs` matches any port. This is how the successor of an in-place upgrade takes
/// over its predecessor's listener while asking for the same `HOST:PORT`.
pub(crate) fn inherited_for(addrs: &[SocketAddr]) -> Option<(std::net::TcpListener, Handover)> {
    for (fd, name) in passed(&env_var) {
        let Ok(local) = check_listening_tcp(fd, "") else {
            continue;
        };
        let matches = addrs
            .iter()
            .any(|a| a.ip() == local.ip() && (a.port() == 0 || a.port() == local.port()));
        if matches {
            match adopt(fd) {
                Ok(l) => {
                    tracing::info!(fd, %local, "adopted an inherited listener");
                    return Some((l, passed_handover(&name)));
                }
                Err(e) => tracing::warn!(fd, "cannot adopt an inherited listener: {e}"),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!(source("systemd"), Ok(Source::Systemd(None)));
        assert_eq!(
            source("systemd:web"),
            Ok(Source::Systemd(Some("web".into())))
        );
        assert_eq!(source("fd:3"), Ok(Source::Fd(3)));
        assert_eq!(
            source("127.0.0.1:80"),
            Ok(Source::Bind("127.0.0.1:80".into()))
        );
        assert!(source("fd:").is_err());
        assert!(source("fd:-1").is_err());
        assert!(source("fd:+3").is_err());
        assert!(source("systemd:").is_err());
    }

    #[test]
    fn passed_sockets_need_our_pid() {
        let pid = std::process::id().to_string();
        let env = |k: &str| match k {
            "LISTEN_PID" => Some(pid.clone()),
            "LISTEN_FDS" => Some("2".into()),
            "LISTEN_FDNAMES" => Some("web:admin".into()),
            _ => None,
        };
        assert_eq!(
            passed(&env),
            vec![(3, Some("web".into())), (4, Some("admin".into()))]
        );
        let other = |k: &str| match k {
            "LISTEN_PID" => Some("1".into()),
            "LISTEN_FDS" => Some("1".into()),
            _ => None,
        };
        assert!(passed(&other).is_empty());
    }
}
