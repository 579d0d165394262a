//! The panic boundary, as a macro that wraps the whole exported declaration.
//!
//! ```ignore
//! ffi_fn! {
//!     /// Docs (they become the header's docs).
//!     unsafe fn server_thing(out: *mut u32) -> c_int {
//!         check_null!(out, "out");
//!         ...
//!     } ?= server_result::SERVER_ERR_PANIC as c_int
//! }
//! ```
//!
//! expands to `#[no_mangle] pub unsafe extern "C" fn server_thing(..) -> c_int` whose body runs
//! inside `catch_unwind`: a panic becomes the value after `?=` (and the thread's last error
//! says so) instead of unwinding into C. An export written any other way has no `#[no_mangle]`
//! and is not in the header, so none can forget the guard. cbindgen cannot expand macros: the
//! build script hands it a copy of `src/ffi` where each `ffi_fn!` is rewritten to its plain
//! declaration (see `build.rs`), which keeps the docs and the signature exactly as written here.

/// Declares one exported function behind the panic boundary (see the module docs).
macro_rules! ffi_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block ?= $on_panic:expr) => {
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            $crate::ffi::macros::guard(move || -> $ret { $body }, move || $on_panic)
        }
    };
    ($(#[$m:meta])* unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block ?= $on_panic:expr) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            $crate::ffi::macros::guard(move || -> $ret { $body }, move || $on_panic)
        }
    };
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) {
            $crate::ffi::macros::guard(move || $body, || ())
        }
    };
    ($(#[$m:meta])* unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) {
            $crate::ffi::macros::guard(move || $body, || ())
        }
    };
}

/// Returns `SERVER_ERR_NULL_PARAMETER` (as `int`) from the enclosing export when `$p` is NULL.
macro_rules! check_null {
    ($p:expr, $name:literal) => {
        if $p.is_null() {
            return $crate::ffi::error::fail(
                $crate::ffi::error::server_result::SERVER_ERR_NULL_PARAMETER,
                concat!("argument `", $name, "` is NULL"),
            );
        }
    };
}

/// Runs `body`; a panic inside becomes `on_panic()` and the calling thread's last error.
/// Allocates nothing unless a panic happened (the async-signal-safe exports rely on that).
pub(crate) fn guard<T>(body: impl FnOnce() -> T, on_panic: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(p) => {
            super::error::set_last_error(
                super::error::server_result::SERVER_ERR_PANIC,
                format!("internal error (panic): {}", crate::panic::message(&*p)),
            );
            on_panic()
        }
    }
}
