"""cffi build script for userppp's C core (out-of-line API mode).

setup.py names it in ``cffi_modules``: build with ``pip install -e .`` (or
``pip install .``), which compiles ``userppp/_core*.so``.

The cdef is read from the marked sections of cext/upp.h (the contract), and
the same header is included by every .c file, so the compiler checks both
sides agree. Adding a C file to the core is one line in SOURCES.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = "upp.h"
SOURCES = [
    "cpu.c",
    "fcs.c",
    "hdlc.c",
    "bsdcomp.c",
    "vj.c",
    "csum.c",
    "nat.c",
    "tso.c",
    "path.c",
]
CFLAGS = ["-std=c99", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"]

_BEGIN = re.compile(r"^/\*\s*UPP_CDEF_BEGIN\b")
_END = re.compile(r"^/\*\s*UPP_CDEF_END\b")
_DEFINE_INT = re.compile(r"^#\s*define\s+\w+\s+(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*$")


def cdef_from_header(path):
    """Return the text of all UPP_CDEF sections, without preprocessor lines
    except integer constants (``#define NAME 123``) which cffi understands."""
    out, inside = [], False
    with open(path) as f:
        for line in f:
            s = line.strip()
            if _BEGIN.match(s):
                inside = True
                continue
            if _END.match(s):
                inside = False
                continue
            if not inside:
                continue
            if s.startswith("#"):
                if _DEFINE_INT.match(s):
                    out.append(s)
                continue
            out.append(line.rstrip("\n"))
    if inside:
        raise ValueError(f"{path}: UPP_CDEF_BEGIN without UPP_CDEF_END")
    return "\n".join(out) + "\n"


def _rel(path):
    # setuptools prefers source paths relative to the setup.py directory
    # (the current directory during a build)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header(os.path.join(HERE, HEADER)))
ffibuilder.set_source(
    "userppp._core",
    f'#include "{HEADER}"\n',
    sources=[_rel(os.path.join(HERE, s)) for s in SOURCES],
    include_dirs=[_rel(HERE)],
    extra_compile_args=CFLAGS,
    depends=[_rel(os.path.join(HERE, h)) for h in os.listdir(HERE) if h.endswith(".h")],
)

