"""CONV_2D and FULLY_CONNECTED (a 1x1 conv over rows): the kernels the op chooses here (the generated C calls them
directly, so the linker keeps only the kernels a model uses): eng_conv2d_s8's variants per requantisation mode and
first-layer kernel, its wide exact variant for large accumulators, and the 4x2 pointwise kernel (4 pixels x 2
channels with pair-layout weights)."""

from __future__ import annotations

import numpy as np

from tinyml.codegen.arithmetic import activation_range
from tinyml.codegen.ctext import c_struct
from tinyml.codegen.kernel_abi import constant, scratch_bytes
from tinyml.codegen.layer import IN_PLACE_TOKEN, quant, unsupported
from tinyml.codegen.ops.weighted import WeightedLayer
from tinyml.tflite_graph import Tensor


class Conv2D(WeightedLayer):
    """Weights [out_c][k_h][k_w][in_c] as the .tflite stores them; bias folded with -in_zp * sum(w)."""

    kernel = "conv"
    pw_4x2 = True  # whether the 4x2 pointwise kernel may run the layer (fit_scratch may turn it off)

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
        self.emitted = (x, w_oc_k, y, geom, act)
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
        self.pointwise = (
            geom["k_h"] == 1
            and geom["k_w"] == 1
            and geom["stride_h"] == 1
            and geom["stride_w"] == 1
            and geom["pad_top"] == 0
            and geom["pad_left"] == 0
            and geom["in_h"] == geom["out_h"]
            and geom["in_w"] == geom["out_w"]
        )
        fast_pointwise = not self.wide and self.pointwise and not self.single_round
        window = (geom["k_h"], geom["k_w"], geom["in_c"])
        scratch: tuple[str, tuple[int, ...]]  # the kernel header's scratch macro and its arguments
        if self.wide:
            function, scratch = "eng_conv2d_s8_wide", ("ENG_CONV_WIDE_SCRATCH_BYTES", window)
        elif self.pw_4x2 and fast_pointwise and pw_4x2_applies(geom["in_c"], geom["out_c"], shift):
            function = "eng_pw_4x2_sat" if (lo, hi) == (-128, 127) else "eng_pw_4x2_clamp"
            scratch = ("ENG_PW_4X2_SCRATCH_BYTES", (geom["in_c"],))
            w_oc_k = pair_layout(w_oc_k)
        else:
            function, scratch = conv_variant(geom, shift, lo, hi, self.single_round), ("ENG_CONV_SCRATCH_BYTES", window)
        name = self.name
        decls, arrays = self.constant_arrays(w_oc_k, folded, mult, shift)
        self.scratch = scratch
        fields = dict(
            geom,
            in_zp=in_zp,
            out_zp=out_zp,
            act_min=lo,
            act_max=hi,
            **arrays,
            in_place=IN_PLACE_TOKEN,
            single_round=int(self.single_round),
        )
        self.decls = decls + c_struct("eng_conv_t", name, fields)
        self.call = f"{function}(&{name}, (const int8_t *){{in0}}, (int8_t *){{out0}}, {{scratch}});"

    @property
    def base_scratch_bytes(self) -> int:
        """The scratch the layer needs without the 4x2 pointwise kernel (eng_conv2d_s8's, 1x1)."""
        if self.scratch is None or self.scratch[0] != "ENG_PW_4X2_SCRATCH_BYTES":
            return self.scratch_bytes
        return scratch_bytes("ENG_CONV_SCRATCH_BYTES", (1, 1, self.scratch[1][0]))

    def fit_scratch(self, limit: int) -> None:
        """The 4x2 pointwise kernel widens 4 pixels (8 bytes per input channel, eng_conv2d_s8 5): where that is more
        than the model's scratch region holds anyway, the layer keeps eng_conv2d_s8, so speed never costs RAM."""
        if self.pw_4x2 and self.scratch_bytes > limit:
            self.pw_4x2 = False
            self.emit(*self.emitted)

    def in_place_candidates(self) -> list[int]:
        """A 1x1 stride-1 conv writes pixel p after reading it (see eng_conv_t.in_place): its own input only."""
        return self.inputs[:1] if self.pointwise else []


def conv_variant(geom: dict[str, int], shift: list[int], lo: int, hi: int, single_round: bool) -> str:
    """The eng_conv2d_s8_* entry point for the layer (engine.h), chosen here rather than at run time so the linker keeps
    only the requantisation mode and first-layer kernel a model uses: the mode as engine_requant.h's requant_mode
    decides it, the _c1_ / _c3_ first-layer kernel for a 3x3 undilated layer with 1 or 3 input channels."""
    if single_round:
        return "eng_conv2d_s8_single"
    mode = "exact" if any(s >= 0 for s in shift) else "sat" if (lo, hi) == (-128, 127) else "fast"
    first_layer = (
        geom["in_c"] in (1, 3)
        and geom["k_h"] == 3
        and geom["k_w"] == 3
        and geom["dil_h"] == 1
        and geom["dil_w"] == 1
        and geom["out_c"] <= constant("ENG_FIRST_LAYER_MAX_OC")
    )
    return f"eng_conv2d_s8_c{geom['in_c']}_{mode}" if first_layer else f"eng_conv2d_s8_{mode}"


def pw_4x2_applies(in_c: int, out_c: int, shift: list[int]) -> bool:
    """Whether eng_pw_4x2_* runs the layer (engine.h): groups of 4 input channels, pairs of output channels and
    every shift in the folded requantisation's range [-RQ_FOLD_MAX_R, -1] (engine_requant.h)."""
    return in_c % 4 == 0 and out_c % 2 == 0 and all(-constant("RQ_FOLD_MAX_R") <= s <= -1 for s in shift)


def pair_layout(w_oc_k: np.ndarray) -> np.ndarray:
    """[out_c][in_c] weights in engine.h's pair layout: per output channel pair and group of 4 input channels,
    inputs (0, 2) of both channels interleaved, then inputs (1, 3), so one SXTB16 / SXTB16-ROR8 of a word gives each
    channel's operand for the widened input word [x0 x2] or [x1 x3]."""
    oc, k = w_oc_k.shape
    # [pair][channel][group g][a][b] for input k = 4g + 2a + b; bytes go out as [pair][g][word b][lane a][channel]
    return w_oc_k.reshape(oc // 2, 2, k // 4, 2, 2).transpose(0, 2, 4, 3, 1).reshape(-1)


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
        geom = dict(
            in_h=rows,
            in_w=1,
            in_c=k,
            out_h=rows,
            out_w=1,
            out_c=oc,
            k_h=1,
            k_w=1,
            stride_h=1,
            stride_w=1,
            dil_h=1,
            dil_w=1,
            pad_top=0,
            pad_left=0,
        )
        assert w.data is not None  # int8_weighted refused non-constant weights
        self.emit(x, w.data.reshape(oc, k), y, geom, self.op.options["fused_activation_function"])
