/* Unit test of the engine's kernel variants against a plain-C loop of TFLite's reference
 * arithmetic (unfolded bias, x - in_zp on the taps inside the image, the literal gemmlowp
 * MultiplyByQuantizedMultiplier), on random shapes and parameters chosen so every variant is reached:
 * 3x3 depthwise (eng_dwconv2d_s8_3x3, the 3-pixel column-buffer kernel, where codegen calls it: every shift in
 * the folded range; the per-pixel path otherwise; channel counts with and without a remainder of 4), other
 * depthwise kernels, and convolutions with 1, 3, 8 and other input channel counts (the im2col and 2-pixel paths
 * eng_conv2d_s8 runs; the 4x2 pointwise and the pair-word kernels have their own tests,
 * tests/c/engine_kernels/test_pw.c, test_pw_pairs.c, test_conv3x3.c), and ADD (its DSP path and, for output shifts it
 * does not take, the portable loop). Each requantisation mode is drawn: negative shifts with the full int8 range
 * (SSAT), with a ReLU range, a shift >= 0 and a shift below -22 (both the exact path).
 *
 * Built by tests/test_engine_kernels.py portable and with ENG_EMULATE_DSP, under ASan/UBSan.
 * Usage: kernel_variants_unit [cases] [seed]; prints the number of cases checked, exit 1 on a mismatch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "engine_kernels.h"

static uint32_t rng_state;
static uint32_t rnd(void) { /* xorshift32 */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, as TFLite's reference spells them. */
static int32_t ref_srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return (int32_t)((ab + nudge) / (1LL << 31));
}
static int32_t ref_rdbpot(int32_t x, int e) {
  const int64_t mask = ((int64_t)1 << e) - 1;
  const int64_t rem = (int64_t)x & mask, thr = (mask >> 1) + (x < 0 ? 1 : 0);
  return (int32_t)(((int64_t)x >> e) + (rem > thr ? 1 : 0));
}
static int32_t ref_mbqm(int32_t x, int32_t m, int s) {
  const int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
  return ref_rdbpot(ref_srdhm((int32_t)((int64_t)x * ((int64_t)1 << left)), m), right);
}
static int8_t ref_out(int64_t acc, int32_t m, int s, int32_t zp, int32_t lo, int32_t hi) {
  int32_t v = ref_mbqm((int32_t)acc, m, s) + zp;
  return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

typedef struct {
  int32_t out_zp, lo, hi;
  int32_t *mult;
  int8_t *shift;
} stage_t;

/* Random per-channel requantisation in one of the three modes. */
static void random_stage(stage_t *q, int n) {
  const int mode = rnd_in(0, 3);
  q->out_zp = rnd_in(-128, 127);
  q->lo = -128;
  q->hi = 127;
  if (mode == 1) q->lo = q->out_zp; /* a ReLU's range */
  for (int c = 0; c < n; c++) {
    q->mult[c] = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu));
    q->shift[c] =
        (int8_t)(mode == 2 && c == n - 1 ? rnd_in(0, 1) : (mode == 3 && c == 0 ? rnd_in(-31, -20) : rnd_in(-12, -1)));
  }
}

static int8_t *random_bytes(size_t n) {
  int8_t *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = (int8_t)rnd();
  return p;
}

static int same_padding(int in, int out, int k, int s) {
  const int total = (out - 1) * s + k - in;
  return total > 0 ? total / 2 : 0;
}

static int check_dwconv(int case_no) {
  const int k = rnd_in(0, 3) ? 3 : rnd_in(1, 5), stride = rnd_in(1, 2), same = rnd_in(0, 3) != 0;
  const int in_h = rnd_in(k, 13), in_w = rnd_in(k, 13),
            C = rnd_in(1, 3) == 1 ? rnd_in(1, 7) : 4 * rnd_in(1, 6) + rnd_in(0, 1) * rnd_in(0, 3);
  const int out_h = same ? (in_h + stride - 1) / stride : (in_h - k) / stride + 1;
  const int out_w = same ? (in_w + stride - 1) / stride : (in_w - k) / stride + 1;
  const int pad_top = same ? same_padding(in_h, out_h, k, stride) : 0;
  const int pad_left = same ? same_padding(in_w, out_w, k, stride) : 0;
  const int taps = k * k;
  int8_t *in = random_bytes((size_t)in_h * in_w * C), *w = random_bytes((size_t)taps * C);
  int8_t *wg = malloc((size_t)taps * C), *out = malloc((size_t)out_h * out_w * C);
  int32_t *bias = malloc(sizeof(int32_t) * C), *folded = malloc(sizeof(int32_t) * C);
  stage_t q = {0, 0, 0, malloc(sizeof(int32_t) * C), malloc((size_t)C)};
  random_stage(&q, C);
  const int8_t in_zp = (int8_t)rnd();
  /* codegen's grouped layout: groups of 4 channels tap by tap, then the remainder as [taps][C % 4] */
  const int c4 = C & ~3, tail = C - c4;
  for (int c = 0; c < C; c++) {
    int64_t sum = 0;
    for (int t = 0; t < taps; t++) {
      sum += w[t * C + c];
      const size_t at = c < c4 ? (size_t)(c / 4) * taps * 4 + (size_t)t * 4 + (c & 3)
                               : (size_t)c4 * taps + (size_t)t * tail + (size_t)(c - c4);
      wg[at] = w[t * C + c];
    }
    bias[c] = rnd_in(-20000, 20000);
    folded[c] = (int32_t)(bias[c] - (int64_t)in_zp * sum);
  }
  const eng_dwconv_t p = {.in_h = in_h,
                          .in_w = in_w,
                          .in_c = C,
                          .out_h = out_h,
                          .out_w = out_w,
                          .out_c = C,
                          .k_h = k,
                          .k_w = k,
                          .stride_h = stride,
                          .stride_w = stride,
                          .dil_h = 1,
                          .dil_w = 1,
                          .pad_top = pad_top,
                          .pad_left = pad_left,
                          .depth_mult = 1,
                          .in_zp = in_zp,
                          .out_zp = q.out_zp,
                          .act_min = q.lo,
                          .act_max = q.hi,
                          .weights = wg,
                          .bias = folded,
                          .mult = q.mult,
                          .shift = q.shift};
  int folded_range = 1; /* codegen's choice (tinyml/codegen/ops/depthwise.py block_3x3) */
  for (int c = 0; c < C; c++) folded_range &= q.shift[c] <= -1 && q.shift[c] >= -22;
  const int block = k == 3 && folded_range;
  void *scratch = malloc(block ? ENG_DW3X3_SCRATCH_BYTES(in_w, C) : ENG_DWCONV_SCRATCH_BYTES(C));
  if (block) {
    eng_dwconv2d_s8_3x3(&p, in, out, scratch);
  } else {
    eng_dwconv2d_s8(&p, in, out, scratch);
  }
  int bad = 0;
  for (int oy = 0; oy < out_h && !bad; oy++)
    for (int ox = 0; ox < out_w && !bad; ox++)
      for (int c = 0; c < C && !bad; c++) {
        int64_t acc = bias[c];
        for (int ky = 0; ky < k; ky++)
          for (int kx = 0; kx < k; kx++) {
            const int iy = oy * stride - pad_top + ky, ix = ox * stride - pad_left + kx;
            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
              acc += (int64_t)w[(ky * k + kx) * C + c] * (in[((size_t)iy * in_w + ix) * C + c] - in_zp);
          }
        const int8_t want = ref_out(acc, q.mult[c], q.shift[c], q.out_zp, q.lo, q.hi);
        const int8_t got = out[((size_t)oy * out_w + ox) * C + c];
        if (got != want) {
          printf("case %d dwconv k%d s%d %dx%dx%d: pixel (%d,%d) channel %d: %d, want %d\n", case_no, k, stride, in_h,
                 in_w, C, oy, ox, c, got, want);
          bad = 1;
        }
      }
  free(in);
  free(w);
  free(wg);
  free(out);
  free(bias);
  free(folded);
  free(q.mult);
  free(q.shift);
  free(scratch);
  return bad;
}

static int check_conv(int case_no) {
  const int pick = rnd_in(0, 3), narrow = pick == 3; /* 3: 1x1 stride 1 with 8 input channels */
  const int k = narrow ? 1 : (rnd_in(0, 2) ? 3 : rnd_in(1, 4)), stride = narrow ? 1 : rnd_in(1, 2);
  const int same = rnd_in(0, 3) != 0;
  const int in_c = pick == 0 ? 1 : (pick == 1 ? 3 : (narrow ? 8 : rnd_in(2, 20)));
  const int in_h = rnd_in(k, 14), in_w = rnd_in(k, 14), out_c = rnd_in(1, 13);
  const int out_h = same ? (in_h + stride - 1) / stride : (in_h - k) / stride + 1;
  const int out_w = same ? (in_w + stride - 1) / stride : (in_w - k) / stride + 1;
  const int pad_top = same ? same_padding(in_h, out_h, k, stride) : 0;
  const int pad_left = same ? same_padding(in_w, out_w, k, stride) : 0;
  const int K = k * k * in_c;
  int8_t *in = random_bytes((size_t)in_h * in_w * in_c), *w = random_bytes((size_t)out_c * K);
  int8_t *out = malloc((size_t)out_h * out_w * out_c);
  int32_t *bias = malloc(sizeof(int32_t) * out_c), *folded = malloc(sizeof(int32_t) * out_c);
  stage_t q = {0, 0, 0, malloc(sizeof(int32_t) * out_c), malloc((size_t)out_c)};
  random_stage(&q, out_c);
  const int8_t in_zp = (int8_t)rnd();
  for (int oc = 0; oc < out_c; oc++) {
    int64_t sum = 0;
    for (int i = 0; i < K; i++) sum += w[(size_t)oc * K + i];
    bias[oc] = rnd_in(-20000, 20000);
    folded[oc] = (int32_t)(bias[oc] - (int64_t)in_zp * sum);
  }
  const eng_conv_t p = {.in_h = in_h,
                        .in_w = in_w,
                        .in_c = in_c,
                        .out_h = out_h,
                        .out_w = out_w,
                        .out_c = out_c,
                        .k_h = k,
                        .k_w = k,
                        .stride_h = stride,
                        .stride_w = stride,
                        .dil_h = 1,
                        .dil_w = 1,
                        .pad_top = pad_top,
                        .pad_left = pad_left,
                        .in_place = 0,
                        .single_round = 0,
                        .in_zp = in_zp,
                        .out_zp = q.out_zp,
                        .act_min = q.lo,
                        .act_max = q.hi,
                        .weights = w,
                        .bias = folded,
                        .mult = q.mult,
                        .shift = q.shift};
  /* exactly the header's size for the function codegen would call, so an overrun is an ASan error */
  void *scratch = malloc(ENG_CONV_SCRATCH_BYTES(k, k, in_c));
  eng_conv2d_s8(&p, in, out, scratch);
  int bad = 0;
  for (int oy = 0; oy < out_h && !bad; oy++)
    for (int ox = 0; ox < out_w && !bad; ox++)
      for (int oc = 0; oc < out_c && !bad; oc++) {
        int64_t acc = bias[oc];
        for (int ky = 0; ky < k; ky++)
          for (int kx = 0; kx < k; kx++) {
            const int iy = oy * stride - pad_top + ky, ix = ox * stride - pad_left + kx;
            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) continue;
            for (int ic = 0; ic < in_c; ic++)
              acc += (int64_t)w[(size_t)oc * K + (size_t)(ky * k + kx) * in_c + ic] *
                     (in[((size_t)iy * in_w + ix) * in_c + ic] - in_zp);
          }
        const int8_t want = ref_out(acc, q.mult[oc], q.shift[oc], q.out_zp, q.lo, q.hi);
        const int8_t got = out[((size_t)oy * out_w + ox) * out_c + oc];
        if (got != want) {
          printf("case %d conv k%d s%d %dx%dx%d -> %d: pixel (%d,%d) channel %d: %d, want %d\n", case_no, k, stride,
                 in_h, in_w, in_c, out_c, oy, ox, oc, got, want);
          bad = 1;
        }
      }
  free(in);
  free(w);
  free(out);
  free(bias);
  free(folded);
  free(q.mult);
  free(q.shift);
  free(scratch);
  return bad;
}

static int check_add(int case_no) {
  const uint32_t n = (uint32_t)rnd_in(1, 300);
  int8_t *a = random_bytes(n), *b = random_bytes(n), *out = malloc(n);
  const int za = rnd_in(-128, 127), zb = rnd_in(-128, 127);
  const int sat = rnd_in(0, 1);
  const eng_add_t p = {.size = n,
                       .in1_offset = -za,
                       .in2_offset = -zb,
                       .out_zp = rnd_in(-128, 127),
                       .in1_mult = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu)),
                       .in2_mult = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu)),
                       .out_mult = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu)),
                       .in1_shift = (int8_t)(rnd_in(0, 1) ? 0 : rnd_in(-6, -1)),
                       .in2_shift = (int8_t)rnd_in(-6, 0),
                       .out_shift = (int8_t)rnd_in(-25, -12),
                       .act_min = sat ? -128 : rnd_in(-128, 0),
                       .act_max = sat ? 127 : rnd_in(0, 127)};
  eng_add_s8(&p, a, b, out);
  int bad = 0;
  for (uint32_t i = 0; i < n && !bad; i++) {
    const int32_t sa = ref_mbqm((a[i] - za) * (1 << 20), p.in1_mult, p.in1_shift);
    const int32_t sb = ref_mbqm((b[i] - zb) * (1 << 20), p.in2_mult, p.in2_shift);
    const int8_t want = ref_out((int64_t)sa + sb, p.out_mult, p.out_shift, p.out_zp, p.act_min, p.act_max);
    if (out[i] != want) {
      printf("case %d add: element %u: %d, want %d\n", case_no, i, out[i], want);
      bad = 1;
    }
  }
  free(a);
  free(b);
  free(out);
  return bad;
}

int main(int argc, char **argv) {
  const int cases = argc > 1 ? atoi(argv[1]) : 400;
  rng_state = argc > 2 ? (uint32_t)strtoul(argv[2], 0, 10) : 12345u;
  if (rng_state == 0) rng_state = 1;
  int failed = 0;
  for (int i = 0; i < cases; i++) failed += check_dwconv(i) + check_conv(i) + check_add(i);
  printf("%d\n", 3 * cases);
  return failed ? 1 : 0;
}
