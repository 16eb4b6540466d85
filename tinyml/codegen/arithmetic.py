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


def _frexp_q31(real: float) -> tuple[int, int]:
    """The body of TFLite's QuantizeMultiplier: (m, shift) with real ~= m * 2^(shift - 31), m a Q31 int32."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= m * 2^(shift - 31) with m a Q31 int32."""
    q_fixed, shift = _frexp_q31(real)
    if shift > 30:
        raise UserError(f"a requantisation scale of {real:g} is out of the engine's range; {TFLM_HINT}")
    return q_fixed, shift


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # the reference softmax's Q5.26 input to exp()


def softmax_scaling(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as TFLite's SoftmaxPrepare computes them.

    PreprocessSoftmaxScaling: beta * input_scale * 2^26 in double precision, capped at 2^31 - 1, through
    QuantizeMultiplierGreaterThanOne; CalculateInputRadius: logits further than floor(31 * 2^26 / 2^shift)
    below the row maximum contribute nothing.
    """
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * float(1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = _frexp_q31(real)
    if left_shift < 0:
        raise UserError(
            f"a softmax input scale times beta of {real / (1 << (31 - bits)):g} is below 2^-26, "
            f"where TFLite's kernel refuses it; {TFLM_HINT}"
        )
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


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


def _rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (Python integers: no overflow)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    total = ab + nudge
    return -((-total) >> 31) if total < 0 else total >> 31  # C division truncates toward zero


def _rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int, single_round: bool = False) -> int:
    """TFLite's MultiplyByQuantizedMultiplier on one int32 accumulator, exactly as the reference computes it.

    Two roundings (gemmlowp; CONV_2D, DEPTHWISE_CONV_2D) or, with ``single_round``, one (what LiteRT's
    FULLY_CONNECTED does: (x * m + 2^(30 - shift)) >> (31 - shift)).
    """
    if single_round:
        total = 31 - shift
        return (x * multiplier + (1 << (total - 1))) >> total
    left, right = max(shift, 0), max(-shift, 0)
    return _rounding_divide_by_pot(_rounding_doubling_high_mul(_wrap32(x * (1 << left)), multiplier), right)
