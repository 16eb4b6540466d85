/* Convolution kernels: CONV_2D (and FULLY_CONNECTED as a 1x1 convolution).
 *
 * Semantics are TFLite's per-channel int8 reference kernels: acc = bias + sum(w * (x - in_zp)) over the
 * taps inside the image, then MultiplyByQuantizedMultiplier, + out_zp, clamp to the activation range.
 * codegen folds -in_zp * sum(w) into the bias, so here padding taps read in_zp itself and the inner loops
 * are plain int8 dot products; integer sums are exact, so every summation order gives the same bytes. */
#include <string.h>

#include "engine.h"
#include "engine_kernels.h"
#include "engine_requant.h"
#include "engine_simd.h"

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
  return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 &&
         p->in_h == p->out_h && p->in_w == p->out_w;
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

/* Output pixels [first, first + count) in row-major order, two at a time; mode is a constant at each
 * instantiation below, so each calls one 2-pixel kernel. */
static ENG_INLINE void conv_dsp_pixels(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int mode,
                                       int first, int count) {
  const int K = p->k_h * p->k_w * p->in_c;
  const int pointwise = conv_is_pointwise(p);
  int16_t *col = (int16_t *)scratch;
  int8_t *col8 = (int8_t *)(col + 2 * K + 8); /* past both pixels' groups and tails */
  const int groups = K >> 2, tail = K & 3, end = first + count;
  int i = first;
  for (; i + 2 <= end; i += 2) {
    /* Both pixels are read before either is written (in place, codegen puts the input where ascending
     * writes never reach unread pixels). Pixel 1's groups sit 4 halfwords after pixel 0's. */
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
  if (i < end) {
    load_pixel(p, in, i, pointwise, col8, col, 4);
    matmul_1px(p, col, K, out + (size_t)i * p->out_c);
  }
}

typedef void (*pixels_fn)(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int first, int count);

ENG_NOINLINE static void pixels_sat(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int first,
                                    int count) {
  conv_dsp_pixels(p, in, out, scratch, RQ_SMMULR_SAT, first, count);
}

ENG_NOINLINE static void pixels_fast(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int first,
                                     int count) {
  conv_dsp_pixels(p, in, out, scratch, RQ_SMMULR, first, count);
}

ENG_NOINLINE static void pixels_exact(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch, int first,
                                      int count) {
  conv_dsp_pixels(p, in, out, scratch, RQ_EXACT, first, count);
}

#endif /* ENG_DSP */

/* The entry points codegen chooses between (engine.h): one requantisation mode's 2-pixel kernel each, so a model
 * links only those it uses; portable builds run conv_portable. */
#if ENG_DSP
#define CONV_ENTRY(name, pixels)                                                 \
  void name(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) { \
    pixels(p, in, out, scratch, 0, p->out_h * p->out_w);                         \
  }
#else
#define CONV_ENTRY(name, pixels) \
  void name(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) { conv_portable(p, in, out, scratch); }
#endif

CONV_ENTRY(eng_conv2d_s8_sat, pixels_sat)
CONV_ENTRY(eng_conv2d_s8_fast, pixels_fast)
CONV_ENTRY(eng_conv2d_s8_exact, pixels_exact)

void eng_conv2d_s8_single(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  conv_portable(p, in, out, scratch);
}

/* Every choice at run time (C tests and callers without codegen): links all the variants. */
void eng_conv2d_s8(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch) {
#if ENG_DSP
  if (!p->single_round) {
    const int mode = requant_mode(p->shift, p->out_c, p->act_min, p->act_max);
    const pixels_fn pixels = mode == RQ_SMMULR_SAT ? pixels_sat : mode == RQ_SMMULR ? pixels_fast : pixels_exact;
    pixels(p, in, out, scratch, 0, p->out_h * p->out_w);
    return;
  }
#endif
  conv_portable(p, in, out, scratch);
}
