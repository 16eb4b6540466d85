/* The engine's non-convolution kernels, each with TFLite int8 reference semantics (see engine.h);
 * SOFTMAX is in engine_softmax.c. */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "engine_kernels.h"

/* The part of a pooling window that lies inside the input: taps [f0, f1) of the window starting at
 * `start` (negative inside the padding) along an axis of `size` input pixels and a window of `f` taps. */
static void pool_span(int start, int f, int size, int *f0, int *f1) {
  *f0 = start < 0 ? -start : 0;
  *f1 = f < size - start ? f : size - start;
}

/* Visit every output pixel of a pooling layer with its clipped window; `reduce` fills one pixel's channels. */
typedef void (*pool_pixel_fn)(const eng_pool_t *p, const int8_t *in, int y0, int x0, int fy0, int fy1, int fx0, int fx1,
                              int8_t *o);

static void pool_s8(const eng_pool_t *p, const int8_t *in, int8_t *out, pool_pixel_fn reduce) {
  for (int oy = 0; oy < p->out_h; oy++) {
    const int y0 = oy * p->stride_h - p->pad_top;
    int fy0, fy1;
    pool_span(y0, p->f_h, p->in_h, &fy0, &fy1);
    for (int ox = 0; ox < p->out_w; ox++) {
      const int x0 = ox * p->stride_w - p->pad_left;
      int fx0, fx1;
      pool_span(x0, p->f_w, p->in_w, &fx0, &fx1);
      reduce(p, in, y0, x0, fy0, fy1, fx0, fx1, out + ((size_t)oy * p->out_w + (size_t)ox) * p->c);
    }
  }
}

static void avg_pixel(const eng_pool_t *p, const int8_t *in, int y0, int x0, int fy0, int fy1, int fx0, int fx1,
                      int8_t *o) {
  const int count = (fy1 - fy0) * (fx1 - fx0);
  for (int c = 0; c < p->c; c++) {
    int32_t acc = 0;
    for (int fy = fy0; fy < fy1; fy++)
      for (int fx = fx0; fx < fx1; fx++)
        acc += in[((size_t)(y0 + fy) * p->in_w + (size_t)(x0 + fx)) * p->c + (size_t)c];
    /* Round half away from zero, as the reference kernel does. */
    acc = count == 0 ? 0 : (acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count);
    o[c] = (int8_t)eng_clamp(acc, p->act_min, p->act_max);
  }
}

static void max_pixel(const eng_pool_t *p, const int8_t *in, int y0, int x0, int fy0, int fy1, int fx0, int fx1,
                      int8_t *o) {
  for (int c = 0; c < p->c; c++) {
    int32_t m = INT8_MIN;
    for (int fy = fy0; fy < fy1; fy++)
      for (int fx = fx0; fx < fx1; fx++) {
        const int32_t v = in[((size_t)(y0 + fy) * p->in_w + (size_t)(x0 + fx)) * p->c + (size_t)c];
        m = v > m ? v : m;
      }
    o[c] = (int8_t)eng_clamp(m, p->act_min, p->act_max);
  }
}

void eng_avgpool_s8(const eng_pool_t *p, const int8_t *in, int8_t *out) { pool_s8(p, in, out, avg_pixel); }

void eng_maxpool_s8(const eng_pool_t *p, const int8_t *in, int8_t *out) { pool_s8(p, in, out, max_pixel); }

void eng_add_s8(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
#if ENG_DSP
  if (eng_add_dsp(p, in1, in2, out)) return;
#endif
  for (uint32_t i = 0; i < p->size; i++) {
    /* TFLite's int8 ADD: both inputs move to a common scale with 20 bits of headroom, then rescale. */
    const int32_t a = (p->in1_offset + in1[i]) * (1 << 20);
    const int32_t b = (p->in2_offset + in2[i]) * (1 << 20);
    const int32_t sum = eng_mul_q31(a, p->in1_mult, p->in1_shift) + eng_mul_q31(b, p->in2_mult, p->in2_shift);
    out[i] = (int8_t)eng_clamp(eng_mul_q31(sum, p->out_mult, p->out_shift) + p->out_zp, p->act_min, p->act_max);
  }
}

void eng_mean_s8(const eng_mean_t *p, const void *in, void *out, uint8_t is_signed) {
  const int32_t n = (int32_t)p->h * p->w;
  for (int c = 0; c < p->c; c++) {
    int32_t sum = 0;
    for (int32_t i = 0; i < n; i++) {
      const size_t at = (size_t)i * p->c + (size_t)c;
      sum += is_signed ? ((const int8_t *)in)[at] : ((const uint8_t *)in)[at];
    }
    const int32_t v = eng_clamp(eng_mul_q31(sum - p->in_zp * n, p->mult, p->shift) + p->out_zp, p->qmin, p->qmax);
    if (is_signed) {
      ((int8_t *)out)[c] = (int8_t)v;
    } else {
      ((uint8_t *)out)[c] = (uint8_t)v;
    }
  }
}

void eng_pad(const eng_pad_t *p, const void *in, void *out) {
  const size_t e = p->elem_bytes;
  const size_t out_c = (size_t)p->before[3] + p->in_c + p->after[3];
  const size_t out_w = (size_t)p->before[2] + p->in_w + p->after[2];
  const size_t out_h = (size_t)p->before[1] + p->in_h + p->after[1];
  const size_t out_n = (size_t)p->before[0] + p->in_n + p->after[0];
  const uint8_t *src = (const uint8_t *)in;
  uint8_t *dst = (uint8_t *)out;
  memset(dst, p->value, out_n * out_h * out_w * out_c * e);
  for (size_t b = 0; b < p->in_n; b++)
    for (size_t y = 0; y < p->in_h; y++)
      for (size_t x = 0; x < p->in_w; x++) {
        const size_t o =
            (((b + p->before[0]) * out_h + y + p->before[1]) * out_w + x + p->before[2]) * out_c + p->before[3];
        memcpy(dst + o * e, src, (size_t)p->in_c * e);
        src += (size_t)p->in_c * e;
      }
}

void eng_requant8(const eng_requant_t *p, const void *in, void *out) {
  const int32_t lo = p->out_signed ? INT8_MIN : 0, hi = p->out_signed ? INT8_MAX : UINT8_MAX;
  for (uint32_t i = 0; i < p->size; i++) {
    const int32_t x = p->in_signed ? ((const int8_t *)in)[i] : ((const uint8_t *)in)[i];
    const int32_t v = eng_clamp(eng_mul_q31(x - p->in_zp, p->mult, p->shift) + p->out_zp, lo, hi);
    if (p->out_signed) {
      ((int8_t *)out)[i] = (int8_t)v;
    } else {
      ((uint8_t *)out)[i] = (uint8_t)v;
    }
  }
}

void eng_quantize_f32(const eng_fquant_t *p, const float *in, void *out) {
  const int32_t lo = p->q_signed ? INT8_MIN : 0, hi = p->q_signed ? INT8_MAX : UINT8_MAX;
  for (uint32_t i = 0; i < p->size; i++) {
    const int32_t v = eng_clamp((int32_t)roundf(in[i] / p->scale) + p->zp, lo, hi);
    if (p->q_signed) {
      ((int8_t *)out)[i] = (int8_t)v;
    } else {
      ((uint8_t *)out)[i] = (uint8_t)v;
    }
  }
}

void eng_dequantize_f32(const eng_fquant_t *p, const void *in, float *out) {
  for (uint32_t i = 0; i < p->size; i++) {
    const int32_t x = p->q_signed ? ((const int8_t *)in)[i] : ((const uint8_t *)in)[i];
    out[i] = (float)((double)p->scale * (double)(x - p->zp));
  }
}

void eng_copy(const void *in, void *out, uint32_t bytes) {
  if (in != out) memmove(out, in, bytes);
}
