/* Convolution kernels: CONV_2D (and FULLY_CONNECTED as a 1x1 convolution) and DEPTHWISE_CONV_2D.
 *
 * Semantics are TFLite's per-channel int8 reference kernels: acc = bias + sum(w * (x - in_zp)) over the
 * taps inside the image, then MultiplyByQuantizedMultiplier, + out_zp, clamp to the activation range.
 * codegen folds -in_zp * sum(w) into the bias, so here padding taps read in_zp itself and the inner loops
 * are plain int8 dot products; integer sums are exact, so every summation order gives the same bytes. */
#include <string.h>

#include "engine.h"
#include "engine_simd.h"

static inline int8_t requant(int32_t acc, int32_t mult, int shift, int32_t zp, int32_t lo, int32_t hi) {
  return (int8_t)eng_clamp(eng_mul_q31(acc, mult, shift) + zp, lo, hi);
}

static int conv_is_pointwise(const eng_conv_t *p) {
  return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
         p->pad_left == 0 && p->in_h == p->out_h && p->in_w == p->out_w;
}

/* Receptive field of output pixel (oy, ox) as k_h*k_w*in_c bytes, padding taps filled with in_zp. */
static void im2col_pixel(const eng_conv_t *p, const int8_t *in, int oy, int ox, int8_t *col) {
  const int c = p->in_c;
  for (int ky = 0; ky < p->k_h; ky++) {
    const int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
    for (int kx = 0; kx < p->k_w; kx++) {
      const int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
      if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
        memset(col, p->in_zp, (size_t)c);
      } else {
        memcpy(col, in + ((size_t)iy * p->in_w + (size_t)ix) * (size_t)c, (size_t)c);
      }
      col += c;
    }
  }
}

#if ENG_DSP
/* int8 -> int16 in SMLAD order: each group of 4 becomes [x0 x2 | x1 x3], matching how eng_sxtb16 and
 * eng_sxtb16_ror8 split a word of 4 weights; a tail of < 4 stays in order. Done once per pixel, reused by
 * every output channel. */
static void widen_pairs(const int8_t *src, int16_t *dst, int n) {
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    const uint32_t w = eng_load32(src + k);
    eng_store32(dst + k, eng_sxtb16(w));
    eng_store32(dst + k + 2, eng_sxtb16_ror8(w));
  }
  for (; k < n; k++) dst[k] = src[k];
}

/* Two output pixels x all output channels; weights are read once per pair of pixels, two output
 * channels at a time, four MACs per weight word via two SMLADs per pixel. */
static void matmul_2px(const eng_conv_t *p, const int16_t *c0, const int16_t *c1, int K, int8_t *o0, int8_t *o1) {
  const int k4 = K & ~3;
  int oc = 0;
  for (; oc + 2 <= p->out_c; oc += 2) {
    const int8_t *w0 = p->weights + (size_t)oc * (size_t)K;
    const int8_t *w1 = w0 + K;
    int32_t a00 = p->bias[oc], a01 = a00, a10 = p->bias[oc + 1], a11 = a10;
    int k = 0;
    for (; k < k4; k += 4) {
      const uint32_t wa = eng_load32(w0 + k), wb = eng_load32(w1 + k);
      const uint32_t wa02 = eng_sxtb16(wa), wa13 = eng_sxtb16_ror8(wa);
      const uint32_t wb02 = eng_sxtb16(wb), wb13 = eng_sxtb16_ror8(wb);
      const uint32_t x0a = eng_load32(c0 + k), x0b = eng_load32(c0 + k + 2);
      const uint32_t x1a = eng_load32(c1 + k), x1b = eng_load32(c1 + k + 2);
      a00 = eng_smlad(wa02, x0a, a00);
      a00 = eng_smlad(wa13, x0b, a00);
      a01 = eng_smlad(wa02, x1a, a01);
      a01 = eng_smlad(wa13, x1b, a01);
      a10 = eng_smlad(wb02, x0a, a10);
      a10 = eng_smlad(wb13, x0b, a10);
      a11 = eng_smlad(wb02, x1a, a11);
      a11 = eng_smlad(wb13, x1b, a11);
    }
    for (; k < K; k++) {
      a00 += w0[k] * c0[k];
      a01 += w0[k] * c1[k];
      a10 += w1[k] * c0[k];
      a11 += w1[k] * c1[k];
    }
    o0[oc] = requant(a00, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    o1[oc] = requant(a01, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    o0[oc + 1] = requant(a10, p->mult[oc + 1], p->shift[oc + 1], p->out_zp, p->act_min, p->act_max);
    o1[oc + 1] = requant(a11, p->mult[oc + 1], p->shift[oc + 1], p->out_zp, p->act_min, p->act_max);
  }
  for (; oc < p->out_c; oc++) {
    const int8_t *w0 = p->weights + (size_t)oc * (size_t)K;
    int32_t a0 = p->bias[oc], a1 = a0;
    int k = 0;
    for (; k < k4; k += 4) {
      const uint32_t wa = eng_load32(w0 + k);
      const uint32_t wa02 = eng_sxtb16(wa), wa13 = eng_sxtb16_ror8(wa);
      a0 = eng_smlad(wa02, eng_load32(c0 + k), a0);
      a0 = eng_smlad(wa13, eng_load32(c0 + k + 2), a0);
      a1 = eng_smlad(wa02, eng_load32(c1 + k), a1);
      a1 = eng_smlad(wa13, eng_load32(c1 + k + 2), a1);
    }
    for (; k < K; k++) {
      a0 += w0[k] * c0[k];
      a1 += w0[k] * c1[k];
    }
    o0[oc] = requant(a0, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    o1[oc] = requant(a1, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
  }
}

/* One output pixel (odd pixel counts). */
static void matmul_1px(const eng_conv_t *p, const int16_t *c0, int K, int8_t *o0) {
  const int k4 = K & ~3;
  for (int oc = 0; oc < p->out_c; oc++) {
    const int8_t *w0 = p->weights + (size_t)oc * (size_t)K;
    int32_t a0 = p->bias[oc];
    int k = 0;
    for (; k < k4; k += 4) {
      const uint32_t wa = eng_load32(w0 + k);
      a0 = eng_smlad(eng_sxtb16(wa), eng_load32(c0 + k), a0);
      a0 = eng_smlad(eng_sxtb16_ror8(wa), eng_load32(c0 + k + 2), a0);
    }
    for (; k < K; k++) a0 += w0[k] * c0[k];
    o0[oc] = requant(a0, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
  }
}

/* Widen pixel i's receptive field into c (via the int8 im2col area unless the conv is pointwise). */
static void load_pixel(const eng_conv_t *p, const int8_t *in, int i, int pointwise, int8_t *col8, int16_t *c) {
  const int K = p->k_h * p->k_w * p->in_c;
  if (pointwise) {
    widen_pairs(in + (size_t)i * p->in_c, c, K);
  } else {
    im2col_pixel(p, in, i / p->out_w, i % p->out_w, col8);
    widen_pairs(col8, c, K);
  }
}

void eng_conv2d_s8(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  const int K = p->k_h * p->k_w * p->in_c;
  const int npix = p->out_h * p->out_w;
  const int pointwise = conv_is_pointwise(p);
  int16_t *c0 = (int16_t *)scratch;
  int16_t *c1 = c0 + K;
  int8_t *col8 = (int8_t *)(c1 + K);
  const int descending = p->in_place && p->out_c > p->in_c;
  int n = 0;
  for (; n + 2 <= npix; n += 2) {
    /* Both pixels are read before either is written: in-place safe in either direction. */
    const int i = descending ? npix - 2 - n : n;
    load_pixel(p, in, i, pointwise, col8, c0);
    load_pixel(p, in, i + 1, pointwise, col8, c1);
    matmul_2px(p, c0, c1, K, out + (size_t)i * p->out_c, out + (size_t)(i + 1) * p->out_c);
  }
  if (n < npix) {
    const int i = descending ? 0 : npix - 1;
    load_pixel(p, in, i, pointwise, col8, c0);
    matmul_1px(p, c0, K, out + (size_t)i * p->out_c);
  }
}

#else /* portable C */

void eng_conv2d_s8(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  const int K = p->k_h * p->k_w * p->in_c;
  const int npix = p->out_h * p->out_w;
  const int pointwise = conv_is_pointwise(p);
  const int descending = p->in_place && p->out_c > p->in_c;
  int8_t *col = (int8_t *)scratch;
  for (int n = 0; n < npix; n++) {
    const int i = descending ? npix - 1 - n : n;
    const int8_t *src;
    if (pointwise && !p->in_place) {
      src = in + (size_t)i * p->in_c;
    } else if (pointwise) {
      memcpy(col, in + (size_t)i * p->in_c, (size_t)p->in_c); /* read before the output overwrites it */
      src = col;
    } else {
      im2col_pixel(p, in, i / p->out_w, i % p->out_w, col);
      src = col;
    }
    int8_t *o = out + (size_t)i * p->out_c;
    for (int oc = 0; oc < p->out_c; oc++) {
      const int8_t *w = p->weights + (size_t)oc * (size_t)K;
      int32_t acc = p->bias[oc];
      for (int k = 0; k < K; k++) acc += src[k] * w[k];
      o[oc] = requant(acc, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    }
  }
}

#endif /* ENG_DSP */

void eng_dwconv2d_s8(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  int32_t *acc = (int32_t *)scratch;
  const int oc_n = p->out_c, dm = p->depth_mult;
  for (int oy = 0; oy < p->out_h; oy++) {
    for (int ox = 0; ox < p->out_w; ox++) {
      for (int oc = 0; oc < oc_n; oc++) acc[oc] = p->bias[oc];
      for (int ky = 0; ky < p->k_h; ky++) {
        const int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
        for (int kx = 0; kx < p->k_w; kx++) {
          const int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
          const int8_t *w = p->weights + (size_t)(ky * p->k_w + kx) * (size_t)oc_n;
          if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
            for (int oc = 0; oc < oc_n; oc++) acc[oc] += p->in_zp * w[oc]; /* padding reads in_zp */
          } else {
            const int8_t *x = in + ((size_t)iy * p->in_w + (size_t)ix) * p->in_c;
            if (dm == 1) {
              for (int c = 0; c < oc_n; c++) acc[c] += x[c] * w[c];
            } else {
              for (int c = 0; c < p->in_c; c++)
                for (int m = 0; m < dm; m++) acc[c * dm + m] += x[c] * w[c * dm + m];
            }
          }
        }
      }
      int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox) * (size_t)oc_n;
      for (int oc = 0; oc < oc_n; oc++)
        o[oc] = requant(acc[oc], p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    }
  }
}
