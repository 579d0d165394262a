//! # graceserve
//!
//! An embeddable HTTP/1.1 + h2c server with a graceful-shutdown lifecycle that matches Go's
//! `http.Server.Shutdown` + `signal.NotifyContext`: start (bind errors at once), serve, drain on
//! a call or a signal (stop accepting, close idle connections, let in-flight requests finish,
//! force-close at the deadline), and wait for an exit status.
//!
//! ```no_run
//! use graceserve::{Config, Server};
//! let server = Server::start(Config::new("127.0.0.1:0"), None).unwrap();
//! println!("listening on {}", server.local_addr());
//! let outcome = server.shutdown(Some(std::time::Duration::from_secs(5)));
//! std::process::exit(outcome.exit_status());
//! ```
//!
//! The C ABI over this core lives in [`ffi`]; it adds no server logic.

pub mod config;
pub mod handler;
pub mod logging;
pub mod outcome;
mod pool;
pub mod server;
#[cfg(not(target_os = "wasi"))]
mod signals;
mod sys;

pub mod ffi;

pub use config::{Config, SignalPolicy};
pub use handler::{BodyWriter, Handler, Reply, ReplyError, Request, Response, ResponseBody};
pub use outcome::{Outcome, StopCause};
pub use server::{in_handler, Server, StartError, StartErrorKind, Stats};

/// Delivers `signum` to the server that listens for signals, exactly as a caught SIGINT/SIGTERM
/// would: the first starts a drain with the signal deadline, the next forces the stop.
/// Async-signal-safe. Returns false when no running server listens (or `signum <= 0`).
#[cfg(not(target_os = "wasi"))]
pub fn notify_signal(signum: i32) -> bool {
    signals::notify_signal(signum)
}

/// WASI has no signals; there is never a listener.
#[cfg(target_os = "wasi")]
pub fn notify_signal(_signum: i32) -> bool {
    false
}

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// README.md's Rust code blocks run as doctests (`cargo test --doc`), so its example stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
