# Python binding (issue 3): the test tools for `make test-python`. Idempotent and quiet; sourced
# by .ci/setup with `set -euo pipefail`. (uvicorn, for `make bench-python` only, is installed by
# bench/python/run.sh into its own virtualenv.)
#   pytest      runs tests/python
#   mypy        `mypy --strict` on the package
#   pycparser   regenerates _ffi.py from the header for the staleness check
#   setuptools>=70.1, setuptools-rust   bindings/python/setup.py (build-system.requires), for the
#               `pip install --no-build-isolation` in tests/python
#   venv + ensurepip   the fresh virtualenvs of `make test-install` (python3-venv on Debian)
#   flask, starlette, django, fastapi   real WSGI and ASGI applications for tests/python/test_{wsgi,asgi,cli,django,readme_web}.py
#                       (issue 13), pinned; the benchmark's servers are installed by
#                       bench/python/run.sh into its own virtualenv
command -v python3 >/dev/null || { echo "30-python: python3 is required" >&2; false; }
if ! python3 -c 'import pytest, mypy, pycparser, setuptools_rust, setuptools.command.bdist_wheel' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    pytest mypy pycparser 'setuptools>=70.1' 'setuptools-rust>=1.9'
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv
fi
PY_APPS="flask==3.1.3 starlette==1.10.0 django==5.2.19 fastapi==0.165.0"
if ! python3 - $PY_APPS <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
then
  # shellcheck disable=SC2086
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore $PY_APPS
fi
