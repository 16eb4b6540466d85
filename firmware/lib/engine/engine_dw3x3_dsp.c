/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, DSP path: one output row's inside-the-image pixels.
 *
 * Per pixel and group of 4 channels: 9 input words and 9 weight words, each split by SXTB16 (bytes 0, 2)
 * and SXTB16 ROR 8 (bytes 1, 3) into int16 lanes, 36 SMLABB/SMLATT. The walking input pointer advances
 * stride * C per pixel; the taps are at +kx * C + ky * row, so no per-pixel table of tap addresses is
 * built (the per-pixel path in engine_dwconv.c keeps that for the image border). */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

/* acc[0..3] += one tap for channels c..c+3 (x: the tap's input bytes, w: its 4 weights). */
static ENG_INLINE void dw3_tap(const int8_t *x, const int8_t *w, int32_t *a0, int32_t *a1, int32_t *a2,
                               int32_t *a3) {
  const uint32_t xw = eng_load32(x), ww = eng_load32(w);
  const uint32_t x02 = eng_sxtb16(xw), w02 = eng_sxtb16(ww);
  const uint32_t x13 = eng_sxtb16_ror8(xw), w13 = eng_sxtb16_ror8(ww);
  *a0 = eng_smlabb(x02, w02, *a0);
  *a2 = eng_smlatt(x02, w02, *a2);
  *a1 = eng_smlabb(x13, w13, *a1);
  *a3 = eng_smlatt(x13, w13, *a3);
}

/* The 3 taps of one kernel row (x: the row's first tap, C: channel pitch), written out: no loop. */
static ENG_INLINE void dw3_row_taps(const int8_t *x, size_t C, const int8_t *w, int32_t *a0, int32_t *a1,
                                    int32_t *a2, int32_t *a3) {
  dw3_tap(x, w, a0, a1, a2, a3);
  dw3_tap(x + C, w + 4, a0, a1, a2, a3);
  dw3_tap(x + 2 * C, w + 8, a0, a1, a2, a3);
}

static ENG_INLINE void dw3x3_row_body(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                      int ox1, int mode) {
  const size_t C = p->out_c, row = (size_t)p->in_w * C, step = (size_t)p->stride_w * C;
  const size_t c4 = C & ~(size_t)3, tail = C - c4;
  const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int8_t *shift = p->shift, *weights = p->weights;
  const int n = ox1 - ox0;
  const int8_t *x_row = in + ((size_t)(oy * p->stride_h - p->pad_top) * p->in_w +
                              (size_t)(ox0 * p->stride_w - p->pad_left)) * C;
  int8_t *o_row = out + ((size_t)oy * p->out_w + (size_t)ox0) * C;
  for (size_t c = 0; c < c4; c += 4) {
    const int8_t *w = weights + c * 9; /* the group's 9 taps, 4 bytes each */
    const int8_t *x = x_row + c;
    int8_t *o = o_row + c;
    rq_chan_t q[4]; /* the group's folded requantisation constants, once per row */
    for (int j = 0; j < 4; j++)
      q[j] = mode == RQ_EXACT ? (rq_chan_t){0, 0, 0} : rq_chan(mult[c + j], shift[c + j], zp);
    for (int i = 0; i < n; i++, x += step, o += C) {
      int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
      dw3_row_taps(x, C, w, &a0, &a1, &a2, &a3);
      dw3_row_taps(x + row, C, w + 12, &a0, &a1, &a2, &a3);
      dw3_row_taps(x + 2 * row, C, w + 24, &a0, &a1, &a2, &a3);
      if (mode == RQ_EXACT) {
        o[0] = dsp_out(a0, mult[c], shift[c], zp, lo, hi, RQ_EXACT);
        o[1] = dsp_out(a1, mult[c + 1], shift[c + 1], zp, lo, hi, RQ_EXACT);
        o[2] = dsp_out(a2, mult[c + 2], shift[c + 2], zp, lo, hi, RQ_EXACT);
        o[3] = dsp_out(a3, mult[c + 3], shift[c + 3], zp, lo, hi, RQ_EXACT);
      } else {
        o[0] = rq_fold_out(a0, q[0].mult, q[0].rz, q[0].r, lo, hi, mode);
        o[1] = rq_fold_out(a1, q[1].mult, q[1].rz, q[1].r, lo, hi, mode);
        o[2] = rq_fold_out(a2, q[2].mult, q[2].rz, q[2].r, lo, hi, mode);
        o[3] = rq_fold_out(a3, q[3].mult, q[3].rz, q[3].r, lo, hi, mode);
      }
    }
  }
  /* The last C % 4 channels: weights [3][3][tail] after the groups. */
  for (size_t c = c4; c < C; c++) {
    const int8_t *w = weights + c4 * 9 + (c - c4);
    const int8_t *x = x_row + c;
    int8_t *o = o_row + c;
    for (int i = 0; i < n; i++, x += step, o += C) {
      int32_t acc = bias[c];
      for (int t = 0; t < 9; t++) acc += x[(size_t)(t / 3) * row + (size_t)(t % 3) * C] * w[(size_t)t * tail];
      *o = requant(acc, mult[c], shift[c], zp, lo, hi);
    }
  }
}

ENG_NOINLINE static void dw3x3_row_sat(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                       int ox1) {
  dw3x3_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD_SAT);
}

ENG_NOINLINE static void dw3x3_row_clamp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                         int ox1) {
  dw3x3_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD);
}

ENG_NOINLINE static void dw3x3_row_exact(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                         int ox1) {
  dw3x3_row_body(p, in, out, oy, ox0, ox1, RQ_EXACT);
}

void eng_dw3x3_row_dsp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode) {
  if (mode == RQ_FOLD_SAT) {
    dw3x3_row_sat(p, in, out, oy, ox0, ox1);
  } else if (mode == RQ_FOLD) {
    dw3x3_row_clamp(p, in, out, oy, ox0, ox1);
  } else {
    dw3x3_row_exact(p, in, out, oy, ox0, ox1);
  }
}

#endif /* ENG_DSP */
