/// The version of this ABI, and the major version of the shared library: the library file is
/// `libgraceserve.so.<SERVER_ABI_VERSION>.<minor>.<patch>` (minor and patch of the crate
/// version) with the SONAME `libgraceserve.so.<SERVER_ABI_VERSION>`, so a program linked
/// against one ABI never loads another. Bindings compare it with `server_abi_version()` at load
/// time. It changes when an existing function's signature or behaviour, a struct layout, or a
/// constant's value changes incompatibly; never for an appended export, a new enum value or a
/// field appended to a versioned struct. 1: the first ABI; 2: `server_stats` became a versioned
/// struct (and the `server_instance` handle API arrived).
pub const SERVER_ABI_VERSION: u32 = 2;
