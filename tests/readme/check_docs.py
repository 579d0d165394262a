#!/usr/bin/env python3
"""Keeps the documentation and the code comments that cite it true to each other (run by
`make test-readme`). It fails, naming file and line, when:

1. a citation `docs/architecture.md §N Title` in the code (src, bindings, examples, tests, bench,
   mk, ...) names a section that docs/architecture.md does not have, or a title other than that
   section's (cite it as `docs/architecture.md §N Title`, on one line);
2. anything outside docs/ still cites the old `DESIGN.md` (it is not in the repository);
3. the module map of docs/architecture.md (§7) misses a file under src/ or lists one that is not
   there;
4. a relative link in README.md, docs/*.md or bindings/*/README.md points at a missing file or
   a missing heading;
5. a `make TARGET` in a code span or block of those pages names no target of the Makefile or
   mk/*.mk;
6. a fenced code block has no language (rustdoc would compile it as Rust), or a ```rust block
   sits in a page src/lib.rs does not run as a doctest;
7. README.md is longer than 300 lines, or lost its `make run` / `make test`.

Usage: check_docs.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]
ARCH = ROOT / "docs" / "architecture.md"
CODE_DIRS = ["src", "bindings", "examples", "tests", "bench", "mk"]
CODE_FILES = ["Makefile", "build.rs", "cbindgen.toml", "Cargo.toml"]
TEXT_SUFFIXES = {".rs", ".py", ".go", ".c", ".h", ".mk", ".md", ".sh", ".toml", ".lua", ".in", ".def", ""}
README_MAX_LINES = 300

problems: List[str] = []


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def code_files() -> Iterator[Path]:
    for d in CODE_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "node_modules" not in p.parts:
                yield p
    for f in CODE_FILES:
        if (ROOT / f).is_file():
            yield ROOT / f


def doc_pages() -> List[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("bindings/*/README.md"))]


def read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


# --- 1, 2: citations ---------------------------------------------------------------------------
def sections() -> Dict[str, str]:
    out = {}
    for line in read(ARCH).splitlines():
        m = re.match(r"^## (\d+)\. (.+?)\s*$", line) or re.match(r"^### (\d+\.\d+) (.+?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


SECTIONS = sections()
if not SECTIONS:
    problems.append("docs/architecture.md: no numbered sections (`## N. Title`)")

CITE = re.compile(r"architecture\.md §(\d+(?:\.\d+)?)")
# In the pages themselves a section is a link (`[architecture.md §N](architecture.md#n-...)`),
# which check 4 holds to the headings; the citation rule is for code and the other files.
for p in code_files():
    for n, line in enumerate(read(p).splitlines(), 1):
        for m in CITE.finditer(line):
            num = m.group(1)
            title = SECTIONS.get(num)
            if title is None:
                problems.append(f"{rel(p)}:{n}: cites docs/architecture.md §{num}, which does not exist "
                                f"(sections: {', '.join(f'§{k} {v}' for k, v in SECTIONS.items())})")
            elif not line[m.end():].startswith(" " + title):
                problems.append(f"{rel(p)}:{n}: cite it as `docs/architecture.md §{num} {title}` "
                                f"(the section's title, on the same line)")
        if p.parent != ROOT / "docs" and p != Path(__file__).resolve() and re.search(r"\bDESIGN(\.md)?\b", line):
            problems.append(f"{rel(p)}:{n}: cites DESIGN.md, which is not in the repository: "
                            "cite docs/architecture.md §N Title")

# --- 3: the module map -------------------------------------------------------------------------
arch = read(ARCH)
m = re.search(r"^## \d+\. Module map\n(.*?)(?=^## |\Z)", arch, re.S | re.M)
if not m:
    problems.append("docs/architecture.md: no `## N. Module map` section")
else:
    mapped: Set[str] = set()
    for block in re.findall(r"```text\n(.*?)```", m.group(1), re.S):
        for line in block.splitlines():
            if line.startswith("src/"):
                mapped.add(line.split()[0])
    files = {rel(p) for p in (ROOT / "src").rglob("*.rs")}
    for f in sorted(files - mapped):
        problems.append(f"docs/architecture.md (Module map): {f} is missing from the map")
    for f in sorted(mapped - files):
        problems.append(f"docs/architecture.md (Module map): {f} is listed but does not exist")


# --- 4: links ----------------------------------------------------------------------------------
def slugs(text: str) -> Set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    seen: Dict[str, int] = {}
    out = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        h = re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)
        if not h:
            continue
        s = re.sub(r"[^\w\- ]", "", h.group(1).lower().replace("`", "")).replace(" ", "-")
        k = seen.get(s, 0)
        seen[s] = k + 1
        out.add(s if k == 0 else f"{s}-{k}")
    return out


def strip_code(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


for page in doc_pages():
    if not page.is_file():
        continue
    text = read(page)
    for n, line in enumerate(strip_code(text).splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                problems.append(f"{rel(page)}: link to {target}: {path} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in slugs(read(dest)):
                problems.append(f"{rel(page)}: link to {target}: {rel(dest)} has no heading #{anchor}")

# --- 5: make targets ---------------------------------------------------------------------------
targets: Set[str] = set()
for mk in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
    for line in read(mk).splitlines():
        t = re.match(r"^([A-Za-z0-9_.\- ]+?)\s*:(?![=:])", line)
        if t:
            targets.update(t.group(1).split())
        ph = re.match(r"^\.PHONY:(.*)$", line)
        if ph:
            targets.update(ph.group(1).split())


def code_spans(text: str) -> Iterator[str]:
    yield from re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


for page in doc_pages():
    if not page.is_file():
        continue
    for span in code_spans(read(page)):
        for m in re.finditer(r"(?<![\w-])make((?: +[^\s#&|;]+)+)", span):
            for word in m.group(1).split():
                if word.startswith("-") or "=" in word or not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                if word not in targets:
                    problems.append(f"{rel(page)}: `make {word}`: no such target in the Makefile or mk/*.mk")

# --- 6: code blocks ----------------------------------------------------------------------------
lib = read(ROOT / "src" / "lib.rs")
doctested = {(ROOT / "src" / inc).resolve() for inc in re.findall(r'#\[doc = include_str!\("([^"]+)"\)\]', lib)}
for page in doc_pages():
    if not page.is_file():
        continue
    fence = None
    for n, line in enumerate(read(page).splitlines(), 1):
        m = re.match(r"^(```+)(.*)$", line)
        if not m:
            continue
        if fence is None:
            fence = m.group(1)
            info = m.group(2).strip()
            if not info:
                problems.append(f"{rel(page)}:{n}: a code block without a language (```text, ```sh, ...)")
            elif info.split(",")[0] == "rust" and page.resolve() not in doctested:
                problems.append(f"{rel(page)}:{n}: a ```rust block in a page that src/lib.rs does not "
                                f'include as a doctest (#[doc = include_str!("../{rel(page)}")])')
        elif m.group(1) == fence and not m.group(2).strip():
            fence = None
    if fence is not None:
        problems.append(f"{rel(page)}: a code block is not closed")

# --- 7: the front page -------------------------------------------------------------------------
readme = read(ROOT / "README.md")
if len(readme.splitlines()) > README_MAX_LINES:
    problems.append(f"README.md: {len(readme.splitlines())} lines, more than {README_MAX_LINES}: move it to docs/")
for cmd in ("make run", "make test"):
    if cmd not in readme:
        problems.append(f"README.md: `{cmd}` is gone")

for p in problems:
    print(f"FAIL: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"ok: {len(SECTIONS)} architecture sections, every citation, the module map, "
      f"{len(doc_pages())} pages' links, make targets and code blocks check out")
