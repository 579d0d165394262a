#!/usr/bin/env bash
# bench/c/run.sh — graceserve C-host benchmarks (`make bench-c`; not a test).
#
# Builds bench/out/bench-server (built-in / C-callback servers), the plain tokio+hyper baseline
# (bench/baseline-hyper, its own Cargo project and target dir), the peers (libmicrohttpd,
# CivetWeb, Go net/http) and bench/out/floor-server (the stop's physical floor), then runs
# bench/c/bench.py, one interleaved run: wrk + h2load throughput (req/s, p99, server CPU per
# request, ratios to libmicrohttpd and hyper of the same round), user-space instructions per
# request under callgrind (deterministic; phase "insn"), SIGTERM->exit time with 1000 idle
# keep-alive connections (and the server's CPU time for it), and RSS per idle connection.
# Prints a table; also writes bench/out/bench-c-<time>.{txt,json}.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (5 s), BENCH_CONNS (64),
# BENCH_IDLE (1000), BENCH_IDLE_ROUNDS (5), BENCH_SERVER_CPUS (0), BENCH_CLIENT_CPUS (1),
# BENCH_ONLY (e.g. "server-c,inline"), BENCH_SKIP (e.g. "h2,insn,idle"), BENCH_PEERS=0 (no
# libmicrohttpd / CivetWeb / Go comparison), CARGO, CC, GO, PYTHON.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CC="${CC:-cc}"
CARGO="${CARGO:-cargo}"
GO="${GO:-go}"
PYTHON="${PYTHON:-python3}"
OUT="$ROOT/bench/out"
LIB_DIR="$ROOT/target/release"

die() { echo "bench-c: $*" >&2; exit 1; }

# Load generators: installed by .ci/setup.d/00-base.sh; install here too when running as root.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing tools: ${missing[*]} (apt-get install ${missing[*]})"
  fi
fi
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
[ -f "$LIB_DIR/libgraceserve.so" ] || die "$LIB_DIR/libgraceserve.so missing: run 'make lib' (make bench-c does)"
[ -x "$ROOT/build/bin/server-c" ] || die "build/bin/server-c missing: run 'make host-c' (make bench-c does)"

mkdir -p "$OUT"
echo "== building bench/out/bench-server" >&2
# Linked like every in-repo C build: pkg-config over build/graceserve.pc (written by `make lib`).
# shellcheck disable=SC2046 # pkg-config prints a list of flags
"$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 bench/c/bench-server.c \
  $(PKG_CONFIG_PATH="$ROOT/build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --cflags --libs graceserve) \
  -o "$OUT/bench-server"
echo "== building bench/baseline-hyper (release)" >&2
CARGO_TARGET_DIR="$ROOT/bench/baseline-hyper/target" \
  "$CARGO" build --release --quiet --manifest-path bench/baseline-hyper/Cargo.toml
BASELINE="$ROOT/bench/baseline-hyper/target/release/baseline-hyper"

# Optional comparison servers (libmicrohttpd, CivetWeb): built when their Debian dev packages
# are installed (installed here when running as root); skipped otherwise, with a note.
PEERS=()
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${BENCH_PEERS:-1}" = 1 ]; then
  for pkg in libmicrohttpd-dev libcivetweb-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
      || echo "bench-c: could not install $pkg; skipping that comparison" >&2
  done
fi
for peer in mhd:microhttpd civetweb:civetweb; do
  name=${peer%%:*}; lib=${peer#*:}
  hdr=$([ "$name" = mhd ] && echo microhttpd.h || echo civetweb.h)
  if [ "${BENCH_PEERS:-1}" = 1 ] && echo "#include <$hdr>" | "$CC" -E -x c - >/dev/null 2>&1; then
    echo "== building bench/out/$name-server" >&2
    "$CC" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 "bench/c/$name-server.c" -l"$lib" -lpthread \
      -o "$OUT/$name-server"
    PEERS+=("--$name" "$OUT/$name-server")
  else
    echo "bench-c: $hdr not available; skipping the $name comparison" >&2
  fi
done

echo "== building bench/out/floor-server" >&2
"$CC" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 bench/c/floor-server.c -lpthread -o "$OUT/floor-server"
PEERS+=(--floor "$OUT/floor-server")
if [ "${BENCH_PEERS:-1}" = 1 ] && command -v "$GO" >/dev/null; then
  echo "== building bench/out/go-server" >&2
  (cd bench/c/go-server && "$GO" build -o "$OUT/go-server" .)
  PEERS+=(--go "$OUT/go-server")
else
  echo "bench-c: go not available; skipping the Go net/http comparison" >&2
fi

ncpu=$(nproc)
SERVER_CPUS="${BENCH_SERVER_CPUS-0}"
CLIENT_CPUS="${BENCH_CLIENT_CPUS-1}"
if [ "$ncpu" -lt 2 ]; then
  echo "bench-c: only $ncpu CPU: not pinning (figures will be noisier)" >&2
  SERVER_CPUS=""
  CLIENT_CPUS=""
fi

# bench.py owns every server it starts and kills them on exit, error or interrupt; this trap
# only forwards an interrupt to it.
"$PYTHON" bench/c/bench.py \
  --bin "$ROOT/build/bin" --bench-server "$OUT/bench-server" --baseline "$BASELINE" --out "$OUT" \
  --rounds "${BENCH_ROUNDS:-3}" --duration "${BENCH_DURATION:-5}" --conns "${BENCH_CONNS:-64}" \
  --idle "${BENCH_IDLE:-1000}" --idle-rounds "${BENCH_IDLE_ROUNDS:-5}" \
  --server-cpus "$SERVER_CPUS" --client-cpus "$CLIENT_CPUS" \
  --only "${BENCH_ONLY:-}" --skip "${BENCH_SKIP:-}" ${PEERS[@]+"${PEERS[@]}"} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
# A trapped signal interrupts `wait`: wait again until bench.py has stopped its servers.
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || status=$?; done
exit "$status"
