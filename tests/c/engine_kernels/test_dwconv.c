/* eng_dwconv2d_s8 (multiplier 1: the grouped fast path, 3x3 unrolled and other tap counts, windows inside and
 * across the border; multipliers 2-4 and more than 25 taps: the generic path; all requantisation modes) and
 * eng_dwconv2d_s8_wide against a plain loop of TFLite's DepthwiseConvPerChannel. */
#include "engine_wide.h"
#include "kernel_ref.h"

#define MAX_C 40
#define MAX_TAPS 49

static int run_trial(int trial, int wide) {
  static int8_t w_plain[MAX_TAPS * MAX_C], w_kernel[MAX_TAPS * MAX_C];
  static int32_t bias[MAX_C], bias_raw[MAX_C], mult[MAX_C];
  static int8_t shift[MAX_C];
  eng_dwconv_t p;
  memset(&p, 0, sizeof p);
  p.depth_mult = (uint8_t)(rnd_in(0, 2) ? 1 : rnd_in(2, 4));
  p.in_c = (uint16_t)rnd_in(1, MAX_C / p.depth_mult);
  p.out_c = (uint16_t)(p.in_c * p.depth_mult);
  p.in_h = (uint16_t)rnd_in(1, 12);
  p.in_w = (uint16_t)rnd_in(1, 12);
  const int k = rnd_in(0, 1) ? 3 : rnd_in(1, 7);
  p.k_h = (uint8_t)k;
  p.k_w = (uint8_t)(rnd_in(0, 3) ? k : rnd_in(1, 7));
  p.stride_h = p.stride_w = (uint8_t)rnd_in(1, 2);
  p.dil_h = p.dil_w = (uint8_t)(p.stride_h > 1 ? 1 : rnd_in(1, 2));
  const int same = rnd_in(0, 2) != 0;
  if (!window_axis(p.in_h, p.k_h, p.stride_h, p.dil_h, same, &p.out_h, &p.pad_top) ||
      !window_axis(p.in_w, p.k_w, p.stride_w, p.dil_w, same, &p.out_w, &p.pad_left))
    return 0;
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-100, 100);
  rnd_requant(p.out_c, trial % MODES, mult, shift, &p.act_min, &p.act_max);
  const int taps = p.k_h * p.k_w, C = p.out_c;
  for (int i = 0; i < taps * C; i++) w_plain[i] = (int8_t)rnd_in(-127, 127); /* [k_h][k_w][out_c] */
  for (int c = 0; c < C; c++) {
    bias_raw[c] = rnd_in(-60000, 60000);
    if (wide && rnd_in(0, 2) == 0) bias_raw[c] = (rnd_in(0, 1) ? 1 : -1) * ((1 << 30) + rnd_in(-70000, 70000));
    int32_t sum = 0;
    for (int t = 0; t < taps; t++) sum += w_plain[t * C + c];
    bias[c] = (int32_t)((uint32_t)bias_raw[c] - (uint32_t)(p.in_zp * sum));
  }
  /* the fast multiplier-1 kernel's layout: groups of 4 channels, taps consecutive; then the last C % 4 */
  const int c4 = C - C % 4;
  const int grouped = !wide && p.depth_mult == 1 && taps <= ENG_DW_MAX_TAPS;
  int n = 0;
  if (grouped) {
    for (int g = 0; g < c4 / 4; g++)
      for (int t = 0; t < taps; t++)
        for (int j = 0; j < 4; j++) w_kernel[n++] = w_plain[t * C + 4 * g + j];
    for (int t = 0; t < taps; t++)
      for (int c = c4; c < C; c++) w_kernel[n++] = w_plain[t * C + c];
  } else {
    memcpy(w_kernel, w_plain, (size_t)taps * C);
  }
  p.weights = w_kernel;
  p.bias = bias;
  p.mult = mult;
  p.shift = shift;
  const size_t in_bytes = (size_t)p.in_h * p.in_w * p.in_c, out_bytes = (size_t)p.out_h * p.out_w * C;
  int8_t *in = malloc(in_bytes), *want = malloc(out_bytes), *out = malloc(out_bytes);
  for (size_t i = 0; i < in_bytes; i++) in[i] = rnd_s8();
  for (int oy = 0; oy < p.out_h; oy++)
    for (int ox = 0; ox < p.out_w; ox++)
      for (int oc = 0; oc < C; oc++) {
        uint32_t acc = (uint32_t)bias_raw[oc];
        for (int ky = 0; ky < p.k_h; ky++)
          for (int kx = 0; kx < p.k_w; kx++) {
            const int iy = oy * p.stride_h - p.pad_top + ky * p.dil_h, ix = ox * p.stride_w - p.pad_left + kx * p.dil_w;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
            const int x = in[((size_t)iy * p.in_w + ix) * p.in_c + oc / p.depth_mult];
            acc += (uint32_t)(w_plain[(ky * p.k_w + kx) * C + oc] * (x - p.in_zp));
          }
        const int32_t v = ref_mbqm((int32_t)acc, mult[oc], shift[oc]);
        want[((size_t)oy * p.out_w + ox) * C + oc] = (int8_t)clamp32(v + p.out_zp, p.act_min, p.act_max);
      }
  void *scratch = malloc(ENG_DWCONV_SCRATCH_BYTES(C));
  if (wide) {
    eng_dwconv2d_s8_wide(&p, in, out);
  } else {
    eng_dwconv2d_s8(&p, in, out, scratch);
  }
  int failed = 0;
  for (size_t i = 0; i < out_bytes && !failed; i++)
    if (out[i] != want[i])
      failed = report(wide ? "eng_dwconv2d_s8_wide" : "eng_dwconv2d_s8", trial, i, out[i], want[i]);
  free(scratch);
  free(in);
  free(out);
  free(want);
  return failed;
}

int main(void) {
  for (int trial = 0; trial < 1500; trial++)
    if (run_trial(trial, trial % 4 == 3)) return 1;
  printf("dwconv: 1500 random cases match the reference\n");
  return 0;
}
