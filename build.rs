//! Build script:
//! - links the cdylib with the SONAME `libgraceserve.so.<SERVER_ABI_VERSION>`, the ABI major
//!   read from src/ffi/abi.rs, the one place it is decided (the header gets it from there too);
//! - inside the git checkout, regenerates include/graceserve.h from src/ffi with cbindgen,
//!   rewriting it only when it changed. The drift check is `make test-header`: build, then
//!   `git diff --exit-code` on the header. Anywhere else (a packaged crate, a copy of the sources
//!   built by pip) the committed header is the shipped one and nothing outside OUT_DIR is
//!   written.

use std::path::{Path, PathBuf};

// `pub const SERVER_ABI_VERSION: u32 = N;`
include!("src/ffi/abi.rs");

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
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
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    // Only the FFI module describes the ABI; the core's types are not for C.
    let mut builder = cbindgen::Builder::new().with_config(config);
    // (cbindgen follows the `mod` declarations of src/ffi/mod.rs.)
    builder = builder.with_src(crate_dir.join("src/ffi/mod.rs"));
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
