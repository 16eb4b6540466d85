/* Kernel variants the engine's dispatchers choose between (private to firmware/lib/engine). Each lives
 * in its own file; a variant that needs scratch states its size here, next to its declaration. */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include "engine.h"
#include "engine_simd.h"

#if ENG_DSP
/* DEPTHWISE_CONV_2D, depth multiplier 1, 3x3, no dilation, any stride (engine_dw3x3_dsp.c): output row
 * oy, pixels [ox0, ox1), whose windows must lie wholly inside the input. Channels in groups of 4 (codegen's
 * grouped weight layout, eng_dwconv_t) are the outer loop and the row's pixels the inner one, so each
 * pixel's nine taps are fixed offsets from one walking pointer. mode: RQ_* of engine_requant.h.
 * Needs no scratch. */
void eng_dw3x3_row_dsp(const eng_dwconv_t *p, const int8_t *in, int8_t *out, int oy, int ox0, int ox1, int mode);
#endif

#endif /* ENGINE_KERNELS_H */
