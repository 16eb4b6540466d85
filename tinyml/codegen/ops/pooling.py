"""AVERAGE_POOL_2D, MAX_POOL_2D (eng_avgpool_s8 / eng_maxpool_s8) and MEAN over height and width."""

from __future__ import annotations

from tinyml.codegen.arithmetic import QRANGE, activation_range, quantize_multiplier, same_padding
from tinyml.codegen.ctext import c_struct
from tinyml.codegen.layer import Layer, quant, unsupported


class Pool2D(Layer):
    """Input and output share scale and zero point (TFLite requires it for int8 pooling)."""

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8",))
        y = self.require_dtype(self.op.outputs[0], ("int8",))
        if quant(x) != quant(y):
            raise unsupported(self.op, "input and output quantisation differ")
        n, ih, iw, c = x.shape
        _, oh, ow, _ = y.shape
        if n != 1:
            raise unsupported(self.op, f"batch {n}")
        o = self.op.options
        fh, fw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        scale, zp = quant(y)
        lo, hi = activation_range(o["fused_activation_function"], scale, zp, "int8")
        same = o["padding"] == "SAME"
        fields = dict(
            in_h=ih,
            in_w=iw,
            c=c,
            out_h=oh,
            out_w=ow,
            f_h=fh,
            f_w=fw,
            stride_h=sh,
            stride_w=sw,
            pad_top=same_padding(ih, oh, fh, sh, 1) if same else 0,
            pad_left=same_padding(iw, ow, fw, sw, 1) if same else 0,
            act_min=lo,
            act_max=hi,
        )
        self.decls = c_struct("eng_pool_t", self.name, fields)
        self.call = f"eng_{self.kernel}_s8(&{self.name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"


class AveragePool2D(Pool2D):
    kernel = "avgpool"


class MaxPool2D(Pool2D):
    kernel = "maxpool"


class Mean(Layer):
    """Global average pooling: 1/count folded into the multiplier as the reference QuantizedMeanOrSum does."""

    kernel = "mean"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8", "uint8"))
        y = self.require_dtype(self.op.outputs[0], (x.dtype,))
        axis = self.tensor(self.op.inputs[1]).data
        if (
            axis is None
            or len(x.shape) != 4
            or sorted(int(a) % 4 for a in axis.reshape(-1)) != [1, 2]
            or x.shape[0] != 1
        ):
            raise unsupported(self.op, "only the mean over height and width of a 4-D tensor")
        _, h, w, c = x.shape
        in_scale, in_zp = quant(x)
        out_scale, out_zp = quant(y)
        mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
        count = h * w
        extra = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << extra) // count
        shift -= extra
        qmin, qmax = QRANGE[x.dtype]
        fields = dict(h=h, w=w, c=c, in_zp=in_zp, out_zp=out_zp, mult=mult, shift=shift, qmin=qmin, qmax=qmax)
        self.decls = c_struct("eng_mean_t", self.name, fields)
        self.call = f"eng_mean_s8(&{self.name}, {{in0}}, {{out0}}, {int(x.dtype == 'int8')});"
