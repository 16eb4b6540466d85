/* eng_dwconv2d_s8_3x3 (engine_dw3x3_p3_dsp.c: 3 pixels x 2 channels per pass over a column buffer with the
 * padding written in, overlapping last blocks, rows narrower than 3 pixels, padding rows, the C % 4 tail channels,
 * strides 1 and 2 across and 1-3 down, SAME and VALID, the whole int8 range and narrower activation ranges, shifts over
 * the whole folded range) against a plain loop of TFLite's DepthwiseConvPerChannel; then a random one-row view of the
 * layer, as the fused chains call it (engine_chain.c: out_h 1, in_h the window rows that exist, pad_top the rows above
 * the image), against the same row of the whole output. Scratch is malloc'd at exactly ENG_DW3X3_SCRATCH_BYTES, so an
 * overrun is an ASan error. Weights and inputs span the whole int8 range (every eighth trial only its extremes): the
 * DSP pass pairs kernel rows 0 and 1 of a channel in one SMLAD. */
#include "engine_kernels.h"
#include "kernel_ref.h"

#define MAX_C 40

static int run_trial(int trial) {
  static int8_t w_plain[9 * MAX_C], w_kernel[9 * MAX_C];
  static int32_t bias[MAX_C], bias_raw[MAX_C], mult[MAX_C];
  static int8_t shift[MAX_C];
  eng_dwconv_t p;
  memset(&p, 0, sizeof p);
  p.depth_mult = 1;
  p.in_c = p.out_c = (uint16_t)(rnd_in(0, 3) ? 4 * rnd_in(1, MAX_C / 4) : rnd_in(1, MAX_C));
  p.in_h = (uint16_t)rnd_in(1, 14);
  p.in_w = (uint16_t)rnd_in(1, 20);
  p.k_h = p.k_w = 3;
  p.stride_w = (uint8_t)rnd_in(1, 2);
  p.stride_h = (uint8_t)rnd_in(1, 3);
  p.dil_h = p.dil_w = 1;
  const int same = rnd_in(0, 3) != 0;
  if (!window_axis(p.in_h, 3, p.stride_h, 1, same, &p.out_h, &p.pad_top) ||
      !window_axis(p.in_w, 3, p.stride_w, 1, same, &p.out_w, &p.pad_left))
    return 0;
  p.in_zp = rnd_s8();
  p.out_zp = rnd_in(-100, 100);
  rnd_requant(p.out_c, trial % 2 ? MODE_SAT : MODE_SMMULR, mult, shift, &p.act_min, &p.act_max);
  const int C = p.out_c;
  for (int c = 0; c < C; c++)
    if (rnd_in(0, 7) == 0) shift[c] = (int8_t)rnd_in(-22, -15); /* the folded range's far end */
  /* every eighth trial only the int8 extremes, in weights and inputs: the pass multiplies the SXTB16 lanes of
   * kernel rows 0 and 1 packed by PKHBT/PKHTB with SMLAD, so sign extension and lane order show there */
  const int extreme = trial % 8 == 3;
  for (int i = 0; i < 9 * C; i++)
    w_plain[i] = (int8_t)(extreme ? (rnd_in(0, 1) ? -128 : 127) : rnd_s8()); /* [3][3][out_c] */
  for (int c = 0; c < C; c++) {
    bias_raw[c] = rnd_in(-60000, 60000);
    int32_t sum = 0;
    for (int t = 0; t < 9; t++) sum += w_plain[t * C + c];
    bias[c] = (int32_t)((uint32_t)bias_raw[c] - (uint32_t)(p.in_zp * sum));
  }
  /* codegen's layout (engine.h, eng_dwconv_t): groups of 4 channels, taps consecutive; then the last C % 4 */
  const int c4 = C - C % 4;
  int n = 0;
  for (int g = 0; g < c4 / 4; g++)
    for (int t = 0; t < 9; t++)
      for (int j = 0; j < 4; j++) w_kernel[n++] = w_plain[t * C + 4 * g + j];
  for (int t = 0; t < 9; t++)
    for (int c = c4; c < C; c++) w_kernel[n++] = w_plain[t * C + c];
  p.weights = w_kernel;
  p.bias = bias;
  p.mult = mult;
  p.shift = shift;
  const size_t in_bytes = (size_t)p.in_h * p.in_w * C, row_bytes = (size_t)p.out_w * C;
  const size_t out_bytes = (size_t)p.out_h * row_bytes;
  int8_t *in = malloc(in_bytes), *want = malloc(out_bytes), *out = malloc(out_bytes), *row = malloc(row_bytes);
  for (size_t i = 0; i < in_bytes; i++) in[i] = (int8_t)(extreme ? (rnd_in(0, 1) ? -128 : 127) : rnd_s8());
  for (int oy = 0; oy < p.out_h; oy++)
    for (int ox = 0; ox < p.out_w; ox++)
      for (int oc = 0; oc < C; oc++) {
        uint32_t acc = (uint32_t)bias_raw[oc];
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int iy = oy * p.stride_h - p.pad_top + ky, ix = ox * p.stride_w - p.pad_left + kx;
            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
            const int x = in[((size_t)iy * p.in_w + ix) * C + oc];
            acc += (uint32_t)(w_plain[(ky * 3 + kx) * C + oc] * (x - p.in_zp));
          }
        const int32_t v = ref_mbqm((int32_t)acc, mult[oc], shift[oc]);
        want[((size_t)oy * p.out_w + ox) * C + oc] = (int8_t)clamp32(v + p.out_zp, p.act_min, p.act_max);
      }
  void *scratch = malloc(ENG_DW3X3_SCRATCH_BYTES(p.in_w, C));
  eng_dwconv2d_s8_3x3(&p, in, out, scratch);
  int failed = 0;
  for (size_t i = 0; i < out_bytes && !failed; i++)
    if (out[i] != want[i]) failed = report("eng_dwconv2d_s8_3x3", trial, i, out[i], want[i]);
  /* one output row through a one-row view, as eng_chain_run's stage_row builds it */
  const int j = rnd_in(0, p.out_h - 1), y0 = j * p.stride_h - p.pad_top;
  const int lo = y0 < 0 ? 0 : y0, hi = y0 + 2 < p.in_h - 1 ? y0 + 2 : p.in_h - 1;
  if (!failed && hi >= lo) {
    eng_dwconv_t v = p;
    v.in_h = (uint16_t)(hi - lo + 1);
    v.out_h = 1;
    v.pad_top = (uint8_t)(lo - y0);
    eng_dwconv2d_s8_3x3(&v, in + (size_t)lo * p.in_w * C, row, scratch);
    for (size_t i = 0; i < row_bytes && !failed; i++)
      if (row[i] != want[(size_t)j * row_bytes + i])
        failed = report("eng_dwconv2d_s8_3x3 row view", trial, i, row[i], want[(size_t)j * row_bytes + i]);
  }
  free(scratch);
  free(in);
  free(out);
  free(row);
  free(want);
  return failed;
}

int main(void) {
  for (int trial = 0; trial < 3000; trial++)
    if (run_trial(trial)) return 1;
  printf("dw3x3: 3000 random cases match the reference\n");
  return 0;
}
