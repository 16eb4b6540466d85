"""CONV_2D and FULLY_CONNECTED: eng_conv2d_s8 (FULLY_CONNECTED is a 1x1 conv over rows), its wide exact variant for
large accumulators, and the narrow variant for 8-channel pointwise layers."""
from __future__ import annotations

import numpy as np

from tinyml.codegen.arithmetic import activation_range
from tinyml.codegen.ctext import c_array, c_struct
from tinyml.codegen.layer import IN_PLACE_TOKEN, quant, unsupported
from tinyml.codegen.ops.weighted import WeightedLayer, wrap_int32
from tinyml.tflite_graph import Tensor


class Conv2D(WeightedLayer):
    """Weights [out_c][k_h][k_w][in_c] as the .tflite stores them; bias folded with -in_zp * sum(w)."""

    kernel = "conv"

    def lower(self) -> None:
        x, w, y = self.int8_weighted()
        n, _, _, ic = x.shape
        oc = y.shape[-1]
        oc_w, kh, kw, ic_w = w.shape
        if n != 1 or ic_w != ic or oc_w != oc:
            raise unsupported(self.op, f"batch {n} or grouped convolution")
        geom = self.window_geometry(x, y, kh, kw)
        assert w.data is not None  # int8_weighted refused non-constant weights
        self.emit(x, w.data.reshape(oc, -1), y, geom, self.op.options["fused_activation_function"])

    def emit(self, x: Tensor, w_oc_k: np.ndarray, y: Tensor, geom: dict[str, int], act: str) -> None:
        w = self.tensor(self.op.inputs[1])
        mult, shift = self.requant_arrays(x, w, y, geom["out_c"])
        bias = self.bias(self.optional_input(2), geom["out_c"])
        _, in_zp = quant(x)
        out_scale, out_zp = quant(y)
        lo, hi = activation_range(act, out_scale, out_zp, "int8")
        folded = bias - in_zp * w_oc_k.astype(np.int64).sum(axis=1)
        self.fold_dead_channels(w_oc_k, folded, mult, shift, out_zp, lo, hi)
        # The fast kernel when every accumulator provably stays below 2^30, else the exact wide one.
        self.wide = not self.fits_fast_kernels(w_oc_k, folded)
        self.pointwise = (geom["k_h"] == 1 and geom["k_w"] == 1 and geom["stride_h"] == 1 and geom["stride_w"] == 1
                          and geom["pad_top"] == 0 and geom["pad_left"] == 0
                          and geom["in_h"] == geom["out_h"] and geom["in_w"] == geom["out_w"])
        # The narrow kernel for 8-channel pointwise layers (it needs its constants records in scratch).
        narrow = not self.wide and self.pointwise and geom["in_c"] == 8 and not self.single_round
        window = (geom["k_h"], geom["k_w"], geom["in_c"])
        scratch: tuple[str, tuple[int, ...]]  # the kernel header's scratch macro and its arguments
        if self.wide:
            function, scratch = "eng_conv2d_s8_wide", ("ENG_CONV_WIDE_SCRATCH_BYTES", window)
        elif narrow:
            function, scratch = "eng_conv2d_s8_pw8", ("ENG_PW8_SCRATCH_BYTES", (geom["out_c"],))
        else:
            function, scratch = "eng_conv2d_s8", ("ENG_CONV_SCRATCH_BYTES", window)
        name = self.name
        decls = (c_array("int8_t", f"{name}_w", w_oc_k) + c_array("int32_t", f"{name}_b", wrap_int32(folded))
                 + c_array("int32_t", f"{name}_m", np.array(mult)) + c_array("int8_t", f"{name}_s", np.array(shift)))
        self.weight_bytes = int(w_oc_k.size + 9 * len(mult))
        self.scratch = scratch
        fields = dict(geom, in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi, weights=f"{name}_w", bias=f"{name}_b",
                      mult=f"{name}_m", shift=f"{name}_s", in_place=IN_PLACE_TOKEN,
                      single_round=int(self.single_round))
        self.decls = decls + c_struct("eng_conv_t", name, fields)
        self.call = f"{function}(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"

    def in_place_candidates(self) -> list[int]:
        """A 1x1 stride-1 conv writes pixel p after reading it (see eng_conv_t.in_place): its own input only."""
        return self.inputs[:1] if self.pointwise else []


class FullyConnected(Conv2D):
    """LiteRT's FULLY_CONNECTED requantises with one rounding step, CONV_2D with gemmlowp's two."""

    single_round = True

    def lower(self) -> None:
        x, w, y = self.int8_weighted()
        if self.op.options.get("weights_format", 0) != 0:
            raise unsupported(self.op, "shuffled weights")
        oc, k = w.shape
        rows = x.size // k
        if rows * k != x.size or y.size != rows * oc:
            raise unsupported(self.op, f"input {x.shape} for weights {w.shape}")
        geom = dict(in_h=rows, in_w=1, in_c=k, out_h=rows, out_w=1, out_c=oc, k_h=1, k_w=1, stride_h=1, stride_w=1,
                    dil_h=1, dil_w=1, pad_top=0, pad_left=0)
        assert w.data is not None  # int8_weighted refused non-constant weights
        self.emit(x, w.data.reshape(oc, k), y, geom, self.op.options["fused_activation_function"])
