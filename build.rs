//! Build script:
//! - links the cdylib with the SONAME `libgraceserve.so.<SERVER_ABI_VERSION>`, the ABI major
//!   read from src/ffi/abi.rs, the one place it is decided (the header gets it from there too);
//! - inside the git checkout, regenerates include/graceserve.h from src/ffi with cbindgen,
//!   rewriting it only when it changed. The drift check is `make test-header`: build, then
//!   `git diff --exit-code` on the header. Anywhere else (a packaged crate, a copy of the sources
//!   built by pip) the committed header is the shipped one and nothing outside OUT_DIR is
//!   written.
//!
//! cbindgen cannot expand macros, and every export is declared through `ffi_fn!` (the panic
//! boundary, see src/ffi/macros.rs). So cbindgen reads a copy of src/ffi in OUT_DIR where each
//! `ffi_fn! { <docs> [unsafe] fn name(args) [-> ret] { body } [?= value] }` is rewritten to the
//! plain `<docs> #[no_mangle] pub [unsafe] extern "C" fn name(args) [-> ret] { .. }` it expands
//! to. The defaults in `SERVER_OPTIONS_INIT` come from src/defaults.rs, the one place they live.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
mod defaults {
    include!("src/defaults.rs");
}

// `pub const SERVER_ABI_VERSION: u32 = N;`
include!("src/ffi/abi.rs");

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/defaults.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        // Never unload the library: handler threads left running after a forced stop, and the
        // signal handler's code, must stay mapped for the life of the process.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgraceserve.so.{SERVER_ABI_VERSION}");
    }
    if target_os == "wasi" {
        return;
    }

    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    if !in_checkout(&crate_dir) {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let expanded = out_dir.join("cbindgen-src").join("ffi");
    if let Err(e) = expand_dir(&crate_dir.join("src/ffi"), &expanded) {
        panic!("preparing src/ffi for cbindgen: {e}");
    }

    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    config.after_includes = Some(options_init_macro());
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(expanded.join("mod.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            // A broken source file is reported by rustc with a better message.
            println!("cargo:warning=cbindgen: {e}");
            return;
        }
    };
    let out = crate_dir.join("include").join("graceserve.h");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let current = std::fs::read(&out).unwrap_or_default();
    if current == fresh {
        return;
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, fresh).expect("write include/graceserve.h");
}

/// True in a developer's git checkout of graceserve (a `.git` directory, or file in a worktree,
/// next to Cargo.toml); false in a packaged crate, a plain copy of the sources, and cargo's own
/// checkout of a git dependency (marked by the `.cargo-ok` file cargo writes there). Not a rerun
/// trigger: watching .git would rebuild after every git command.
fn in_checkout(crate_dir: &Path) -> bool {
    crate_dir.join(".git").exists() && !crate_dir.join(".cargo-ok").exists()
}

/// Counters in the newest `server_stats` (after `version`); `-Wextra` builds of the C tests
/// fail when `SERVER_STATS_INIT` misses one.
const STATS_COUNTERS: usize = 8;

/// `SERVER_OPTIONS_INIT`: every field of the newest `server_options`, in order, with the
/// defaults of src/defaults.rs (the C test suite checks it against `server_options_init`).
fn options_init_macro() -> String {
    use defaults::*;
    let fields = [
        "SERVER_OPTIONS_VERSION".to_string(),
        "NULL".into(),
        "NULL".into(),
        "NULL".into(),
        "NULL".into(),
        "SERVER_SIGNALS_LIBRARY".into(),
        DEFAULT_SIGNAL_DRAIN_TIMEOUT_MS.to_string(),
        "0".into(),
        DEFAULT_HANDLER_THREADS.to_string(),
        "false".into(),
        DEFAULT_MAX_CONNECTIONS.to_string(),
        DEFAULT_HEADER_READ_TIMEOUT_MS.to_string(),
        DEFAULT_KEEPALIVE_IDLE_TIMEOUT_MS.to_string(),
        DEFAULT_MAX_HEADER_BYTES.to_string(),
        DEFAULT_MAX_BODY_BYTES.to_string(),
        // version 2
        "0".into(),
        "0".into(),
        "0".into(),
        "NULL".into(),
        "NULL".into(),
        "NULL".into(),
        // version 3
        "SERVER_SD_NOTIFY_AUTO".into(),
        "false".into(),
        DEFAULT_UPGRADE_TIMEOUT_MS.to_string(),
    ];
    format!(
        "\n/** Initialiser for a server_options with every default (same as server_options_init). */\n#define SERVER_OPTIONS_INIT {{ {} }}\n\n/** Initialiser for a server_stats to pass to server_instance_get_stats / server_get_stats. */\n#define SERVER_STATS_INIT {{ SERVER_STATS_VERSION{} }}\n",
        fields.join(", "),
        ", 0".repeat(STATS_COUNTERS)
    )
}

fn expand_dir(src: &Path, dst: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    let entries = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let out = expand_ffi_fn(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let target = dst.join(path.file_name().unwrap());
            if std::fs::read_to_string(&target).ok().as_deref() != Some(out.as_str()) {
                std::fs::write(&target, out).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Rewrites every `ffi_fn! { .. }` of `src` into the declaration it expands to (with an empty
/// body), leaving everything else as it is.
fn expand_ffi_fn(src: &str) -> Result<String, String> {
    const OPEN: &str = "ffi_fn! {";
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while let Some(off) = src[i..].find(OPEN) {
        let start = i + off;
        // Only invocations at the start of a line (not the macro's own docs or definition).
        let line_start = src[..start].rfind('\n').map_or(0, |p| p + 1);
        if !src[line_start..start].trim().is_empty() {
            out.push_str(&src[i..start + OPEN.len()]);
            i = start + OPEN.len();
            continue;
        }
        out.push_str(&src[i..start]);
        let inner_start = start + OPEN.len();
        let inner_end = matching_close(b, inner_start - 1)?;
        let inner = &src[inner_start..inner_end];
        let fn_at = find_fn_keyword(inner.as_bytes())
            .ok_or_else(|| format!("ffi_fn! at byte {start} has no `fn`"))?;
        let (sig_start, is_unsafe) = match inner[..fn_at].trim_end().strip_suffix("unsafe") {
            Some(rest) => (rest.len(), true),
            None => (fn_at, false),
        };
        let body_open = find_top_level(inner.as_bytes(), fn_at, b'{')
            .ok_or_else(|| format!("ffi_fn! at byte {start} has no body"))?;
        let attrs = &inner[..sig_start];
        let sig = inner[fn_at + 2..body_open].trim();
        out.push_str(attrs.trim_start_matches('\n'));
        out.push_str("#[no_mangle]\npub ");
        if is_unsafe {
            out.push_str("unsafe ");
        }
        out.push_str("extern \"C\" fn ");
        out.push_str(sig);
        out.push_str(" {\n    loop {}\n}");
        i = inner_end + 1;
    }
    out.push_str(&src[i..]);
    Ok(out)
}

/// Skips a comment, string or char literal starting at `i`; returns where scanning resumes.
fn skip_literal(b: &[u8], i: usize) -> Result<Option<usize>, String> {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    if at(i) == b'/' && at(i + 1) == b'/' {
        let mut k = i;
        while k < b.len() && b[k] != b'\n' {
            k += 1;
        }
        return Ok(Some(k));
    }
    if at(i) == b'/' && at(i + 1) == b'*' {
        let mut k = i + 2;
        while k + 1 < b.len() && !(b[k] == b'*' && b[k + 1] == b'/') {
            k += 1;
        }
        return Ok(Some(k + 2));
    }
    if at(i) == b'r' && (at(i + 1) == b'"' || at(i + 1) == b'#') && !is_ident(at(i.wrapping_sub(1)))
    {
        return Err("raw string literals are not supported inside ffi_fn! (build.rs)".into());
    }
    if at(i) == b'"' {
        let mut k = i + 1;
        while k < b.len() && b[k] != b'"' {
            k += if b[k] == b'\\' { 2 } else { 1 };
        }
        return Ok(Some(k + 1));
    }
    if at(i) == b'\'' {
        // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is skipped.
        if at(i + 1) == b'\\' {
            let mut k = i + 2;
            while k < b.len() && b[k] != b'\'' {
                k += 1;
            }
            return Ok(Some(k + 1));
        }
        if at(i + 2) == b'\'' {
            return Ok(Some(i + 3));
        }
        return Ok(Some(i + 1));
    }
    Ok(None)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The index of the `}` matching the `{` at `open`.
fn matching_close(b: &[u8], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        if let Some(next) = skip_literal(b, i)? {
            i = next;
            continue;
        }
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unbalanced braces after byte {open}"))
}

/// The first `fn` keyword outside comments, strings and brackets.
fn find_fn_keyword(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut depth = 0i32;
    while i < b.len() {
        if let Ok(Some(next)) = skip_literal(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'[' | b'(' => depth += 1,
            b']' | b')' => depth -= 1,
            b'f' if depth == 0
                && b.get(i + 1) == Some(&b'n')
                && !is_ident(b.get(i + 2).copied().unwrap_or(b' '))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                return Some(i)
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The first `want` at bracket depth 0 from `from`, outside comments and literals.
fn find_top_level(b: &[u8], from: usize, want: u8) -> Option<usize> {
    let mut i = from;
    let mut depth = 0i32;
    while i < b.len() {
        if let Ok(Some(next)) = skip_literal(b, i) {
            i = next;
            continue;
        }
        if b[i] == b'-' && b.get(i + 1) == Some(&b'>') {
            i += 2;
            continue;
        }
        match b[i] {
            c if c == want && depth == 0 => return Some(i),
            b'(' | b'[' | b'<' => depth += 1,
            b')' | b']' | b'>' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}
