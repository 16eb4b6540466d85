/* eng_pw_4x2_sat / eng_pw_4x2_clamp (engine_pw_4x2_dsp.c: 4-pixel blocks, the 1-3 pixel tail through its
 * 16-channel buffer, in place with the input at the output's start or end; portable, or the DSP path with
 * -DENG_EMULATE_DSP) against a plain loop of TFLite's ConvPerChannel for a 1x1 convolution. The weights are put
 * in engine.h's pair layout here, from its description, as the code generator does. Shifts cover the whole
 * folded range [-22, -1]; scratch is malloc'd at exactly ENG_PW_4X2_SCRATCH_BYTES, so ASan catches an overrun. */
#include "engine_kernels.h"
#include "kernel_ref.h"

enum { MAX_IC = 64, MAX_OC = 40 };

/* engine.h: per output channel pair and group of 4 input channels k..k+3, [c0 k, c1 k, c0 k+2, c1 k+2 | c0 k+1,
 * c1 k+1, c0 k+3, c1 k+3]. */
static void pair_layout(const int8_t *w, int out_c, int K, int8_t *dst) {
  static const int order[4] = {0, 2, 1, 3}; /* input channel of each byte pair within a group's 8 bytes */
  size_t n = 0;
  for (int q = 0; q < out_c; q += 2)
    for (int g = 0; g < K; g += 4)
      for (int j = 0; j < 4; j++)
        for (int c = 0; c < 2; c++) dst[n++] = w[(q + c) * K + g + order[j]];
}

static int run_trial(int trial) {
  static int8_t weights[MAX_OC * MAX_IC], arranged[MAX_OC * MAX_IC];
  static int32_t bias[MAX_OC], bias_raw[MAX_OC], mult[MAX_OC];
  static int8_t shift[MAX_OC];
  eng_conv_t p;
  memset(&p, 0, sizeof p);
  p.in_h = p.out_h = (uint16_t)rnd_in(1, 9);
  p.in_w = p.out_w = (uint16_t)rnd_in(1, 9);
  p.in_c = (uint16_t)(4 * rnd_in(1, MAX_IC / 4));
  p.out_c = (uint16_t)(2 * rnd_in(1, MAX_OC / 2));
  p.k_h = p.k_w = p.stride_h = p.stride_w = p.dil_h = p.dil_w = 1;
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-128, 127);
  const int sat = trial % 2 == 0;
  p.act_min = sat ? -128 : rnd_in(-128, 0);
  p.act_max = sat ? 127 : rnd_in(p.act_min, 127);
  const int K = p.in_c;
  for (int i = 0; i < p.out_c * K; i++) weights[i] = (int8_t)rnd_in(-127, 127);
  for (int c = 0; c < p.out_c; c++) {
    mult[c] = (int32_t)((1u << 30) + (rnd() % (1u << 30)));
    shift[c] = (int8_t)(rnd_in(0, 3) ? rnd_in(-12, -1) : rnd_in(-22, -13));
    bias_raw[c] = rnd_in(-60000, 60000);
    int32_t sum = 0;
    for (int k = 0; k < K; k++) sum += weights[c * K + k];
    bias[c] = (int32_t)((uint32_t)bias_raw[c] - (uint32_t)(p.in_zp * sum)); /* codegen's fold, mod 2^32 */
  }
  pair_layout(weights, p.out_c, K, arranged);
  p.weights = arranged;
  p.bias = bias;
  p.mult = mult;
  p.shift = shift;
  int8_t *in, *want;
  size_t in_bytes, out_bytes;
  ref_pointwise_case(&p, K, weights, bias_raw, mult, shift, &in, &in_bytes, &want, &out_bytes);
  const int failed =
      check_conv_kernel(sat ? eng_pw_4x2_sat : eng_pw_4x2_clamp, sat ? "eng_pw_4x2_sat" : "eng_pw_4x2_clamp", &p, in,
                        in_bytes, want, out_bytes, ENG_PW_4X2_SCRATCH_BYTES(p.in_c), rnd_in(0, 1), trial);
  free(in);
  free(want);
  return failed;
}

int main(void) {
  int cases = 0;
  for (int trial = 0; trial < 2000; trial++) {
    if (run_trial(trial)) return 1;
    cases++;
  }
  printf("pw_4x2: %d random cases match the reference\n", cases);
  return 0;
}
