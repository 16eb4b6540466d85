"""What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: int8 checks, per-channel requantisation, bias."""
from __future__ import annotations

import numpy as np

from tools.codegen.arithmetic import quantize_multiplier
from tools.codegen.layer import Layer, quant, unsupported
from tools.tflite_graph import Tensor


class WeightedLayer(Layer):
    """A layer with constant int8 weights, an int32 bias and per-channel multipliers."""

    def int8_weighted(self) -> tuple[Tensor, Tensor, Tensor]:
        """Input, constant weights and output, all int8 (else the one-line unsupported error)."""
        x = self.require_dtype(self.op.inputs[0], ("int8",))
        w = self.require_dtype(self.op.inputs[1], ("int8",))
        y = self.require_dtype(self.op.outputs[0], ("int8",))
        if w.data is None:
            raise unsupported(self.op, "non-constant weights")
        return x, w, y

    def requant_arrays(self, x: Tensor, w: Tensor, y: Tensor, out_c: int) -> tuple[list[int], list[int]]:
        """QuantizeMultiplier of in_scale * w_scale[c] / out_scale per output channel (double precision)."""
        in_scale, _ = quant(x)
        out_scale, _ = quant(y)
        if w.quantization is None:
            raise unsupported(self.op, "unquantised weights")
        if np.any(w.quantization.zero_point != 0):
            raise unsupported(self.op, "asymmetric int8 weights")
        scales = w.quantization.scale
        if scales.size not in (1, out_c):
            raise unsupported(self.op, f"{scales.size} weight scales for {out_c} channels")
        mult, shift = [], []
        for c in range(out_c):
            ws = float(scales[c if scales.size > 1 else 0])
            m, s = quantize_multiplier(float(in_scale) * ws / float(out_scale))
            mult.append(m)
            shift.append(s)
        return mult, shift

    def check_accumulator(self, folded_bias: np.ndarray, taps: int) -> None:
        """The kernels' requantisation assumes |accumulator| < 2^30 (engine.h eng_mul_q31)."""
        if int(np.abs(folded_bias).max(initial=0)) + 128 * 128 * taps >= 2**30:
            raise unsupported(self.op, "accumulators that may exceed 2^30")
