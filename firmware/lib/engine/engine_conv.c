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

/* A layer's output stage copied out of its parameter struct: int8 stores may alias anything, so fields
 * read through the struct pointer would be reloaded after every output byte. */
typedef struct {
  const int32_t *mult;
  const int8_t *shift;
  int32_t zp, lo, hi;
} out_stage_t;

static inline out_stage_t conv_stage(const eng_conv_t *p) {
  const out_stage_t q = {p->mult, p->shift, p->out_zp, p->act_min, p->act_max};
  return q;
}


static int conv_is_pointwise(const eng_conv_t *p) {
  return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
         p->pad_left == 0 && p->in_h == p->out_h && p->in_w == p->out_w;
}

/* Receptive field of output pixel (oy, ox) as k_h*k_w*in_c bytes, padding taps filled with in_zp. */
static void im2col_pixel(const eng_conv_t *p, const int8_t *in, int oy, int ox, int8_t *col) {
  const int c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w;
  const int dil_h = p->dil_h, dil_w = p->dil_w;
  const int8_t zp = p->in_zp;
  const int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
  const int row_inside = dil_w == 1 && x0 >= 0 && x0 + k_w <= in_w;
  const int row_bytes = k_w * c;
  for (int ky = 0; ky < k_h; ky++) {
    const int iy = y0 + ky * dil_h;
    if (row_inside && iy >= 0 && iy < in_h) { /* the whole kernel row is k_w adjacent pixels: one run */
      const int8_t *src = in + ((size_t)iy * (size_t)in_w + (size_t)x0) * (size_t)c;
      if (row_bytes >= 16) {
        memcpy(col, src, (size_t)row_bytes);
      } else {
        for (int k = 0; k < row_bytes; k++) col[k] = src[k];
      }
      col += row_bytes;
      continue;
    }
    for (int kx = 0; kx < k_w; kx++) {
      const int ix = x0 + kx * dil_w;
      const int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
      /* no pointer is formed for a padding tap (it would lie outside the tensor: undefined behaviour) */
      const int8_t *src = inside ? in + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)c : in;
      if (c >= 16) { /* library calls pay off only for longer runs (1- and 3-channel first layers) */
        if (inside) {
          memcpy(col, src, (size_t)c);
        } else {
          memset(col, zp, (size_t)c);
        }
      } else {
        for (int k = 0; k < c; k++) col[k] = inside ? src[k] : zp;
      }
      col += c;
    }
  }
}

/* Plain C convolution, one pixel at a time (also the path for FULLY_CONNECTED's single rounding). */
static void conv_portable(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  const int K = p->k_h * p->k_w * p->in_c;
  const int npix = p->out_h * p->out_w;
  const int pointwise = conv_is_pointwise(p);
  int8_t *col = (int8_t *)scratch;
  const out_stage_t q = conv_stage(p);
  for (int i = 0; i < npix; i++) {
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
      const int32_t v = p->single_round ? eng_mul_q31_single(acc, q.mult[oc], q.shift[oc])
                                        : eng_mul_q31(acc, q.mult[oc], q.shift[oc]);
      o[oc] = (int8_t)eng_clamp(v + q.zp, q.lo, q.hi);
    }
  }
}

#if ENG_DSP
/* How the DSP paths requantise a layer. RQ_SMMULR when every shift is negative (effective scales below
 * 1/2: every MobileNet layer); then eng_mul_q31 is one SMMULR and three ALU operations, exactly:
 *   (x * m + 2^30) >> 31 == SMMULR(2x, m) = (2x * m + 2^31) >> 32   (2x fits in 32 bits: |x| < 2^30),
 *   h - (h < 0)          == h + (h >> 31),
 * and h + (h >> 31) + 2^(r-1) cannot overflow (|h| < 2^30, r <= 31). RQ_SMMULR_SAT when, in addition, the
 * activation range is the whole int8 range (no activation, or a ReLU/ReLU6 whose range the output
 * quantisation covers exactly, as calibration makes it): the clamp is one SSAT. A layer with a shift >= 0
 * keeps eng_mul_q31 (a left shift scales x before the multiply, so 2x might not fit). */
enum { RQ_EXACT, RQ_SMMULR, RQ_SMMULR_SAT };

static int requant_mode(const int8_t *shift, int n, int32_t lo, int32_t hi) {
  for (int i = 0; i < n; i++)
    if (shift[i] >= 0) return RQ_EXACT;
  return lo == -128 && hi == 127 ? RQ_SMMULR_SAT : RQ_SMMULR;
}

/* Requantise one accumulator; mult and shift are the channel's, passed in registers so they are loaded
 * once per channel (and before any int8 store, which could alias them). mode is a constant at each
 * inlined call site. */
static ENG_INLINE int8_t dsp_out(int32_t acc, int32_t mult, int shift, int32_t zp, int32_t lo, int32_t hi,
                                 int mode) {
  int32_t v;
  if (mode == RQ_EXACT) {
    v = eng_mul_q31(acc, mult, shift);
  } else {
    const int32_t h = eng_smmulr((int32_t)((uint32_t)acc << 1), mult);
    v = (h + (h >> 31) + (int32_t)(1u << (-shift - 1))) >> -shift;
  }
  if (mode == RQ_SMMULR_SAT) return (int8_t)eng_ssat8(v + zp);
  return (int8_t)eng_clamp(v + zp, lo, hi);
}

/* int8 -> int16 in SMLAD order, done once per pixel and reused by every output channel: each group of 4
 * becomes [x0 x2 | x1 x3], matching how eng_sxtb16 / eng_sxtb16_ror8 split a word of 4 weights. With
 * stride 8 (two pixels interleaved: pixel 0 at +0, pixel 1 at +4 halfwords of each 8) the 2-pixel kernel
 * walks one pointer; the tail of K % 4 stays in order after the groups (pixel 1's tail at +tail_stride). */
static void widen_pairs(const int8_t *src, int16_t *dst, int n, int stride) {
  int k = 0;
  int16_t *d = dst;
  for (; k + 4 <= n; k += 4, d += stride) {
    const uint32_t w = eng_load32(src + k);
    eng_store32(d, eng_sxtb16(w));
    eng_store32(d + 2, eng_sxtb16_ror8(w));
  }
  for (; k < n; k++) *d++ = src[k];
}

/* Two output pixels x all output channels; weights are read once per pair of pixels, two output
 * channels at a time: per 4 input channels, 2 weight loads, 4 SXTB16, 2 double-word input loads and
 * 8 SMLADs give 16 MACs. col holds both pixels interleaved (see widen_pairs). */
static ENG_INLINE void matmul_2px_body(const eng_conv_t *p, const int16_t *col, int K, int8_t *o0, int8_t *o1,
                                       int mode) {
  const int groups = K >> 2, tail = K & 3, out_c = p->out_c;
  const int16_t *col_tail = col + 8 * groups;
  const int8_t *weights = p->weights;
  const out_stage_t q = conv_stage(p);
  const int32_t *bias = p->bias;
  int oc = 0;
  for (; oc + 2 <= out_c; oc += 2) {
    const int8_t *w0 = weights + (size_t)oc * (size_t)K;
    const int8_t *w1 = w0 + K;
    const int16_t *c = col;
    int32_t a00 = bias[oc], a01 = a00, a10 = bias[oc + 1], a11 = a10;
    for (int g = 0; g < groups; g++, w0 += 4, w1 += 4, c += 8) {
      const uint32_t wa = eng_load32(w0), wb = eng_load32(w1);
      uint32_t x0a, x0b, x1a, x1b;
      eng_load2x32(c, &x0a, &x0b); /* the column is 8-byte aligned scratch, 16 bytes per group */
      eng_load2x32(c + 4, &x1a, &x1b);
      const uint32_t wa02 = eng_sxtb16(wa), wa13 = eng_sxtb16_ror8(wa);
      a00 = eng_smlad(wa02, x0a, a00);
      a00 = eng_smlad(wa13, x0b, a00);
      a01 = eng_smlad(wa02, x1a, a01);
      a01 = eng_smlad(wa13, x1b, a01);
      const uint32_t wb02 = eng_sxtb16(wb), wb13 = eng_sxtb16_ror8(wb);
      a10 = eng_smlad(wb02, x0a, a10);
      a10 = eng_smlad(wb13, x0b, a10);
      a11 = eng_smlad(wb02, x1a, a11);
      a11 = eng_smlad(wb13, x1b, a11);
    }
    for (int k = 0; k < tail; k++) {
      a00 += w0[k] * col_tail[k];
      a01 += w0[k] * col_tail[tail + k];
      a10 += w1[k] * col_tail[k];
      a11 += w1[k] * col_tail[tail + k];
    }
    const int32_t m0 = q.mult[oc], m1 = q.mult[oc + 1];
    const int s0 = q.shift[oc], s1 = q.shift[oc + 1];
    o0[oc] = dsp_out(a00, m0, s0, q.zp, q.lo, q.hi, mode);
    o1[oc] = dsp_out(a01, m0, s0, q.zp, q.lo, q.hi, mode);
    o0[oc + 1] = dsp_out(a10, m1, s1, q.zp, q.lo, q.hi, mode);
    o1[oc + 1] = dsp_out(a11, m1, s1, q.zp, q.lo, q.hi, mode);
  }
  for (; oc < out_c; oc++) {
    const int8_t *w0 = weights + (size_t)oc * (size_t)K;
    const int16_t *c = col;
    int32_t a0 = bias[oc], a1 = a0;
    for (int g = 0; g < groups; g++, w0 += 4, c += 8) {
      const uint32_t wa = eng_load32(w0);
      const uint32_t wa02 = eng_sxtb16(wa), wa13 = eng_sxtb16_ror8(wa);
      a0 = eng_smlad(wa02, eng_load32(c), a0);
      a0 = eng_smlad(wa13, eng_load32(c + 2), a0);
      a1 = eng_smlad(wa02, eng_load32(c + 4), a1);
      a1 = eng_smlad(wa13, eng_load32(c + 6), a1);
    }
    for (int k = 0; k < tail; k++) {
      a0 += w0[k] * col_tail[k];
      a1 += w0[k] * col_tail[tail + k];
    }
    const int32_t m0 = q.mult[oc];
    const int s0 = q.shift[oc];
    o0[oc] = dsp_out(a0, m0, s0, q.zp, q.lo, q.hi, mode);
    o1[oc] = dsp_out(a1, m0, s0, q.zp, q.lo, q.hi, mode);
  }
}

/* The 2-pixel kernel instantiated per requantisation mode, out of line so its registers are its own. */
ENG_NOINLINE static void matmul_2px_sat(const eng_conv_t *p, const int16_t *col, int K, int8_t *o0, int8_t *o1) {
  matmul_2px_body(p, col, K, o0, o1, RQ_SMMULR_SAT);
}

ENG_NOINLINE static void matmul_2px_fast(const eng_conv_t *p, const int16_t *col, int K, int8_t *o0, int8_t *o1) {
  matmul_2px_body(p, col, K, o0, o1, RQ_SMMULR);
}

ENG_NOINLINE static void matmul_2px_exact(const eng_conv_t *p, const int16_t *col, int K, int8_t *o0, int8_t *o1) {
  matmul_2px_body(p, col, K, o0, o1, RQ_EXACT);
}

/* One output pixel (odd pixel counts), two output channels at a time so each column word pair (one
 * LDRD from the 8-byte-aligned scratch) serves both: per 4 input channels, 2 weight loads, 4 SXTB16,
 * 1 LDRD and 4 SMLADs give 8 MACs. c0 holds the widened pixel with stride 4 (see widen_pairs). */
static void matmul_1px(const eng_conv_t *p, const int16_t *c0, int K, int8_t *o0) {
  const int k4 = K & ~3, out_c = p->out_c;
  const int8_t *weights = p->weights;
  const int32_t *bias = p->bias;
  const out_stage_t q = conv_stage(p);
  const int mode = requant_mode(q.shift, out_c, q.lo, q.hi) == RQ_EXACT ? RQ_EXACT : RQ_SMMULR;
  int oc = 0;
  for (; oc + 2 <= out_c; oc += 2) {
    const int8_t *w0 = weights + (size_t)oc * (size_t)K, *w1 = w0 + K;
    int32_t a0 = bias[oc], a1 = bias[oc + 1];
    int k = 0;
    for (; k < k4; k += 4) {
      const uint32_t wa = eng_load32(w0 + k), wb = eng_load32(w1 + k);
      uint32_t x02, x13;
      eng_load2x32(c0 + k, &x02, &x13);
      a0 = eng_smlad(eng_sxtb16(wa), x02, a0);
      a0 = eng_smlad(eng_sxtb16_ror8(wa), x13, a0);
      a1 = eng_smlad(eng_sxtb16(wb), x02, a1);
      a1 = eng_smlad(eng_sxtb16_ror8(wb), x13, a1);
    }
    for (; k < K; k++) {
      a0 += w0[k] * c0[k];
      a1 += w1[k] * c0[k];
    }
    const int32_t m0 = q.mult[oc], m1 = q.mult[oc + 1];
    const int s0 = q.shift[oc], s1 = q.shift[oc + 1];
    if (mode == RQ_SMMULR) {
      o0[oc] = dsp_out(a0, m0, s0, q.zp, q.lo, q.hi, RQ_SMMULR);
      o0[oc + 1] = dsp_out(a1, m1, s1, q.zp, q.lo, q.hi, RQ_SMMULR);
    } else {
      o0[oc] = dsp_out(a0, m0, s0, q.zp, q.lo, q.hi, RQ_EXACT);
      o0[oc + 1] = dsp_out(a1, m1, s1, q.zp, q.lo, q.hi, RQ_EXACT);
    }
  }
  if (oc < out_c) { /* the last of an odd number of channels */
    const int8_t *w0 = weights + (size_t)oc * (size_t)K;
    int32_t a0 = bias[oc];
    int k = 0;
    for (; k < k4; k += 4) {
      const uint32_t wa = eng_load32(w0 + k);
      a0 = eng_smlad(eng_sxtb16(wa), eng_load32(c0 + k), a0);
      a0 = eng_smlad(eng_sxtb16_ror8(wa), eng_load32(c0 + k + 2), a0);
    }
    for (; k < K; k++) a0 += w0[k] * c0[k];
    o0[oc] = dsp_out(a0, q.mult[oc], q.shift[oc], q.zp, q.lo, q.hi, RQ_EXACT);
  }
}

/* Widen pixel i's receptive field into col (via the int8 im2col area unless the conv is pointwise). */
static void load_pixel(const eng_conv_t *p, const int8_t *in, int i, int pointwise, int8_t *col8, int16_t *col,
                       int stride) {
  const int K = p->k_h * p->k_w * p->in_c;
  if (pointwise) {
    widen_pairs(in + (size_t)i * p->in_c, col, K, stride);
  } else {
    im2col_pixel(p, in, i / p->out_w, i % p->out_w, col8);
    widen_pairs(col8, col, K, stride);
  }
}

static void conv_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  const int K = p->k_h * p->k_w * p->in_c;
  const int npix = p->out_h * p->out_w;
  const int pointwise = conv_is_pointwise(p);
  int16_t *col = (int16_t *)scratch;
  int8_t *col8 = (int8_t *)(col + 2 * K + 8); /* past both pixels' groups and tails */
  const int groups = K >> 2, tail = K & 3;
  const int mode = requant_mode(p->shift, p->out_c, p->act_min, p->act_max);
  int n = 0;
  for (; n + 2 <= npix; n += 2) {
    /* Both pixels are read before either is written (in place, codegen puts the input where ascending
     * writes never reach unread pixels). Pixel 1's groups sit 4 halfwords after pixel 0's. */
    const int i = n;
    load_pixel(p, in, i, pointwise, col8, col, 8);
    load_pixel(p, in, i + 1, pointwise, col8, col + 4, 8);
    if (tail) { /* widen_pairs put pixel 1's tail where pixel 0's tail ended + 4: move it next to it */
      for (int k = 0; k < tail; k++) col[8 * groups + tail + k] = col[8 * groups + 4 + k];
    }
    int8_t *o0 = out + (size_t)i * p->out_c, *o1 = o0 + p->out_c;
    if (mode == RQ_SMMULR_SAT) {
      matmul_2px_sat(p, col, K, o0, o1);
    } else if (mode == RQ_SMMULR) {
      matmul_2px_fast(p, col, K, o0, o1);
    } else {
      matmul_2px_exact(p, col, K, o0, o1);
    }
  }
  if (n < npix) {
    const int i = npix - 1;
    load_pixel(p, in, i, pointwise, col8, col, 4);
    matmul_1px(p, col, K, out + (size_t)i * p->out_c);
  }
}

#endif /* ENG_DSP */

void eng_conv2d_s8(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
#if ENG_DSP
  if (!p->single_round) {
    conv_dsp(p, in, out, scratch);
    return;
  }
#endif
  conv_portable(p, in, out, scratch);
}


/* Any depth multiplier: per-pixel accumulators in scratch (int32 x out_c). */
static void dwconv_generic(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int32_t *acc) {
  const int oc_n = p->out_c, dm = p->depth_mult;
  for (int oy = 0; oy < p->out_h; oy++) {
    for (int ox = 0; ox < p->out_w; ox++) {
      for (int oc = 0; oc < oc_n; oc++) acc[oc] = p->bias[oc];
      for (int ky = 0; ky < p->k_h; ky++) {
        const int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
        for (int kx = 0; kx < p->k_w; kx++) {
          const int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
          const int8_t *w = p->weights + (size_t)(ky * p->k_w + kx) * (size_t)oc_n;
          const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
          const int8_t *x = inside ? in + ((size_t)iy * p->in_w + (size_t)ix) * p->in_c : 0;
          for (int c = 0; c < p->in_c; c++) {
            const int32_t v = inside ? x[c] : p->in_zp; /* padding reads in_zp (folded bias) */
            for (int m = 0; m < dm; m++) acc[c * dm + m] += v * w[c * dm + m];
          }
        }
      }
      int8_t *o = out + ((size_t)oy * p->out_w + (size_t)ox) * (size_t)oc_n;
      for (int oc = 0; oc < oc_n; oc++)
        o[oc] = requant(acc[oc], p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
    }
  }
}

#if ENG_DSP
/* Four channels' taps, summed in registers. Kept out of line: inlined into the pixel loop, GCC runs out of
 * registers and spills the walking pointers on every tap. */
static ENG_INLINE void dw_taps4_body(const int8_t *const *tap, int taps, int c, const int8_t *w, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  ENG_UNROLL_9
  for (int t = 0; t < taps; t++, w += 4) {
    const uint32_t xw = eng_load32(tap[t] + c), ww = eng_load32(w);
    const uint32_t x02 = eng_sxtb16(xw), w02 = eng_sxtb16(ww);
    const uint32_t x13 = eng_sxtb16_ror8(xw), w13 = eng_sxtb16_ror8(ww);
    a0 = eng_smlabb(x02, w02, a0);
    a2 = eng_smlatt(x02, w02, a2);
    a1 = eng_smlabb(x13, w13, a1);
    a3 = eng_smlatt(x13, w13, a3);
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

ENG_NOINLINE static void dw_taps4(const int8_t *const *tap, int taps, int c, const int8_t *w, int32_t *acc) {
  dw_taps4_body(tap, taps, c, w, acc);
}

/* 3x3 kernels (MobileNet's): nine taps unrolled, no loop counter or branch per tap. */
ENG_NOINLINE static void dw_taps4_9(const int8_t *const *tap, int c, const int8_t *w, int32_t *acc) {
  dw_taps4_body(tap, 9, c, w, acc);
}

/* Requantise four channels' accumulators (constants loaded before the first int8 store). */
static ENG_INLINE void dw_out4(const int32_t *acc, const int32_t *mult, const int8_t *shift, int32_t zp,
                               int32_t lo, int32_t hi, int8_t *o, int mode) {
  const int32_t m0 = mult[0], m1 = mult[1], m2 = mult[2], m3 = mult[3];
  const int s0 = shift[0], s1 = shift[1], s2 = shift[2], s3 = shift[3];
  o[0] = dsp_out(acc[0], m0, s0, zp, lo, hi, mode);
  o[1] = dsp_out(acc[1], m1, s1, zp, lo, hi, mode);
  o[2] = dsp_out(acc[2], m2, s2, zp, lo, hi, mode);
  o[3] = dsp_out(acc[3], m3, s3, zp, lo, hi, mode);
}
#endif

/* Depth multiplier 1 (MobileNet's case): for each output pixel, the k_h*k_w tap rows are found once
 * (a padding tap points at a row of in_zp bytes in scratch), then each channel's taps are summed in
 * registers; the DSP path takes four channels per 32-bit load, unpacked by SXTB16 into 16-bit lanes.
 * Weights come in codegen's grouped layout (see eng_dwconv_t) so one pointer walks them. */
static void dwconv_dm1(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *zp_row) {
  const int C = p->out_c, taps = p->k_h * p->k_w;
  const int8_t *tap[ENG_DW_MAX_TAPS];
#if ENG_DSP
  const int mode = requant_mode(p->shift, C, p->act_min, p->act_max);
#endif
  /* geometry as locals: the kernel calls and int8 stores below would force reloads through p */
  const int in_h = p->in_h, in_w = p->in_w, out_h = p->out_h, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w;
  const int stride_h = p->stride_h, stride_w = p->stride_w, dil_h = p->dil_h, dil_w = p->dil_w;
  const int pad_top = p->pad_top, pad_left = p->pad_left;
  const size_t row = (size_t)in_w * (size_t)C * (size_t)dil_h, step = (size_t)C * (size_t)dil_w;
  memset(zp_row, p->in_zp, (size_t)C);
  for (int oy = 0; oy < out_h; oy++) {
    const int y0 = oy * stride_h - pad_top;
    const int rows_inside = y0 >= 0 && y0 + (k_h - 1) * dil_h < in_h;
    for (int ox = 0; ox < out_w; ox++) {
      int t = 0;
      const int x0 = ox * stride_w - pad_left;
      if (rows_inside && x0 >= 0 && x0 + (k_w - 1) * dil_w < in_w) {
        /* the whole window is inside the image (most pixels): no per-tap bounds checks */
        const int8_t *r = in + ((size_t)y0 * (size_t)in_w + (size_t)x0) * (size_t)C;
        for (int ky = 0; ky < k_h; ky++, r += row)
          for (int kx = 0; kx < k_w; kx++) tap[t++] = r + (size_t)kx * step;
      } else {
        for (int ky = 0; ky < k_h; ky++) {
          const int iy = y0 + ky * dil_h;
          for (int kx = 0; kx < k_w; kx++, t++) {
            const int ix = x0 + kx * dil_w;
            tap[t] = (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w)
                         ? zp_row
                         : in + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)C;
          }
        }
      }
      int8_t *o = out + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)C;
      int c = 0;
      const int32_t *bias = p->bias, *mult = p->mult;
      const int8_t *shift = p->shift, *weights = p->weights;
      const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
#if ENG_DSP
      const int8_t *w = weights; /* grouped layout: the taps of 4 channels are 4 * taps consecutive bytes */
      for (; c + 4 <= C; c += 4, w += 4 * taps) {
        int32_t acc[4] = {bias[c], bias[c + 1], bias[c + 2], bias[c + 3]};
        if (taps == 9) {
          dw_taps4_9(tap, c, w, acc);
        } else {
          dw_taps4(tap, taps, c, w, acc);
        }
        if (mode == RQ_SMMULR_SAT) {
          dw_out4(acc, mult + c, shift + c, zp, lo, hi, o + c, RQ_SMMULR_SAT);
        } else if (mode == RQ_SMMULR) {
          dw_out4(acc, mult + c, shift + c, zp, lo, hi, o + c, RQ_SMMULR);
        } else {
          dw_out4(acc, mult + c, shift + c, zp, lo, hi, o + c, RQ_EXACT);
        }
      }
#endif
      const int c4 = C & ~3, tail = C - c4;
      for (; c < C; c++) {
        int32_t acc = bias[c];
        const int grouped = c < c4;
        const int8_t *wc = grouped ? weights + (size_t)(c >> 2) * (size_t)taps * 4 + (c & 3)
                                   : weights + (size_t)c4 * (size_t)taps + (size_t)(c - c4);
        const int step = grouped ? 4 : tail;
        for (t = 0; t < taps; t++, wc += step) acc += tap[t][c] * *wc;
        o[c] = requant(acc, mult[c], shift[c], zp, lo, hi);
      }
    }
  }
}

void eng_dwconv2d_s8(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  if (p->depth_mult == 1 && p->k_h * p->k_w <= ENG_DW_MAX_TAPS) {
    dwconv_dm1(p, in, out, (int8_t *)scratch);
  } else {
    dwconv_generic(p, in, out, (int32_t *)scratch);
  }
}
