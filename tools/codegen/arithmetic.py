"""TFLite's quantisation arithmetic, done once at generation time exactly as LiteRT's Prepare functions do it.

The C kernels only add, multiply and shift integers; every rounding decision that TFLite makes in floating
point (QuantizeMultiplier, activation bounds, softmax constants) is made here, with the same precision.
"""
from __future__ import annotations

import math

import numpy as np

from models.errors import UserError

TFLM_HINT = "deploy this model with the TFLM backend instead: python -m tools export BUNDLE"
QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= m * 2^(shift - 31) with m a Q31 int32."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
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
        return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))

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
