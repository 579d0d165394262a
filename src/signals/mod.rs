//! Signals the library turns into drains (docs/architecture.md §3 Signals). Natively these are
//! real signals caught by the library's own async-signal-safe handler; on WASI, which has no
//! signals, stdin stands in for them. Either way each server gets a [`SignalGuard`] while it runs and reads its
//! signals through a [`SignalReader`] on its own runtime.
//!
//! - `native.rs`: the `sigaction` handlers, the table of listening servers, one self-pipe per
//!   server.
//! - `wasi.rs`: stdin as the signal channel.

#[cfg(not(target_os = "wasi"))]
mod native;
#[cfg(not(target_os = "wasi"))]
pub use native::SignalSender;
#[cfg(not(target_os = "wasi"))]
pub(crate) use native::*;

#[cfg(target_os = "wasi")]
mod wasi;
#[cfg(target_os = "wasi")]
pub use wasi::SignalSender;
#[cfg(target_os = "wasi")]
pub(crate) use wasi::*;
