/* eng_pw_pairs_c{4,8,...,48}_{sat,clamp} (engine_pw_pairs.c: 2 pixels x 2 channels over pair words, odd pixel
 * counts, in place with the input at the output's start or end; portable, or the DSP path with -DENG_EMULATE_DSP)
 * against a plain loop of TFLite's ConvPerChannel for a 1x1 convolution. The constants are put in engine.h's
 * pair-word layout here, from its description, as the code generator does: per group of 4 input channels the
 * words [x0 x2] [x1 x3], doubled weights, the doubled folded bias, records (m, rz, r). Shifts cover the whole
 * folded range [-22, -1], mostly where outputs do not saturate; the kernels take no scratch (a 0-byte buffer). */
#include "kernel_ref.h"

enum { MAX_OC = 64 };

typedef void kernel_fn(const eng_conv_t *, const int8_t *, int8_t *, void *);

/* engine.h: per output channel pair and pair word 2g + b (lanes: input channels 4g + b, 4g + 2 + b), both
 * channels' words of two int16 lanes, low first, each 2 * the weight. */
static void pair_word_layout(const int8_t *w, int out_c, int K, int8_t *dst) {
  size_t n = 0;
  for (int q = 0; q < out_c; q += 2)
    for (int j = 0; j < K / 2; j++)
      for (int c = 0; c < 2; c++)
        for (int lane = 0; lane < 2; lane++) {
          const int16_t v = (int16_t)(2 * w[(q + c) * K + 4 * (j / 2) + 2 * lane + (j % 2)]);
          dst[n++] = (int8_t)(uint8_t)((uint16_t)v & 0xFF);
          dst[n++] = (int8_t)(uint8_t)((uint16_t)v >> 8);
        }
}

#define KERNEL_PAIR(c) {eng_pw_pairs_c##c##_sat, eng_pw_pairs_c##c##_clamp}
static kernel_fn *const KERNELS[12][2] = {KERNEL_PAIR(4),  KERNEL_PAIR(8),  KERNEL_PAIR(12), KERNEL_PAIR(16),
                                          KERNEL_PAIR(20), KERNEL_PAIR(24), KERNEL_PAIR(28), KERNEL_PAIR(32),
                                          KERNEL_PAIR(36), KERNEL_PAIR(40), KERNEL_PAIR(44), KERNEL_PAIR(48)};

static int run_trial(int trial) {
  static int8_t weights[MAX_OC * ENG_PW_PAIRS_MAX_IN_C], arranged[MAX_OC * 2 * ENG_PW_PAIRS_MAX_IN_C] ENG_ALIGNED(8);
  static int32_t bias2[MAX_OC] ENG_ALIGNED(8), bias_raw[MAX_OC], mult[MAX_OC], rec[3 * MAX_OC] ENG_ALIGNED(8);
  static int8_t shift[MAX_OC];
  eng_conv_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.out_h = (uint16_t)rnd_in(1, 9);
  p.in_w = p.out_w = (uint16_t)rnd_in(1, 9);
  const int depth = trial % 12;
  p.in_c = (uint16_t)(4 * (depth + 1));
  p.out_c = (uint16_t)(2 * rnd_in(1, MAX_OC / 2));
  p.k_h = p.k_w = p.stride_h = p.stride_w = p.dil_h = p.dil_w = 1;
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-128, 127);
  const int sat = trial % 24 < 12;
  p.act_min = sat ? -128 : rnd_in(-128, 0);
  p.act_max = sat ? 127 : rnd_in(p.act_min, 127);
  const int K = p.in_c;
  for (int i = 0; i < p.out_c * K; i++) weights[i] = (int8_t)rnd_in(-128, 127);
  for (int c = 0; c < p.out_c; c++) {
    mult[c] = (int32_t)((1u << 30) + (rnd() % (1u << 30)));
    shift[c] = (int8_t)(rnd_in(0, 3) ? rnd_in(-14, -7) : rnd_in(-22, -1));
    bias_raw[c] = rnd_in(-60000, 60000);
    int32_t sum = 0;
    for (int k = 0; k < K; k++) sum += weights[c * K + k];
    bias2[c] = 2 * (bias_raw[c] - p.in_zp * sum); /* codegen's fold, doubled */
    const int r = -shift[c];
    rec[3 * c] = mult[c];
    rec[3 * c + 1] = (int32_t)(1u << (r - 1)) + p.out_zp * (int32_t)(1u << r);
    rec[3 * c + 2] = r;
  }
  pair_word_layout(weights, p.out_c, K, arranged);
  p.weights = arranged;
  p.bias = bias2;
  p.mult = rec;
  p.shift = shift;
  int8_t *in, *want;
  size_t in_bytes, out_bytes;
  ref_pointwise_case(&p, K, weights, bias_raw, mult, shift, &in, &in_bytes, &want, &out_bytes);
  char name[40];
  snprintf(name, sizeof name, "eng_pw_pairs_c%d_%s", K, sat ? "sat" : "clamp");
  const int failed =
      check_conv_kernel(KERNELS[depth][!sat], name, &p, in, in_bytes, want, out_bytes, 0, rnd_in(0, 1), trial);
  free(in);
  free(want);
  return failed;
}

int main(void) {
  int cases = 0;
  for (int trial = 0; trial < 4800; trial++) {
    if (run_trial(trial)) return 1;
    cases++;
  }
  printf("pw_pairs: %d random cases match the reference\n", cases);
  return 0;
}
