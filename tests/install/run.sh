#!/usr/bin/env bash
# `make test-install` (mk/install.mk): graceserve installed and used from outside the repository,
# the way a user of each language does it. Everything happens in a temporary directory:
#   1. layout    make install DESTDIR=... : versioned file, SONAME, links, header, .pc; uninstall
#                removes every file again
#   2. C         make install PREFIX=<tmp>; a program in <tmp> built with pkg-config against the
#                installed library, shared and `cc -static` (pkg-config --static)
#   3. Go        a module in <tmp> requiring the binding (replace -> a copy of bindings/go, no
#                network), cgo linking the installed library through `#cgo pkg-config`
#   4. Python    a clean copy of the sources (git's files, no target/ or build/), a fresh venv,
#                `pip install <copy>/bindings/python` (compiles the library), `pip wheel`, the
#                copy deleted, the wheel installed into a second fresh venv
#   5. Rust      `cargo package`: the crate packages and its verify build leaves the sources alone
# Each program is run from <tmp> by drive.py: `listening on` line (port 0), GET / -> 200 + body,
# SIGTERM -> exit 0, port free, and the libgraceserve it mapped is the installed one.
# Environment (set by mk/install.mk): GS_ABI, GS_VERSION, GS_SO_VERSION, CARGO, GO, PYTHON, MAKE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tests/install"
: "${GS_ABI:?run through make test-install}" "${GS_VERSION:?}" "${GS_SO_VERSION:?}"
CARGO=${CARGO:-cargo} GO=${GO:-go} PYTHON=${PYTHON:-python3} MAKE=${MAKE:-make}
CC=${CC:-cc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/graceserve-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
case "$TMP/" in "$ROOT"/*) echo "test-install: the temporary directory $TMP is inside the repository" >&2; exit 1;; esac

# Nothing from the checkout's environment leaks into the programs under test.
unset PKG_CONFIG_PATH GRACESERVE_LIBRARY PYTHONPATH CARGO_TARGET_DIR LD_LIBRARY_PATH GOFLAGS

drive() { "$PYTHON" "$HERE/drive.py" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T_ALL=$(ms)
T_STEP=$T_ALL
STEP_NAME=
step() {
  local now; now=$(ms)
  [ -z "$STEP_NAME" ] || printf '   (%d.%d s)\n' $(( (now - T_STEP) / 1000 )) $(( (now - T_STEP) % 1000 / 100 ))
  STEP_NAME=$1 T_STEP=$now
  [ "$1" = done ] || echo "== test-install: $1"
}
soname() { readelf -d "$1" | sed -n 's/.*Library soname: \[\(.*\)\]$/\1/p'; }
needed() { readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]$/\1/p'; }

# --- 1. layout --------------------------------------------------------------------------------
step "layout: make install DESTDIR=<tmp>/stage PREFIX=/opt/gs, then make uninstall"
STAGE="$TMP/stage"
"$MAKE" -s -C "$ROOT" install DESTDIR="$STAGE" PREFIX=/opt/gs
L="$STAGE/opt/gs/lib"
real="libgraceserve.so.$GS_SO_VERSION"
[ -f "$L/$real" ] && [ ! -L "$L/$real" ] || fail "$L/$real is not a regular file"
[ "$(soname "$L/$real")" = "libgraceserve.so.$GS_ABI" ] || fail "$real has SONAME '$(soname "$L/$real")', expected libgraceserve.so.$GS_ABI"
[ "$(readlink "$L/libgraceserve.so.$GS_ABI")" = "$real" ] || fail "libgraceserve.so.$GS_ABI does not link to $real"
[ "$(readlink "$L/libgraceserve.so")" = "libgraceserve.so.$GS_ABI" ] || fail "libgraceserve.so does not link to libgraceserve.so.$GS_ABI"
[ -f "$L/libgraceserve.a" ] || fail "no $L/libgraceserve.a"
cmp -s "$STAGE/opt/gs/include/graceserve.h" "$ROOT/include/graceserve.h" || fail "installed header differs from include/graceserve.h"
grep -qx "#define SERVER_ABI_VERSION $GS_ABI" "$STAGE/opt/gs/include/graceserve.h" ||
  fail "the header's SERVER_ABI_VERSION is not $GS_ABI, the SONAME's major"
pc() { PKG_CONFIG_PATH="$L/pkgconfig" pkg-config "$@" graceserve; }
[ "$(pc --modversion)" = "$GS_VERSION" ] || fail "graceserve.pc: version '$(pc --modversion)'"
[ "$(pc --variable=prefix)" = /opt/gs ] && [ "$(pc --variable=abi)" = "$GS_ABI" ] || fail "graceserve.pc: prefix or abi wrong"
echo "ok: $real (SONAME libgraceserve.so.$GS_ABI), links, libgraceserve.a, graceserve.h, graceserve.pc $(pc --modversion)"
"$MAKE" -s -C "$ROOT" uninstall DESTDIR="$STAGE" PREFIX=/opt/gs
left=$(find "$STAGE" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "ok: make uninstall removed every installed file"

# --- 2. C ---------------------------------------------------------------------------------------
step "C: make install PREFIX=<tmp>/prefix; cc app.c \$(pkg-config ...), shared and --static"
PREFIX="$TMP/prefix"
"$MAKE" -s -C "$ROOT" install PREFIX="$PREFIX" >/dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
[ "$(pkg-config --variable=libdir graceserve)" = "$PREFIX/lib" ] || fail "pkg-config does not find the installed graceserve.pc"
mkdir "$TMP/c"
cp "$HERE/app.c" "$TMP/c/"
cd "$TMP/c"
# shellcheck disable=SC2046 # pkg-config prints a list of flags
"$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror app.c $(pkg-config --cflags --libs graceserve) -o app-shared
needed app-shared | grep -qx "libgraceserve.so.$GS_ABI" || fail "app-shared does not need libgraceserve.so.$GS_ABI: $(needed app-shared)"
! readelf -d app-shared | grep -Eq 'RPATH|RUNPATH' || fail "the installed graceserve.pc put an rpath into app-shared"
LD_LIBRARY_PATH="$PREFIX/lib" drive c-shared --lib-under "$PREFIX/lib" --body "hello from C" --cwd "$TMP/c" -- ./app-shared
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror -static app.c $(pkg-config --static --cflags --libs graceserve) \
  -o app-static 2>"$TMP/c/static-link.txt" || { cat "$TMP/c/static-link.txt" >&2; fail "static link failed"; }
# glibc warns that getaddrinfo and getpwuid_r in a static program need its shared NSS modules at
# run time (see README, Install): expected; anything else the linker says is shown.
grep -v -e 'in statically linked applications requires at runtime' -e ': in function' "$TMP/c/static-link.txt" >&2 || true
[ -z "$(needed app-static)" ] || fail "app-static needs shared libraries: $(needed app-static)"
drive c-static --static --body "hello from C" --cwd "$TMP/c" -- ./app-static

# --- 3. Go --------------------------------------------------------------------------------------
step "Go: a module in <tmp> requiring the binding, cgo against the installed library"
# The binding module alone, copied out of the checkout as `go get` would fetch it (its module zip
# holds bindings/go only: the header and library must come from pkg-config). The copy also keeps
# Go's build cache apart from in-repo builds: a cached cgo package is keyed by its directory but
# not by pkg-config's answer (golang/go#24544), so the checkout's bindings/go built here would
# keep this prefix's flags for the next in-repo build, and the other way round.
mkdir "$TMP/go" "$TMP/go-binding"
cp -R "$ROOT/bindings/go/." "$TMP/go-binding/"
cp "$HERE/go/main.go" "$TMP/go/"
cd "$TMP/go"
mod=github.com/graceserve/graceserve/bindings/go
export GOWORK=off GOPROXY=off GOFLAGS=-mod=mod
"$GO" mod init example.com/graceserve-install-check 2>/dev/null
"$GO" mod edit -require="$mod@v0.0.0" -replace="$mod=$TMP/go-binding"
"$GO" vet .
"$GO" build -o app .
unset GOWORK GOPROXY GOFLAGS
needed app | grep -qx "libgraceserve.so.$GS_ABI" || fail "the Go program does not need libgraceserve.so.$GS_ABI: $(needed app)"
! readelf -d app | grep -E 'RPATH|RUNPATH' | grep -q "$ROOT" || fail "the Go program has an rpath into the checkout"
LD_LIBRARY_PATH="$PREFIX/lib" drive go --lib-under "$PREFIX/lib" --body "hello from Go" --cwd "$TMP/go" -- ./app
unset PKG_CONFIG_PATH

# --- 4. Python ----------------------------------------------------------------------------------
step "Python: clean copy of the sources, fresh venv, pip install (compiles the library)"
SRC="$TMP/src"
"$PYTHON" - "$ROOT" "$SRC" <<'PY'
import os, shutil, subprocess, sys
root, dst = sys.argv[1], sys.argv[2]
files = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       check=True, capture_output=True).stdout.decode().split("\0")
n = 0
for rel in filter(None, files):
    src = os.path.join(root, rel)
    if os.path.isfile(src):  # skips files deleted in the work tree
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, rel))
        n += 1
print(f"ok: copied {n} files of the checkout (no target/, no build/, no .git)")
PY
[ ! -e "$SRC/target" ] && [ ! -e "$SRC/build" ] && [ ! -e "$SRC/.git" ] || fail "the copy is not clean"
pip_q=(-q --disable-pip-version-check)
"$PYTHON" -m venv "$TMP/venv-src"
t=$(date +%s)
(cd "$TMP" && "$TMP/venv-src/bin/python" -m pip install "${pip_q[@]}" "$SRC/bindings/python")
echo "ok: pip install from the sources in $(( $(date +%s) - t )) s"
[ -f "$SRC/target/python/release/libgraceserve.so" ] || fail "pip install did not compile the library in the copy"
shipped=$(find "$TMP/venv-src" -path '*/site-packages/graceserve/_lib/*/libgraceserve.so')
[ -n "$shipped" ] || fail "the installed package has no graceserve/_lib/<platform>/libgraceserve.so"
[ "$(soname "$shipped")" = "libgraceserve.so.$GS_ABI" ] || fail "the bundled library has SONAME '$(soname "$shipped")'"

step "Python: pip wheel, delete the sources, install the wheel into a second fresh venv"
(cd "$TMP" && "$TMP/venv-src/bin/python" -m pip wheel "${pip_q[@]}" --no-deps -w "$TMP/wheels" "$SRC/bindings/python")
wheel="$TMP/wheels/graceserve-$GS_VERSION-py3-none-linux_$(uname -m).whl"
[ -f "$wheel" ] || fail "expected $(basename "$wheel"), got: $(ls "$TMP/wheels")"
"$PYTHON" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("graceserve/_lib/") and n.endswith("/libgraceserve.so")]
assert len(libs) == 1 and "graceserve/py.typed" in names, names
print(f"ok: {sys.argv[1].rsplit('/', 1)[1]} holds {libs[0]}")
PY
rm -rf "$SRC"
"$PYTHON" -m venv "$TMP/venv-wheel"
"$TMP/venv-wheel/bin/python" -m pip install "${pip_q[@]}" --no-index "$wheel"

step "Python: run a server from outside the repository with each venv"
mkdir "$TMP/py"
cp "$HERE/app.py" "$TMP/py/"
for venv in venv-src venv-wheel; do
  drive "python-$venv" --lib-under "$TMP/$venv" --body "hello from Python" --cwd "$TMP/py" -- "$TMP/$venv/bin/python" app.py
done

# --- 5. Rust ------------------------------------------------------------------------------------
step "Rust: rust-version covers the locked dependencies; cargo package (verify build)"
cd "$ROOT"
# Cargo.toml's rust-version is the minimum Rust the README promises (built with exactly that
# toolchain when it was set); a Cargo.lock update that needs a newer one must raise it.
"$CARGO" metadata --format-version 1 --locked >"$TMP/metadata.json"
"$PYTHON" - "$TMP/metadata.json" <<'PY'
import json, sys
def ver(v): return tuple(([int(x) for x in v.split(".")] + [0, 0])[:3])
pkgs = json.load(open(sys.argv[1]))["packages"]
ours = next(p for p in pkgs if p["name"] == "graceserve")["rust_version"]
need = max((p for p in pkgs if p["rust_version"]), key=lambda p: ver(p["rust_version"]))
who = f"{need['name']} {need['version']} needs Rust {need['rust_version']}"
if ver(need["rust_version"]) > ver(ours):
    sys.exit(f"FAIL: {who}, above rust-version {ours} in Cargo.toml: raise it (and check it builds)")
print(f"ok: rust-version {ours} covers all {len(pkgs)} locked packages (highest: {who})")
PY
# --allow-dirty: a work tree with uncommitted changes packages too (CI's clean clone needs none).
"$CARGO" package --locked --allow-dirty >"$TMP/cargo-package.log" 2>&1 || { cat "$TMP/cargo-package.log" >&2; fail "cargo package failed"; }
crate="$ROOT/target/package/graceserve-$GS_VERSION.crate"
[ -f "$crate" ] || fail "no $crate"
echo "ok: $(basename "$crate") ($(tar tzf "$crate" | wc -l) files) packaged, and its verify build compiled"

step done
echo "== test-install: all passed in $(( ($(ms) - T_ALL) / 1000 )) s"
