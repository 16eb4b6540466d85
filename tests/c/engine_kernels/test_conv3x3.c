/* eng_conv3x3_c1_* / eng_conv3x3_c3_* (engine_conv3x3_first.c: a 3x3 first layer with 1 or 3 input channels,
 * 2 pixels x 2 channels per pass, every border, stride and odd width; portable, or the DSP path with
 * -DENG_EMULATE_DSP) against a plain loop of TFLite's ConvPerChannel. The constants are put in engine.h's
 * first-layer layout here, from its description, as the code generator does: pair words of doubled weights,
 * the doubled folded bias, records (m, rz, r). Shifts cover the whole folded range [-22, -1], mostly where outputs
 * do not saturate (a pixel computed from the wrong window must show); rows down to one
 * pixel (fused chains call one-row views); the kernel takes no scratch (NULL). */
#include "kernel_ref.h"

enum { MAX_OC = 32, MAX_WORDS = 14 };

/* engine.h: each pair word's taps as indices into a channel's [3][3][in_c] weights, -1 for a zero lane. */
static const int TAPS_C1[5][2] = {{0, 2}, {3, 5}, {6, 8}, {1, 4}, {7, -1}};
static const int TAPS_C3[14][2] = {{0, 2},   {1, 3},   {4, 6},   {5, 7},   {9, 11},  {10, 12}, {13, 15},
                                   {14, 16}, {18, 20}, {19, 21}, {22, 24}, {23, 25}, {8, 17},  {26, -1}};

static void first_layer_layout(const int8_t *w, int out_c, int in_c, int8_t *dst) {
  const int (*taps)[2] = in_c == 1 ? TAPS_C1 : TAPS_C3;
  const int K = in_c == 1 ? 5 : 14, per = 9 * in_c;
  size_t n = 0;
  for (int q = 0; q < out_c; q += 2)
    for (int j = 0; j < K; j++)
      for (int c = 0; c < 2; c++)
        for (int lane = 0; lane < 2; lane++) {
          const int t = taps[j][lane];
          const int16_t v = (int16_t)(t < 0 ? 0 : 2 * w[(q + c) * per + t]);
          dst[n++] = (int8_t)(uint8_t)((uint16_t)v & 0xFF);
          dst[n++] = (int8_t)(uint8_t)((uint16_t)v >> 8);
        }
}

static int run_trial(int trial) {
  static int8_t weights[MAX_OC * 27], arranged[MAX_OC * MAX_WORDS * 4] ENG_ALIGNED(8);
  static int32_t bias2[MAX_OC] ENG_ALIGNED(8), bias_raw[MAX_OC], mult[MAX_OC], rec[3 * MAX_OC] ENG_ALIGNED(8);
  static int8_t shift[MAX_OC];
  eng_conv_t p;
  memset(&p, 0, sizeof p);
  p.in_c = (uint16_t)(trial % 2 ? 3 : 1);
  p.in_h = (uint16_t)rnd_in(1, 13);
  p.in_w = (uint16_t)rnd_in(1, 13);
  p.out_c = (uint16_t)(2 * rnd_in(1, MAX_OC / 2));
  p.k_h = p.k_w = 3;
  p.dil_h = p.dil_w = 1;
  p.stride_h = (uint8_t)rnd_in(1, 3);
  p.stride_w = (uint8_t)rnd_in(1, 3);
  const int same = rnd_in(0, 1);
  if (!window_axis(p.in_h, 3, p.stride_h, 1, same, &p.out_h, &p.pad_top) ||
      !window_axis(p.in_w, 3, p.stride_w, 1, same, &p.out_w, &p.pad_left))
    return 0;
  if (rnd_in(0, 3) == 0) { /* a fused chain's one-row view: window rows above the image as pad_top */
    p.out_h = 1;
    p.pad_top = (uint8_t)rnd_in(0, p.in_h < 3 ? 3 - p.in_h : 1);
  }
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-128, 127);
  const int sat = trial % 4 < 2;
  p.act_min = sat ? -128 : rnd_in(-128, 0);
  p.act_max = sat ? 127 : rnd_in(p.act_min, 127);
  const int per = 9 * p.in_c;
  for (int i = 0; i < p.out_c * per; i++) weights[i] = (int8_t)rnd_in(-128, 127);
  for (int c = 0; c < p.out_c; c++) {
    mult[c] = (int32_t)((1u << 30) + (rnd() % (1u << 30)));
    /* mostly scales that keep the outputs inside int8 (random 3x3 sums reach about 2^16), also the whole range */
    shift[c] = (int8_t)(rnd_in(0, 3) ? rnd_in(-15, -9) : rnd_in(-22, -1));
    bias_raw[c] = rnd_in(-60000, 60000);
    int32_t sum = 0;
    for (int k = 0; k < per; k++) sum += weights[c * per + k];
    bias2[c] = 2 * (bias_raw[c] - p.in_zp * sum); /* codegen's fold, doubled */
    const int r = -shift[c];
    rec[3 * c] = mult[c];
    rec[3 * c + 1] = (int32_t)(1u << (r - 1)) + p.out_zp * (int32_t)(1u << r);
    rec[3 * c + 2] = r;
  }
  first_layer_layout(weights, p.out_c, p.in_c, arranged);
  p.weights = arranged;
  p.bias = bias2;
  p.mult = rec;
  p.shift = shift;
  const size_t in_bytes = (size_t)p.in_h * p.in_w * p.in_c, out_bytes = (size_t)p.out_h * p.out_w * p.out_c;
  int8_t *in = malloc(in_bytes), *want = malloc(out_bytes);
  for (size_t i = 0; i < in_bytes; i++) in[i] = rnd_s8();
  for (int oy = 0; oy < p.out_h; oy++)
    for (int ox = 0; ox < p.out_w; ox++)
      for (int oc = 0; oc < p.out_c; oc++) {
        uint32_t acc = (uint32_t)bias_raw[oc];
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int iy = oy * p.stride_h - p.pad_top + ky, ix = ox * p.stride_w - p.pad_left + kx;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
            for (int ic = 0; ic < p.in_c; ic++)
              acc += (uint32_t)(weights[oc * per + (ky * 3 + kx) * p.in_c + ic] *
                                (in[((size_t)iy * p.in_w + ix) * p.in_c + ic] - p.in_zp));
          }
        const int32_t v = ref_mbqm((int32_t)acc, mult[oc], shift[oc]);
        want[((size_t)oy * p.out_w + ox) * p.out_c + oc] = (int8_t)clamp32(v + p.out_zp, p.act_min, p.act_max);
      }
  void (*kernel)(const eng_conv_t *, const int8_t *, int8_t *, void *) =
      p.in_c == 1 ? (sat ? eng_conv3x3_c1_sat : eng_conv3x3_c1_clamp)
                  : (sat ? eng_conv3x3_c3_sat : eng_conv3x3_c3_clamp);
  int8_t *out = malloc(out_bytes);
  kernel(&p, in, out, NULL);
  int failed = 0;
  for (size_t i = 0; i < out_bytes && !failed; i++)
    if (out[i] != want[i])
      failed = report(p.in_c == 1 ? "eng_conv3x3_c1" : "eng_conv3x3_c3", trial, i, out[i], want[i]);
  free(out);
  free(in);
  free(want);
  return failed;
}

int main(void) {
  int cases = 0;
  for (int trial = 0; trial < 3000; trial++) {
    if (run_trial(trial)) return 1;
    cases++;
  }
  printf("conv3x3 first layer: %d random cases match the reference\n", cases);
  return 0;
}
