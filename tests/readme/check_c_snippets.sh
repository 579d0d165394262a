#!/usr/bin/env bash
# Compiles every ```c block of README.md against the shipped header and library with -Werror,
# so the C quick start cannot rot. The flags come from `pkg-config graceserve`, as the README
# tells users; PKG_CONFIG_PATH defaults to build/ (the uninstalled .pc that `make lib` writes).
# Usage: check_c_snippets.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PKG_CONFIG_PATH="${PKG_CONFIG_PATH:-$PWD/build}"
flags=$(${PKG_CONFIG:-pkg-config} --cflags --libs graceserve)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import re, sys, pathlib
blocks = re.findall(r"```c\n(.*?)```", pathlib.Path("README.md").read_text(), re.S)
assert blocks, "README.md has no C snippets"
for i, b in enumerate(blocks):
    pathlib.Path(sys.argv[1], f"snippet{i}.c").write_text(b)
print(f"{len(blocks)} C snippet(s)")
PY
for f in "$tmp"/snippet*.c; do
  # shellcheck disable=SC2086 # $flags is a list of words
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$f" $flags -o "${f%.c}"
  echo "ok: README $(basename "$f") compiles and links"
done
