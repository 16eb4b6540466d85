"""ADD, PAD/PADV2, QUANTIZE, DEQUANTIZE and RESHAPE/SQUEEZE (an alias: no code unless it is the model output)."""

from __future__ import annotations

import numpy as np

from tinyml.codegen.arithmetic import activation_range, quantize_multiplier
from tinyml.codegen.ctext import c_float, c_struct
from tinyml.codegen.layer import Layer, nbytes, nhwc, quant, unsupported


def squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape without leading 1s: (1, 1, 1, 56) and (56,) add element by element."""
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


class ElementWise(Layer):
    """Element i is read before it is written: the output may overwrite any input nobody reads afterwards."""

    def in_place_candidates(self) -> list[int]:
        return list(self.inputs)


class Add(ElementWise):
    """TFLite's int8 ADD: both inputs to a common scale with a 20-bit left shift, then rescaled."""

    kernel = "add"

    def lower(self) -> None:
        a = self.require_dtype(self.op.inputs[0], ("int8",))
        b = self.require_dtype(self.op.inputs[1], ("int8",))
        y = self.require_dtype(self.op.outputs[0], ("int8",))
        if not (squeezed(a.shape) == squeezed(b.shape) == squeezed(y.shape)) or a.is_constant or b.is_constant:
            raise unsupported(self.op, f"broadcasting {a.shape} + {b.shape} or a constant operand")
        self.inputs = [self.op.inputs[0], self.op.inputs[1]]
        sa, za = quant(a)
        sb, zb = quant(b)
        sy, zy = quant(y)
        twice_max = 2.0 * float(max(np.float32(sa), np.float32(sb)))
        m1, s1 = quantize_multiplier(float(sa) / twice_max)
        m2, s2 = quantize_multiplier(float(sb) / twice_max)
        mo, so = quantize_multiplier(twice_max / ((1 << 20) * float(sy)))
        lo, hi = activation_range(self.op.options["fused_activation_function"], sy, zy, "int8")
        fields = dict(
            size=y.size,
            in1_offset=-za,
            in2_offset=-zb,
            out_zp=zy,
            in1_mult=m1,
            in2_mult=m2,
            out_mult=mo,
            in1_shift=s1,
            in2_shift=s2,
            out_shift=so,
            act_min=lo,
            act_max=hi,
        )
        self.decls = c_struct("eng_add_t", self.name, fields)
        self.call = f"eng_add_s8(&{self.name}, (const int8_t *){{in0}}, (const int8_t *){{in1}}, (int8_t *){{out0}});"


class Pad(Layer):
    kernel = "pad"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(self.op.outputs[0], (x.dtype,))
        pads = self.tensor(self.op.inputs[1]).data
        if pads is None or pads.shape != (len(x.shape), 2) or len(x.shape) > 4:
            raise unsupported(self.op, "non-constant or >4-D paddings")
        full = np.zeros((4, 2), np.int64)
        full[4 - len(x.shape) :] = pads
        value = quant(y)[1]
        if self.op.name == "PADV2" and len(self.op.inputs) > 2 and self.op.inputs[2] >= 0:
            const = self.tensor(self.op.inputs[2]).data
            if const is None:
                raise unsupported(self.op, "non-constant pad value")
            value = int(const.reshape(-1)[0])
        n, h, w, c = nhwc(x.shape)
        fields = dict(
            in_n=n,
            in_h=h,
            in_w=w,
            in_c=c,
            before="{" + ", ".join(str(int(v)) for v in full[:, 0]) + "}",
            after="{" + ", ".join(str(int(v)) for v in full[:, 1]) + "}",
            elem_bytes=1,
            value=value & 0xFF,
        )
        self.decls = c_struct("eng_pad_t", self.name, fields)
        self.call = f"eng_pad(&{self.name}, {{in0}}, {{out0}});"


class Quantize(ElementWise):
    """8-bit to 8-bit requantisation (in place), or float32 to 8-bit (a uint8/int8 model input)."""

    kernel = "requant"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8", "uint8", "float32"))
        y = self.require_dtype(self.op.outputs[0], ("int8", "uint8"))
        out_scale, out_zp = quant(y)
        if x.dtype == "float32":
            self.float_input = True
            fields = dict(size=y.size, q_signed=int(y.dtype == "int8"), scale=c_float(out_scale), zp=out_zp)
            self.decls = c_struct("eng_fquant_t", self.name, fields)
            self.call = f"eng_quantize_f32(&{self.name}, (const float *){{in0}}, {{out0}});"
            return
        self.float_input = False
        in_scale, in_zp = quant(x)
        mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
        fields = dict(
            size=y.size,
            in_signed=int(x.dtype == "int8"),
            out_signed=int(y.dtype == "int8"),
            in_zp=in_zp,
            out_zp=out_zp,
            mult=mult,
            shift=shift,
        )
        self.decls = c_struct("eng_requant_t", self.name, fields)
        self.call = f"eng_requant8(&{self.name}, {{in0}}, {{out0}});"

    def in_place_candidates(self) -> list[int]:
        return [] if self.float_input else list(self.inputs)  # 4-byte floats in, 1-byte values out


class Dequantize(Layer):
    kernel = "dequantize"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(self.op.outputs[0], ("float32",))
        scale, zp = quant(x)
        fields = dict(size=y.size, q_signed=int(x.dtype == "int8"), scale=c_float(scale), zp=zp)
        self.decls = c_struct("eng_fquant_t", self.name, fields)
        self.call = f"eng_dequantize_f32(&{self.name}, {{in0}}, (float *){{out0}});"


class Reshape(Layer):
    """RESHAPE / SQUEEZE: the output aliases the input (the planner gives both one address)."""

    kernel = "alias"
    alias = True

    def lower(self) -> None:
        x = self.tensor(self.op.inputs[0])
        y = self.tensor(self.op.outputs[0])
        if x.size != y.size or x.dtype != y.dtype:
            raise unsupported(self.op, f"reshape {x.shape} -> {y.shape}")
        self.call = f"eng_copy({{in0}}, {{out0}}, {nbytes(y)}u);"  # only when the alias is the model output
