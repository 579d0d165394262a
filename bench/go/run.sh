#!/usr/bin/env bash
# bench/go/run.sh — `make bench-go` (not a test): the same trivial handler served by
# graceserve-from-Go (the cgo binding) and by Go's own net/http, measured with wrk in the same
# run, plus graceserve's built-in handler (no per-request cgo crossing) and a microbenchmark of
# the cgo crossings. Prints a table and writes bench/go/RESULTS.md.
#
# Knobs: BENCH_ROUNDS (3), BENCH_DURATION (5 s), BENCH_CONNS (64), BENCH_SERVER_CPUS (0),
# BENCH_CLIENT_CPUS (1), GO.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT/bench/go"
GO="${GO:-go}"
ROUNDS="${BENCH_ROUNDS:-3}"
DUR="${BENCH_DURATION:-5}"
CONNS="${BENCH_CONNS:-64}"
OUT="$ROOT/build/bench-go"
RESULTS="$ROOT/bench/go/RESULTS.md"
die() { echo "bench-go: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk missing (apt-get install wrk; .ci/setup.d/00-base.sh installs it)"
[ -f "$ROOT/build/graceserve.pc" ] || die "run 'make lib' first (make bench-go does)"
# cgo finds the library through pkg-config: the uninstalled build/graceserve.pc of `make lib`.
export PKG_CONFIG_PATH="$ROOT/build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

mkdir -p "$OUT"
"$GO" build -o "$OUT/benchserver" ./benchserver

SRV_PIN=() CLI_PIN=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SRV_PIN=(taskset -c "${BENCH_SERVER_CPUS:-0}")
  CLI_PIN=(taskset -c "${BENCH_CLIENT_CPUS:-1}")
fi

pid=""
cleanup() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

# run_mode MODE -> prints requests/sec
run_mode() {
  local mode=$1 fifo="$OUT/stdout-$1"
  rm -f "$fifo"
  "${SRV_PIN[@]}" "$OUT/benchserver" --mode "$mode" --addr 127.0.0.1:0 >"$fifo" 2>"$OUT/stderr-$mode" &
  pid=$!
  local addr="" i
  for i in $(seq 1 200); do
    addr=$(sed -n 's/^listening on //p' "$fifo" 2>/dev/null | head -1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || die "$mode server exited: $(cat "$OUT/stderr-$mode")"
    sleep 0.05
  done
  [ -n "$addr" ] || die "$mode server printed no listening line"
  "${CLI_PIN[@]}" wrk -t1 -c"$CONNS" -d1s "http://$addr/" >/dev/null # warm-up
  local rps out cpu0 cpu1 reqs
  cpu0=$(cpu_ticks "$pid")
  out=$("${CLI_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" "http://$addr/")
  cpu1=$(cpu_ticks "$pid")
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  kill -TERM "$pid"
  local st=0
  wait "$pid" || st=$?
  pid=""
  [ "$st" = 0 ] || die "$mode server exit status $st after SIGTERM: $(cat "$OUT/stderr-$mode")"
  [ -n "$rps" ] && [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || die "no wrk figure for $mode"
  # server CPU (user+sys) per request, in us: robust to other load on the machine
  echo "$rps $(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) * 1e6 / hz / n}')"
}

HZ=$(getconf CLK_TCK)
# utime+stime of a process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

MODES="nethttp graceserve goroutines builtin"
declare -A all cpu
for r in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    read -r v c <<<"$(run_mode "$mode")"
    echo "round $r  $mode: $v req/s, $c us CPU/req" >&2
    all[$mode]+="$v "
    cpu[$mode]+="$c "
  done
done
med() { echo "$1" | tr ' ' '\n' | grep -v '^$' | median; }
NH=$(med "${all[nethttp]}"); GS=$(med "${all[graceserve]}"); GR=$(med "${all[goroutines]}"); BI=$(med "${all[builtin]}")
CNH=$(med "${cpu[nethttp]}"); CGS=$(med "${cpu[graceserve]}"); CGR=$(med "${cpu[goroutines]}"); CBI=$(med "${cpu[builtin]}")

echo "== cgo crossing microbenchmark" >&2
MICRO=$("$GO" test -run '^$' -bench . -benchtime 2000000x ./cgocost | awk '/^Benchmark/ {sub(/-[0-9]+$/, "", $1); print $1, $3}')
G2C=$(echo "$MICRO" | awk '$1=="BenchmarkGoToC" {print $2}')
C2G=$(echo "$MICRO" | awk '$1=="BenchmarkCToGoForeignThread" {print $2}')

r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
met() { awk -v x="$1" 'BEGIN {print (x >= 0.8 ? "met" : "NOT met")}'; }
R_GS=$(r "$GS" "$NH"); R_GR=$(r "$GR" "$NH"); R_BI=$(r "$BI" "$NH")
# CPU ratios: net/http CPU per request over ours (higher is better, like the req/s ratio)
C_GS=$(r "$CNH" "$CGS"); C_GR=$(r "$CNH" "$CGR"); C_BI=$(r "$CNH" "$CBI")
PERREQ=$(awk -v a="$CGS" -v b="$CBI" 'BEGIN {printf "%.2f", a - b}')
PERREQ_GR=$(awk -v a="$CGR" -v b="$CBI" 'BEGIN {printf "%.2f", a - b}')
CROSS=$(awk -v a="$C2G" -v b="$G2C" 'BEGIN {printf "%.0f", a + 3 * b}')

cpu=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
table=$(cat <<EOT
| server (same trivial handler, HTTP/1.1 keep-alive) | req/s | vs net/http | server CPU us/req | vs net/http (CPU) |
|---|---:|---:|---:|---:|
| Go net/http (seed Shutdown pattern) | $NH | 1.00 | $CNH | 1.00 |
| graceserve from Go, ThreadHandlers (library threads) | $GS | $R_GS | $CGS | $C_GS |
| graceserve from Go, goroutine handlers (default) | $GR | $R_GR | $CGR | $C_GR |
| graceserve built-in handler (no Go per request) | $BI | $R_BI | $CBI | $C_BI |

Medians of $ROUNDS interleaved rounds. "vs net/http (CPU)" is net/http's server CPU per request
over ours: it does not depend on what else the machine runs, req/s does.

- Goal >= 0.8x net/http, ThreadHandlers: req/s **$(met "$R_GS")** (${R_GS}x), CPU/request **$(met "$C_GS")** (${C_GS}x).
- Goal >= 0.8x net/http, default (goroutine handlers): req/s **$(met "$R_GR")** (${R_GR}x), CPU/request **$(met "$C_GR")** (${C_GR}x).
- Per-request cost of the Go handler path over the library's built-in handler (server CPU):
  **$PERREQ us** with handler threads, **$PERREQ_GR us** with goroutines.
- The cgo crossings themselves (microbenchmark): Go->C call $G2C ns, C->Go callback from a
  foreign thread $C2G ns; a request pays 1 callback + 3 calls = **~$CROSS ns**. The rest is the
  hand-off to a handler thread (ThreadHandlers) and building *http.Request / ResponseWriter.
EOT
)
echo "$table"
cat >"$RESULTS" <<EOT
# Go benchmark results

Generated by \`make bench-go\` (bench/go/run.sh) on $(date -u +%Y-%m-%d) — $(nproc) CPUs ($cpu),
$( "$GO" env GOVERSION ). wrk -t1 -c$CONNS, ${DUR}s per run after a 1 s warm-up, $ROUNDS rounds
interleaved; server pinned to CPU ${BENCH_SERVER_CPUS:-0} (GOMAXPROCS and the library's worker
threads follow the affinity: 1), wrk to CPU ${BENCH_CLIENT_CPUS:-1}. The machine is shared, so
figures are indicative; the ratios come from the same run.

$table

Judge by server CPU per request on a shared machine: req/s depends on what else runs on the
pinned CPU. The handler-thread mode pays a hand-off to a library blocking-pool thread and back
per request (the C host pays it too); the default goroutine handlers avoid it.
EOT
echo "wrote $RESULTS" >&2
