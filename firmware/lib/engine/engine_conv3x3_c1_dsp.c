/* CONV_2D, 1 input channel, 3x3 kernel, DSP path: one output row's inside-the-image pixels.
 *
 * A kernel row of one pixel's window is 3 adjacent input bytes x0 x1 x2; one word load also brings x3.
 * SXTB16 gives [x0 x2] and SXTB16 ROR 8 [x1 x3]. An output channel's 9 weights w0..w8 are read as the words
 * at +0, +3 and +5 (all inside its 9 bytes), whose byte lanes line up with no rearranging:
 *   row 0: [x0 x2].[w0 w2] by SMLAD, x1 * w1 by SMLABB with [w1 w3]
 *   row 1: [x0 x2].[w3 w5] by SMLAD, x1 * w4 by SMLABB with [w4 w6]
 *   row 2: [x0 x2].[w6 w8] (the word at +5, ROR 8) by SMLAD, x1 * w7 by SMLABT with [w5 w7]
 * so x3 and the extra weight bytes are never multiplied in: 9 MACs in 6 multiply instructions. */
#include "engine_kernels.h"
#include "engine_requant.h"

#if ENG_DSP

static ENG_INLINE void conv3x3_c1_row_body(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1,
                                           int mode) {
  const size_t in_w = p->in_w, stride = p->stride_w, out_c = p->out_c;
  const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
  const int32_t *bias = p->bias, *mult = p->mult;
  const int8_t *shift = p->shift, *weights = p->weights;
  const int8_t *x = in + (size_t)(oy * p->stride_h - p->pad_top) * in_w + (size_t)(ox0 * p->stride_w - p->pad_left);
  int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox0) * out_c;
  rq_chan_t q[ENG_FIRST_LAYER_MAX_OC]; /* folded requantisation constants, once per row */
  for (size_t oc = 0; mode != RQ_EXACT && oc < out_c; oc++) q[oc] = rq_chan(mult[oc], shift[oc], zp);
  for (int ox = ox0; ox < ox1; ox++, x += stride, o += out_c) {
    const uint32_t r0 = eng_load32(x), r1 = eng_load32(x + in_w), r2 = eng_load32(x + 2 * in_w);
    const uint32_t a02 = eng_sxtb16(r0), a13 = eng_sxtb16_ror8(r0);
    const uint32_t b02 = eng_sxtb16(r1), b13 = eng_sxtb16_ror8(r1);
    const uint32_t c02 = eng_sxtb16(r2), c13 = eng_sxtb16_ror8(r2);
    const int8_t *w = weights;
    for (size_t oc = 0; oc < out_c; oc++, w += 9) {
      const uint32_t w0 = eng_load32(w), w3 = eng_load32(w + 3), w5 = eng_load32(w + 5);
      int32_t acc = bias[oc];
      acc = eng_smlad(a02, eng_sxtb16(w0), acc);
      acc = eng_smlabb(a13, eng_sxtb16_ror8(w0), acc);
      acc = eng_smlad(b02, eng_sxtb16(w3), acc);
      acc = eng_smlabb(b13, eng_sxtb16_ror8(w3), acc);
      acc = eng_smlad(c02, eng_sxtb16_ror8(w5), acc);
      acc = eng_smlabt(c13, eng_sxtb16(w5), acc);
      if (mode == RQ_EXACT) {
        o[oc] = dsp_out(acc, mult[oc], shift[oc], zp, lo, hi, RQ_EXACT);
      } else {
        o[oc] = rq_fold_out(acc, q[oc].mult, q[oc].rz, q[oc].r, lo, hi, mode);
      }
    }
  }
}

ENG_NOINLINE static void conv3x3_c1_row_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                            int ox1) {
  conv3x3_c1_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD_SAT);
}

ENG_NOINLINE static void conv3x3_c1_row_clamp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                              int ox1) {
  conv3x3_c1_row_body(p, in, out, oy, ox0, ox1, RQ_FOLD);
}

ENG_NOINLINE static void conv3x3_c1_row_exact(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0,
                                              int ox1) {
  conv3x3_c1_row_body(p, in, out, oy, ox0, ox1, RQ_EXACT);
}

void eng_conv3x3_c1_row_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode) {
  if (mode == RQ_FOLD_SAT) {
    conv3x3_c1_row_sat(p, in, out, oy, ox0, ox1);
  } else if (mode == RQ_FOLD) {
    conv3x3_c1_row_clamp(p, in, out, oy, ox0, ox1);
  } else {
    conv3x3_c1_row_exact(p, in, out, oy, ox0, ox1);
  }
}

#endif /* ENG_DSP */
