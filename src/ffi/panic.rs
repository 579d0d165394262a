//! The panic boundary every export sits behind.

/// Runs `$body`; a panic inside becomes `$on_panic` (and the thread's last error says so)
/// instead of unwinding into C.
macro_rules! ffi_guard {
    ($on_panic:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                $crate::ffi::error::set_last_error(
                    $crate::ffi::error::server_result::SERVER_ERR_PANIC,
                    format!("internal error (panic): {msg}"),
                );
                $on_panic
            }
        }
    }};
}

/// Returns `SERVER_ERR_NULL_PARAMETER` (as `int`) from the enclosing function when `$p` is NULL.
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
