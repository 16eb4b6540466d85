/* DEPTHWISE_CONV_2D: TFLite's per-channel int8 reference semantics (see engine_conv.c for the folded
 * bias: padding taps read in_zp and the inner loops are plain int8 dot products). */
#include <string.h>

#include "engine.h"
#include "engine_kernels.h"
#include "engine_requant.h"
#include "engine_simd.h"

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
static ENG_INLINE void dw_out4(const int32_t *acc, const int32_t *mult, const int8_t *shift, int32_t zp, int32_t lo,
                               int32_t hi, int8_t *o, int mode) {
  const int32_t m0 = mult[0], m1 = mult[1], m2 = mult[2], m3 = mult[3];
  const int s0 = shift[0], s1 = shift[1], s2 = shift[2], s3 = shift[3];
  o[0] = dsp_out(acc[0], m0, s0, zp, lo, hi, mode);
  o[1] = dsp_out(acc[1], m1, s1, zp, lo, hi, mode);
  o[2] = dsp_out(acc[2], m2, s2, zp, lo, hi, mode);
  o[3] = dsp_out(acc[3], m3, s3, zp, lo, hi, mode);
}
#endif

/* Depth multiplier 1 (MobileNet's case), one output pixel: its k_h*k_w tap rows are found once (a padding
 * tap points at a row of in_zp bytes in scratch), then each channel's taps are summed in registers; the DSP
 * path takes four channels per 32-bit load, unpacked by SXTB16 into 16-bit lanes. Weights come in
 * codegen's grouped layout (see eng_dwconv_t) so one pointer walks them. */
static void dw_pixel(const eng_dwconv_t *p, const int8_t *in, int8_t *out, const int8_t *zp_row, int oy, int ox,
                     int mode) {
  const int C = p->out_c, taps = p->k_h * p->k_w;
  const int8_t *tap[ENG_DW_MAX_TAPS];
  /* geometry as locals: the kernel calls and int8 stores below would force reloads through p */
  const int in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
  const size_t row = (size_t)in_w * (size_t)C * (size_t)dil_h, step = (size_t)C * (size_t)dil_w;
  const int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
  int t = 0;
  if (y0 >= 0 && y0 + (k_h - 1) * dil_h < in_h && x0 >= 0 && x0 + (k_w - 1) * dil_w < in_w) {
    /* the whole window is inside the image: no per-tap bounds checks */
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
  int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)C;
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
#else
  (void)mode;
#endif
  const int c4 = C & ~3, tail = C - c4;
  for (; c < C; c++) {
    int32_t acc = bias[c];
    const int grouped = c < c4;
    const int8_t *wc = grouped ? weights + (size_t)(c >> 2) * (size_t)taps * 4 + (c & 3)
                               : weights + (size_t)c4 * (size_t)taps + (size_t)(c - c4);
    const int wstep = grouped ? 4 : tail;
    for (t = 0; t < taps; t++, wc += wstep) acc += tap[t][c] * *wc;
    o[c] = requant(acc, mult[c], shift[c], zp, lo, hi);
  }
}

/* Depth multiplier 1, pixel by pixel through dw_pixel: what codegen does not give the 3x3 kernel
 * (eng_dwconv2d_s8_3x3, engine_dw3x3_p4_dsp.c): other kernel sizes, strides and dilations, a shift outside
 * the folded range; and that kernel's portable build. */
static void dwconv_dm1(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *zp_row) {
  int mode = 0;
#if ENG_DSP
  mode = requant_mode(p->shift, p->out_c, p->act_min, p->act_max);
#endif
  memset(zp_row, p->in_zp, (size_t)p->out_c);
  for (int oy = 0; oy < p->out_h; oy++)
    for (int ox = 0; ox < p->out_w; ox++) dw_pixel(p, in, out, zp_row, oy, ox, mode);
}

void eng_dwconv2d_s8(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch) {
  if (p->depth_mult == 1 && p->k_h * p->k_w <= ENG_DW_MAX_TAPS) {
    dwconv_dm1(p, in, out, (int8_t *)scratch);
  } else {
    dwconv_generic(p, in, out, (int32_t *)scratch);
  }
}
