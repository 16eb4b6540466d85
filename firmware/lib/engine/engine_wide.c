/* Exact general-path convolutions (see engine_wide.h): any accumulator range, plain C, any target. */
#include "engine_wide.h"

/* One output value: wrapping int32 sum (unsigned arithmetic, so no C overflow), then TFLite's requantisation. */
static int8_t finish(uint32_t acc, int32_t mult, int shift, int single_round, int32_t zp, int32_t lo, int32_t hi) {
  const int32_t a = (int32_t)acc;
  const int32_t v = single_round ? eng_mul_q31_single(a, mult, shift) : eng_mul_q31_wide(a, mult, shift);
  return (int8_t)eng_clamp(v + zp, lo, hi);
}

void eng_conv2d_s8_wide(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  const int K = p->k_h * p->k_w * p->in_c;
  int8_t *col = (int8_t *)scratch;
  for (int oy = 0; oy < p->out_h; oy++) {
    for (int ox = 0; ox < p->out_w; ox++) {
      int k = 0; /* the receptive field, padding taps as in_zp (the bias is folded), read before any write */
      for (int ky = 0; ky < p->k_h; ky++) {
        const int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
        for (int kx = 0; kx < p->k_w; kx++) {
          const int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
          const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
          const int8_t *src = inside ? in + ((size_t)iy * p->in_w + (size_t)ix) * p->in_c : in;
          for (int c = 0; c < p->in_c; c++) col[k++] = inside ? src[c] : p->in_zp;
        }
      }
      int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox) * p->out_c;
      for (int oc = 0; oc < p->out_c; oc++) {
        const int8_t *w = p->weights + (size_t)oc * (size_t)K;
        uint32_t acc = (uint32_t)p->bias[oc];
        for (int i = 0; i < K; i++) acc += (uint32_t)(col[i] * w[i]);
        o[oc] = finish(acc, p->mult[oc], p->shift[oc], p->single_round, p->out_zp, p->act_min, p->act_max);
      }
    }
  }
}

void eng_dwconv2d_s8_wide(const eng_dwconv_t *p, const int8_t *in, int8_t *out) {
  const int C = p->out_c, dm = p->depth_mult;
  for (int oy = 0; oy < p->out_h; oy++) {
    for (int ox = 0; ox < p->out_w; ox++) {
      int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox) * (size_t)C;
      for (int oc = 0; oc < C; oc++) {
        const int ic = oc / dm;
        uint32_t acc = (uint32_t)p->bias[oc];
        for (int ky = 0; ky < p->k_h; ky++) {
          const int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
          for (int kx = 0; kx < p->k_w; kx++) {
            const int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
            const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            const int32_t x = inside ? in[((size_t)iy * p->in_w + (size_t)ix) * p->in_c + (size_t)ic] : p->in_zp;
            acc += (uint32_t)(x * p->weights[(size_t)(ky * p->k_w + kx) * (size_t)C + (size_t)oc]);
          }
        }
        o[oc] = finish(acc, p->mult[oc], p->shift[oc], 0, p->out_zp, p->act_min, p->act_max);
      }
    }
  }
}
