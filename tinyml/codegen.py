"""Generate plain C for the project's int8 engine from a bundle's int8 .tflite (firmware/lib/engine).

Instead of shipping an interpreter, the model becomes code (as TinyEngine and Edge Impulse's EON do):
const weights, per-channel requantisation multipliers/shifts and zero-point-folded biases computed here
once, a static activation-memory plan (liveness-based buffer reuse; RESHAPE as an alias; 1x1
convolutions, ADD, QUANTIZE and SOFTMAX in place), and one kernel call per op. The generated API::

    #include "model_engine.h"
    extern const runner_info_t model_engine_info;    // engine "engine", model id = sha256 of the .tflite
    int model_engine_invoke(const uint8_t *input, uint8_t *output);   // enum runner_status
    #define MODEL_ENGINE_ARENA_BYTES ...

Every constant follows TFLite's reference arithmetic (QuantizeMultiplier's rounding, double-precision
effective scales, float32 activation bounds), so the engine is bit-exact with LiteRT BUILTIN_REF.
An op or type the engine lacks is a one-line error naming it and pointing at the TFLM backend.

``python -m tools codegen BUNDLE [--out DIR]`` writes BUNDLE/codegen/ and records it in model.json.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.bundle import Bundle, load_bundle
from models.errors import UserError
from tinyml.tflite_graph import Graph, Operator, Tensor, load_graph

HEADER_NAME = "model_engine.h"
SOURCE_NAME = "model_engine.c"
ARENA_ALIGN = 8
TFLM_HINT = "deploy this model with the TFLM backend instead: python -m tools export BUNDLE"
ALIAS_OPS = {"RESHAPE", "SQUEEZE"}
IN_PLACE_TOKEN = "@IN_PLACE@"
QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
RUNNER_DTYPE = {"int8": "RUNNER_DTYPE_INT8", "uint8": "RUNNER_DTYPE_UINT8"}


# ---- TFLite's quantisation arithmetic ------------------------------------------------------------------
def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= m * 2^(shift - 31) with m a Q31 int32."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise UserError(f"a requantisation scale of {real:g} is out of the engine's range; {TFLM_HINT}")
    return q_fixed, shift


def activation_range(act: str, scale: float, zero_point: int, dtype: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: bounds of the fused activation in the output's quantised domain."""
    qmin, qmax = QRANGE[dtype]

    def q(value: float) -> int:  # float32 division, as the reference does
        return zero_point + _round_half_away(float(np.float32(value) / np.float32(scale)))

    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise UserError(f"fused activation {act} is not supported by the engine; {TFLM_HINT}")


def same_padding(in_size: int, out_size: int, k: int, stride: int, dilation: int) -> int:
    """Leading padding TFLite uses for an output of out_size (0 for VALID, whose output needs none)."""
    effective = (k - 1) * dilation + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


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


# ---- C text helpers ---------------------------------------------------------------------------------------
def _c_array(ctype: str, name: str, values: np.ndarray, align: int = 4) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [float(np.float32(v)).hex() + "f" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    rows = [", ".join(items[i: i + 24]) for i in range(0, len(items), 24)] or ["0"]
    body = ",\n  ".join(rows)
    return f"static const {ctype} {name}[{max(len(items), 1)}] ENG_ALIGNED({align}) = {{\n  {body}\n}};\n"


def _c_float(value: float) -> str:
    return float(np.float32(value)).hex() + "f"


def _c_struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    inits = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{inits}}};\n"


# ---- graph -> layers --------------------------------------------------------------------------------------
@dataclass
class Layer:
    """One kernel call: its activation inputs/outputs, C declarations and call text."""

    op: Operator
    kernel: str
    inputs: list[int]
    outputs: list[int]
    decls: str = ""
    call: str = ""  # format string with {in0} {in1} {out0} {scratch}
    in_place_ok: bool = False  # output may share the first input's buffer
    scratch: int = 0
    weight_bytes: int = 0
    in_place: bool = False


def conv_scratch_bytes(k_h: int, k_w: int, in_c: int, out_c: int) -> int:
    """ENG_CONV_SCRATCH_BYTES of engine.h: the im2col kernels' 5 bytes per receptive-field element, or the narrow
    pointwise kernel's 16-byte constants record per output channel (1x1, 8 input channels) if more."""
    im2col = 5 * k_h * k_w * in_c + 16
    if k_h == 1 and k_w == 1 and in_c == 8:
        return max(im2col, 16 * out_c)
    return im2col


def _unsupported(op: Operator, why: str) -> UserError:
    return UserError(f"op #{op.index} {op.name} ({why}) is not supported by the engine's code generator; {TFLM_HINT}")


def _quant(t: Tensor) -> tuple[float, int]:
    if t.quantization is None:
        raise UserError(f"tensor {t.name!r} has no quantisation; the engine runs full-integer int8 models "
                        f"(re-create it with python -m tools quantize) or {TFLM_HINT}")
    return float(t.quantization.scale[0]), int(t.quantization.zero_point[0])


def _nhwc(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return shape[0], 1, 1, shape[1]
    if len(shape) == 1:
        return 1, 1, 1, shape[0]
    if len(shape) == 3:
        return 1, shape[0], shape[1], shape[2]
    raise ValueError(shape)


class _Builder:
    """Turns each live operator into a Layer (constants computed here, once)."""

    def __init__(self, graph: Graph):
        self.g = graph

    def tensor(self, idx: int) -> Tensor:
        return self.g.tensors[idx]

    def require_dtype(self, op: Operator, idx: int, dtypes: tuple[str, ...]) -> Tensor:
        t = self.tensor(idx)
        if t.dtype not in dtypes:
            raise _unsupported(op, f"{t.dtype} tensor {t.name!r}")
        return t

    def build(self, op: Operator) -> Layer:
        method = getattr(self, "op_" + op.name.lower().replace(":", "_"), None)
        if method is None:
            raise _unsupported(op, "no engine kernel")
        return method(op)

    # -- convolution family
    def _int8_weighted(self, op: Operator) -> tuple[Tensor, Tensor, Tensor]:
        """Input, constant weights and output of a conv-like op, all int8 (else the one-line unsupported error)."""
        x = self.require_dtype(op, op.inputs[0], ("int8",))
        w = self.require_dtype(op, op.inputs[1], ("int8",))
        y = self.require_dtype(op, op.outputs[0], ("int8",))
        if w.data is None:
            raise _unsupported(op, "non-constant weights")
        return x, w, y

    def _requant_arrays(self, op: Operator, x: Tensor, w: Tensor, y: Tensor, out_c: int) -> tuple[list[int], list[int]]:
        in_scale, _ = _quant(x)
        out_scale, _ = _quant(y)
        if w.quantization is None:
            raise _unsupported(op, "unquantised weights")
        if np.any(w.quantization.zero_point != 0):
            raise _unsupported(op, "asymmetric int8 weights")
        scales = w.quantization.scale
        if scales.size not in (1, out_c):
            raise _unsupported(op, f"{scales.size} weight scales for {out_c} channels")
        mult, shift = [], []
        for c in range(out_c):
            ws = float(scales[c if scales.size > 1 else 0])
            m, s = quantize_multiplier(float(in_scale) * ws / float(out_scale))
            mult.append(m)
            shift.append(s)
        return mult, shift

    def _bias(self, op: Operator, idx: int, out_c: int) -> np.ndarray:
        if idx < 0:
            return np.zeros(out_c, np.int64)
        b = self.tensor(idx)
        if b.dtype != "int32" or b.data is None:
            raise _unsupported(op, f"{b.dtype} bias")
        return b.data.reshape(-1).astype(np.int64)

    def _conv_layer(self, op: Operator, name: str, x: Tensor, w_oc_k: np.ndarray, bias: np.ndarray,
                    mult: list[int], shift: list[int], geom: dict[str, int], y: Tensor, act: str,
                    single_round: bool = False) -> Layer:
        _, in_zp = _quant(x)
        out_scale, out_zp = _quant(y)
        lo, hi = activation_range(act, out_scale, out_zp, "int8")
        folded = bias - in_zp * w_oc_k.astype(np.int64).sum(axis=1)
        _check_accumulator(op, folded, w_oc_k.shape[1])
        decls = (_c_array("int8_t", f"{name}_w", w_oc_k) + _c_array("int32_t", f"{name}_b", folded)
                 + _c_array("int32_t", f"{name}_m", np.array(mult)) + _c_array("int8_t", f"{name}_s", np.array(shift)))
        layer = Layer(op, "conv", [op.inputs[0]], [op.outputs[0]], weight_bytes=int(w_oc_k.size + 9 * len(mult)),
                      scratch=conv_scratch_bytes(geom["k_h"], geom["k_w"], geom["in_c"], geom["out_c"]))
        fields = dict(geom, in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi, weights=f"{name}_w", bias=f"{name}_b",
                      mult=f"{name}_m", shift=f"{name}_s", in_place=IN_PLACE_TOKEN,
                      single_round=int(single_round))
        layer.decls = decls + _c_struct("eng_conv_t", name, fields)
        layer.call = f"eng_conv2d_s8(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"
        pointwise = (geom["k_h"] == 1 and geom["k_w"] == 1 and geom["stride_h"] == 1 and geom["stride_w"] == 1
                     and geom["pad_top"] == 0 and geom["pad_left"] == 0
                     and geom["in_h"] == geom["out_h"] and geom["in_w"] == geom["out_w"])
        layer.in_place_ok = pointwise
        return layer

    def op_conv_2d(self, op: Operator) -> Layer:
        x, w, y = self._int8_weighted(op)
        n, ih, iw, ic = x.shape
        _, oh, ow, oc = y.shape
        oc_w, kh, kw, ic_w = w.shape
        if n != 1 or ic_w != ic or oc_w != oc:
            raise _unsupported(op, f"batch {n} or grouped convolution")
        o = op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o["dilation_h_factor"], o["dilation_w_factor"]
        geom = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                    dil_h=dh, dil_w=dw, pad_top=same_padding(ih, oh, kh, sh, dh) if o["padding"] == "SAME" else 0,
                    pad_left=same_padding(iw, ow, kw, sw, dw) if o["padding"] == "SAME" else 0)
        mult, shift = self._requant_arrays(op, x, w, y, oc)
        return self._conv_layer(op, f"L{op.index}", x, w.data.reshape(oc, -1), self._bias(op, self._opt(op, 2), oc),
                                mult, shift, geom, y, o["fused_activation_function"])

    def op_fully_connected(self, op: Operator) -> Layer:
        x, w, y = self._int8_weighted(op)
        if op.options.get("weights_format", 0) != 0:
            raise _unsupported(op, "shuffled weights")
        oc, k = w.shape
        rows = x.size // k
        if rows * k != x.size or y.size != rows * oc:
            raise _unsupported(op, f"input {x.shape} for weights {w.shape}")
        geom = dict(in_h=rows, in_w=1, in_c=k, out_h=rows, out_w=1, out_c=oc, k_h=1, k_w=1, stride_h=1, stride_w=1,
                    dil_h=1, dil_w=1, pad_top=0, pad_left=0)
        mult, shift = self._requant_arrays(op, x, w, y, oc)
        # LiteRT's FULLY_CONNECTED requantises with one rounding step, CONV_2D with gemmlowp's two.
        return self._conv_layer(op, f"L{op.index}", x, w.data.reshape(oc, k), self._bias(op, self._opt(op, 2), oc),
                                mult, shift, geom, y, op.options["fused_activation_function"], single_round=True)

    def op_depthwise_conv_2d(self, op: Operator) -> Layer:
        x, w, y = self._int8_weighted(op)
        n, ih, iw, ic = x.shape
        _, oh, ow, oc = y.shape
        _, kh, kw, oc_w = w.shape
        if n != 1 or oc_w != oc or oc % ic:
            raise _unsupported(op, f"shapes {x.shape} -> {y.shape}")
        o = op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o["dilation_h_factor"], o["dilation_w_factor"]
        mult, shift = self._requant_arrays(op, x, w, y, oc)
        _, in_zp = _quant(x)
        out_scale, out_zp = _quant(y)
        lo, hi = activation_range(o["fused_activation_function"], out_scale, out_zp, "int8")
        weights = w.data.reshape(kh * kw, oc)
        folded = self._bias(op, self._opt(op, 2), oc) - in_zp * weights.astype(np.int64).sum(axis=0)
        _check_accumulator(op, folded, kh * kw)
        if oc == ic:  # depth multiplier 1: the kernel's grouped layout (engine.h, eng_dwconv_t)
            c4 = oc - oc % 4
            grouped = weights[:, :c4].reshape(kh * kw, c4 // 4, 4).transpose(1, 0, 2).reshape(-1)
            weights = np.concatenate([grouped, weights[:, c4:].reshape(-1)])
        name = f"L{op.index}"
        geom = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                    dil_h=dh, dil_w=dw, pad_top=same_padding(ih, oh, kh, sh, dh) if o["padding"] == "SAME" else 0,
                    pad_left=same_padding(iw, ow, kw, sw, dw) if o["padding"] == "SAME" else 0, depth_mult=oc // ic)
        fields = dict(geom, in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi, weights=f"{name}_w", bias=f"{name}_b",
                      mult=f"{name}_m", shift=f"{name}_s")
        decls = (_c_array("int8_t", f"{name}_w", weights) + _c_array("int32_t", f"{name}_b", folded)
                 + _c_array("int32_t", f"{name}_m", np.array(mult)) + _c_array("int8_t", f"{name}_s", np.array(shift))
                 + _c_struct("eng_dwconv_t", name, fields))
        layer = Layer(op, "dwconv", [op.inputs[0]], [op.outputs[0]], weight_bytes=int(weights.size + 9 * oc),
                      scratch=4 * oc)  # ENG_DWCONV_SCRATCH_BYTES
        layer.decls = decls
        layer.call = f"eng_dwconv2d_s8(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"
        return layer

    @staticmethod
    def _opt(op: Operator, i: int) -> int:
        return op.inputs[i] if len(op.inputs) > i else -1

    # -- pooling and reductions
    def _pool(self, op: Operator, kernel: str) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8",))
        y = self.require_dtype(op, op.outputs[0], ("int8",))
        if _quant(x) != _quant(y):
            raise _unsupported(op, "input and output quantisation differ")
        n, ih, iw, c = x.shape
        _, oh, ow, _ = y.shape
        o = op.options
        fh, fw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        scale, zp = _quant(y)
        lo, hi = activation_range(o["fused_activation_function"], scale, zp, "int8")
        name = f"L{op.index}"
        fields = dict(in_h=ih, in_w=iw, c=c, out_h=oh, out_w=ow, f_h=fh, f_w=fw, stride_h=sh, stride_w=sw,
                      pad_top=same_padding(ih, oh, fh, sh, 1) if o["padding"] == "SAME" else 0,
                      pad_left=same_padding(iw, ow, fw, sw, 1) if o["padding"] == "SAME" else 0, act_min=lo, act_max=hi)
        if n != 1:
            raise _unsupported(op, f"batch {n}")
        layer = Layer(op, kernel, [op.inputs[0]], [op.outputs[0]])
        layer.decls = _c_struct("eng_pool_t", name, fields)
        layer.call = f"eng_{kernel}_s8(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"
        return layer

    def op_average_pool_2d(self, op: Operator) -> Layer:
        return self._pool(op, "avgpool")

    def op_max_pool_2d(self, op: Operator) -> Layer:
        return self._pool(op, "maxpool")

    def op_mean(self, op: Operator) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(op, op.outputs[0], (x.dtype,))
        axis = self.tensor(op.inputs[1]).data
        if axis is None or len(x.shape) != 4 or sorted(int(a) % 4 for a in axis.reshape(-1)) != [1, 2] or x.shape[0] != 1:
            raise _unsupported(op, "only the mean over height and width of a 4-D tensor")
        _, h, w, c = x.shape
        in_scale, in_zp = _quant(x)
        out_scale, out_zp = _quant(y)
        mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
        count = h * w
        # Fold 1/count into the multiplier exactly as the reference QuantizedMeanOrSum does.
        extra = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << extra) // count
        shift -= extra
        qmin, qmax = QRANGE[x.dtype]
        name = f"L{op.index}"
        fields = dict(h=h, w=w, c=c, in_zp=in_zp, out_zp=out_zp, mult=mult, shift=shift, qmin=qmin, qmax=qmax)
        layer = Layer(op, "mean", [op.inputs[0]], [op.outputs[0]])
        layer.decls = _c_struct("eng_mean_t", name, fields)
        layer.call = f"eng_mean_s8(&{name}, {{in0}}, {{out0}}, {int(x.dtype == 'int8')});"
        return layer

    # -- element-wise
    def op_add(self, op: Operator) -> Layer:
        a = self.require_dtype(op, op.inputs[0], ("int8",))
        b = self.require_dtype(op, op.inputs[1], ("int8",))
        y = self.require_dtype(op, op.outputs[0], ("int8",))
        if not (_squeezed(a.shape) == _squeezed(b.shape) == _squeezed(y.shape)) or a.is_constant or b.is_constant:
            raise _unsupported(op, f"broadcasting {a.shape} + {b.shape} or a constant operand")
        sa, za = _quant(a)
        sb, zb = _quant(b)
        sy, zy = _quant(y)
        twice_max = 2.0 * float(max(np.float32(sa), np.float32(sb)))
        m1, s1 = quantize_multiplier(float(sa) / twice_max)
        m2, s2 = quantize_multiplier(float(sb) / twice_max)
        mo, so = quantize_multiplier(twice_max / ((1 << 20) * float(sy)))
        lo, hi = activation_range(op.options["fused_activation_function"], sy, zy, "int8")
        name = f"L{op.index}"
        fields = dict(size=y.size, in1_offset=-za, in2_offset=-zb, out_zp=zy, in1_mult=m1, in2_mult=m2, out_mult=mo,
                      in1_shift=s1, in2_shift=s2, out_shift=so, act_min=lo, act_max=hi)
        layer = Layer(op, "add", [op.inputs[0], op.inputs[1]], [op.outputs[0]], in_place_ok=True)
        layer.decls = _c_struct("eng_add_t", name, fields)
        layer.call = f"eng_add_s8(&{name}, (const int8_t *){{in0}}, (const int8_t *){{in1}}, (int8_t *){{out0}});"
        return layer

    def op_pad(self, op: Operator) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(op, op.outputs[0], (x.dtype,))
        pads = self.tensor(op.inputs[1]).data
        if pads is None or pads.shape != (len(x.shape), 2) or len(x.shape) > 4:
            raise _unsupported(op, "non-constant or >4-D paddings")
        full = np.zeros((4, 2), np.int64)
        full[4 - len(x.shape):] = pads
        value = _quant(y)[1]
        if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            const = self.tensor(op.inputs[2]).data
            if const is None:
                raise _unsupported(op, "non-constant pad value")
            value = int(const.reshape(-1)[0])
        n, h, w, c = _nhwc(x.shape)
        name = f"L{op.index}"
        fields = dict(in_n=n, in_h=h, in_w=w, in_c=c, before="{" + ", ".join(str(int(v)) for v in full[:, 0]) + "}",
                      after="{" + ", ".join(str(int(v)) for v in full[:, 1]) + "}", elem_bytes=1, value=value & 0xFF)
        layer = Layer(op, "pad", [op.inputs[0]], [op.outputs[0]])
        layer.decls = _c_struct("eng_pad_t", name, fields)
        layer.call = f"eng_pad(&{name}, {{in0}}, {{out0}});"
        return layer

    op_padv2 = op_pad

    def op_softmax(self, op: Operator) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8",))
        y = self.require_dtype(op, op.outputs[0], ("int8",))
        in_scale, _ = _quant(x)
        out_scale, out_zp = _quant(y)
        depth = x.shape[-1]
        name = f"L{op.index}"
        table = softmax_table(in_scale, float(op.options.get("beta", 1.0)))
        fields = dict(rows=x.size // depth, depth=depth, out_scale=_c_float(out_scale), out_zp=out_zp, table=f"{name}_t")
        layer = Layer(op, "softmax", [op.inputs[0]], [op.outputs[0]], in_place_ok=True, weight_bytes=1024)
        layer.decls = _c_array("float", f"{name}_t", table) + _c_struct("eng_softmax_t", name, fields)
        layer.call = f"eng_softmax_s8(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"
        return layer

    def op_quantize(self, op: Operator) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8", "uint8", "float32"))
        y = self.require_dtype(op, op.outputs[0], ("int8", "uint8"))
        out_scale, out_zp = _quant(y)
        name = f"L{op.index}"
        if x.dtype == "float32":
            fields = dict(size=y.size, q_signed=int(y.dtype == "int8"), scale=_c_float(out_scale), zp=out_zp)
            layer = Layer(op, "quantize", [op.inputs[0]], [op.outputs[0]])
            layer.decls = _c_struct("eng_fquant_t", name, fields)
            layer.call = f"eng_quantize_f32(&{name}, (const float *){{in0}}, {{out0}});"
            return layer
        in_scale, in_zp = _quant(x)
        mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
        fields = dict(size=y.size, in_signed=int(x.dtype == "int8"), out_signed=int(y.dtype == "int8"), in_zp=in_zp,
                      out_zp=out_zp, mult=mult, shift=shift)
        layer = Layer(op, "requant", [op.inputs[0]], [op.outputs[0]], in_place_ok=True)
        layer.decls = _c_struct("eng_requant_t", name, fields)
        layer.call = f"eng_requant8(&{name}, {{in0}}, {{out0}});"
        return layer

    def op_dequantize(self, op: Operator) -> Layer:
        x = self.require_dtype(op, op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(op, op.outputs[0], ("float32",))
        scale, zp = _quant(x)
        name = f"L{op.index}"
        fields = dict(size=y.size, q_signed=int(x.dtype == "int8"), scale=_c_float(scale), zp=zp)
        layer = Layer(op, "dequantize", [op.inputs[0]], [op.outputs[0]])
        layer.decls = _c_struct("eng_fquant_t", name, fields)
        layer.call = f"eng_dequantize_f32(&{name}, {{in0}}, (float *){{out0}});"
        return layer

    def op_reshape(self, op: Operator) -> Layer:
        x = self.tensor(op.inputs[0])
        y = self.tensor(op.outputs[0])
        if x.size != y.size or x.dtype != y.dtype:
            raise _unsupported(op, f"reshape {x.shape} -> {y.shape}")
        layer = Layer(op, "alias", [op.inputs[0]], [op.outputs[0]])
        layer.call = f"eng_copy({{in0}}, {{out0}}, {_nbytes(y)}u);"
        return layer

    op_squeeze = op_reshape


def _check_accumulator(op: Operator, folded_bias: np.ndarray, taps: int) -> None:
    """The kernels' requantisation assumes |accumulator| < 2^30 (engine.h eng_mul_q31); int8 models stay far below."""
    if int(np.abs(folded_bias).max(initial=0)) + 128 * 128 * taps >= 2**30:
        raise _unsupported(op, "accumulators that may exceed 2^30")


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape without leading 1s: (1, 1, 1, 56) and (56,) add element by element."""
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


def _nbytes(t: Tensor) -> int:
    return t.size * (4 if t.dtype in ("float32", "int32") else 1)


def live_operators(graph: Graph) -> list[Operator]:
    """Operators that contribute to the outputs; shape arithmetic feeding RESHAPE's shape input is dropped."""
    needed = set(graph.outputs)
    live: list[Operator] = []
    for op in reversed(graph.operators):
        if not any(o in needed for o in op.outputs):
            continue
        live.append(op)
        data_inputs = op.inputs[:1] if op.name in ALIAS_OPS else op.inputs
        needed.update(i for i in data_inputs if i >= 0)
    return list(reversed(live))


# ---- memory planning --------------------------------------------------------------------------------------
@dataclass
class Plan:
    offsets: dict[int, int] = field(default_factory=dict)  # arena tensor -> byte offset
    aliases: dict[int, str] = field(default_factory=dict)  # tensor -> "input" / "output" (caller buffers)
    arena_bytes: int = 0  # activations only


def plan_memory(graph: Graph, layers: list[Layer]) -> Plan:
    """Static arena plan.

    Each tensor lives from its producing layer to its last consumer. Tensors that share memory form a group
    with fixed offsets relative to each other: an alias (RESHAPE) sits exactly on its input; an in-place
    output starts at its input's offset, or, when it is larger (a 1x1 convolution widening the channels),
    ends where its input ends, so pixels written in ascending order never reach input pixels not yet read.
    Groups are placed greedily (largest first, lowest offset where no member overlaps a live tensor), the
    way TFLM's greedy planner places single tensors.
    """
    g_in, g_out = set(graph.inputs), set(graph.outputs)
    plan = Plan()
    for t in g_in:
        plan.aliases[t] = "input"
    for t in g_out:
        plan.aliases[t] = "output"
    size: dict[int, int] = {}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for t in layer.outputs:
            first.setdefault(t, i)
            size[t] = _nbytes(graph.tensors[t])
        for t in layer.inputs:
            last[t] = i
    group: dict[int, int] = {}  # tensor -> group id (the first member)
    rel: dict[int, int] = {}  # tensor -> offset relative to its group

    def join(src: int, dst: int, offset: int) -> None:
        group[dst], rel[dst] = group.setdefault(src, src), rel.setdefault(src, 0) + offset

    def group_end(t: int) -> int:
        gid = group.get(t, t)
        return max(last.get(m, first.get(m, -1)) for m in size if group.get(m, m) == gid)

    for i, layer in enumerate(layers):
        src, dst = layer.inputs[0], layer.outputs[0]
        if layer.kernel == "alias":
            if dst in g_out:
                continue  # a real copy into the caller's output buffer
            if src in plan.aliases:
                plan.aliases[dst] = plan.aliases[src]
            else:
                join(src, dst, 0)
            continue
        if not layer.in_place_ok or dst in plan.aliases:
            continue
        for cand in layer.inputs[:1] if layer.kernel == "conv" else layer.inputs:
            # The output may take over an input's buffer when nothing reads that input afterwards.
            if cand in plan.aliases or group_end(cand) != i:
                continue
            join(cand, dst, min(0, size[cand] - size[dst]))
            layer.in_place = True
            break

    members: dict[int, list[int]] = {}
    for t in size:
        if t not in plan.aliases:
            members.setdefault(group.get(t, t), []).append(t)
            rel.setdefault(t, 0)
    spans = []
    for gid, ts in members.items():
        low = min(rel[t] for t in ts)
        extent = max(rel[t] + size[t] for t in ts) - low
        spans.append((extent, min(first.get(t, -1) for t in ts), gid, [(t, rel[t] - low) for t in ts]))
    placed: list[tuple[int, int, int, int]] = []  # address, size, first, last of every placed tensor

    def conflict(base: int, parts: list[tuple[int, int]]) -> int | None:
        """End address of a placed tensor clashing with the group at base, else None."""
        for t, offset in parts:
            a0, a1 = base + offset, base + offset + size[t]
            t0, t1 = first.get(t, -1), last.get(t, first.get(t, -1))
            for addr, nbytes, p0, p1 in placed:
                if p0 <= t1 and t0 <= p1 and addr < a1 and a0 < addr + nbytes:
                    return addr + nbytes - offset
        return None

    for extent, _, gid, parts in sorted(spans, key=lambda s: (-s[0], s[1])):
        base = 0
        while (clash := conflict(base, parts)) is not None:
            base = _align(max(clash, base + 1))
        for t, offset in parts:
            plan.offsets[t] = base + offset
            placed.append((base + offset, size[t], first.get(t, -1), last.get(t, first.get(t, -1))))
        plan.arena_bytes = max(plan.arena_bytes, base + extent)
    plan.arena_bytes = _align(plan.arena_bytes)
    return plan


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


# ---- emission ---------------------------------------------------------------------------------------------
@dataclass
class Generated:
    paths: list[Path]
    arena_bytes: int  # activations + kernel scratch: the engine's whole RAM for inference
    activation_bytes: int
    scratch_bytes: int
    weights_bytes: int
    layers: int


def _io_check(graph: Graph) -> tuple[Tensor, Tensor]:
    if graph.num_subgraphs != 1 or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UserError(f"the engine runs single-input, single-output, single-subgraph models "
                        f"(this one has {len(graph.inputs)} inputs, {len(graph.outputs)} outputs); {TFLM_HINT}")
    x, y = graph.input_tensors()[0], graph.output_tensors()[0]
    for t, what in ((x, "input"), (y, "output")):
        if t.dtype not in QRANGE:
            raise UserError(f"the model {what} is {t.dtype}; the engine needs int8 or uint8 model I/O "
                            f"(re-quantize with python -m tools quantize) or {TFLM_HINT}")
    if len(x.shape) != 4 or x.shape[0] != 1:
        raise UserError(f"the model input has shape {x.shape}; the engine needs a batch-1 NHWC image input")
    return x, y


def generate_from_tflite(tflite: bytes, out_dir: str | os.PathLike) -> Generated:
    """Write model_engine.h/.c for the .tflite bytes into out_dir."""
    graph = load_graph(tflite)
    x, y = _io_check(graph)
    builder = _Builder(graph)
    layers = [builder.build(op) for op in live_operators(graph)]
    if not layers:
        raise UserError("the model has no operators to run; re-create it with python -m tools quantize")
    plan = plan_memory(graph, layers)
    scratch = _align(max(layer.scratch for layer in layers))
    total = plan.arena_bytes + scratch
    digest = hashlib.sha256(tflite).digest()

    def ref(t: int) -> str:
        if t in plan.aliases:
            return plan.aliases[t]
        return f"(arena + {plan.offsets[t]}u)"

    decls, calls = [], []
    for layer in layers:
        refs = {f"in{k}": ref(t) for k, t in enumerate(layer.inputs)}
        refs.update({f"out{k}": ref(t) for k, t in enumerate(layer.outputs)})
        refs["scratch"] = f"(arena + {plan.arena_bytes}u)"
        if layer.kernel == "alias" and layer.outputs[0] not in graph.outputs:
            calls.append(f"  /* op #{layer.op.index} {layer.op.name}: alias, no code */")
            continue
        if layer.decls:
            decls.append(layer.decls.replace(IN_PLACE_TOKEN, str(int(layer.in_place))))
        calls.append(f"  /* op #{layer.op.index} {layer.op.name} {graph.tensors[layer.outputs[0]].shape} */")
        calls.append("  " + layer.call.format(**refs))
        calls.append(f"  ENG_AFTER_LAYER({layer.op.index});")

    _, in_h, in_w, in_c = x.shape
    in_scale, in_zp = _quant(x)
    out_scale, out_zp = _quant(y)
    weights_bytes = sum(layer.weight_bytes for layer in layers)
    header = f"""/* Generated by tinyml/codegen.py from a .tflite with sha256 {digest.hex()}. Do not edit. */
#ifndef MODEL_ENGINE_H
#define MODEL_ENGINE_H

#include <stdint.h>

#include "runner.h"

#ifdef __cplusplus
extern "C" {{
#endif

/* Activation arena + kernel scratch, in bytes (static RAM the engine uses during an inference). */
#define MODEL_ENGINE_ARENA_BYTES {total}u
#define MODEL_ENGINE_INPUT_BYTES {x.size}u
#define MODEL_ENGINE_OUTPUT_BYTES {y.size}u

extern const runner_info_t model_engine_info;
/* Run one inference: input holds MODEL_ENGINE_INPUT_BYTES in the model's input type (NHWC), output
 * receives MODEL_ENGINE_OUTPUT_BYTES. Returns enum runner_status. Not reentrant (one static arena). */
int model_engine_invoke(const uint8_t *input, uint8_t *output);

#ifdef __cplusplus
}}
#endif
#endif /* MODEL_ENGINE_H */
"""
    model_id = ", ".join(f"0x{b:02x}" for b in digest)
    source = f"""/* Generated by tinyml/codegen.py from a .tflite with sha256 {digest.hex()}. Do not edit.
 * {len(layers)} ops; activations {plan.arena_bytes} B + scratch {scratch} B; constants {weights_bytes} B. */
#include <stdint.h>

#include "engine.h"
#include "model_engine.h"

const runner_info_t model_engine_info = {{
  .engine = "engine",
  .model_id = {{{model_id}}},
  .in_h = {in_h}, .in_w = {in_w}, .in_c = {in_c},
  .in_dtype = {RUNNER_DTYPE[x.dtype]},
  .in_scale = {_c_float(in_scale)},
  .in_zero_point = {in_zp},
  .out_len = {y.size},
  .out_dtype = {RUNNER_DTYPE[y.dtype]},
  .out_scale = {_c_float(out_scale)},
  .out_zero_point = {out_zp},
  .arena_bytes = MODEL_ENGINE_ARENA_BYTES,
}};

static uint8_t arena[MODEL_ENGINE_ARENA_BYTES] ENG_ALIGNED(8);

{"".join(decls)}
int model_engine_invoke(const uint8_t *input, uint8_t *output) {{
  if (input == 0 || output == 0) return RUNNER_ERR_INVOKE;
{chr(10).join(calls)}
  return RUNNER_OK;
}}
"""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / HEADER_NAME, out / SOURCE_NAME]
    paths[0].write_text(header)
    paths[1].write_text(source)
    return Generated(paths, total, plan.arena_bytes, scratch, weights_bytes, len(layers))


def generate(bundle_or_tflite: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Generate the engine C for a bundle (recorded in its model.json) or a bare .tflite file.

    Default output: BUNDLE/codegen/ for a bundle, <file stem>_codegen/ next to a bare .tflite.
    """
    src = Path(bundle_or_tflite)
    bundle: Bundle | None = None
    if src.is_dir():
        bundle = load_bundle(src)
        tflite_path = bundle.artifact_path("tflite")
        default_out = bundle.path / "codegen"
    elif src.suffix == ".tflite" or src.exists():
        tflite_path = src
        default_out = src.with_name(src.stem + "_codegen")
    else:
        raise UserError(f"{src} does not exist; pass a bundle directory (or a .tflite file)")
    if not tflite_path.exists():
        raise UserError(f"{tflite_path} does not exist; create it with: python -m tools quantize BUNDLE")
    result = generate_from_tflite(tflite_path.read_bytes(), out_dir or default_out)
    if bundle is not None:
        out = Path(out_dir or default_out)
        rel = os.path.relpath(out, bundle.path)
        bundle.meta["codegen"] = {
            "dir": rel,
            "tflite_sha256": hashlib.sha256(tflite_path.read_bytes()).hexdigest(),
            "arena_bytes": result.arena_bytes,
            "activation_bytes": result.activation_bytes,
            "scratch_bytes": result.scratch_bytes,
            "weights_bytes": result.weights_bytes,
            "layers": result.layers,
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in result.paths},
        }
        bundle.save()
    return result.paths
