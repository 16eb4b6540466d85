/* The non-convolution kernels against plain loops of TFLite's reference kernels: AVERAGE_POOL_2D and
 * MAX_POOL_2D (padding, clipped windows, activation ranges), ADD (the 20-bit left shift and three
 * requantisations, scales from random reals through QuantizeMultiplier), MEAN over H and W (int8 and uint8),
 * QUANTIZE between 8-bit types, and PAD. */
#include "kernel_ref.h"

static int pools(int trial) {
  eng_pool_t p;
  memset(&p, 0, sizeof p);
  p.in_h = (uint16_t)rnd_in(1, 10);
  p.in_w = (uint16_t)rnd_in(1, 10);
  p.c = (uint16_t)rnd_in(1, 20);
  p.f_h = (uint8_t)rnd_in(1, 4);
  p.f_w = (uint8_t)rnd_in(1, 4);
  p.stride_h = (uint8_t)rnd_in(1, 3);
  p.stride_w = (uint8_t)rnd_in(1, 3);
  const int same = rnd_in(0, 1);
  if (!same && (p.f_h > p.in_h || p.f_w > p.in_w)) return 0;
  p.out_h = (uint16_t)(same ? (p.in_h + p.stride_h - 1) / p.stride_h : (p.in_h - p.f_h) / p.stride_h + 1);
  p.out_w = (uint16_t)(same ? (p.in_w + p.stride_w - 1) / p.stride_w : (p.in_w - p.f_w) / p.stride_w + 1);
  const int need_h = (p.out_h - 1) * p.stride_h + p.f_h - p.in_h, need_w = (p.out_w - 1) * p.stride_w + p.f_w - p.in_w;
  p.pad_top = (uint8_t)(same && need_h > 0 ? need_h / 2 : 0);
  p.pad_left = (uint8_t)(same && need_w > 0 ? need_w / 2 : 0);
  p.act_min = rnd_in(0, 1) ? -128 : rnd_in(-128, 0);
  p.act_max = rnd_in(0, 1) ? 127 : rnd_in(p.act_min, 127);
  const size_t in_bytes = (size_t)p.in_h * p.in_w * p.c, out_bytes = (size_t)p.out_h * p.out_w * p.c;
  int8_t *in = malloc(in_bytes), *avg = malloc(out_bytes), *max = malloc(out_bytes);
  for (size_t i = 0; i < in_bytes; i++) in[i] = rnd_s8();
  eng_avgpool_s8(&p, in, avg);
  eng_maxpool_s8(&p, in, max);
  int failed = 0;
  for (int oy = 0; oy < p.out_h && !failed; oy++)
    for (int ox = 0; ox < p.out_w && !failed; ox++)
      for (int c = 0; c < p.c && !failed; c++) {
        int32_t sum = 0, count = 0, m = -128;
        for (int fy = 0; fy < p.f_h; fy++)
          for (int fx = 0; fx < p.f_w; fx++) {
            const int iy = oy * p.stride_h - p.pad_top + fy, ix = ox * p.stride_w - p.pad_left + fx;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
            const int v = in[((size_t)iy * p.in_w + ix) * p.c + c];
            sum += v;
            count++;
            m = v > m ? v : m;
          }
        /* reference AveragePool: (sum +- count/2) / count, C division */
        const int32_t a = count ? (sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count) : 0;
        const size_t at = ((size_t)oy * p.out_w + ox) * p.c + c;
        const int want_avg = clamp32(a, p.act_min, p.act_max), want_max = clamp32(m, p.act_min, p.act_max);
        if (avg[at] != want_avg) failed = report("eng_avgpool_s8", trial, at, avg[at], want_avg);
        if (!failed && max[at] != want_max) failed = report("eng_maxpool_s8", trial, at, max[at], want_max);
      }
  free(in);
  free(avg);
  free(max);
  return failed;
}

static double rnd_scale(void) { return pow(10.0, -3.0 + 3.0 * (rnd() / 4294967296.0)); }

static int add(int trial) {
  eng_add_t p;
  memset(&p, 0, sizeof p);
  p.size = (uint32_t)rnd_in(1, 300);
  const double sa = rnd_scale(), sb = rnd_scale(), sy = rnd_scale() * 2;
  const double twice_max = 2.0 * (sa > sb ? sa : sb);
  ref_quantize_multiplier(sa / twice_max, &p.in1_mult, &p.in1_shift);
  ref_quantize_multiplier(sb / twice_max, &p.in2_mult, &p.in2_shift);
  ref_quantize_multiplier(twice_max / ((1 << 20) * sy), &p.out_mult, &p.out_shift);
  p.in1_offset = -rnd_in(-128, 127);
  p.in2_offset = -rnd_in(-128, 127);
  p.out_zp = rnd_in(-128, 127);
  p.act_min = rnd_in(-128, 0);
  p.act_max = rnd_in(p.act_min, 127);
  int8_t a[300], b[300], out[300];
  for (uint32_t i = 0; i < p.size; i++) {
    a[i] = rnd_s8();
    b[i] = rnd_s8();
  }
  eng_add_s8(&p, a, b, out);
  for (uint32_t i = 0; i < p.size; i++) { /* reference_integer_ops::AddElementwise */
    const int32_t sa_ = ref_mbqm((p.in1_offset + a[i]) * (1 << 20), p.in1_mult, p.in1_shift);
    const int32_t sb_ = ref_mbqm((p.in2_offset + b[i]) * (1 << 20), p.in2_mult, p.in2_shift);
    const int32_t want = clamp32(ref_mbqm(sa_ + sb_, p.out_mult, p.out_shift) + p.out_zp, p.act_min, p.act_max);
    if (out[i] != want) return report("eng_add_s8", trial, i, out[i], want);
  }
  return 0;
}

static int mean_and_requant(int trial) {
  /* MEAN over H, W: int32 sum, - zp * n, times the multiplier with 1/n folded in (codegen's fold) */
  eng_mean_t m;
  memset(&m, 0, sizeof m);
  m.h = (uint16_t)rnd_in(1, 12);
  m.w = (uint16_t)rnd_in(1, 12);
  m.c = (uint16_t)rnd_in(1, 16);
  const int is_signed = rnd_in(0, 1);
  m.qmin = is_signed ? -128 : 0;
  m.qmax = is_signed ? 127 : 255;
  m.in_zp = rnd_in(m.qmin, m.qmax);
  m.out_zp = rnd_in(m.qmin, m.qmax);
  ref_quantize_multiplier(rnd_scale() * 50, &m.mult, &m.shift);
  uint8_t in[12 * 12 * 16], out[16];
  const int n = m.h * m.w;
  for (int i = 0; i < n * m.c; i++) in[i] = (uint8_t)rnd();
  eng_mean_s8(&m, in, out, (uint8_t)is_signed);
  for (int c = 0; c < m.c; c++) {
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += is_signed ? (int8_t)in[i * m.c + c] : in[i * m.c + c];
    const int32_t want = clamp32(ref_mbqm(sum - m.in_zp * n, m.mult, m.shift) + m.out_zp, m.qmin, m.qmax);
    const int got = is_signed ? (int8_t)out[c] : out[c];
    if (got != want) return report("eng_mean_s8", trial, (size_t)c, got, want);
  }
  /* QUANTIZE 8-bit -> 8-bit: reference Requantize */
  eng_requant_t q;
  memset(&q, 0, sizeof q);
  q.size = (uint32_t)rnd_in(1, 200);
  q.in_signed = (uint8_t)rnd_in(0, 1);
  q.out_signed = (uint8_t)rnd_in(0, 1);
  q.in_zp = q.in_signed ? rnd_in(-128, 127) : rnd_in(0, 255);
  q.out_zp = q.out_signed ? rnd_in(-128, 127) : rnd_in(0, 255);
  ref_quantize_multiplier(rnd_scale() * 10, &q.mult, &q.shift);
  uint8_t qin[200], qout[200];
  for (uint32_t i = 0; i < q.size; i++) qin[i] = (uint8_t)rnd();
  eng_requant8(&q, qin, qout);
  for (uint32_t i = 0; i < q.size; i++) {
    const int32_t x = q.in_signed ? (int8_t)qin[i] : qin[i];
    const int32_t lo = q.out_signed ? -128 : 0, hi = q.out_signed ? 127 : 255;
    const int32_t want = clamp32(ref_mbqm(x - q.in_zp, q.mult, q.shift) + q.out_zp, lo, hi);
    const int got = q.out_signed ? (int8_t)qout[i] : qout[i];
    if (got != want) return report("eng_requant8", trial, i, got, want);
  }
  return 0;
}

static int pad(int trial) {
  eng_pad_t p;
  memset(&p, 0, sizeof p);
  p.in_n = 1;
  p.in_h = (uint16_t)rnd_in(1, 6);
  p.in_w = (uint16_t)rnd_in(1, 6);
  p.in_c = (uint16_t)rnd_in(1, 5);
  for (int d = 1; d < 4; d++) {
    p.before[d] = (uint16_t)rnd_in(0, 3);
    p.after[d] = (uint16_t)rnd_in(0, 3);
  }
  p.elem_bytes = 1;
  p.value = rnd_in(0, 255);
  const int oh = p.before[1] + p.in_h + p.after[1], ow = p.before[2] + p.in_w + p.after[2];
  const int oc = p.before[3] + p.in_c + p.after[3];
  uint8_t in[6 * 6 * 5], out[12 * 12 * 11];
  for (int i = 0; i < p.in_h * p.in_w * p.in_c; i++) in[i] = (uint8_t)rnd();
  eng_pad(&p, in, out);
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++)
      for (int c = 0; c < oc; c++) {
        const int iy = y - p.before[1], ix = x - p.before[2], ic = c - p.before[3];
        const int inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w && ic >= 0 && ic < p.in_c;
        const int want = inside ? in[(iy * p.in_w + ix) * p.in_c + ic] : p.value;
        const size_t at = ((size_t)y * ow + x) * oc + c;
        if (out[at] != want) return report("eng_pad", trial, at, out[at], want);
      }
  return 0;
}

int main(void) {
  for (int trial = 0; trial < 1000; trial++)
    if (pools(trial) || add(trial) || mean_and_requant(trial) || pad(trial)) return 1;
  printf("pool/add/mean/requant/pad: 1000 random cases each match the reference\n");
  return 0;
}
