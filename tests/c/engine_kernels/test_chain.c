/* eng_chain_run (engine_chain.c) against the same layers run layer by layer: random chains of 2-4
 * convolution-type layers (3x3/1x1/5x5 convolutions with strides 1-2, SAME and VALID padding, the 4-pixel x
 * 2-channel pointwise kernels, depthwise with strides and dilations, the wide exact kernels) with
 * random row-buffer capacities from the consumer's window to the whole tensor, so the rows-moved-to-the-front path, the
 * skipped rows of a stride beyond the window and the top/bottom padding of each row view are all reached.
 * The row buffers and scratch are malloc'd at exactly the sizes the chain needs, so an overrun is an ASan
 * error. Every output byte must equal the layer-by-layer one (whose kernels test_conv.c / test_dwconv.c check
 * against the reference arithmetic). */
#include "engine_chain.h"
#include "engine_kernels.h"
#include "engine_wide.h"
#include "kernel_ref.h"

typedef struct {
  int kind, h, w, c; /* output shape */
  eng_conv_kernel_t fn; /* ENG_STAGE_CONV: the kernel */
  eng_conv_t conv;
  eng_dwconv_t dw;
  int8_t *weights, *shift;
  int32_t *bias, *mult;
  uint32_t scratch;
} layer_t;

static int out_size(int in, int k, int s, int dil, int same) {
  const int span = (k - 1) * dil + 1;
  return same ? (in + s - 1) / s : (in - span) / s + 1;
}

static int pad_for(int in, int out, int k, int s, int dil) {
  const int total = (out - 1) * s + (k - 1) * dil + 1 - in;
  return total > 0 ? total / 2 : 0;
}

/* A random layer reading an in_h x in_w x in_c tensor; 0 when the shape leaves no output row. */
static int random_layer(layer_t *L, int in_h, int in_w, int in_c) {
  const int pick = rnd_in(0, 9);
  const int dw = pick >= 6, wide = pick == 5 || pick == 9;
  const int pw4 = (pick == 3 || pick == 4) && in_c % 4 == 0, pointwise = pw4;
  const int k = pointwise ? 1 : (dw ? (rnd_in(0, 3) ? 3 : 5) : (rnd_in(0, 1) ? 1 : 3));
  const int s = pointwise ? 1 : rnd_in(1, 2), dil = dw && rnd_in(0, 4) == 0 ? 2 : 1;
  const int same = pointwise ? 0 : rnd_in(0, 3) != 0;
  const int oh = out_size(in_h, k, s, dil, same), ow = out_size(in_w, k, s, dil, same);
  if (oh < 1 || ow < 1) return 0;
  const int oc = dw ? in_c : (pw4 ? 2 * rnd_in(1, 10) : rnd_in(1, 12));
  const int taps = k * k, per = dw ? taps : taps * in_c, nw = dw ? taps * oc : oc * per;
  L->weights = malloc((size_t)nw);
  for (int i = 0; i < nw; i++) L->weights[i] = (int8_t)rnd_in(-40, 40);
  L->bias = malloc(sizeof(int32_t) * (size_t)oc);
  L->mult = malloc(sizeof(int32_t) * (size_t)oc);
  L->shift = malloc((size_t)oc);
  for (int c = 0; c < oc; c++) {
    L->bias[c] = rnd_in(-3000, 3000);
    L->mult[c] = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu));
    L->shift[c] = (int8_t)rnd_in(-10, -5);
  }
  const int8_t in_zp = (int8_t)rnd_in(-20, 20);
  const int32_t out_zp = rnd_in(-20, 20), lo = rnd_in(0, 1) ? -128 : out_zp, hi = pw4 && rnd_in(0, 1) ? 100 : 127;
  L->h = oh;
  L->w = ow;
  L->c = oc;
  if (dw) {
    L->kind = wide ? ENG_STAGE_DW_WIDE : ENG_STAGE_DW;
    L->dw = (eng_dwconv_t){.in_h = in_h,
                           .in_w = in_w,
                           .in_c = in_c,
                           .out_h = oh,
                           .out_w = ow,
                           .out_c = oc,
                           .k_h = k,
                           .k_w = k,
                           .stride_h = s,
                           .stride_w = s,
                           .dil_h = dil,
                           .dil_w = dil,
                           .pad_top = same ? pad_for(in_h, oh, k, s, dil) : 0,
                           .pad_left = same ? pad_for(in_w, ow, k, s, dil) : 0,
                           .depth_mult = 1,
                           .in_zp = in_zp,
                           .out_zp = out_zp,
                           .act_min = lo,
                           .act_max = 127,
                           .weights = L->weights,
                           .bias = L->bias,
                           .mult = L->mult,
                           .shift = L->shift};
    L->scratch = wide ? 0 : ENG_DWCONV_SCRATCH_BYTES(oc);
  } else {
    L->kind = ENG_STAGE_CONV;
    L->fn = wide ? eng_conv2d_s8_wide
                 : (pw4 ? (lo == -128 && hi == 127 ? eng_pw_4x2_sat : eng_pw_4x2_clamp) : eng_conv2d_s8);
    L->conv = (eng_conv_t){.in_h = in_h,
                           .in_w = in_w,
                           .in_c = in_c,
                           .out_h = oh,
                           .out_w = ow,
                           .out_c = oc,
                           .k_h = k,
                           .k_w = k,
                           .stride_h = s,
                           .stride_w = s,
                           .dil_h = 1,
                           .dil_w = 1,
                           .pad_top = same ? pad_for(in_h, oh, k, s, 1) : 0,
                           .pad_left = same ? pad_for(in_w, ow, k, s, 1) : 0,
                           .in_place = 0,
                           .single_round = 0,
                           .in_zp = in_zp,
                           .out_zp = out_zp,
                           .act_min = lo,
                           .act_max = hi,
                           .weights = L->weights,
                           .bias = L->bias,
                           .mult = L->mult,
                           .shift = L->shift};
    L->scratch = wide ? ENG_CONV_WIDE_SCRATCH_BYTES(k, k, in_c)
                      : (pw4 ? ENG_PW_4X2_SCRATCH_BYTES(in_c) : ENG_CONV_SCRATCH_BYTES(k, k, in_c));
  }
  return 1;
}

static void run_layer(const layer_t *L, const int8_t *in, int8_t *out, void *scratch) {
  switch (L->kind) {
    case ENG_STAGE_CONV: L->fn(&L->conv, in, out, scratch); break;
    case ENG_STAGE_DW: eng_dwconv2d_s8(&L->dw, in, out, scratch); break;
    default: eng_dwconv2d_s8_wide(&L->dw, in, out); break;
  }
}

static int window_rows(const layer_t *L) {
  const int k = L->kind >= ENG_STAGE_DW ? L->dw.k_h : L->conv.k_h;
  const int dil = L->kind >= ENG_STAGE_DW ? L->dw.dil_h : L->conv.dil_h;
  return (k - 1) * dil + 1;
}

static int check_chain(int case_no) {
  layer_t L[4];
  const int want = rnd_in(2, 4);
  int n = 0, h = rnd_in(3, 20), w = rnd_in(3, 16), c = rnd_in(0, 2) ? 8 : rnd_in(1, 12);
  const int in_h = h, in_w = w, in_c = c;
  while (n < want && random_layer(&L[n], h, w, c)) {
    h = L[n].h;
    w = L[n].w;
    c = L[n].c;
    n++;
  }
  if (n < 2) {
    for (int i = 0; i < n; i++) free(L[i].weights), free(L[i].bias), free(L[i].mult), free(L[i].shift);
    return 0;
  }
  uint32_t scratch_bytes = 1, bufs_bytes = 1;
  eng_stage_t stages[4];
  for (int i = 0; i < n; i++) {
    if (L[i].scratch > scratch_bytes) scratch_bytes = L[i].scratch;
    stages[i] = (eng_stage_t){.kind = (uint8_t)L[i].kind,
                              .layer = L[i].kind >= ENG_STAGE_DW ? (const void *)&L[i].dw : (const void *)&L[i].conv,
                              .conv = L[i].fn,
                              .buf_offset = 0,
                              .rows = 0};
  }
  for (int i = 0; i + 1 < n; i++) { /* capacity: the consumer's window .. the whole tensor */
    const int lo = window_rows(&L[i + 1]) < L[i].h ? window_rows(&L[i + 1]) : L[i].h;
    stages[i].rows = (uint16_t)rnd_in(lo, L[i].h);
    stages[i].buf_offset = bufs_bytes - 1;
    bufs_bytes += (uint32_t)stages[i].rows * (uint32_t)(L[i].w * L[i].c);
  }
  const size_t in_n = (size_t)in_h * in_w * in_c, out_n = (size_t)h * w * c;
  int8_t *in = malloc(in_n), *got = malloc(out_n), *bufs = malloc(bufs_bytes - 1 ? bufs_bytes - 1 : 1);
  void *scratch = malloc(scratch_bytes);
  for (size_t i = 0; i < in_n; i++) in[i] = rnd_s8();
  const eng_chain_t chain = {.n = (uint8_t)n, .stages = stages};
  eng_chain_run(&chain, in, got, bufs, scratch);
  /* layer by layer */
  const int8_t *src = in;
  int8_t *tensors[4];
  for (int i = 0; i < n; i++) {
    tensors[i] = malloc((size_t)L[i].h * L[i].w * L[i].c);
    run_layer(&L[i], src, tensors[i], scratch);
    src = tensors[i];
  }
  int bad = memcmp(got, tensors[n - 1], out_n) != 0;
  if (bad) {
    printf("case %d: chain of %d on %dx%dx%d differs:", case_no, n, in_h, in_w, in_c);
    for (int i = 0; i < n; i++)
      printf(" [kind %d -> %dx%dx%d, rows %d]", L[i].kind, L[i].h, L[i].w, L[i].c, stages[i].rows);
    printf("\n");
  }
  for (int i = 0; i < n; i++) free(tensors[i]), free(L[i].weights), free(L[i].bias), free(L[i].mult), free(L[i].shift);
  free(in);
  free(got);
  free(bufs);
  free(scratch);
  return bad;
}

int main(void) {
  int failed = 0;
  const int cases = 1500;
  for (int i = 0; i < cases; i++) failed += check_chain(i);
  if (failed) {
    printf("chain: %d of %d cases differ\n", failed, cases);
    return 1;
  }
  printf("chain: %d random chains match the reference (their layers run layer by layer)\n", cases);
  return 0;
}
