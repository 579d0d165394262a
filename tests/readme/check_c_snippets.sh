#!/usr/bin/env bash
# Compiles every ```c block of README.md against the shipped header and library with -Werror,
# so the C quick start cannot rot. Usage: check_c_snippets.sh PROFILE_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
profile_dir=$1
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
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude "$f" -L"$profile_dir" -lgraceserve \
     -Wl,-rpath,"$profile_dir" -o "${f%.c}"
  echo "ok: README $(basename "$f") compiles and links"
done
