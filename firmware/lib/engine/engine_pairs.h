/* The pass shared by the pair-word kernels (private to firmware/lib/engine): engine_conv3x3_first.c (3x3 first
 * layers) and engine_pw_pairs.c (pointwise layers with few input channels). Each output pixel's inputs are K int16
 * pair words, written by the caller to xw interleaved with a second pixel's ([word][pixel]); the layer's constants
 * are in the pair-word layout of engine.h: per output channel pair, its doubled bias (2 words, bias array), the K
 * pair words of both channels' doubled weights ([word][channel], weights array) and the records (m, rz, r) of the
 * folded requantisation (engine_requant.h RQ_FOLD; mult array). The accumulator is then 2x, which SMMLAR takes as
 * it is: per output channel pair, 2 pixels x 2 channels, per pair word one LDRD of inputs, one of weights, 4 SMLAD;
 * requantisation SMMLAR + sign + shift + SSAT (+ the clamp when the activation range is narrower than int8). */
#ifndef ENGINE_PAIRS_H
#define ENGINE_PAIRS_H

#include "engine.h"
#include "engine_requant.h"
#include "engine_simd.h"

#if ENG_DSP
/* Unroll the pair-word loop fully (K is a constant at each instance); GCC keeps it rolled otherwise. */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL_WORDS _Pragma("GCC unroll 24")
#else
#define UNROLL_WORDS
#endif

/* Both pixels' words (xw: [word][pixel]) against every channel pair; pixel 0's outputs at o, pixel 1's at o + d. */
static ENG_INLINE void eng_pairs_pass(const eng_conv_t *p, const uint32_t *xw, int K, int8_t *o, size_t d, int mode) {
  const uint32_t *w = (const uint32_t *)(const void *)p->weights;
  const int32_t *bias = p->bias, *rec = p->mult;
  const int32_t lo = p->act_min, hi = p->act_max;
  for (const int8_t *end = o + p->out_c; o < end; o += 2, bias += 2, rec += 6) {
    uint32_t b0, b1;
    eng_load2x32(bias, &b0, &b1);
    int32_t a00 = (int32_t)b0, a01 = a00, a10 = (int32_t)b1, a11 = a10;
    UNROLL_WORDS
    for (int j = 0; j < K; j++, w += 2) {
      uint32_t x0, x1, w0, w1;
      eng_load2x32(xw + 2 * j, &x0, &x1);
      eng_load2x32(w, &w0, &w1);
      a00 = eng_smlad(x0, w0, a00);
      a01 = eng_smlad(x1, w0, a01);
      a10 = eng_smlad(x0, w1, a10);
      a11 = eng_smlad(x1, w1, a11);
    }
    uint32_t m, rz;
    eng_load2x32(rec, &m, &rz);
    int r = rec[2];
    int32_t v0 = (eng_smmlar(a00, (int32_t)m, (int32_t)rz) + (a00 >> 31)) >> r;
    int32_t v1 = (eng_smmlar(a01, (int32_t)m, (int32_t)rz) + (a01 >> 31)) >> r;
    eng_load2x32(rec + 3, &m, &rz);
    r = rec[5];
    int32_t v2 = (eng_smmlar(a10, (int32_t)m, (int32_t)rz) + (a10 >> 31)) >> r;
    int32_t v3 = (eng_smmlar(a11, (int32_t)m, (int32_t)rz) + (a11 >> 31)) >> r;
    v0 = eng_ssat8(v0);
    v1 = eng_ssat8(v1);
    v2 = eng_ssat8(v2);
    v3 = eng_ssat8(v3);
    if (mode == RQ_FOLD) {
      v0 = eng_clamp(v0, lo, hi);
      v1 = eng_clamp(v1, lo, hi);
      v2 = eng_clamp(v2, lo, hi);
      v3 = eng_clamp(v3, lo, hi);
    }
    o[0] = (int8_t)v0;
    o[1] = (int8_t)v2;
    o[d] = (int8_t)v1;
    o[d + 1] = (int8_t)v3;
  }
}

#endif /* ENG_DSP */
#endif /* ENGINE_PAIRS_H */
