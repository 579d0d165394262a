//! The C ABI: argument checking, conversion, the panic boundary and result codes. No server
//! logic lives here; every call lands in [`crate::Server`].
//!
//! The process holds at most one server started through this ABI at a time (the lifecycle
//! names `server_start` / `server_shutdown` / `server_wait` take no handle). After
//! `server_wait` returns, a new `server_start` may follow.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

#[macro_use]
mod panic;
pub mod error;
pub mod lifecycle;
pub mod options;
pub mod queue;
pub mod request;

pub use error::*;
pub use lifecycle::*;
pub use options::*;
pub use queue::*;
pub use request::*;
