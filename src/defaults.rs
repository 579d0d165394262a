// The library's defaults, as plain numbers: the one place they are written down. `config.rs`
// turns them into a `Config`; `build.rs` includes this file to write `SERVER_OPTIONS_INIT` into
// the C header, and the bindings read them back through `server_options_init`. Keep it free of
// `use` items and types other than integers: it is `include!`d by the build script.

/// Default listen address when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default drain deadline for drains started by a signal, ms.
pub const DEFAULT_SIGNAL_DRAIN_TIMEOUT_MS: u32 = 5000;
/// Default cap on concurrently open connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// Default time a client has to send a complete request head (slowloris guard), ms.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u32 = 30_000;
/// Default cap on a request body, bytes.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default cap on the bytes of a request head (request line plus headers).
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Default time an idle keep-alive connection is kept open between requests, ms.
pub const DEFAULT_KEEPALIVE_IDLE_TIMEOUT_MS: u32 = 60_000;
/// Default cap on threads that run host handlers.
pub const DEFAULT_HANDLER_THREADS: u32 = 512;
/// Default time an in-place upgrade waits for the new process to report ready, ms.
pub const DEFAULT_UPGRADE_TIMEOUT_MS: u32 = 10_000;
