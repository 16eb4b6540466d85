/* Pointwise CONV_2D (1x1, stride 1, no padding) with 4 to 48 input channels (a multiple of 4), 2 pixels x 2 output
 * channels per pass over pair-word constants (issue #10). With few input channels a pixel's dot product is 2-24 SMLADs,
 * so the per-output work around it (requantisation, constant loads) and the per-pass set-up are what the 4x2
 * kernel (engine_pw_4x2_dsp.c) spends most on: here the weights are widened and doubled by codegen
 * (tinyml/codegen/ops/conv.py), the requantisation constants precomputed as records, and the whole dot product
 * unrolled (one instance per input depth, eng_pw_pairs_c{4,8,...,48}_{sat,clamp}, codegen calls the layer's).
 * Layout (engine.h, "pair-word layout", engine_pairs.h): pixel words [x0 x2] [x1 x3] [x4 x6] ...; weights alike.
 * Each pixel pair is widened onto the stack before its outputs are written, so in place is safe (eng_conv_t).
 * Without the DSP instructions the same entry points run a plain-C loop over the same layout. */
/* GCC 12's first scheduling pass hoists the requantisation records' loads to the top of the pass and spills them
 * (and the output offsets); without it the pass is about 5% shorter. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#include "engine_kernels.h"
#include "engine_pairs.h"
#include "engine_requant.h"

#if ENG_DSP

/* The layer, two pixels at a time (an odd pixel count ends with its last pixel computed twice). */
static ENG_INLINE void pw_pairs_layer(const eng_conv_t *p, const int8_t *in, int8_t *out, int in_c, int mode) {
  const size_t npix = (size_t)p->out_h * p->out_w, out_c = p->out_c;
  uint32_t xw[ENG_PW_PAIRS_MAX_IN_C] ENG_ALIGNED(8);
  for (size_t i = 0; i < npix; i += 2) {
    const size_t i1 = i + 1 < npix ? i + 1 : i;
    const int8_t *x0 = in + i * (size_t)in_c, *x1 = in + i1 * (size_t)in_c;
    for (int k = 0; k < in_c; k += 4) {
      const uint32_t a = eng_load32(x0 + k), b = eng_load32(x1 + k);
      xw[k] = eng_sxtb16(a);
      xw[k + 1] = eng_sxtb16(b);
      xw[k + 2] = eng_sxtb16_ror8(a);
      xw[k + 3] = eng_sxtb16_ror8(b);
    }
    eng_pairs_pass(p, xw, in_c / 2, out + i * out_c, (i1 - i) * out_c, mode);
  }
}

#define PW_PAIRS_ENTRY(in_c, name, mode)                                                      \
  ENG_NOINLINE static void name##_layer(const eng_conv_t *p, const int8_t *in, int8_t *out) { \
    pw_pairs_layer(p, in, out, in_c, mode);                                                   \
  }                                                                                           \
  void name(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {              \
    (void)scratch;                                                                            \
    name##_layer(p, in, out);                                                                 \
  }

#else /* the portable path: the reference arithmetic over the same layout */

static void pw_pairs_portable(const eng_conv_t *p, const int8_t *in, int8_t *out) {
  const int K = p->in_c, out_c = p->out_c;
  const size_t npix = (size_t)p->out_h * p->out_w;
  int8_t x[ENG_PW_PAIRS_MAX_IN_C];
  for (size_t i = 0; i < npix; i++) {
    memcpy(x, in + i * (size_t)K, (size_t)K); /* in place: the pixel is read before its outputs are written */
    int8_t *o = out + i * (size_t)out_c;
    for (int oc = 0; oc < out_c; oc++) {
      int32_t acc2 = p->bias[oc];
      for (int k = 0; k < K; k++) {
        /* input k sits in word 2 * (k / 4) + (k & 1), lane (k >> 1) & 1, of channel oc's K / 2 words */
        const size_t word =
            ((size_t)(oc >> 1) * (size_t)(K / 2) + (size_t)(2 * (k / 4) + (k & 1))) * 2u + (size_t)(oc & 1);
        const uint8_t *lane = (const uint8_t *)p->weights + 4 * word + 2 * (size_t)((k >> 1) & 1);
        acc2 += (int16_t)(uint16_t)(lane[0] | (lane[1] << 8)) * x[k];
      }
      const int32_t *rec = p->mult + 3 * oc;
      o[oc] = requant(acc2 / 2, rec[0], -rec[2], p->out_zp, p->act_min, p->act_max);
    }
  }
}

#define PW_PAIRS_ENTRY(in_c, name, mode)                                         \
  void name(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) { \
    (void)scratch;                                                               \
    pw_pairs_portable(p, in, out);                                               \
  }

#endif /* ENG_DSP */

PW_PAIRS_ENTRY(4, eng_pw_pairs_c4_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(4, eng_pw_pairs_c4_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(8, eng_pw_pairs_c8_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(8, eng_pw_pairs_c8_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(12, eng_pw_pairs_c12_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(12, eng_pw_pairs_c12_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(16, eng_pw_pairs_c16_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(16, eng_pw_pairs_c16_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(20, eng_pw_pairs_c20_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(20, eng_pw_pairs_c20_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(24, eng_pw_pairs_c24_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(24, eng_pw_pairs_c24_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(28, eng_pw_pairs_c28_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(28, eng_pw_pairs_c28_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(32, eng_pw_pairs_c32_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(32, eng_pw_pairs_c32_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(36, eng_pw_pairs_c36_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(36, eng_pw_pairs_c36_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(40, eng_pw_pairs_c40_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(40, eng_pw_pairs_c40_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(44, eng_pw_pairs_c44_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(44, eng_pw_pairs_c44_clamp, RQ_FOLD)
PW_PAIRS_ENTRY(48, eng_pw_pairs_c48_sat, RQ_FOLD_SAT)
PW_PAIRS_ENTRY(48, eng_pw_pairs_c48_clamp, RQ_FOLD)
