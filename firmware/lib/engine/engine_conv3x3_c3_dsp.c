/* CONV_2D, 3 input channels, 3x3 kernel, DSP path: one output row's inside-the-image pixels (an RGB first
 * layer, such as the Visual Wake Words model's).
 *
 * A kernel row of one pixel's window is 9 adjacent input bytes b0..b8, read as three words (b0..b11; the
 * window plus one pixel to the right stays inside the input). SXTB16 and SXTB16 ROR 8 split them once per
 * pixel into [b0 b2] [b1 b3] [b4 b6] [b5 b7] [b8 b10]. An output channel's kernel row w0..w8 is read as the
 * words at +0, +4 and +5 of its 9 bytes, whose lanes line up without rearranging:
 *   [b0 b2].[w0 w2] + [b1 b3].[w1 w3] + [b4 b6].[w4 w6] + [b5 b7].[w5 w7] by SMLAD,
 *   b8 * w8 by SMLABT with [w6 w8] (the word at +5, ROR 8),
 * so 9 MACs take 5 multiply instructions and b9..b11 are never multiplied in. */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

/* acc += one kernel row: x[0..4] the pixel's widened row, w the output channel's 9 weights of that row. */
static ENG_INLINE int32_t c3_row(const uint32_t *x, const int8_t *w, int32_t acc) {
  const uint32_t w0 = eng_load32(w), w4 = eng_load32(w + 4), w5 = eng_load32(w + 5);
  acc = eng_smlad(x[0], eng_sxtb16(w0), acc);
  acc = eng_smlad(x[1], eng_sxtb16_ror8(w0), acc);
  acc = eng_smlad(x[2], eng_sxtb16(w4), acc);
  acc = eng_smlad(x[3], eng_sxtb16_ror8(w4), acc);
  return eng_smlabt(x[4], eng_sxtb16_ror8(w5), acc);
}

static ENG_INLINE void conv3x3_c3_row_body(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1,
                                           int mode) {
  const size_t row = (size_t)p->in_w * 3, step = (size_t)p->stride_w * 3, out_c = p->out_c;
  const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int8_t *shift = p->shift, *weights = p->weights;
  const int8_t *x = in + (size_t)(oy * p->stride_h - p->pad_top) * row + (size_t)(ox0 * p->stride_w - p->pad_left) * 3;
  int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox0) * out_c;
  rq_chan_t q[ENG_FIRST_LAYER_MAX_OC]; /* folded requantisation constants, once per row */
  for (size_t oc = 0; mode != RQ_EXACT && oc < out_c; oc++) q[oc] = rq_chan(mult[oc], shift[oc], zp);
  uint32_t xw[15];
  for (int ox = ox0; ox < ox1; ox++, x += step, o += out_c) {
    for (int ky = 0; ky < 3; ky++) {
      const int8_t *r = x + (size_t)ky * row;
      const uint32_t a = eng_load32(r), b = eng_load32(r + 4), c = eng_load32(r + 8);
      xw[5 * ky] = eng_sxtb16(a);
      xw[5 * ky + 1] = eng_sxtb16_ror8(a);
      xw[5 * ky + 2] = eng_sxtb16(b);
      xw[5 * ky + 3] = eng_sxtb16_ror8(b);
      xw[5 * ky + 4] = eng_sxtb16(c);
    }
    const int8_t *w = weights;
    for (size_t oc = 0; oc < out_c; oc++, w += 27) {
      int32_t acc = c3_row(xw, w, bias[oc]);
      acc = c3_row(xw + 5, w + 9, acc);
      acc = c3_row(xw + 10, w + 18, acc);
      if (mode == RQ_EXACT) {
        o[oc] = dsp_out(acc, mult[oc], shift[oc], zp, lo, hi, RQ_EXACT);
      } else {
        o[oc] = rq_fold_out(acc, q[oc].mult, q[oc].rz, q[oc].r, lo, hi, mode);
      }
    }
  }
}

ENG_NOINLINE static void conv3x3_c3_row_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                            int ox1) {
  conv3x3_c3_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD_SAT);
}

ENG_NOINLINE static void conv3x3_c3_row_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                              int ox1) {
  conv3x3_c3_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD);
}

ENG_NOINLINE static void conv3x3_c3_row_exact(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                              int ox1) {
  conv3x3_c3_row_body(p, in, out, oy, ox0, ox1, RQ_EXACT);
}

void eng_conv3x3_c3_row_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode) {
  if (mode == RQ_FOLD_SAT) {
    conv3x3_c3_row_sat(p, in, out, oy, ox0, ox1);
  } else if (mode == RQ_FOLD) {
    conv3x3_c3_row_clamp(p, in, out, oy, ox0, ox1);
  } else {
    conv3x3_c3_row_exact(p, in, out, oy, ox0, ox1);
  }
}

#endif /* ENG_DSP */
