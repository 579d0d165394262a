//! The C ABI: argument checking, conversion, the panic boundary and result codes. No server
//! logic lives here; every call lands in [`crate::Server`].
//!
//! - `instance`: the `server_instance` handle API (any number of servers per process).
//! - `lifecycle`: the fixed names `server_start` / `server_shutdown` / `server_wait` over the
//!   process's default instance, through the same code.
//! - `options`: the versioned `server_options`; `handler`: the callback typedefs;
//!   `request`: reading a request; `response`: answering it; `error`: result codes and the
//!   per-thread last error; `macros`: the panic boundary every export is declared through.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

#[macro_use]
pub(crate) mod macros;
pub mod abi;
pub mod error;
pub mod handler;
pub mod instance;
pub mod lifecycle;
pub mod options;
pub mod queue;
pub mod request;
pub mod response;

pub use abi::*;
pub use error::*;
pub use handler::*;
pub use instance::*;
pub use lifecycle::*;
pub use options::*;
pub use queue::*;
pub use request::*;
pub use response::*;
