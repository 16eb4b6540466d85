/* Kernel variants the engine's dispatchers choose between (private to firmware/lib/engine). Each lives
 * in its own file; a variant that needs scratch states its size here, next to its declaration. */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include "engine.h"
#include "engine_simd.h"

/* Scratch of eng_pw_4x2_sat / eng_pw_4x2_clamp (engine.h, engine_pw_4x2_dsp.c): 4 pixels widened to int16. */
#define ENG_PW_4X2_SCRATCH_BYTES(in_c) (8u * (uint32_t)(in_c))

#if ENG_DSP
/* ADD, DSP path (engine_add_dsp.c); returns 0, doing nothing, when a shift is outside what it handles
 * exactly (an input shift > 0, an output shift outside [-22, -1]): the caller then runs the portable loop. */
int eng_add_dsp(const eng_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
#endif

/* --- depthwise 3x3 (engine_dw3x3_p3_dsp.c, issue #10) --- */
/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, no dilation, horizontal stride 1 or 2, every shift in
 * [-RQ_FOLD_MAX_R, -1] and accumulators below 2^30 (codegen, tinyml/codegen/ops/depthwise.py, calls it only
 * then): the whole layer, borders included, 3 output pixels x 2 channels per pass. Scratch:
 * ENG_DW3X3_SCRATCH_BYTES(in_w, out_c): the DSP kernel's column buffer (12 bytes per input column of one
 * 4-channel group, padding columns included), a group's packed weights and requantisation constants (120
 * bytes) and word alignment; or the portable build's fallback
 * (eng_dwconv2d_s8's per-pixel path: a zero-point row of out_c bytes). Defined in every build so that
 * tinyml/codegen/kernel_abi.py reads one size rule whatever the target. */
#define ENG_DW3X3_SCRATCH_BYTES(in_w, out_c) (12u * ((uint32_t)(in_w) + 10u) + 124u + (uint32_t)(out_c))
void eng_dwconv2d_s8_3x3(const eng_dwconv_t *p, const int8_t *in, int8_t *out, void *scratch);
/* --- end depthwise 3x3 --- */

#endif /* ENGINE_KERNELS_H */
