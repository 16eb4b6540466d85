/* Pointwise CONV_2D (1x1, stride 1, no padding), 4 output pixels x 2 output channels per pass (issue #10).
 *
 * Codegen (tinyml/codegen/ops/conv.py) chooses this kernel for a layer with in_c % 4 == 0, an even out_c and a
 * folded requantisation (every shift in [-22, -1]), and calls eng_pw_4x2_sat when the activation range is the
 * whole int8 range, eng_pw_4x2_clamp otherwise; it stores the weights in the pair layout (engine.h), so that
 * one weight word split by SXTB16 / SXTB16-ROR8 gives both channels' operands for two input channels in the
 * order the widened inputs have them.
 *
 * Per block of 4 pixels the inputs are widened once into scratch (per 4 input channels: the 4 pixels' [x0 x2]
 * words, then their [x1 x3] words), then every channel pair runs its inner loop over groups of 4 input
 * channels: 2 weight loads, 4 SXTB16, 4 LDRD of inputs, 16 SMLAD = 32 MACs (against 16 for the 2x2 block of
 * engine_conv.c), and requantises its 8 outputs with the folded mode of engine_requant.h, the rounding
 * constant rz = (1 + 2 * out_zp) << (r - 1) computed from the channel's shift (no per-layer records).
 * The last npix % 4 pixels take a 2-pixel pass over the same layout (19 instructions per 16 MACs), lanes
 * filled with copies of the last pixel. In place is safe: a block's inputs are all widened before its outputs are
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

enum { LANES = 4 };

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

/* Channel c's folded constants (engine_requant.h), the rounding constant from k_zp = 1 + 2 * out_zp. */
static ENG_INLINE rq_chan_t pw_chan(const int32_t *mult, const int8_t *shift, int c, int32_t k_zp) {
  const int r = -shift[c];
  const rq_chan_t q = {mult[c], (int32_t)((uint32_t)k_zp << (r - 1)), r};
  return q;
}

/* All channels of the 4 pixels widened in col; pixel l's outputs at o + l * pitch. */
static ENG_INLINE void pw_4px_body(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch, int mode) {
  const int8_t *w = p->weights, *shift = p->shift;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int32_t k_zp = 1 + 2 * p->out_zp, lo = p->act_min, hi = p->act_max;
  const uint32_t *col_end = col + 2 * p->in_c;
  for (const int8_t *shift_end = shift + p->out_c; shift < shift_end; shift += 2, mult += 2, bias += 2, o += 2) {
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
    const rq_chan_t q0 = pw_chan(mult, shift, 0, k_zp), q1 = pw_chan(mult, shift, 1, k_zp);
    int8_t *d = o;
    d[0] = rq_fold_out(a00, q0.mult, q0.rz, q0.r, lo, hi, mode);
    d[1] = rq_fold_out(a10, q1.mult, q1.rz, q1.r, lo, hi, mode);
    d += pitch;
    d[0] = rq_fold_out(a01, q0.mult, q0.rz, q0.r, lo, hi, mode);
    d[1] = rq_fold_out(a11, q1.mult, q1.rz, q1.r, lo, hi, mode);
    d += pitch;
    d[0] = rq_fold_out(a02, q0.mult, q0.rz, q0.r, lo, hi, mode);
    d[1] = rq_fold_out(a12, q1.mult, q1.rz, q1.r, lo, hi, mode);
    d += pitch;
    d[0] = rq_fold_out(a03, q0.mult, q0.rz, q0.r, lo, hi, mode);
    d[1] = rq_fold_out(a13, q1.mult, q1.rz, q1.r, lo, hi, mode);
  }
}

/* The same for lanes 0 and 1 of col only (the last 1-2 pixels of a layer: pitch 0 writes one pixel twice). */
static ENG_INLINE void pw_2px_body(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch, int mode) {
  const int8_t *w = p->weights, *shift = p->shift;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int32_t k_zp = 1 + 2 * p->out_zp, lo = p->act_min, hi = p->act_max;
  const uint32_t *col_end = col + 2 * p->in_c;
  for (const int8_t *shift_end = shift + p->out_c; shift < shift_end; shift += 2, mult += 2, bias += 2, o += 2) {
    int32_t a00 = bias[0], a01 = a00, a10 = bias[1], a11 = a10;
    for (const uint32_t *x = col; x < col_end; x += 2 * LANES, w += 8) {
      uint32_t x0, x1, w1 = eng_load32(w);
      uint32_t w0 = eng_sxtb16(w1);
      w1 = eng_sxtb16_ror8(w1);
      eng_load2x32(x, &x0, &x1);
      a00 = eng_smlad(w0, x0, a00);
      a10 = eng_smlad(w1, x0, a10);
      a01 = eng_smlad(w0, x1, a01);
      a11 = eng_smlad(w1, x1, a11);
      w1 = eng_load32(w + 4);
      w0 = eng_sxtb16(w1);
      w1 = eng_sxtb16_ror8(w1);
      eng_load2x32(x + 4, &x0, &x1);
      a00 = eng_smlad(w0, x0, a00);
      a10 = eng_smlad(w1, x0, a10);
      a01 = eng_smlad(w0, x1, a01);
      a11 = eng_smlad(w1, x1, a11);
    }
    const rq_chan_t q0 = pw_chan(mult, shift, 0, k_zp), q1 = pw_chan(mult, shift, 1, k_zp);
    o[0] = rq_fold_out(a00, q0.mult, q0.rz, q0.r, lo, hi, mode);
    o[1] = rq_fold_out(a10, q1.mult, q1.rz, q1.r, lo, hi, mode);
    o[pitch] = rq_fold_out(a01, q0.mult, q0.rz, q0.r, lo, hi, mode);
    o[pitch + 1] = rq_fold_out(a11, q1.mult, q1.rz, q1.r, lo, hi, mode);
  }
}

typedef void pass_fn(const eng_conv_t *, const uint32_t *, int8_t *, size_t);

ENG_NOINLINE static void pw_4px_sat(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch) {
  pw_4px_body(p, col, o, pitch, RQ_FOLD_SAT);
}
ENG_NOINLINE static void pw_4px_clamp(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch) {
  pw_4px_body(p, col, o, pitch, RQ_FOLD);
}
ENG_NOINLINE static void pw_2px_sat(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch) {
  pw_2px_body(p, col, o, pitch, RQ_FOLD_SAT);
}
ENG_NOINLINE static void pw_2px_clamp(const eng_conv_t *p, const uint32_t *col, int8_t *o, size_t pitch) {
  pw_2px_body(p, col, o, pitch, RQ_FOLD);
}

/* The whole layer: blocks of 4 pixels, then the last npix % 4 in 2-pixel passes (all of them widened first). */
static ENG_INLINE void pw_4x2_layer(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, pass_fn *pass4,
                                    pass_fn *pass2) {
  const size_t K = p->in_c, out_c = p->out_c, npix = (size_t)p->out_h * p->out_w;
  uint32_t *col = (uint32_t *)scratch;
  size_t i = 0;
  for (; i + LANES <= npix; i += LANES) {
    const int8_t *x = in + i * K;
    const int8_t *const lanes[LANES] = {x, x + K, x + 2 * K, x + 3 * K};
    widen_4px(lanes, col, (int)K);
    pass4(p, col, out + i * out_c, out_c);
  }
  const size_t tail = npix - i;
  if (tail == 0) return;
  /* lanes: the tail's pixels, the last one repeated; 1 or 2 pixels: one pass, 3: lanes 0-1, then lane 2 */
  const int8_t *x = in + i * K, *last = x + (tail - 1) * K;
  const int8_t *const lanes[LANES] = {x, tail > 1 ? x + K : last, last, last};
  widen_4px(lanes, col, (int)K);
  int8_t *o = out + i * out_c;
  pass2(p, col, o, tail > 1 ? out_c : 0);
  if (tail == 3) pass2(p, col + 2, o + 2 * out_c, 0);
}

void eng_pw_4x2_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_layer(p, in, out, scratch, pw_4px_sat, pw_2px_sat);
}

void eng_pw_4x2_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  pw_4x2_layer(p, in, out, scratch, pw_4px_clamp, pw_2px_clamp);
}

#else /* the portable path: the reference arithmetic over the pair layout */

/* Weight byte of (output channel oc, input channel k) in the pair layout, K = in_c (a multiple of 4). */
static inline size_t pw_4x2_index(int oc, int k, int K) {
  return (size_t)(oc >> 1) * 2u * (size_t)K + (size_t)(k >> 2) * 8u + (size_t)(k & 1) * 4u +
         (size_t)((k >> 1) & 1) * 2u + (size_t)(oc & 1);
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
