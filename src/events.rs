//! Lifecycle events a host may want to report: a drain started, the server stopped. The
//! library formats the line (one place for every host); the host decides where it goes.

use std::sync::Arc;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A drain was requested: the pre-drain delay (if any) or the drain itself begins.
    DrainStarted,
    /// The server stopped; the message gives the outcome (graceful in N ms, or forced with the
    /// number of connections cut).
    Stopped,
    /// An in-place upgrade's new process reported ready; this server drains now.
    UpgradeReady,
    /// An in-place upgrade failed (the message says why); this server keeps serving.
    UpgradeFailed,
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// One line for humans, e.g. `draining (signal 15): delay 1000 ms, then deadline 5000 ms;
    /// 3 connection(s) open`.
    pub message: String,
}

/// The host's event callback (see [`crate::Config::on_event`]).
#[derive(Clone)]
pub struct EventHook(pub Arc<dyn Fn(&Event) + Send + Sync>);

impl EventHook {
    /// Wraps a closure.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        EventHook(Arc::new(f))
    }

    pub(crate) fn emit(&self, kind: EventKind, message: String) {
        let ev = Event { kind, message };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.0)(&ev))).is_err() {
            tracing::error!("the event callback panicked; ignored");
        }
    }
}

impl std::fmt::Debug for EventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHook(..)")
    }
}
