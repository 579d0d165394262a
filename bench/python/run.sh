#!/usr/bin/env bash
# bench/python/run.sh — `make bench-python` (not a test), with wrk, everything in the same run:
#   1. a trivial Python handler through graceserve vs http.server.ThreadingHTTPServer vs uvicorn;
#   2. the framework table: the same Flask app under graceserve vs gunicorn (gthread) vs
#      granian, the same Starlette app under graceserve vs uvicorn vs granian.
#
# The other servers and the frameworks (uvicorn with uvloop and httptools, gunicorn, granian,
# Flask, Starlette) are installed from PyPI into a private virtualenv, build/bench/python-venv,
# for the benchmark only; every server, graceserve included, runs on that interpreter. Knobs:
# see bench/python/bench.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/build/bench/python-venv"

command -v wrk >/dev/null || { echo "bench-python: wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ -f "$ROOT/target/release/libgraceserve.so" ] || { echo "bench-python: run 'make lib' first" >&2; exit 1; }

# Versions this table was measured with (bench/python/RESULTS.md); pip resolves the rest.
PKGS=('uvicorn[standard]==0.54.0' 'gunicorn==27.0.1' 'granian==2.8.9' 'flask==3.1.3' 'starlette==1.10.0')
CHECK='import uvicorn, uvloop, httptools, gunicorn, granian, flask, starlette'
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  echo "== installing ${PKGS[*]} into $VENV (bench only)" >&2
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PKGS[@]}" >&2; then
    echo "bench-python: could not install the other servers; benchmarking graceserve alone" >&2
  fi
fi
if "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  export BENCH_VENV_PYTHON="$VENV/bin/python"
  export BENCH_UVICORN_PYTHON="$VENV/bin/python"
  echo "== $("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("uvicorn", "gunicorn", "granian", "flask", "starlette", "uvloop")))')" >&2
fi

exec "$PYTHON" "$ROOT/bench/python/bench.py"
