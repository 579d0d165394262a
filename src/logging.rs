//! The library is quiet unless asked: `GRACESERVE_LOG` (an `EnvFilter` directive such as
//! `info` or `graceserve=debug`) turns on tracing output to stderr. A host that installed its
//! own tracing subscriber keeps it.

use std::sync::Once;

/// The environment variable that turns on logging.
pub const LOG_ENV: &str = "GRACESERVE_LOG";

static INIT: Once = Once::new();

/// Installs the stderr subscriber once, if `GRACESERVE_LOG` is set.
pub fn init() {
    INIT.call_once(|| {
        let Ok(directive) = std::env::var(LOG_ENV) else {
            return;
        };
        if directive.trim().is_empty() {
            return;
        }
        let filter = tracing_subscriber::EnvFilter::new(directive);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(true)
            .try_init();
    });
}
