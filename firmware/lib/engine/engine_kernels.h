/* Kernel variants the engine's dispatchers choose between (private to firmware/lib/engine). Each lives
 * in its own file; a variant that needs scratch states its size here, next to its declaration. */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include "engine.h"
#include "engine_simd.h"

/* First and one-past-last output column whose input span [x0, x0 + k - 1] (x0 = ox * stride - pad) lies
 * inside an input row of in_w pixels; lo == hi when none does. The row kernels below take such spans. */
static inline void eng_inside_columns(int out_w, int in_w, int k, int stride, int pad, int *lo, int *hi) {
  int a = (pad + stride - 1) / stride;
  int b = in_w >= k ? (in_w - k + pad) / stride + 1 : 0;
  if (b > out_w) b = out_w;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* Scratch of eng_dw3x3_b3_dsp below: the zero-point row its padding rows read. Defined in every build so
 * that the code generator (tinyml/codegen/kernel_abi.py) reads one size rule whatever the target. */
#define ENG_DW3X3_B3_SCRATCH_BYTES(out_c) ((uint32_t)(out_c))

/* Scratch of eng_pw_4x2_sat / eng_pw_4x2_clamp (engine.h, engine_pw_4x2_dsp.c): 4 pixels widened to int16. */
#define ENG_PW_4X2_SCRATCH_BYTES(in_c) (8u * (uint32_t)(in_c))

#if ENG_DSP
/* DEPTHWISE_CONV_2D, depth multiplier 1, 3x3, no dilation, horizontal stride 1 or 2, out_w >= 3, a folded
 * requantisation mode (RQ_FOLD_SAT or RQ_FOLD), at most one padding column left (pad_left <= 1) and right
 * ((out_w - 1) * stride_w - pad_left + 2 <= in_w) (engine_dw3x3_b3_dsp.c): the whole layer, borders included,
 * 3 output pixels x 2 channels per pass so that neighbouring pixels share their input column loads. Scratch:
 * ENG_DW3X3_B3_SCRATCH_BYTES(out_c), the zero-point row that padding rows read (within
 * ENG_DWCONV_SCRATCH_BYTES, the size eng_dwconv2d_s8, its dispatcher, is given). */
void eng_dw3x3_b3_dsp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *zp_row, int mode);

/* The first-layer kernels keep every output channel's folded requantisation constants (engine_requant.h)
 * on the stack, 12 bytes each; wider layers take the im2col path. mode: RQ_FOLD_SAT, RQ_FOLD or RQ_EXACT. */
#define ENG_FIRST_LAYER_MAX_OC 32

/* CONV_2D with one input channel and a 3x3 kernel, no dilation, any stride (engine_conv3x3_c1_dsp.c: a
 * grayscale first layer): output row oy, pixels [ox0, ox1), whose windows plus one byte to the right must lie
 * inside the input (each kernel row is read as one 32-bit word). No im2col: the three row words are split
 * by SXTB16 once per pixel and every output channel's weights are read straight from codegen's
 * [out_c][3][3] array. Needs no scratch. */
void eng_conv3x3_c1_row_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode);

/* The same with 3 input channels (engine_conv3x3_c3_dsp.c: an RGB first layer); each kernel row is read as
 * three words, so the windows plus one pixel to the right must lie inside the input. Needs no scratch
 * (the pixel's 15 widened words live on the stack). */
void eng_conv3x3_c3_row_dsp(const eng_conv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode);

/* ADD, DSP path (engine_add_dsp.c); returns 0, doing nothing, when a shift is outside what it handles
 * exactly (an input shift > 0, an output shift outside [-22, -1]): the caller then runs the portable loop. */
int eng_add_dsp(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
#endif

#endif /* ENGINE_KERNELS_H */
