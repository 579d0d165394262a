# Base toolchain: C compiler, pkg-config (every C and cgo build links through graceserve.pc),
# curl, load generators, and a Rust toolchain.
export DEBIAN_FRONTEND=noninteractive
need_apt=()
for pkg in build-essential curl wrk nghttp2-client pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null || { echo "cargo (rustup) is required" >&2; exit 1; }
