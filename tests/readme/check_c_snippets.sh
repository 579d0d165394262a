#!/usr/bin/env bash
# Compiles and links every ```c block of the documentation — README.md, docs/*.md and
# bindings/*/README.md — against the shipped header and library with -Werror, so no C example
# can rot. Each block is a complete program. The flags come from `pkg-config graceserve`, as the
# docs tell users; PKG_CONFIG_PATH defaults to build/ (the uninstalled .pc that `make lib` writes).
# Usage: check_c_snippets.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PKG_CONFIG_PATH="${PKG_CONFIG_PATH:-$PWD/build}"
flags=$(${PKG_CONFIG:-pkg-config} --cflags --libs graceserve)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import re, sys, pathlib
pages = [pathlib.Path("README.md"), *sorted(pathlib.Path("docs").glob("*.md")),
         *sorted(pathlib.Path("bindings").glob("*/README.md"))]
n = 0
for page in pages:
    text = page.read_text()
    for m in re.finditer(r"^```c\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, m.start()) + 1
        name = f"{page.as_posix().replace('/', '_').removesuffix('.md')}_line{line}"
        pathlib.Path(sys.argv[1], f"{name}.c").write_text(m.group(1))
        n += 1
assert n, "the documentation has no C snippets"
print(f"{n} C snippet(s) in {len(pages)} page(s)")
PY
for f in "$tmp"/*.c; do
  # shellcheck disable=SC2086 # $flags is a list of words
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$f" $flags -o "${f%.c}"
  echo "ok: $(basename "${f%.c}") compiles and links"
done
