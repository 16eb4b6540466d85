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
        scratch: tuple[str, tuple[int, ...]] | None
        rq: list[int] = mult
        if self.wide:
            function, scratch = "eng_conv2d_s8_wide", ("ENG_CONV_WIDE_SCRATCH_BYTES", window)
        elif not self.single_round and first_layer_applies(geom, shift):
            function = f"eng_conv3x3_c{geom['in_c']}_{'sat' if (lo, hi) == (-128, 127) else 'clamp'}"
            scratch = None
            w_oc_k, folded, rq = pair_word_constants(
                w_oc_k, FIRST_LAYER_TAPS[geom["in_c"]], folded, mult, shift, out_zp
            )
        elif fast_pointwise and pw_pairs_applies(geom["in_c"], geom["out_c"], geom["out_h"] * geom["out_w"], shift):
            function = f"eng_pw_pairs_c{geom['in_c']}_{'sat' if (lo, hi) == (-128, 127) else 'clamp'}"
            scratch = None
            taps = pointwise_taps(geom["in_c"])
            w_oc_k, folded, rq = pair_word_constants(w_oc_k, taps, folded, mult, shift, out_zp)
        elif self.pw_4x2 and fast_pointwise and pw_4x2_applies(geom["in_c"], geom["out_c"], shift):
            function = "eng_pw_4x2_sat" if (lo, hi) == (-128, 127) else "eng_pw_4x2_clamp"
            scratch = ("ENG_PW_4X2_SCRATCH_BYTES", (geom["in_c"],))
            w_oc_k = pair_layout(w_oc_k)
        else:
            function, scratch = conv_variant(geom, shift, lo, hi, self.single_round), ("ENG_CONV_SCRATCH_BYTES", window)
        name = self.name
        decls, arrays = self.constant_arrays(w_oc_k, folded, rq, shift)
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
    only the requantisation mode a model uses, as engine_requant.h's requant_mode decides it."""
    if single_round:
        return "eng_conv2d_s8_single"
    return f"eng_conv2d_s8_{'exact' if any(s >= 0 for s in shift) else 'sat' if (lo, hi) == (-128, 127) else 'fast'}"


def first_layer_applies(geom: dict[str, int], shift: list[int]) -> bool:
    """Whether eng_conv3x3_c1_* / _c3_* runs the layer (engine.h): a 3x3 undilated convolution with 1 or 3 input
    channels, an even out_c and every shift in the folded range [-RQ_FOLD_MAX_R, -1]."""
    return (
        geom["in_c"] in (1, 3)
        and (geom["k_h"], geom["k_w"], geom["dil_h"], geom["dil_w"]) == (3, 3, 1, 1)
        and geom["out_c"] % 2 == 0
        and all(-constant("RQ_FOLD_MAX_R") <= s <= -1 for s in shift)
    )


def pw_pairs_applies(in_c: int, out_c: int, pixels: int, shift: list[int]) -> bool:
    """Whether eng_pw_pairs_c<in_c>_* runs the pointwise layer (engine.h): groups of 4 input channels, at most
    ENG_PW_PAIRS_MAX_IN_C of them (where the per-output work dominates), pairs of output channels, every shift in the
    folded range, at most ENG_PW_PAIRS_MAX_WEIGHTS weights and at least ENG_PW_PAIRS_MIN_PIXELS output pixels (the
    doubled int16 copy costs their bytes in flash, and only a layer whose weights meet many pixels repays them)."""
    return (
        pixels >= constant("ENG_PW_PAIRS_MIN_PIXELS")
        and in_c % 4 == 0
        and in_c <= constant("ENG_PW_PAIRS_MAX_IN_C")
        and in_c * out_c <= constant("ENG_PW_PAIRS_MAX_WEIGHTS")
        and out_c % 2 == 0
        and all(-constant("RQ_FOLD_MAX_R") <= s <= -1 for s in shift)
    )


Taps = list[tuple[int, int | None]]

# engine.h's pair-word layout: each pair word's two taps as indices into a channel's [k_h][k_w][in_c] weights
# (None: a lane that meets no tap, weight 0). The 3x3 first layers with 1 and 3 input channels:
FIRST_LAYER_TAPS: dict[int, Taps] = {
    1: [(0, 2), (3, 5), (6, 8), (1, 4), (7, None)],
    3: [pair for t in range(0, 27, 9) for pair in ((t, t + 2), (t + 1, t + 3), (t + 4, t + 6), (t + 5, t + 7))]
    + [(8, 17), (26, None)],
}


def pointwise_taps(in_c: int) -> Taps:
    """A pointwise layer's pair words: per group of 4 input channels [x0 x2] [x1 x3], as SXTB16 splits a word."""
    return [(g + b, g + 2 + b) for g in range(0, in_c, 4) for b in (0, 1)]


def pair_word_constants(
    w_oc_k: np.ndarray, taps: Taps, folded: np.ndarray, mult: list[int], shift: list[int], out_zp: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Weights, biases and requantisation records in engine.h's pair-word layout: per output channel pair and pair
    word both channels' words (int16 lanes, little-endian), each lane the doubled weight of its tap; the doubled
    folded biases; per channel the folded requantisation's multiplier, rounding constant 2^(r-1) + out_zp * 2^r and
    right shift r = -shift (engine_requant.h RQ_FOLD), three int32 words each."""
    oc = w_oc_k.shape[0]
    words = np.zeros((oc // 2, len(taps), 2, 2), np.int16)  # [pair][word][channel][lane]
    for j, pair in enumerate(taps):
        for lane, tap in enumerate(pair):
            if tap is not None:
                words[:, j, :, lane] = 2 * w_oc_k[:, tap].astype(np.int16).reshape(-1, 2)
    records = [v for m, s in zip(mult, shift) for v in (m, (1 << (-s - 1)) + out_zp * (1 << -s), -s)]
    return words.astype("<i2").view(np.int8).reshape(-1), 2 * folded, records


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
