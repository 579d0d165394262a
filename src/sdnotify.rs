//! The systemd notification protocol (`sd_notify(3)`), spoken by the library so every host is a
//! proper `Type=notify` service: `READY=1` (with `MAINPID=`) once serving, `STOPPING=1` when a
//! drain is requested, `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` pings sent from
//! the server's own runtime (a wedged runtime stops pinging, and systemd restarts it).
//!
//! A plain datagram to the `NOTIFY_SOCKET` address, a path or an abstract (`@`) name. The
//! environment is only read, never changed (hosts may read it from other threads). Our own
//! module because the `sd-notify` crate needs a newer Rust than this project's minimum.
//!
//! An in-place upgrade (see `upgrade.rs`) plays systemd for its successor: the successor's
//! `NOTIFY_SOCKET` is the predecessor's, for `READY=1`, and `GRACESERVE_NOTIFY_SOCKET_AFTER_READY`
//! names where everything after goes (systemd's socket, or nothing). Once the predecessor has
//! told systemd `MAINPID=<successor>` it says nothing more: systemd (with `NotifyAccess=all`)
//! would take its `STOPPING=1` for the service's and stop the successor too, and its
//! `STATUS=` lines and watchdog pings would stand in for the successor's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the successor of an upgrade sends what follows `READY=1` (empty: nowhere).
pub(crate) const AFTER_READY_ENV: &str = "GRACESERVE_NOTIFY_SOCKET_AFTER_READY";

/// A notification socket address: a filesystem path or an abstract name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifyAddr {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Parses `NOTIFY_SOCKET`: `/path` or `@abstract`. Anything else (vsock, empty) is `None`.
    pub(crate) fn parse(s: &str) -> Option<NotifyAddr> {
        if let Some(name) = s.strip_prefix('@') {
            (!name.is_empty()).then(|| NotifyAddr::Abstract(name.as_bytes().to_vec()))
        } else if s.starts_with('/') {
            Some(NotifyAddr::Path(s.into()))
        } else {
            None
        }
    }

    /// Sends one datagram. Failures are logged, never fatal: the service manager may be gone.
    pub(crate) fn send(&self, msg: &str) -> bool {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let r = (|| -> std::io::Result<()> {
            let sock = UnixDatagram::unbound()?;
            match self {
                NotifyAddr::Path(p) => sock.send_to(msg.as_bytes(), p)?,
                NotifyAddr::Abstract(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = SocketAddr::from_abstract_name(name)?;
                    sock.send_to_addr(msg.as_bytes(), &addr)?
                }
            };
            Ok(())
        })();
        if let Err(e) = &r {
            tracing::debug!("sd_notify to {self:?}: {e}");
        }
        r.is_ok()
    }
}

/// The notifications one server sends, configured from the environment at start.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// Where `READY=1` goes.
    ready: NotifyAddr,
    /// Where everything after it goes (the same socket, except under an upgrade).
    after: Option<NotifyAddr>,
    /// Half of `WATCHDOG_USEC`, when the watchdog is on for this process.
    pub(crate) watchdog: Option<Duration>,
    /// Set once an upgrade handed the service over to a successor: nothing more is sent.
    handed_over: AtomicBool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (and `WATCHDOG_USEC` / `WATCHDOG_PID`); `None` when there is
    /// nobody to tell.
    pub(crate) fn from_env() -> Option<Notifier> {
        Notifier::from(&env)
    }

    fn from(env: &dyn Fn(&str) -> Option<String>) -> Option<Notifier> {
        let ready = NotifyAddr::parse(&env("NOTIFY_SOCKET")?)?;
        let after = match env(AFTER_READY_ENV) {
            Some(s) => NotifyAddr::parse(&s),
            None => Some(ready.clone()),
        };
        let pid_ok = env("WATCHDOG_PID")
            .map(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()))
            .unwrap_or(true);
        let watchdog = env("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok)
            .map(|u| Duration::from_micros(u / 2).max(Duration::from_millis(1)));
        Some(Notifier {
            ready,
            after,
            watchdog,
            handed_over: AtomicBool::new(false),
        })
    }

    /// `READY=1` with this process's pid and a status line.
    pub(crate) fn ready(&self, status: &str) {
        self.ready.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS={}\n",
            std::process::id(),
            one_line(status)
        ));
    }

    /// Anything after `READY=1` (`STOPPING=1`, `STATUS=`, `WATCHDOG=1`); nothing once the
    /// service was handed over to a successor.
    pub(crate) fn send(&self, msg: &str) {
        if self.handed_over.load(Ordering::SeqCst) {
            return;
        }
        if let Some(a) = &self.after {
            a.send(msg);
        }
    }

    /// An upgrade's successor is ready: tells the service manager its pid (`MAINPID=`) and the
    /// service's status, the last thing this process says; the successor speaks for the
    /// service from now on. (Its `READY=1` and first `STATUS=` went to this process, so this
    /// status line is the one `systemctl status` shows until the successor sends another.)
    pub(crate) fn hand_over(&self, pid: u32, status: &str) {
        if self.handed_over.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(a) = &self.after {
            a.send(&format!("MAINPID={pid}\nSTATUS={}\n", one_line(status)));
        }
    }

    /// A `STATUS=` line for `systemctl status`.
    pub(crate) fn status(&self, status: &str) {
        self.send(&format!("STATUS={}\n", one_line(status)));
    }

    /// Where messages after `READY=1` go, to hand on to a successor.
    pub(crate) fn after_ready(&self) -> Option<&NotifyAddr> {
        self.after.as_ref()
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl std::fmt::Display for NotifyAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyAddr::Path(p) => write!(f, "{}", p.display()),
            NotifyAddr::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_watchdog() {
        assert_eq!(
            NotifyAddr::parse("@x"),
            Some(NotifyAddr::Abstract(b"x".to_vec()))
        );
        assert_eq!(
            NotifyAddr::parse("/run/n"),
            Some(NotifyAddr::Path("/run/n".into()))
        );
        assert_eq!(NotifyAddr::parse("vsock:2:1"), None);
        assert_eq!(NotifyAddr::parse("@"), None);
        let pid = std::process::id().to_string();
        let e = |k: &str| match k {
            "NOTIFY_SOCKET" => Some("@n".into()),
            "WATCHDOG_USEC" => Some("2000000".into()),
            "WATCHDOG_PID" => Some(pid.clone()),
            _ => None,
        };
        let n = Notifier::from(&e).unwrap();
        assert_eq!(n.watchdog, Some(Duration::from_secs(1)));
        assert_eq!(n.after, Some(NotifyAddr::Abstract(b"n".to_vec())));
        let other = |k: &str| match k {
            "NOTIFY_SOCKET" => Some("/n".into()),
            "WATCHDOG_USEC" => Some("2000000".into()),
            "WATCHDOG_PID" => Some("1".into()),
            AFTER_READY_ENV => Some(String::new()),
            _ => None,
        };
        let n = Notifier::from(&other).unwrap();
        assert_eq!(n.watchdog, None, "another process's watchdog");
        assert_eq!(
            n.after, None,
            "an upgrade successor with no service manager"
        );
        assert!(Notifier::from(&|_: &str| None).is_none());
    }
}
