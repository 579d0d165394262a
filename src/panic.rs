//! Panic payloads turned into text, for the handler boundary and the FFI boundary alike.

/// The message of a caught panic (`&str` or `String` payloads; anything else is "unknown").
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}
