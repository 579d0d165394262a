//! WASI: no service manager to notify (no unix sockets, no systemd).

/// Never constructed on WASI.
#[derive(Debug)]
pub(crate) struct Notifier {
    pub(crate) watchdog: Option<std::time::Duration>,
}

/// Never constructed on WASI.
#[derive(Debug)]
pub(crate) struct NotifyAddr;

impl Notifier {
    pub(crate) fn from_env() -> Option<Notifier> {
        None
    }
    pub(crate) fn ready(&self, _status: &str) {}
    pub(crate) fn send(&self, _msg: &str) {}
    pub(crate) fn status(&self, _status: &str) {}
    #[allow(dead_code)]
    pub(crate) fn after_ready(&self) -> Option<&NotifyAddr> {
        None
    }
}
