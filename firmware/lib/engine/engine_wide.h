/* The exact general path for convolutions whose accumulators may reach 2^30 or beyond.
 *
 * The fast kernels (engine_conv.c) rely on |accumulator| < 2^30 (eng_mul_q31's one-add roundings, SMMULR of
 * 2x). Codegen proves that bound per layer from the weights and biases; a layer where it fails runs these
 * kernels instead: one pixel and one channel at a time, the int32 accumulation wrapping as the reference's
 * does on every target, and MultiplyByQuantizedMultiplier in gemmlowp's overflow-free form. Same parameter
 * structs as the fast kernels; the depthwise one always takes weights as [k_h][k_w][out_c]. */
#ifndef ENGINE_WIDE_H
#define ENGINE_WIDE_H

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TFLite's MultiplyByQuantizedMultiplier (two roundings) for every int32 x and 0 <= mult < 2^31. */
static inline int32_t eng_mul_q31_wide(int32_t x, int32_t mult, int shift) {
  const int32_t a = shift > 0 ? (int32_t)((uint32_t)x << shift) : x; /* x * 2^shift, wrapping as the reference */
  const int64_t ab = (int64_t)a * mult;
  const int32_t high = (int32_t)((ab + (ab >= 0 ? (1LL << 30) : 1 - (1LL << 30))) / (1LL << 31));
  if (shift >= 0) return high;
  const int r = -shift;
  const int32_t mask = (int32_t)((1LL << r) - 1);
  const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> r) + ((high & mask) > threshold ? 1 : 0);
}

/* Scratch of eng_conv2d_s8_wide: one pixel's receptive field (in place, it is read before it is overwritten). */
#define ENG_CONV_WIDE_SCRATCH_BYTES(k_h, k_w, in_c) ((uint32_t)(k_h) * (uint32_t)(k_w) * (uint32_t)(in_c))

void eng_conv2d_s8_wide(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);
void eng_dwconv2d_s8_wide(const eng_dwconv_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ENGINE_WIDE_H */
