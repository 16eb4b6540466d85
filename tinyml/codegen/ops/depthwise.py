"""DEPTHWISE_CONV_2D: the kernel choice (3x3 block kernel, per-pixel kernel or the wide exact one), weights regrouped
by 4 channels for the multiplier-1 kernels."""

from __future__ import annotations

import numpy as np

from tinyml.codegen.arithmetic import activation_range
from tinyml.codegen.ctext import c_struct
from tinyml.codegen.kernel_abi import constant
from tinyml.codegen.layer import quant, unsupported
from tinyml.codegen.ops.weighted import WeightedLayer


class DepthwiseConv2D(WeightedLayer):
    kernel = "dwconv"

    def lower(self) -> None:
        x, w, y = self.int8_weighted()
        n, _, _, ic = x.shape
        oc = y.shape[-1]
        _, kh, kw, oc_w = w.shape
        if n != 1 or oc_w != oc or oc % ic:
            raise unsupported(self.op, f"shapes {x.shape} -> {y.shape}")
        o = self.op.options
        mult, shift = self.requant_arrays(x, w, y, oc)
        _, in_zp = quant(x)
        out_scale, out_zp = quant(y)
        lo, hi = activation_range(o["fused_activation_function"], out_scale, out_zp, "int8")
        assert w.data is not None  # int8_weighted refused non-constant weights
        weights = w.data.reshape(kh * kw, oc)
        folded = self.bias(self.optional_input(2), oc) - in_zp * weights.astype(np.int64).sum(axis=0)
        w_by_channel = weights.T  # [oc][taps]
        self.fold_dead_channels(w_by_channel, folded, mult, shift, out_zp, lo, hi)
        self.wide = not self.fits_fast_kernels(w_by_channel, folded)
        if oc == ic and kh * kw <= constant("ENG_DW_MAX_TAPS") and not self.wide:
            # the fast multiplier-1 kernel's grouped layout (engine.h, eng_dwconv_t)
            c4 = oc - oc % 4
            grouped = weights[:, :c4].reshape(kh * kw, c4 // 4, 4).transpose(1, 0, 2).reshape(-1)
            weights = np.concatenate([grouped, weights[:, c4:].reshape(-1)])
        name = self.name
        geom = dict(self.window_geometry(x, y, kh, kw), depth_mult=oc // ic)
        decls, arrays = self.constant_arrays(weights, folded, mult, shift)
        fields = dict(geom, in_zp=in_zp, out_zp=out_zp, act_min=lo, act_max=hi, **arrays)
        self.decls = decls + c_struct("eng_dwconv_t", name, fields)
        if self.wide:  # the exact general path: [k_h][k_w][out_c] weights, no scratch
            self.call = f"eng_dwconv2d_s8_wide(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"
        elif self.block_3x3(geom, shift):
            self.scratch = ("ENG_DW3X3_SCRATCH_BYTES", (geom["in_w"], oc))
            self.call = f"eng_dwconv2d_s8_3x3(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"
        else:
            self.scratch = ("ENG_DWCONV_SCRATCH_BYTES", (oc,))
            self.call = f"eng_dwconv2d_s8(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"

    @staticmethod
    def block_3x3(geom: dict[str, int], shift: list[int]) -> bool:
        """Whether eng_dwconv2d_s8_3x3 (engine_dw3x3_p3_dsp.c, 3 pixels x 2 channels per pass) takes the layer:
        3x3, multiplier 1, no dilation, stride 1 or 2 across, every shift in its folded requantisation's range
        (engine_kernels.h states these preconditions; the accumulator bound is the caller's)."""
        max_r = constant("RQ_FOLD_MAX_R")
        return (
            geom["depth_mult"] == 1
            and geom["k_h"] == 3
            and geom["k_w"] == 3
            and geom["dil_h"] == 1
            and geom["dil_w"] == 1
            and geom["stride_w"] in (1, 2)
            and all(-max_r <= s <= -1 for s in shift)
        )
