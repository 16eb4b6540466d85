"""What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: int8 checks, per-channel requantisation, bias,
dead-channel folding and the accumulator bound that picks the fast or the wide (exact for any int32) kernel."""

from __future__ import annotations

import numpy as np

from tinyml.codegen.arithmetic import multiply_by_quantized_multiplier, quantize_multiplier, same_padding
from tinyml.codegen.ctext import c_array
from tinyml.codegen.layer import Layer, quant, unsupported
from tinyml.tflite_graph import Tensor

FAST_ACCUMULATOR_LIMIT = 1 << 30  # engine.h eng_mul_q31 and the DSP SMMULR modes need |acc| < 2^30
# A dead channel's constants after folding: acc = 4 * v, multiplier 0.5 * 2^-1 gives exactly v with every
# requantisation variant (two roundings, one rounding, SMMULR), and the shift stays negative.
DEAD_MULT, DEAD_SHIFT, DEAD_SCALE = 1 << 30, -1, 4


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Folded biases as the int32 the kernels add (mod 2^32, as the reference's int32 accumulator wraps)."""
    return ((np.asarray(values, np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


class WeightedLayer(Layer):
    """A layer with constant int8 weights, an int32 bias and per-channel multipliers."""

    single_round = False  # gemmlowp's two-step rounding (CONV_2D); FULLY_CONNECTED rounds once

    def constant_arrays(
        self, weights: np.ndarray, folded: np.ndarray, mult: list[int], shift: list[int]
    ) -> tuple[str, dict[str, str]]:
        """The four constant arrays every weighted op emits (weights in the kernel's layout, folded int32 biases,
        per-channel multipliers and shifts) and the struct fields that name them; records their bytes."""
        name = self.name
        self.weight_bytes = int(weights.size + 4 * len(folded) + 4 * len(mult) + len(shift))
        decls = (
            c_array("int8_t", f"{name}_w", weights)
            + c_array("int32_t", f"{name}_b", wrap_int32(folded))
            + c_array("int32_t", f"{name}_m", np.array(mult))
            + c_array("int8_t", f"{name}_s", np.array(shift))
        )
        return decls, dict(weights=f"{name}_w", bias=f"{name}_b", mult=f"{name}_m", shift=f"{name}_s")

    def int8_weighted(self) -> tuple[Tensor, Tensor, Tensor]:
        """Input, constant weights and output, all int8 (else the one-line unsupported error)."""
        x = self.require_dtype(self.op.inputs[0], ("int8",))
        w = self.require_dtype(self.op.inputs[1], ("int8",))
        y = self.require_dtype(self.op.outputs[0], ("int8",))
        if w.data is None:
            raise unsupported(self.op, "non-constant weights")
        return x, w, y

    def window_geometry(self, x: Tensor, y: Tensor, kh: int, kw: int) -> dict[str, int]:
        """The eng_conv_t / eng_dwconv_t geometry fields: shapes, strides, dilations, TFLite's SAME padding."""
        _, ih, iw, ic = x.shape
        _, oh, ow, oc = y.shape
        o = self.op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o["dilation_h_factor"], o["dilation_w_factor"]
        same = o["padding"] == "SAME"
        return dict(
            in_h=ih,
            in_w=iw,
            in_c=ic,
            out_h=oh,
            out_w=ow,
            out_c=oc,
            k_h=kh,
            k_w=kw,
            stride_h=sh,
            stride_w=sw,
            dil_h=dh,
            dil_w=dw,
            pad_top=same_padding(ih, oh, kh, sh, dh) if same else 0,
            pad_left=same_padding(iw, ow, kw, sw, dw) if same else 0,
        )

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

    def fold_dead_channels(
        self,
        w_by_channel: np.ndarray,
        folded: np.ndarray,
        mult: list[int],
        shift: list[int],
        out_zp: int,
        lo: int,
        hi: int,
    ) -> None:
        """Channels whose weights are all zero output one constant: compute it here, exactly, and give the
        channel small constants that reproduce it (converters leave such channels with biases of +-2^30)."""
        for c in np.flatnonzero(~w_by_channel.any(axis=1)):
            acc = int(folded[c])  # the reference's accumulator is the bias alone, for every input
            value = multiply_by_quantized_multiplier(acc, mult[c], shift[c], self.single_round) + out_zp
            folded[c] = DEAD_SCALE * (min(max(value, lo), hi) - out_zp)
            mult[c], shift[c] = DEAD_MULT, DEAD_SHIFT

    @staticmethod
    def fits_fast_kernels(w_by_channel: np.ndarray, folded: np.ndarray) -> bool:
        """Whether every accumulator, for every int8 input, stays below 2^30 in magnitude (per channel:
        |bias| + 128 * sum |w|), the fast kernels' precondition. Otherwise the layer runs the wide kernel."""
        bound = np.abs(folded) + 128 * np.abs(w_by_channel.astype(np.int64)).sum(axis=1)
        return int(bound.max(initial=0)) < FAST_ACCUMULATOR_LIMIT
