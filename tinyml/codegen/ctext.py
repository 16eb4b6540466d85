"""C text for the generated model: const arrays, struct initialisers and exact float literals."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def c_array(ctype: str, name: str, values: np.ndarray, align: int = 4) -> str:
    """A static const array, word-aligned by default (the DSP kernels load weights 4 bytes at a time)."""
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [c_float(v) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    rows = [", ".join(items[i : i + 24]) for i in range(0, len(items), 24)] or ["0"]
    body = ",\n  ".join(rows)
    return f"static const {ctype} {name}[{max(len(items), 1)}] ENG_ALIGNED({align}) = {{\n  {body}\n}};\n"


def c_float(value: float) -> str:
    """A float32 value as a hex-float literal: exact, whatever the compiler's decimal conversion does."""
    return float(np.float32(value)).hex() + "f"


def c_struct(ctype: str, name: str, fields: Mapping[str, object]) -> str:
    inits = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{inits}}};\n"
