/// The version of this ABI. Bindings check it at load time. It changes only when an existing
/// signature or struct layout changes (never for an appended export, an appended field of a
/// versioned struct, or a new result code). 2: `server_stats` carries a `version` (so it can
/// grow) and the `server_instance` handle API was added.
pub const SERVER_ABI_VERSION: u32 = 2;
