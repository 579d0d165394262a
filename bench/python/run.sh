#!/usr/bin/env bash
# bench/python/run.sh — `make bench-python` (not a test): a trivial Python handler through
# graceserve vs http.server.ThreadingHTTPServer vs uvicorn, with wrk, in the same run.
#
# uvicorn (with uvloop and httptools) is installed from PyPI into a private virtualenv,
# build/bench/python-venv, for the benchmark only. Knobs: see bench/python/bench.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/build/bench/python-venv"

command -v wrk >/dev/null || { echo "bench-python: wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ -f "$ROOT/target/release/libgraceserve.so" ] || { echo "bench-python: run 'make lib' first" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import uvicorn, uvloop, httptools' 2>/dev/null; then
  echo "== installing uvicorn[standard] into $VENV (bench only)" >&2
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'uvicorn[standard]' >&2; then
    echo "bench-python: could not install uvicorn; benchmarking without it" >&2
  fi
fi
if "$VENV/bin/python" -c 'import uvicorn, uvloop, httptools' 2>/dev/null; then
  export BENCH_UVICORN_PYTHON="$VENV/bin/python"
  echo "== uvicorn $("$VENV/bin/python" -c 'import uvicorn; print(uvicorn.__version__)')" >&2
fi

exec "$PYTHON" "$ROOT/bench/python/bench.py"
