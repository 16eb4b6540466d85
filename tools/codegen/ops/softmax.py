"""SOFTMAX (int8 in, int8 out): eng_softmax_s8."""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from tools.codegen.ctext import c_array, c_float, c_struct
from tools.codegen.layer import quant
from tools.codegen.ops.elementwise import ElementWise

_LIBM = None


def _expf(x: np.float32) -> np.float32:
    """C expf from the system libm, the one LiteRT's softmax table is built with."""
    global _LIBM
    if _LIBM is None:
        _LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        _LIBM.expf.restype = ctypes.c_float
        _LIBM.expf.argtypes = [ctypes.c_float]
    return np.float32(_LIBM.expf(ctypes.c_float(float(x))))


def softmax_table(input_scale: float, beta: float) -> np.ndarray:
    """LiteRT PopulateSoftmaxLookupTable: table[255 - v] = expf((-input_scale * beta) * v), all in float32."""
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = np.zeros(256, np.float32)
    for v in range(256):
        table[255 - v] = _expf(np.float32(scale * np.float32(v)))
    return table


class Softmax(ElementWise):
    kernel = "softmax"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8",))
        self.require_dtype(self.op.outputs[0], ("int8",))
        in_scale, _ = quant(x)
        out_scale, out_zp = quant(self.tensor(self.op.outputs[0]))
        depth = x.shape[-1]
        table = softmax_table(in_scale, float(self.op.options.get("beta", 1.0)))
        fields = dict(rows=x.size // depth, depth=depth, out_scale=c_float(out_scale), out_zp=out_zp,
                      table=f"{self.name}_t")
        self.weight_bytes = 1024
        self.decls = c_array("float", f"{self.name}_t", table) + c_struct("eng_softmax_t", self.name, fields)
        self.call = f"eng_softmax_s8(&{self.name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"
