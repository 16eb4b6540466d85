/* Pointwise CONV_2D (1x1, stride 1, no padding), 4 output pixels x 2 output channels per pass (issue #10).
 *
 * Codegen (tinyml/codegen/ops/conv.py) chooses this kernel for a layer with in_c % 4 == 0, an even out_c and a
 * folded requantisation (every shift in [-22, -1]), and calls eng_pw_4x2_sat when the activation range is the
 * whole int8 range, eng_pw_4x2_clamp otherwise; it stores the weights in the pair layout of engine.h
 * (ENG_PW_4X2 below), so that one weight word split by SXTB16 / SXTB16-ROR8 gives both channels' operands for
 * two input channels in the order the widened inputs have them.
 *
 * Per block of 4 pixels the inputs are widened once into scratch (per 4 input channels: the 4 pixels' [x0 x2]
 * words, then their [x1 x3] words), then every channel pair runs its inner loop over groups of 4 input
 * channels: 2 weight loads, 4 SXTB16, 4 LDRD of inputs, 16 SMLAD = 32 MACs (against 16 for the 2x2 block of
 * engine_conv.c), and requantises its 8 outputs with the folded mode of engine_requant.h, the rounding
 * constant rz = (1 + 2 * out_zp) << (r - 1) computed from the channel's shift (no per-layer records).
 * The last npix % 4 pixels take the same pass over lanes filled with copies of the last pixel, into a stack
 * buffer 16 channels at a time. In place is safe: a block's inputs are all widened before its outputs are
 * written (see eng_conv_t.in_place for the pixel order). Without the DSP instructions the same entry points
 * run a plain-C loop over the pair layout. */
#include <string.h>

#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

/* The inner loop needs 15 registers (8 accumulators, 4 operands, 3 pointers) of the 14 there are. GCC 12's
 * first scheduling pass hoists its loads ahead of the SMLADs that free registers and then spills accumulators
 * (48 instructions per 32 MACs), and its default allocator spills the weight pointer (35); without that pass
 * and with the priority allocator only the loop's end is reloaded: 31 instructions per 32 MACs. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns", "ira-algorithm=priority")
#endif

enum { LANES = 4, TAIL_CH = 16 };

/* A channel range's constants: weights of its first pair, bias, multipliers and shifts from its first channel. */
typedef struct {
  const int8_t *w;
  const int32_t *bias, *mult;
  const int8_t *shift;
} pw_chans_t;

/* Pixels x[0..3] (K bytes each) widened into col: per 4 input channels, 4 words [x0 x2] then 4 words [x1 x3]. */
static void widen_4px(const int8_t *const x[LANES], uint32_t *col, int K) {
  for (int k = 0; k < K; k += 4, col += 2 * LANES) {
    for (int l = 0; l < LANES; l++) {
      const uint32_t v = eng_load32(x[l] + k);
      col[l] = eng_sxtb16(v);
      col[LANES + l] = eng_sxtb16_ror8(v);
    }
  }
}

static ENG_INLINE int8_t pw_out(int32_t acc, int32_t mult, int32_t rz, int r, int32_t lo, int32_t hi, int mode) {
  return rq_fold_out(acc, mult, rz, r, lo, hi, mode);
}

/* n_ch channels (even) of the 4 widened pixels in col; pixel l's outputs at o + l * pitch. */
static ENG_INLINE void pw_4x2_body(const pw_chans_t *c, int n_ch, const uint32_t *col, int K, int8_t *o,
                                   size_t pitch, int32_t k_zp, int32_t lo, int32_t hi, int mode) {
  const int8_t *w = c->w, *shift = c->shift;
  const int32_t *bias = c->bias, *mult = c->mult;
  const uint32_t *col_end = col + 2 * K;
  for (const int8_t *shift_end = shift + n_ch; shift < shift_end; shift += 2, mult += 2, bias += 2, o += 2) {
    int32_t a00 = bias[0], a01 = a00, a02 = a00, a03 = a00;
    int32_t a10 = bias[1], a11 = a10, a12 = a10, a13 = a10;
    for (const uint32_t *x = col; x < col_end; x += 2 * LANES, w += 8) {
      uint32_t x0, x1, w1 = eng_load32(w);
      uint32_t w0 = eng_sxtb16(w1); /* channels 0, 1 at inputs (0, 2) */
      w1 = eng_sxtb16_ror8(w1);
      eng_load2x32(x, &x0, &x1);
      a00 = eng_smlad(w0, x0, a00);
      a10 = eng_smlad(w1, x0, a10);
      a01 = eng_smlad(w0, x1, a01);
      a11 = eng_smlad(w1, x1, a11);
      eng_load2x32(x + 2, &x0, &x1);
      a02 = eng_smlad(w0, x0, a02);
      a12 = eng_smlad(w1, x0, a12);
      a03 = eng_smlad(w0, x1, a03);
      a13 = eng_smlad(w1, x1, a13);
      w1 = eng_load32(w + 4); /* inputs (1, 3) */
      w0 = eng_sxtb16(w1);
      w1 = eng_sxtb16_ror8(w1);
      eng_load2x32(x + 4, &x0, &x1);
      a00 = eng_smlad(w0, x0, a00);
      a10 = eng_smlad(w1, x0, a10);
      a01 = eng_smlad(w0, x1, a01);
      a11 = eng_smlad(w1, x1, a11);
      eng_load2x32(x + 6, &x0, &x1);
      a02 = eng_smlad(w0, x0, a02);
      a12 = eng_smlad(w1, x0, a12);
      a03 = eng_smlad(w0, x1, a03);
      a13 = eng_smlad(w1, x1, a13);
    }
    const int r0 = -shift[0], r1 = -shift[1];
    const int32_t m0 = mult[0], m1 = mult[1];
    const int32_t rz0 = (int32_t)((uint32_t)k_zp << (r0 - 1)), rz1 = (int32_t)((uint32_t)k_zp << (r1 - 1));
    int8_t *q = o;
    q[0] = pw_out(a00, m0, rz0, r0, lo, hi, mode);
    q[1] = pw_out(a10, m1, rz1, r1, lo, hi, mode);
    q += pitch;
    q[0] = pw_out(a01, m0, rz0, r0, lo, hi, mode);
    q[1] = pw_out(a11, m1, rz1, r1, lo, hi, mode);
    q += pitch;
    q[0] = pw_out(a02, m0, rz0, r0, lo, hi, mode);
    q[1] = pw_out(a12, m1, rz1, r1, lo, hi, mode);
    q += pitch;
    q[0] = pw_out(a03, m0, rz0, r0, lo, hi, mode);
    q[1] = pw_out(a13, m1, rz1, r1, lo, hi, mode);
  }
}

ENG_NOINLINE static void pw_4x2_sat(const pw_chans_t *c, int n_ch, const uint32_t *col, int K, int8_t *o,
                                    size_t pitch, int32_t k_zp, int32_t lo, int32_t hi) {
  pw_4x2_body(c, n_ch, col, K, o, pitch, k_zp, lo, hi, RQ_FOLD_SAT);
}

ENG_NOINLINE static void pw_4x2_clamp(const pw_chans_t *c, int n_ch, const uint32_t *col, int K, int8_t *o,
                                      size_t pitch, int32_t k_zp, int32_t lo, int32_t hi) {
  pw_4x2_body(c, n_ch, col, K, o, pitch, k_zp, lo, hi, RQ_FOLD);
}

typedef void pass_fn(const pw_chans_t *, int, const uint32_t *, int, int8_t *, size_t, int32_t, int32_t, int32_t);

/* The whole layer: blocks of 4 pixels, then the last npix % 4 through a 16-channel stack buffer. */
static ENG_INLINE void pw_4x2_layer(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch,
                                    pass_fn *pass) {
  const int K = p->in_c, out_c = p->out_c;
  const size_t npix = (size_t)p->out_h * p->out_w;
  const int32_t k_zp = 1 + 2 * p->out_zp, lo = p->act_min, hi = p->act_max;
  const pw_chans_t all = {p->weights, p->bias, p->mult, p->shift};
  uint32_t *col = (uint32_t *)scratch;
  size_t i = 0;
  for (; i + LANES <= npix; i += LANES) {
    const int8_t *x = in + i * (size_t)K;
    const int8_t *const lanes[LANES] = {x, x + K, x + 2 * K, x + 3 * K};
    widen_4px(lanes, col, K);
    pass(&all, out_c, col, K, out + i * (size_t)out_c, (size_t)out_c, k_zp, lo, hi);
  }
  const size_t tail = npix - i;
  if (tail == 0) return;
  const int8_t *lanes[LANES];
  for (size_t l = 0; l < LANES; l++) lanes[l] = in + (i + (l < tail ? l : tail - 1)) * (size_t)K;
  widen_4px(lanes, col, K);
  int8_t buf[LANES * TAIL_CH];
  for (int c0 = 0; c0 < out_c; c0 += TAIL_CH) {
    const int n = out_c - c0 < TAIL_CH ? out_c - c0 : TAIL_CH;
    const pw_chans_t part = {p->weights + (size_t)c0 * (size_t)K, p->bias + c0, p->mult + c0, p->shift + c0};
    pass(&part, n, col, K, buf, TAIL_CH, k_zp, lo, hi);
    for (size_t l = 0; l < tail; l++) memcpy(out + (i + l) * (size_t)out_c + c0, buf + l * TAIL_CH, (size_t)n);
  }
}

void eng_pw_4x2_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_layer(p, in, out, scratch, pw_4x2_sat);
}

void eng_pw_4x2_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_layer(p, in, out, scratch, pw_4x2_clamp);
}

#else /* the portable path: the reference arithmetic over the pair layout */

/* Weight byte of (output channel oc, input channel k) in the pair layout, K = in_c (a multiple of 4). */
static inline size_t pw_4x2_index(int oc, int k, int K) {
  return (size_t)(oc >> 1) * 2u * (size_t)K + (size_t)(k >> 2) * 8u + (size_t)(k & 1) * 4u + (size_t)((k >> 1) & 1) * 2u +
         (size_t)(oc & 1);
}

static void pw_4x2_portable(const eng_conv_t *p, const int8_t *in, int8_t *out, int8_t *x) {
  const int K = p->in_c, out_c = p->out_c;
  const size_t npix = (size_t)p->out_h * p->out_w;
  for (size_t i = 0; i < npix; i++) {
    memcpy(x, in + i * (size_t)K, (size_t)K); /* in place: the pixel is read before its outputs are written */
    int8_t *o = out + i * (size_t)out_c;
    for (int oc = 0; oc < out_c; oc++) {
      int32_t acc = p->bias[oc];
      for (int k = 0; k < K; k++) acc += x[k] * p->weights[pw_4x2_index(oc, k, K)];
      o[oc] = requant(acc, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    }
  }
}

void eng_pw_4x2_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_portable(p, in, out, (int8_t *)scratch);
}

void eng_pw_4x2_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_portable(p, in, out, (int8_t *)scratch);
}

#endif /* ENG_DSP */
