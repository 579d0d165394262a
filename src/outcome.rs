//! How a server stopped, and the exit status that follows from it.

use std::fmt;

/// Why the server stopped. Each cause maps to one process exit status ([`StopCause::exit_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopCause {
    /// A signal started the drain and every connection finished before the deadline.
    GracefulSignal,
    /// A shutdown call started the drain and every connection finished before the deadline.
    GracefulCall,
    /// The listener could not be bound (address in use, permission denied, bad address).
    BindFailed,
    /// The options were rejected before anything started (bad version, out-of-range value).
    InvalidOptions,
    /// The runtime or the listener failed while serving.
    RuntimeFailed,
    /// The drain deadline passed with connections still open; they were closed.
    ForcedDeadline,
    /// A second signal arrived during the drain; open connections were closed at once.
    ForcedSecondSignal,
    /// An in-place upgrade handed the listener to a new process, and this one drained in time.
    Upgraded,
}

impl StopCause {
    /// The status `main` should return: 0 after a graceful stop, 1 otherwise.
    pub fn exit_status(self) -> i32 {
        if self.is_graceful() {
            0
        } else {
            1
        }
    }

    /// True for the graceful causes (a signal, a call, an upgrade).
    pub fn is_graceful(self) -> bool {
        matches!(
            self,
            StopCause::GracefulSignal | StopCause::GracefulCall | StopCause::Upgraded
        )
    }

    /// True when connections were cut by force.
    pub fn is_forced(self) -> bool {
        matches!(
            self,
            StopCause::ForcedDeadline | StopCause::ForcedSecondSignal
        )
    }
}

/// The full account of a stop: the cause plus a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Why it stopped.
    pub cause: StopCause,
    /// One line describing the stop, e.g. which address failed to bind and the OS error.
    pub message: String,
}

impl Outcome {
    pub(crate) fn new(cause: StopCause, message: impl Into<String>) -> Self {
        Outcome {
            cause,
            message: message.into(),
        }
    }

    /// Shorthand for `self.cause.exit_status()`.
    pub fn exit_status(&self) -> i32 {
        self.cause.exit_status()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
