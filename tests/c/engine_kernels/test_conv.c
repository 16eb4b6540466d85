/* eng_conv2d_s8 (portable, or the DSP paths with -DENG_EMULATE_DSP: 2-pixel blocks, the 1-pixel tail, the three
 * requantisation modes, single rounding, pointwise in place) and eng_conv2d_s8_wide (any accumulator) against
 * a plain loop of TFLite's ConvPerChannel. Scratch is malloc'd at exactly the header's macro size, so ASan
 * catches a kernel that needs more than its ENG_*_SCRATCH_BYTES says. */
#include "engine_wide.h"
#include "kernel_ref.h"

static int run_trial(int trial, int wide) {
  static int8_t weights[64 * 5 * 5 * 24];
  static int32_t bias[64], bias_raw[64], mult[64];
  static int8_t shift[64];
  eng_conv_t p;
  memset(&p, 0, sizeof p);
  const int pointwise = rnd_in(0, 2) == 0;
  p.in_h = (uint16_t)rnd_in(1, 9);
  p.in_w = (uint16_t)rnd_in(1, 9);
  p.in_c = (uint16_t)rnd_in(1, 24);
  p.out_c = (uint16_t)rnd_in(1, 33);
  p.k_h = (uint8_t)(pointwise ? 1 : rnd_in(1, 5));
  p.k_w = (uint8_t)(pointwise ? 1 : rnd_in(1, 5));
  p.stride_h = p.stride_w = (uint8_t)(pointwise ? 1 : rnd_in(1, 3));
  p.dil_h = p.dil_w = (uint8_t)(pointwise || p.stride_h > 1 ? 1 : rnd_in(1, 2));
  const int same = pointwise || rnd_in(0, 1);
  if (!window_axis(p.in_h, p.k_h, p.stride_h, p.dil_h, same, &p.out_h, &p.pad_top) ||
      !window_axis(p.in_w, p.k_w, p.stride_w, p.dil_w, same, &p.out_w, &p.pad_left))
    return 0;
  p.single_round = (uint8_t)(rnd_in(0, 4) == 0);
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-100, 100);
  rnd_requant(p.out_c, trial % MODES, mult, shift, &p.act_min, &p.act_max);
  const int K = p.k_h * p.k_w * p.in_c;
  for (int i = 0; i < p.out_c * K; i++) weights[i] = (int8_t)rnd_in(-127, 127);
  for (int c = 0; c < p.out_c; c++) {
    bias_raw[c] = rnd_in(-60000, 60000);
    if (wide && rnd_in(0, 2) == 0) bias_raw[c] = (rnd_in(0, 1) ? 1 : -1) * ((1 << 30) + rnd_in(-70000, 70000));
    int32_t sum = 0;
    for (int k = 0; k < K; k++) sum += weights[c * K + k];
    bias[c] = (int32_t)((uint32_t)bias_raw[c] - (uint32_t)(p.in_zp * sum)); /* codegen's fold, mod 2^32 */
  }
  p.weights = weights;
  p.bias = bias;
  p.mult = mult;
  p.shift = shift;
  const size_t in_bytes = (size_t)p.in_h * p.in_w * p.in_c, npix = (size_t)p.out_h * p.out_w;
  const size_t out_bytes = npix * p.out_c;
  int8_t *in = malloc(in_bytes), *want = malloc(out_bytes);
  for (size_t i = 0; i < in_bytes; i++) in[i] = rnd_s8();
  /* the reference: ConvPerChannel with taps outside the image skipped */
  for (int oy = 0; oy < p.out_h; oy++)
    for (int ox = 0; ox < p.out_w; ox++)
      for (int oc = 0; oc < p.out_c; oc++) {
        uint32_t acc = (uint32_t)bias_raw[oc];
        for (int ky = 0; ky < p.k_h; ky++)
          for (int kx = 0; kx < p.k_w; kx++) {
            const int iy = oy * p.stride_h - p.pad_top + ky * p.dil_h, ix = ox * p.stride_w - p.pad_left + kx * p.dil_w;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
            for (int ic = 0; ic < p.in_c; ic++)
              acc += (uint32_t)(weights[((oc * p.k_h + ky) * p.k_w + kx) * p.in_c + ic] *
                                (in[((size_t)iy * p.in_w + ix) * p.in_c + ic] - p.in_zp));
          }
        const int32_t v = p.single_round ? ref_mbqm_single((int32_t)acc, mult[oc], shift[oc])
                                         : ref_mbqm((int32_t)acc, mult[oc], shift[oc]);
        want[((size_t)oy * p.out_w + ox) * p.out_c + oc] = (int8_t)clamp32(v + p.out_zp, p.act_min, p.act_max);
      }
  const size_t scratch_bytes =
      wide ? ENG_CONV_WIDE_SCRATCH_BYTES(p.k_h, p.k_w, p.in_c) : ENG_CONV_SCRATCH_BYTES(p.k_h, p.k_w, p.in_c);
  /* in place: pointwise only (a 1x1 stride-1 conv reads pixel p before writing it) */
  const int in_place = pointwise && rnd_in(0, 1);
  const int failed =
      check_conv_kernel(wide ? eng_conv2d_s8_wide : eng_conv2d_s8, wide ? "eng_conv2d_s8_wide" : "eng_conv2d_s8", &p,
                        in, in_bytes, want, out_bytes, scratch_bytes, in_place, trial);
  free(in);
  free(want);
  return failed;
}

int main(void) {
  int cases = 0;
  for (int trial = 0; trial < 1500; trial++) {
    if (run_trial(trial, trial % 4 == 3)) return 1;
    cases++;
  }
  printf("conv: %d random cases match the reference\n", cases);
  return 0;
}
