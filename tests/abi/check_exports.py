#!/usr/bin/env python3
"""The C ABI's exports, checked against the header and the panic boundary:

1. every `#[no_mangle]` in src/ sits in src/ffi/macros.rs (exports are declared through
   `ffi_fn!`, which wraps the whole declaration in the panic guard: none can forget it);
2. every `server_*` symbol the shared library exports is declared in include/graceserve.h,
   and every function the header declares is exported.

Usage: check_exports.py LIBRARY.so
"""

import pathlib
import re
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parents[2]
problems = []

for path in sorted((root / "src").rglob("*.rs")):
    if path.relative_to(root).as_posix() == "src/ffi/macros.rs":
        continue
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if "#[no_mangle]" in line and not line.lstrip().startswith("//"):
            problems.append(f"{path.relative_to(root)}:{n}: #[no_mangle] outside ffi_fn! (no panic guard)")

header = (root / "include" / "graceserve.h").read_text()
code = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
code = re.sub(r"//[^\n]*", "", code)
declared = set(re.findall(r"(?<!\(\*)(?<!\w)(server_[a-z0-9_]+)\s*\(", code))

nm = subprocess.run(["nm", "-D", "--defined-only", sys.argv[1]], capture_output=True, text=True, check=True)
exported = {parts[-1] for parts in (line.split() for line in nm.stdout.splitlines()) if parts and parts[-1].startswith("server_")}

for name in sorted(exported - declared):
    problems.append(f"{name}: exported by the library but not declared in graceserve.h")
for name in sorted(declared - exported):
    problems.append(f"{name}: declared in graceserve.h but not exported by the library")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(exported)} exports, all declared in the header and behind the panic guard")
