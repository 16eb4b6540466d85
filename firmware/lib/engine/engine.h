/* The project's int8 inference engine: C99 kernels with TFLite int8 semantics.
 *
 * tinyml/codegen turns a .tflite into model_engine.c: constant weights, per-layer parameter structs
 * (requantisation multipliers/shifts and zero-point-folded biases precomputed in Python) and a straight
 * sequence of calls to the kernels below over a statically planned activation arena. There is no
 * interpreter, no heap and no op resolver at run time.
 *
 * Every kernel produces the same bytes as LiteRT's BUILTIN_REF kernels. Each has one portable C path; the
 * convolution-type kernels also have a Cortex-M4 DSP path (ACLE SMLAD/SXTB16, selected by
 * __ARM_FEATURE_DSP) that sums the same integer products in another order, hence the same bytes. Defining
 * ENG_EMULATE_DSP compiles that DSP path with plain-C stand-ins for the intrinsics, so its data layout and
 * loop structure are checked natively too. */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ENG_ALIGNED(n) __attribute__((aligned(n)))
#else
#define ENG_ALIGNED(n)
#endif

/* Convolution (CONV_2D; FULLY_CONNECTED is a 1x1 convolution over in_h x 1 "pixels").
 * weights: [out_c][k_h][k_w][in_c] int8; bias[oc] = tflite_bias[oc] - in_zp * sum(weights[oc]) (folded,
 * so padding taps read in_zp and the inner loop needs no offset). */
typedef struct eng_conv {
  uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
  /* 1: output shares the input's buffer (1x1, stride 1, no padding). Pixels run in ascending order and
   * codegen places the input at the output's start (out_c <= in_c) or end (out_c > in_c), so an output
   * pixel never overwrites an input pixel not yet read. */
  uint8_t in_place;
  /* 1: requantise with one rounding (LiteRT's FULLY_CONNECTED), 0: gemmlowp's two (CONV_2D). */
  uint8_t single_round;
  int8_t in_zp;
  int32_t out_zp, act_min, act_max;
  const int8_t *weights;
  const int32_t *bias;
  const int32_t *mult; /* per output channel, Q31 */
  const int8_t *shift; /* per output channel, >0 left, <0 right */
} eng_conv_t;

/* DEPTHWISE_CONV_2D, out_c = in_c * depth_mult; bias folded as above. weights: with depth_mult 1 and at
 * most ENG_DW_MAX_TAPS taps (the fast path), grouped by 4 channels: for each group g < out_c / 4, the taps in
 * order, 4 bytes (channels 4g..4g+3) each; then the last out_c % 4 channels as [k_h][k_w][out_c % 4].
 * Otherwise (the generic path) [k_h][k_w][out_c]. */
#define ENG_DW_MAX_TAPS 25
typedef struct eng_dwconv {
  uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, depth_mult;
  int8_t in_zp;
  int32_t out_zp, act_min, act_max;
  const int8_t *weights;
  const int32_t *bias;
  const int32_t *mult;
  const int8_t *shift;
} eng_dwconv_t;

/* AVERAGE_POOL_2D / MAX_POOL_2D (input and output share scale and zero point). */
typedef struct eng_pool {
  uint16_t in_h, in_w, c, out_h, out_w;
  uint8_t f_h, f_w, stride_h, stride_w, pad_top, pad_left;
  int32_t act_min, act_max;
} eng_pool_t;

/* ADD of two same-shape tensors (TFLite's 20-bit left shift, per-input and output rescale). */
typedef struct eng_add {
  uint32_t size;
  int32_t in1_offset, in2_offset, out_zp; /* offsets are -zero_point */
  int32_t in1_mult, in2_mult, out_mult;
  int8_t in1_shift, in2_shift, out_shift;
  int32_t act_min, act_max;
} eng_add_t;

/* MEAN over H and W of an NHWC tensor (global average pooling). mult/shift already include 1/(h*w). */
typedef struct eng_mean {
  uint16_t h, w, c;
  int32_t in_zp, out_zp, mult;
  int8_t shift;
  int32_t qmin, qmax;
} eng_mean_t;

/* PAD of a 4-D NHWC tensor with the output zero point. */
typedef struct eng_pad {
  uint16_t in_n, in_h, in_w, in_c;
  uint16_t before[4], after[4];
  uint8_t elem_bytes;
  int32_t value; /* fill byte value (zero point) */
} eng_pad_t;

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128, as TFLite requires) with the reference
 * fixed-point arithmetic (engine_softmax.c). input_multiplier / input_left_shift: beta * input_scale * 2^26
 * as QuantizeMultiplierGreaterThanOne gives it (PreprocessSoftmaxScaling); logits more than -diff_min below
 * the row maximum give exactly -128 (CalculateInputRadius). */
typedef struct eng_softmax {
  uint16_t rows, depth;
  int32_t input_multiplier;
  int32_t input_left_shift;
  int32_t diff_min;
} eng_softmax_t;

/* QUANTIZE between 8-bit types: out = clamp(MBQM(in - in_zp) + out_zp). */
typedef struct eng_requant {
  uint32_t size;
  uint8_t in_signed, out_signed;
  int32_t in_zp, out_zp, mult;
  int8_t shift;
} eng_requant_t;

/* QUANTIZE float32 -> int8/uint8 and DEQUANTIZE int8/uint8 -> float32. */
typedef struct eng_fquant {
  uint32_t size;
  uint8_t q_signed;
  float scale;
  int32_t zp;
} eng_fquant_t;

/* TFLite's MultiplyByQuantizedMultiplier: x * mult * 2^shift with gemmlowp's rounding
 * (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), for the values codegen emits:
 * 0 <= mult < 2^31 (so the one saturating case, INT32_MIN * INT32_MIN, cannot occur) and |x| < 2^30
 * (codegen bounds every accumulator), so the rounded high word fits comfortably in 32 bits.
 * Both roundings become an add and an arithmetic shift:
 *   trunc((ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31) == (ab + 2^30) >> 31
 *   round-half-away-from-zero(h / 2^r)               == (h + 2^(r-1) - (h < 0)) >> r
 * which gives the reference's bytes (checked against the literal reference on random inputs) in about
 * nine Cortex-M4 instructions instead of a 64-bit division. Right shifts of negative values are
 * arithmetic, as on every compiler the engine targets (GCC, Clang). */
static inline int32_t eng_mul_q31(int32_t x, int32_t mult, int shift) {
  const int32_t a = shift > 0 ? (int32_t)((uint32_t)x << shift) : x;
  const int32_t high = (int32_t)(((int64_t)a * mult + (1LL << 30)) >> 31);
  if (shift >= 0) return high;
  return (high + (int32_t)(1u << (-shift - 1)) - (int32_t)((uint32_t)high >> 31)) >> -shift;
}

/* MultiplyByQuantizedMultiplier with a single rounding, round(x * mult * 2^(shift - 31)) half up, the
 * variant LiteRT's FULLY_CONNECTED reference kernel uses (it differs from eng_mul_q31 when the exact
 * result lies within one part in 2^31 of a half). */
static inline int32_t eng_mul_q31_single(int32_t x, int32_t mult, int shift) {
  const int total = 31 - shift;
  return (int32_t)(((int64_t)x * mult + (1LL << (total - 1))) >> total);
}

static inline int32_t eng_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Per-layer profiling: build with -DENG_LAYER_HOOK=my_function and the generated code calls
 * my_function(op_index) after every layer (bench/engine_qemu.py --profile uses it); otherwise nothing. */
#ifdef ENG_LAYER_HOOK
void ENG_LAYER_HOOK(int op_index);
#define ENG_AFTER_LAYER(op_index) ENG_LAYER_HOOK(op_index)
#else
#define ENG_AFTER_LAYER(op_index) ((void)0)
#endif

/* Scratch bytes eng_conv2d_s8 needs for a layer (codegen sizes one shared scratch area from this rule). */
#define ENG_CONV_SCRATCH_BYTES(k_h, k_w, in_c) (5u * (uint32_t)(k_h) * (uint32_t)(k_w) * (uint32_t)(in_c) + 16u)
#define ENG_DWCONV_SCRATCH_BYTES(out_c) (4u * (uint32_t)(out_c))

/* CONV_2D / FULLY_CONNECTED choosing its kernels at run time (links every variant below; for C callers). */
void eng_conv2d_s8(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
/* The variants codegen calls directly (same parameters and scratch), so only those a model uses are linked; their
 * DSP paths take the requantisation mode as given, which must be what the layer's constants allow:
 *   _sat   every shift < 0 and activation range [-128, 127]   (RQ_SMMULR_SAT, engine_requant.h)
 *   _fast  every shift < 0, any other activation range        (RQ_SMMULR)
 *   _exact some shift >= 0                                    (RQ_EXACT)
 * _single: layers with single_round set (FULLY_CONNECTED), plain C in every build. Portable builds run plain C for
 * all of them. */
void eng_conv2d_s8_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv2d_s8_fast(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv2d_s8_exact(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv2d_s8_single(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
/* Pointwise CONV_2D (1x1, stride 1, no padding) with in_c % 4 == 0, an even out_c and every shift in [-22, -1]
 * (engine_pw_4x2_dsp.c: 4 pixels x 2 channels per pass), which codegen calls directly for such layers: _sat when
 * the activation range is [-128, 127], _clamp otherwise. Weights in the pair layout: for each pair of output
 * channels (2q, 2q+1) and each group of 4 input channels k..k+3, 8 bytes
 *   [w(2q,k) w(2q+1,k) w(2q,k+2) w(2q+1,k+2) | w(2q,k+1) w(2q+1,k+1) w(2q,k+3) w(2q+1,k+3)].
 * Scratch: ENG_PW_4X2_SCRATCH_BYTES(in_c) of engine_kernels.h, 8-byte aligned. */
void eng_pw_4x2_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_4x2_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
/* The pair-word layout (engine_pairs.h; codegen: tinyml/codegen/ops/conv.py, pair_word_layout): a pixel's inputs
 * are K int16 pair words of two input bytes each (the taps one SMLAD multiplies); weights: for each output channel
 * pair and pair word, the two channels' words, each two int16 lanes (low first) holding 2 * the weight of the
 * lane's tap (0 where a lane meets no tap); bias: 2 * the folded bias; mult: three int32 per output channel, the
 * multiplier m, rz = 2^(r-1) + out_zp * 2^r and r = -shift (engine_requant.h, RQ_FOLD). Kernels over it need an
 * even out_c, every shift in [-22, -1] and accumulators below 2^30; codegen calls them directly, _sat when the
 * activation range is [-128, 127], _clamp otherwise. No scratch.
 *
 * CONV_2D 3x3, no dilation, 1 (c1) or 3 (c3) input channels, any stride and padding (engine_conv3x3_first.c: a
 * first layer). Pair words (xyx: kernel row y, column x; for c3 b = 3 * column + channel within a kernel row):
 *   c1 (K = 5):  [x00 x02] [x10 x12] [x20 x22] [x01 x11] [x21 -]
 *   c3 (K = 14): per kernel row [b0 b2] [b1 b3] [b4 b6] [b5 b7]; then [row 0 b8, row 1 b8] [row 2 b8, -] */
void eng_conv3x3_c1_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv3x3_c1_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv3x3_c3_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_conv3x3_c3_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
/* Pointwise CONV_2D (1x1, stride 1, no padding) with in_c a multiple of 4 up to ENG_PW_PAIRS_MAX_IN_C
 * (engine_pw_pairs.c; c<in_c> in the name), in place or not. Pair words of input channels 4g..4g+3: [x4g x4g+2]
 * [x4g+1 x4g+3]. The doubled int16 weights take in_c * out_c bytes more flash than int8 ones and the saving per
 * byte grows with the pixels each weight meets, so codegen gives these kernels layers of at most
 * ENG_PW_PAIRS_MAX_WEIGHTS weights and at least ENG_PW_PAIRS_MIN_PIXELS output pixels (the flash bar: the engine
 * adds at most 24 KB to the int8 constants). */
#define ENG_PW_PAIRS_MAX_IN_C 48
#define ENG_PW_PAIRS_MAX_WEIGHTS 2048
#define ENG_PW_PAIRS_MIN_PIXELS 2304
void eng_pw_pairs_c4_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c4_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c8_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c8_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c12_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c12_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c16_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c16_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c20_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c20_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c24_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c24_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c28_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c28_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c32_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c32_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c36_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c36_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c40_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c40_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c44_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c44_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c48_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_pw_pairs_c48_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_dwconv2d_s8(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_avgpool_s8(const eng_pool_t *p, const int8_t *in, int8_t *out);
void eng_maxpool_s8(const eng_pool_t *p, const int8_t *in, int8_t *out);
void eng_add_s8(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void eng_mean_s8(const eng_mean_t *p, const void *in, void *out, uint8_t is_signed);
void eng_pad(const eng_pad_t *p, const void *in, void *out);
void eng_softmax_s8(const eng_softmax_t *p, const int8_t *in, int8_t *out);
void eng_requant8(const eng_requant_t *p, const void *in, void *out);
void eng_quantize_f32(const eng_fquant_t *p, const float *in, void *out);
void eng_dequantize_f32(const eng_fquant_t *p, const void *in, float *out);
void eng_copy(const void *in, void *out, uint32_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* ENGINE_H */
