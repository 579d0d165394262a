//! # graceserve
//!
//! An embeddable HTTP/1.1 + h2c server with a graceful-shutdown lifecycle that matches Go's
//! `http.Server.Shutdown` + `signal.NotifyContext`: start (bind errors at once), serve, drain on
//! a call or a signal (stop accepting, close idle connections, let in-flight requests finish,
//! force-close at the deadline), and wait for an exit status. Any number of servers may run in
//! one process; with [`SignalPolicy::Library`] one SIGINT/SIGTERM drains all of them.
//!
//! ```no_run
//! use graceserve::{Config, Server};
//! let server = Server::start(Config::new("127.0.0.1:0"), None).unwrap();
//! println!("listening on {}", server.local_addr());
//! let outcome = server.shutdown(Some(std::time::Duration::from_secs(5))).unwrap();
//! std::process::exit(outcome.exit_status());
//! ```
//!
//! The C ABI over this core lives in [`ffi`]; it adds no server logic. How the modules fit
//! (floors, lifecycle, signals, threads, a map of every file) is `docs/architecture.md` in the
//! repository; the guides for each language are in `docs/`.

pub mod config;
mod defaults;
pub mod events;
pub mod handler;
pub mod logging;
pub mod outcome;
pub(crate) mod panic;
#[cfg(not(target_os = "wasi"))]
mod sdnotify;
#[cfg(target_os = "wasi")]
#[path = "sdnotify_wasi.rs"]
mod sdnotify;
pub mod server;
mod signals;
mod sys;
pub mod upgrade;

pub mod ffi;

pub use config::{Config, SignalPolicy};
pub use events::{Event, EventHook, EventKind};
pub use handler::{BodyWriter, Handler, Reply, ReplyError, Request, Response, ResponseBody};
pub use outcome::{Outcome, StopCause};
pub use server::{in_handler, OwnThread, Server, StartError, StartErrorKind, Stats};
pub use signals::SignalSender;
pub use upgrade::UpgradeCommand;

/// Delivers `signum` to every running server that listens for process-wide signals (those
/// started with [`SignalPolicy::Library`] or [`SignalPolicy::Host`]), exactly as a caught
/// SIGINT/SIGTERM would: the first starts a drain with the signal deadline, the next forces the
/// stop. Async-signal-safe. Returns false when no running server listens (or `signum <= 0`);
/// always false on WASI, which has no signals.
pub fn notify_signal(signum: i32) -> bool {
    signals::notify_signal(signum)
}

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// The Rust code blocks of README.md and docs/rust.md run as doctests (`cargo test --doc`), so
// their examples stay true. A page with Rust code gets its line here (and a place in Cargo.toml's
// `include`); tests/readme/check_docs.py fails on a ```rust block in any other page.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc = include_str!("../docs/rust.md")]
struct ReadmeDoctests;
