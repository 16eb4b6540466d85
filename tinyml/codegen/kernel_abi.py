"""What the kernels' headers say about themselves, read from the headers so Python keeps no copy.

Each kernel that needs scratch memory declares its size rule once, as a macro in its header
(``#define ENG_CONV_SCRATCH_BYTES(k_h, k_w, in_c) (...)``, the way CMSIS-NN's
``*_get_buffer_sizes_s8`` functions do). The code generator evaluates that same macro text here to size
the shared scratch region, and the generated C re-checks every layer against the macro itself with
``_Static_assert``, so a header change can never leave the arena too small unnoticed.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parents[2] / "firmware" / "lib" / "engine"
_DEFINE = re.compile(r"^\s*#\s*define\s+(ENG_\w+_SCRATCH_BYTES)\(([^)]*)\)\s*(.*)$")
_CAST = re.compile(r"\(\s*(?:u?int(?:8|16|32|64)_t|size_t|unsigned|int|long)\s*\)")
_SUFFIX = re.compile(r"\b(\d+)[uUlL]+\b")
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.FloorDiv,
    ast.Mod,
    ast.LShift,
    ast.RShift,
    ast.USub,
    ast.BitAnd,
    ast.BitOr,
)


@functools.cache
def scratch_macros(engine_dir: Path = ENGINE_DIR) -> dict[str, tuple[tuple[str, ...], ast.Expression]]:
    """Every ``ENG_*_SCRATCH_BYTES(args)`` macro in the engine's headers: name -> (parameters, expression)."""
    macros: dict[str, tuple[tuple[str, ...], ast.Expression]] = {}
    for header in sorted(engine_dir.glob("*.h")):
        lines = header.read_text().replace("\\\n", " ").splitlines()
        for line in lines:
            m = _DEFINE.match(line)
            if not m:
                continue
            name, params, body = m.group(1), tuple(p.strip() for p in m.group(2).split(",") if p.strip()), m.group(3)
            body = body.split("/*")[0].split("//")[0]
            text = _SUFFIX.sub(r"\1", _CAST.sub("", body)).replace("/", "//")
            tree = ast.parse(text.strip(), mode="eval")
            bad = [type(node).__name__ for node in ast.walk(tree) if not isinstance(node, _ALLOWED)]
            if bad or any(isinstance(n, ast.Name) and n.id not in params for n in ast.walk(tree)):
                raise RuntimeError(
                    f"{header.name}: {name} is not plain integer arithmetic on its parameters "
                    f"({', '.join(bad) or 'free name'}); the code generator cannot size scratch from it"
                )
            macros[name] = (params, tree)
    return macros


def scratch_bytes(macro: str, args: tuple[int, ...]) -> int:
    """The value of the header's scratch macro for these arguments (unsigned arithmetic, as in C)."""
    params, tree = scratch_macros()[macro]
    if len(params) != len(args):
        raise TypeError(f"{macro} takes {len(params)} arguments, got {len(args)}")
    value = eval(
        compile(tree, macro, "eval"), {"__builtins__": {}}, dict(zip(params, args, strict=True))
    )  # checked AST
    return int(value)


@functools.cache
def constant(name: str, engine_dir: Path = ENGINE_DIR) -> int:
    """An integer ``#define NAME value`` from the engine's headers (a kernel limit codegen must respect)."""
    pattern = re.compile(rf"^\s*#\s*define\s+{re.escape(name)}\s+\(?\s*(\d+)[uU]?\s*\)?\s*(?:/\*.*)?$")
    for header in sorted(engine_dir.glob("*.h")):
        for line in header.read_text().splitlines():
            m = pattern.match(line)
            if m:
                return int(m.group(1))
    raise KeyError(f"{name} is not defined in {engine_dir}/*.h")


def c_call(macro: str, args: tuple[int, ...]) -> str:
    """The macro invocation as C text, for the generated _Static_assert."""
    return f"{macro}({', '.join(str(int(a)) for a in args)})"
