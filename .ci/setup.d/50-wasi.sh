# WASI build (issue 5): the wasm32-wasip2 Rust target and the pinned wasmtime CLI that
# build/bin/server-wasi runs the component under. Both are skipped when already present.
# wasmtime 48.x is the newest release this project's rustc (1.95) can build; 48+ runs wasip2
# components with `-S inherit-network`. Building it takes ~9 min and ~2 GB of memory once.
wasi_wasmtime_version=48.0.8
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null 2>&1 || { echo "50-wasi.sh: rustup is required to add the wasm32-wasip2 target" >&2; return 1 2>/dev/null || exit 1; }
wasi_targets=$(rustup target list --installed)
case $'\n'"$wasi_targets"$'\n' in
  *$'\n'wasm32-wasip2$'\n'*) ;;
  *) rustup target add wasm32-wasip2 ;;
esac
wasi_have=$(wasmtime --version 2>/dev/null || true)
case "$wasi_have" in
  "wasmtime $wasi_wasmtime_version"|"wasmtime $wasi_wasmtime_version "*) ;;
  *)
    echo "50-wasi.sh: installing wasmtime-cli $wasi_wasmtime_version (found: ${wasi_have:-none})"
    cargo install --quiet --locked "wasmtime-cli@$wasi_wasmtime_version"
    ;;
esac
unset wasi_targets wasi_have wasi_wasmtime_version
