#!/usr/bin/env python3
"""Generates ``graceserve/_ffi.py`` (raw ctypes prototypes) from ``include/graceserve.h``.

    python3 bindings/python/tools/gen_ffi.py           # rewrite _ffi.py
    python3 bindings/python/tools/gen_ffi.py --check   # exit 1 when _ffi.py is stale

The header is preprocessed with the system C compiler (``cc -E``; its ``#include`` lines are
replaced by the few typedefs they provide) and parsed with pycparser. Integer ``#define``
constants are read from the header text itself, since preprocessing removes them.

Mapping (chosen for speed on the request path and for ctypes' own lifetime rules):
  - pointers to opaque structs (``server_request *``, ``server_stream *``) and ``void *`` are
    ``c_void_p`` (plain ints in Python, no wrapper objects per request);
  - ``const char *`` / ``const uint8_t *`` arguments are ``c_char_p`` (a ``bytes`` object is
    passed without a copy); returned ``const char *`` is ``c_char_p`` (copied into ``bytes``);
  - mutable ``char *`` buffers are ``POINTER(c_char)``; pointer-to-pointer out-params are
    ``POINTER(c_void_p)``; other pointers are ``POINTER(<type>)``;
  - callback typedefs become ``CFUNCTYPE`` prototypes; structs become ``Structure`` classes.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from pycparser import c_ast, c_parser

HERE = Path(__file__).resolve().parent
PKG = HERE.parent / "graceserve"
REPO = HERE.parent.parent.parent
HEADER = REPO / "include" / "graceserve.h"
OUT = PKG / "_ffi.py"

# What the header's #include lines provide, in a form pycparser understands.
PRELUDE = """
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned long size_t;
typedef _Bool bool;
#define NULL ((void *)0)
#define false 0
#define true 1
#define UINT32_MAX 4294967295u
"""

SCALARS: Dict[str, str] = {
    "uint8_t": "ctypes.c_uint8",
    "uint16_t": "ctypes.c_uint16",
    "uint32_t": "ctypes.c_uint32",
    "uint64_t": "ctypes.c_uint64",
    "int8_t": "ctypes.c_int8",
    "int16_t": "ctypes.c_int16",
    "int32_t": "ctypes.c_int32",
    "int64_t": "ctypes.c_int64",
    "size_t": "ctypes.c_size_t",
    "bool": "ctypes.c_bool",
    "_Bool": "ctypes.c_bool",
    "int": "ctypes.c_int",
    "unsigned int": "ctypes.c_uint",
    "char": "ctypes.c_char",
}

# Python annotation of each ctypes type when it crosses a call (what the caller passes/gets).
PY_ARG: Dict[str, str] = {
    "ctypes.c_void_p": "Optional[int]",
    "ctypes.c_char_p": "Optional[bytes]",
    "ctypes.c_bool": "bool",
}
PY_RET: Dict[str, str] = {
    "ctypes.c_void_p": "Optional[int]",
    "ctypes.c_char_p": "Optional[bytes]",
    "ctypes.c_bool": "bool",
    "None": "None",
}

CONST_VALUES = {"UINT32_MAX": str(2**32 - 1)}


def preprocess(text: str) -> str:
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#include"))
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"
    res = subprocess.run(
        [cc, "-E", "-P", "-std=c11", "-nostdinc", "-x", "c", "-"],
        input=PRELUDE + body,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"gen_ffi: `{cc} -E` failed:\n{res.stderr}")
    return res.stdout


def read_defines(text: str) -> List[Tuple[str, str, str]]:
    """(name, value, doc) for each integer #define, in header order."""
    out = []
    for m in re.finditer(
        r"(?:/\*\*((?:(?!\*/).)*?)\*/\s*)?#define\s+(SERVER_\w+)\s+([^\n]+)", text, re.S
    ):
        doc, name, value = m.group(1) or "", m.group(2), m.group(3).strip()
        if value in CONST_VALUES:
            value = CONST_VALUES[value]
        if not re.fullmatch(r"-?\d+[uUlL]*", value):
            continue  # e.g. SERVER_OPTIONS_INIT, an initialiser
        out.append((name, value.rstrip("uUlL"), clean_doc(doc)))
    return out


def clean_doc(doc: str) -> str:
    lines = [re.sub(r"^\s*\*\s?", "", line).rstrip() for line in doc.strip().splitlines()]
    return "\n".join(lines).strip()


_DOC_DECL = re.compile(r"/\*\*((?:(?!\*/).)*?)\*/\s*([^;{}/]*?)(\(|\{|;|=|,)", re.S)


def read_docs(text: str) -> Dict[str, str]:
    """Doc comment of each function, struct, enum, typedef and enum constant, by name; struct
    fields as ``struct.field`` (two structs may have fields of the same name)."""
    docs: Dict[str, str] = {}
    for s in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*\w+\s*;", text, re.S):
        for m in _DOC_DECL.finditer(s.group(2)):
            field = re.findall(r"(\w+)\s*$", m.group(2))
            if field:
                docs[f"{s.group(1)}.{field[-1]}"] = clean_doc(m.group(1))
    for m in _DOC_DECL.finditer(text):
        doc, decl = clean_doc(m.group(1)), m.group(2)
        if m.group(3) == "(":
            name = re.findall(r"(\w+)\s*$", decl.replace("(*", " "))
        else:
            name = re.findall(r"(\w+)\s*$", decl)
        if name:
            docs.setdefault(name[-1], doc)
    # Function-pointer typedefs: `typedef void (*name)(...)`.
    for m in re.finditer(r"/\*\*((?:(?!\*/).)*?)\*/\s*typedef[^;]*?\(\*(\w+)\)", text, re.S):
        docs[m.group(2)] = clean_doc(m.group(1))
    return docs


class Gen:
    def __init__(self, ast: c_ast.FileAST, docs: Dict[str, str]) -> None:
        self.ast = ast
        self.docs = docs
        self.typedefs: Dict[str, c_ast.Node] = {}
        self.opaque: List[str] = []
        self.structs: Dict[str, c_ast.Struct] = {}
        self.struct_order: List[str] = []
        self.callbacks: Dict[str, c_ast.FuncDecl] = {}
        self.enums: List[Tuple[str, List[Tuple[str, int]]]] = []
        self.funcs: List[c_ast.Decl] = []
        self.builtin = set(SCALARS) | {"uint8_t"}

    def collect(self) -> None:
        for node in self.ast.ext:
            if isinstance(node, c_ast.Typedef):
                self.on_typedef(node)
            elif isinstance(node, c_ast.Decl):
                t = node.type
                if isinstance(t, c_ast.FuncDecl):
                    self.funcs.append(node)
                elif isinstance(t, c_ast.Enum) and t.values is not None:
                    self.on_enum(t)
                elif isinstance(t, c_ast.Struct) and t.decls is not None:
                    self.on_struct(t.name, t)

    def on_typedef(self, node: c_ast.Typedef) -> None:
        name = node.name
        if name in self.builtin:
            return
        t = node.type
        if isinstance(t, c_ast.PtrDecl) and isinstance(t.type, c_ast.FuncDecl):
            self.callbacks[name] = t.type
            return
        if isinstance(t, c_ast.TypeDecl) and isinstance(t.type, c_ast.Struct):
            s = t.type
            if s.decls is not None:
                self.on_struct(name, s)
            elif s.name not in self.structs and name not in self.opaque:
                self.opaque.append(name)
            return
        self.typedefs[name] = t

    def on_struct(self, name: str, s: c_ast.Struct) -> None:
        if name in self.opaque:
            self.opaque.remove(name)
        if name not in self.structs:
            self.struct_order.append(name)
        self.structs[name] = s

    def on_enum(self, e: c_ast.Enum) -> None:
        values = []
        for ev in e.values.enumerators:
            values.append((ev.name, int(ev.value.value.rstrip("uUlL"))))
        self.enums.append((e.name, values))

    # -- type mapping -------------------------------------------------------------------

    def base_name(self, t: c_ast.Node) -> str:
        """The name of a TypeDecl's underlying type ('uint8_t', 'server_request', ...)."""
        assert isinstance(t, c_ast.TypeDecl), t
        inner = t.type
        if isinstance(inner, c_ast.IdentifierType):
            return " ".join(inner.names)
        if isinstance(inner, (c_ast.Struct, c_ast.Enum)):
            return str(inner.name)
        raise ValueError(f"unsupported type {inner}")

    def is_opaque(self, name: str) -> bool:
        return name in self.opaque or (name == "void")

    def scalar(self, name: str) -> str:
        if name in SCALARS:
            return SCALARS[name]
        if name in self.typedefs:
            return self.ctype(self.typedefs[name], role="field")
        if name in self.callbacks:
            return name
        if name in self.structs:
            return name
        raise ValueError(f"unknown type {name}")

    def ctype(self, t: c_ast.Node, role: str) -> str:
        """ctypes expression for type `t`; role is 'arg', 'ret' or 'field'."""
        if isinstance(t, c_ast.TypeDecl):
            name = self.base_name(t)
            if name == "void":
                return "None"
            return self.scalar(name)
        if isinstance(t, c_ast.PtrDecl):
            inner = t.type
            if isinstance(inner, c_ast.PtrDecl):
                return "ctypes.POINTER(ctypes.c_void_p)"
            if isinstance(inner, c_ast.FuncDecl):
                raise ValueError("inline function pointer types are not supported; use a typedef")
            name = self.base_name(inner)
            const = "const" in inner.quals
            if self.is_opaque(name):
                return "ctypes.c_void_p"
            if name in ("char", "uint8_t"):
                if const or role == "field":
                    return "ctypes.c_char_p"
                return "ctypes.POINTER(ctypes.c_char)"
            return f"ctypes.POINTER({self.scalar(name)})"
        raise ValueError(f"unsupported declarator {t}")

    def py_arg(self, ct: str) -> str:
        if ct in PY_ARG:
            return PY_ARG[ct]
        if ct.startswith("ctypes.POINTER("):
            return "Any"
        if ct in self.structs:
            return ct
        return "int"

    def py_ret(self, ct: str) -> str:
        if ct in PY_RET:
            return PY_RET[ct]
        if ct.startswith("ctypes.POINTER("):
            return "Any"
        return "int"

    # -- output ---------------------------------------------------------------------------

    def comment(self, name: str, indent: str = "") -> List[str]:
        doc = self.docs.get(name)
        if not doc:
            return []
        return [f"{indent}# {line}".rstrip() for line in doc.split("\n")]

    def emit(self, defines: List[Tuple[str, str, str]]) -> str:
        o: List[str] = []
        o.append('"""Raw ctypes prototypes of the graceserve C ABI.')
        o.append("")
        o.append("GENERATED by bindings/python/tools/gen_ffi.py from include/graceserve.h. DO NOT EDIT:")
        o.append("change the header (the Rust doc comments) and regenerate; the test suite fails when this")
        o.append('file is stale. The comments are the header\'s own documentation."""')
        o.append("")
        o.append("# fmt: off")
        o.append("from __future__ import annotations")
        o.append("")
        o.append("import ctypes")
        o.append("from typing import Any, Callable, Optional")
        o.append("")
        o.append("# -- constants " + "-" * 80)
        for name, value, _doc in defines:
            o.append("")
            o += self.comment(name)
            o.append(f"{name} = {value}")
        for ename, values in self.enums:
            o.append("")
            o.append(f"# -- enum {ename} " + "-" * max(4, 84 - len(ename)))
            o += self.comment(ename)
            for vname, v in values:
                o.append("")
                o += self.comment(vname)
                o.append(f"{vname} = {v}")
        o.append("")
        o.append("# -- types " + "-" * 84)
        for name in self.opaque:
            o.append("")
            o += self.comment(name)
            o.append(f"# {name} is opaque: handled as a c_void_p (a plain int).")
        for name in self.structs:
            o.append("")
            o.append("")
            o += self.comment(name)
            o.append(f"class {name}(ctypes.Structure):")
            o.append("    pass")
        for name, fd in self.callbacks.items():
            o.append("")
            o += self.comment(name)
            ret = self.ctype(fd.type, "ret")
            params = [self.ctype(p.type, "arg") for p in fd.args.params] if fd.args else []
            o.append(f"{name} = ctypes.CFUNCTYPE({', '.join([ret] + params)})")
        for name in self.struct_order:
            s = self.structs[name]
            o.append("")
            o.append(f"{name}._fields_ = [")
            for d in s.decls:
                o += self.comment(f"{name}.{d.name}", "    ")
                o.append(f'    ("{d.name}", {self.ctype(d.type, "field")}),')
            o.append("]")
        o.append("")
        o.append("")
        o.append("# -- functions " + "-" * 80)
        o.append("")
        o.append("")
        o.append("class Lib:")
        o.append('    """The library\'s exported functions with argtypes/restype set, one attribute each."""')
        o.append("")
        o.append("    dll: ctypes.CDLL")
        sigs = []
        for f in self.funcs:
            fd: c_ast.FuncDecl = f.type
            ret = self.ctype(fd.type, "ret")
            params = []
            if fd.args:
                for p in fd.args.params:
                    if isinstance(p.type, c_ast.TypeDecl) and self.base_name(p.type) == "void":
                        continue
                    params.append(self.ctype(p.type, "arg"))
            sigs.append((f.name, ret, params))
            pyargs = ", ".join(self.py_arg(p) for p in params)
            o.append("")
            o += self.comment(f.name, "    ")
            o.append(f"    {f.name}: Callable[[{pyargs}], {self.py_ret(ret)}]")
        o.append("")
        o.append("    def __init__(self, dll: ctypes.CDLL) -> None:")
        o.append("        self.dll = dll")
        for name, ret, params in sigs:
            o.append(f"        f = dll.{name}")
            o.append(f"        f.argtypes = [{', '.join(params)}]")
            o.append(f"        f.restype = {ret}")
            o.append(f"        self.{name} = f")
        o.append("")
        o.append("")
        o.append("FUNCTIONS = (")
        for name, _r, _p in sigs:
            o.append(f'    "{name}",')
        o.append(")")
        o.append("")
        return "\n".join(o)


def generate(header: Path = HEADER) -> str:
    text = header.read_text()
    ast = c_parser.CParser().parse(preprocess(text), filename=str(header))
    g = Gen(ast, read_docs(text))
    g.collect()
    return g.emit(read_defines(text))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when _ffi.py is stale")
    ap.add_argument("--header", type=Path, default=HEADER)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    fresh = generate(args.header)
    current = args.out.read_text() if args.out.exists() else ""
    if args.check:
        if current != fresh:
            diff = difflib.unified_diff(
                current.splitlines(True), fresh.splitlines(True), str(args.out), "fresh"
            )
            sys.stderr.write("".join(list(diff)[:80]))
            sys.stderr.write(
                f"\n{args.out} is stale: run `python3 bindings/python/tools/gen_ffi.py`\n"
            )
            return 1
        print(f"{args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out} is up to date")
        return 0
    if current != fresh:
        args.out.write_text(fresh)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
