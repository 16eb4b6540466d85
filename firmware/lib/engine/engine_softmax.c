/* SOFTMAX on int8 with TFLite's reference integer arithmetic (reference_ops::Softmax, what LiteRT's
 * BUILTIN_REF resolver and TFLM's reference kernel run for int8 -> int8).
 *
 * Per row: the distance of each logit to the row maximum, scaled by beta * input_scale into Q5.26
 * (codegen precomputes the multiplier, left shift and the cut-off diff_min as PreprocessSoftmaxScaling and
 * CalculateInputRadius do), exp() of it in gemmlowp's fixed point (a Taylor polynomial on [-1/4, 0) times
 * the constants exp(-2^k) picked by the integer bits), the sum in Q12.19, its reciprocal by Newton-Raphson,
 * and each output rounded from Q0.31 to 1/256 units. Every step below is the same integer operation as
 * gemmlowp's fixedpoint.h, so the bytes are the reference's for every input, not just the ones tried.
 * (LiteRT's optimised kernel uses a float lookup table instead; it differs on about 1 image in 2,000.) */
#include "engine.h"

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2 + 2^31) / 2^32 rounded half away from zero. */
static int32_t sat_round_dbl_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : 1 - (1LL << 30);
  return (int32_t)((ab + nudge) / (1LL << 31)); /* C division truncates toward zero, as the reference's */
}

/* gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero. The output step can ask for e > 31
 * (rows of 512 or more logits all near the maximum), where the reference kernel aborts on its own check;
 * here such a quotient, below 1/2 in magnitude, is 0. */
static int32_t rounding_divide_by_pot(int32_t x, int e) {
  if (e > 31) return 0;
  const int32_t mask = (int32_t)((1LL << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0: x * 2^e, saturated to int32. */
static int32_t saturating_shift_left(int32_t x, int e) {
  const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0), a and the result in Q0.31: Taylor expansion around -1/8. */
static int32_t exp_on_quarter_interval(int32_t a) {
  const int32_t exp_minus_one_eighth = 1895147668, one_third = 715827883;
  const int32_t x = a + (1 << 28); /* a + 1/8 */
  const int32_t x2 = sat_round_dbl_high_mul(x, x);
  const int32_t x3 = sat_round_dbl_high_mul(x2, x);
  const int32_t x4 = sat_round_dbl_high_mul(x2, x2);
  const int32_t x4_over_4 = rounding_divide_by_pot(x4, 2);
  const int32_t poly = rounding_divide_by_pot(sat_round_dbl_high_mul(x4_over_4 + x3, one_third) + x2, 1);
  return exp_minus_one_eighth + sat_round_dbl_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 in Q5.26 (kScaledDiffIntegerBits = 5), result in Q0.31: gemmlowp exp_on_negative_values. */
static int32_t exp_on_negative_values(int32_t a) {
  /* exp(-2^k) in Q0.31 for k = -2 .. 4, applied when bit 26 + k of the remainder is set */
  static const int32_t exp_minus_pot[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t quarter = 1 << 24;
  const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
  int32_t result = exp_on_quarter_interval(saturating_shift_left(a_mod_quarter_minus_quarter, 5));
  const int32_t remainder = a_mod_quarter_minus_quarter - a;
  for (int k = 0; k < 7; k++) {
    if (remainder & (1 << (24 + k))) result = sat_round_dbl_high_mul(result, exp_minus_pot[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), both Q0.31: gemmlowp one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson in Q2.29). */
static int32_t one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX; /* RoundingHalfSum(a, 1) */
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t c48_over_17 = 1515870810, c_neg32_over_17 = -1010580540;
  int32_t x = c48_over_17 + sat_round_dbl_high_mul(half_denominator, c_neg32_over_17);
  for (int i = 0; i < 3; i++) {
    const int32_t one_minus_half_denominator_times_x = (1 << 29) - sat_round_dbl_high_mul(half_denominator, x);
    x = x + saturating_shift_left(sat_round_dbl_high_mul(x, one_minus_half_denominator_times_x), 2);
  }
  return saturating_shift_left(x, 1);
}

static int count_leading_zeros(uint32_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return x == 0 ? 32 : __builtin_clz(x);
#else
  int n = 0;
  while (n < 32 && !(x & (0x80000000u >> n))) n++;
  return n;
#endif
}

/* beta * input_scale * (logit - row max) in Q5.26: MultiplyByQuantizedMultiplierGreaterThanOne. */
static int32_t scaled_diff(const eng_softmax_t *p, int32_t diff) {
  return sat_round_dbl_high_mul((int32_t)((int64_t)diff * ((int64_t)1 << p->input_left_shift)), p->input_multiplier);
}

void eng_softmax_s8(const eng_softmax_t *p, const int8_t *in, int8_t *out) {
  for (int r = 0; r < p->rows; r++, in += p->depth, out += p->depth) {
    int32_t max_val = INT8_MIN;
    for (int j = 0; j < p->depth; j++) max_val = in[j] > max_val ? in[j] : max_val;
    int32_t sum_of_exps = 0; /* Q12.19 (kAccumulationIntegerBits = 12) */
    for (int j = 0; j < p->depth; j++) {
      const int32_t diff = in[j] - max_val;
      if (diff >= p->diff_min) sum_of_exps += rounding_divide_by_pot(exp_on_negative_values(scaled_diff(p, diff)), 12);
    }
    /* GetReciprocal: sum = 2^num_bits_over_unit * (1 + x), x in [0, 1) */
    const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    const int num_bits_over_unit = 12 - headroom_plus_one;
    const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
    const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);
    for (int j = 0; j < p->depth; j++) {
      const int32_t diff = in[j] - max_val;
      if (diff < p->diff_min) {
        out[j] = INT8_MIN;
        continue;
      }
      const int32_t e = exp_on_negative_values(scaled_diff(p, diff));
      const int32_t unsat =
          rounding_divide_by_pot(sat_round_dbl_high_mul(shifted_scale, e), num_bits_over_unit + 31 - 8);
      out[j] = (int8_t)eng_clamp(unsat + INT8_MIN, INT8_MIN, INT8_MAX);
    }
  }
}
