/* Shared by the engine's kernel unit tests: a seeded RNG, TFLite's reference arithmetic written out plainly
 * (int64, no rewrites), random requantisation constants per mode, and the mismatch report. Each test_*.c
 * beside it checks one kernel family against plain-C loops of the reference semantics (CMSIS-NN style). */
#ifndef KERNEL_REF_H
#define KERNEL_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static inline uint32_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static inline int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); } /* inclusive */

static inline int8_t rnd_s8(void) { return (int8_t)rnd_in(-128, 127); }

/* gemmlowp SaturatingRoundingDoublingHighMul, literally. */
static inline int32_t ref_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return (int32_t)((ab + nudge) / (1LL << 31));
}

/* gemmlowp RoundingDivideByPOT, literally. */
static inline int32_t ref_divide_pot(int32_t x, int e) {
  const int32_t mask = (int32_t)((1LL << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (two roundings; x * 2^left wraps as the reference does on every target). */
static inline int32_t ref_mbqm(int32_t x, int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return ref_divide_pot(ref_high_mul((int32_t)((uint32_t)x * (1u << left)), m), right);
}

/* LiteRT FULLY_CONNECTED's single rounding. */
static inline int32_t ref_mbqm_single(int32_t x, int32_t m, int shift) {
  const int total = 31 - shift;
  return (int32_t)(((int64_t)x * m + (1LL << (total - 1))) >> total);
}

/* TFLite QuantizeMultiplier for the kernels that take a real scale (ADD, QUANTIZE, MEAN tests). */
static inline void ref_quantize_multiplier(double real, int32_t *m, int8_t *shift) {
  if (real == 0.0) {
    *m = 0;
    *shift = 0;
    return;
  }
  int s;
  const double q = frexp(real, &s);
  int64_t q_fixed = (int64_t)llround(q * (double)(1LL << 31));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    s++;
  }
  if (s < -31) {
    q_fixed = 0;
    s = 0;
  }
  *m = (int32_t)q_fixed;
  *shift = (int8_t)s;
}

static inline int32_t clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Requantisation modes the kernels choose between (engine_conv.c requant_mode): every shift negative with the
 * full int8 range (SMMULR + SSAT), every shift negative with a narrower range (SMMULR), some shift >= 0 (exact). */
enum { MODE_SAT, MODE_SMMULR, MODE_EXACT, MODES };

static inline void rnd_requant(int n, int mode, int32_t *mult, int8_t *shift, int32_t *lo, int32_t *hi) {
  for (int c = 0; c < n; c++) {
    mult[c] = (int32_t)((1u << 30) + (rnd() % (1u << 30)));
    shift[c] = (int8_t)rnd_in(-14, -1);
  }
  if (mode == MODE_EXACT) shift[rnd_in(0, n - 1)] = (int8_t)rnd_in(0, 3);
  if (mode == MODE_SAT) {
    *lo = -128;
    *hi = 127;
  } else {
    *lo = rnd_in(-128, 0);
    *hi = rnd_in(*lo, 127);
  }
}

/* TFLite's output size and leading padding along one axis (SAME or VALID); 0 when VALID leaves no output. */
/* A pointwise case for p (K input channels, the raw [out_c][K] int8 weights and the unfolded biases): a random
 * input and the output ConvPerChannel gives for it, both malloc'ed for the caller to free. */
static inline void ref_pointwise_case(const eng_conv_t *p, int K, const int8_t *weights, const int32_t *bias_raw,
                                      const int32_t *mult, const int8_t *shift, int8_t **in, size_t *in_bytes,
                                      int8_t **want, size_t *out_bytes) {
  const size_t npix = (size_t)p->out_h * p->out_w;
  *in_bytes = npix * (size_t)K;
  *out_bytes = npix * p->out_c;
  *in = malloc(*in_bytes);
  *want = malloc(*out_bytes);
  for (size_t i = 0; i < *in_bytes; i++) (*in)[i] = rnd_s8();
  for (size_t i = 0; i < npix; i++)
    for (int oc = 0; oc < p->out_c; oc++) {
      uint32_t acc = (uint32_t)bias_raw[oc];
      for (int k = 0; k < K; k++) acc += (uint32_t)(weights[oc * K + k] * ((*in)[i * (size_t)K + k] - p->in_zp));
      const int32_t v = ref_mbqm((int32_t)acc, mult[oc], shift[oc]);
      (*want)[i * p->out_c + oc] = (int8_t)clamp32(v + p->out_zp, p->act_min, p->act_max);
    }
}

static inline int window_axis(int in, int k, int stride, int dil, int same, uint16_t *out, uint8_t *pad) {
  const int eff = (k - 1) * dil + 1;
  if (!same && eff > in) return 0;
  *out = (uint16_t)(same ? (in + stride - 1) / stride : (in - eff) / stride + 1);
  const int need = (*out - 1) * stride + eff - in;
  *pad = (uint8_t)(same && need > 0 ? need / 2 : 0);
  return 1;
}

static inline int report(const char *what, int trial, size_t at, int got, int want) {
  fprintf(stderr, "%s: trial %d differs at %zu: got %d, reference %d\n", what, trial, at, got, want);
  return 1;
}

/* Runs a convolution kernel on `in` (copied into one shared buffer when in_place: the input at the start or, when
 * the output is larger, at the end, as the code generator lays it out) with a scratch of exactly scratch_bytes
 * (glibc malloc aligns to 16), and compares every output byte with want. Returns 1 (reported) on a mismatch. */
static inline int check_conv_kernel(void (*kernel)(const eng_conv_t *, const int8_t *, int8_t *, void *),
                                    const char *name, eng_conv_t *p, const int8_t *in, size_t in_bytes,
                                    const int8_t *want, size_t out_bytes, size_t scratch_bytes, int in_place,
                                    int trial) {
  void *scratch = malloc(scratch_bytes);
  const size_t region = in_bytes > out_bytes ? in_bytes : out_bytes;
  int8_t *buf = malloc(region), *out = in_place ? buf : malloc(out_bytes);
  int8_t *src = in_place ? buf + (out_bytes > in_bytes ? out_bytes - in_bytes : 0) : (int8_t *)in;
  if (in_place) memcpy(src, in, in_bytes);
  p->in_place = (uint8_t)in_place;
  kernel(p, src, out, scratch);
  int failed = 0;
  for (size_t i = 0; i < out_bytes && !failed; i++)
    if (out[i] != want[i]) failed = report(name, trial, i, out[i], want[i]);
  if (!in_place) free(out);
  free(buf);
  free(scratch);
  return failed;
}

#endif /* KERNEL_REF_H */
