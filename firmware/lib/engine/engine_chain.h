/* Fused row-band execution of a chain of convolution-type layers (issue #11, engine memory).
 *
 * A chain is a sequence of CONV_2D / DEPTHWISE_CONV_2D layers where each layer reads only the previous one's
 * output (MobileNet V2's expand -> depthwise -> project, V1's conv -> depthwise -> pointwise runs). Instead of
 * materialising every intermediate tensor, eng_chain_run computes the last layer's output row by row and each
 * earlier layer's rows on demand, keeping only the rows a consumer's window still needs in a small buffer per
 * intermediate tensor. Each row is computed once, by the layer's own kernel entry point called on a one-row view
 * of its geometry (out_h 1, in_h the window rows that exist, pad_top the window rows above the image), so the
 * bytes are those of the layer-by-layer schedule, hence LiteRT-ref's.
 *
 * A row buffer holds `rows` rows in ascending order from its first slot; when it is full, the rows the consumer
 * still needs move to the front (the kernels read a window as contiguous rows). Capacity window + 2 rows keeps
 * that copy at 2/3 of a row per row produced for a stride-1 3x3 consumer; a window of one row never copies. */
#ifndef ENGINE_CHAIN_H
#define ENGINE_CHAIN_H

#include <stdint.h>

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest chain eng_chain_run takes (its per-stage state lives on the stack); codegen splits longer runs. */
#define ENG_CHAIN_MAX_STAGES 16

/* A convolution kernel entry point (eng_conv2d_s8, eng_conv2d_s8_wide, eng_pw_4x2_sat, ...). */
typedef void (*eng_conv_kernel_t)(const eng_conv_t *p, const int8_t *in, int8_t *out, void *scratch);

/* What a stage is: a convolution calls its `conv` kernel, the one codegen chose for the layer (so the driver
 * names no convolution kernel and the linker keeps only those a model uses); a depthwise layer one of two. */
enum eng_stage_kind {
  ENG_STAGE_CONV = 0, /* stage.conv,            layer: eng_conv_t */
  ENG_STAGE_DW = 3, /* eng_dwconv2d_s8,       layer: eng_dwconv_t */
  ENG_STAGE_DW_WIDE = 4, /* eng_dwconv2d_s8_wide,  layer: eng_dwconv_t */
  ENG_STAGE_DW3X3 = 5 /* eng_dwconv2d_s8_3x3,   layer: eng_dwconv_t */
};

typedef struct eng_stage {
  uint8_t kind; /* enum eng_stage_kind */
  const void *layer; /* the layer's whole-tensor parameters (never modified) */
  eng_conv_kernel_t conv; /* ENG_STAGE_CONV: the layer's kernel, as its layer-by-layer call names it */
  uint32_t buf_offset; /* its output row buffer, from the chain's buffer region (unused for the last stage) */
  uint16_t rows; /* capacity of that buffer in rows (unused for the last stage) */
} eng_stage_t;

typedef struct eng_chain {
  uint8_t n; /* stages, 1..ENG_CHAIN_MAX_STAGES */
  const eng_stage_t *stages;
} eng_chain_t;

/* Run the chain: in is the first layer's whole input tensor, out receives the last layer's whole output
 * tensor, bufs is the region the stages' row buffers are offsets into, scratch the kernels' shared scratch
 * (the largest need of the chain's layers, as layer by layer). Row buffers must not overlap in, out or scratch. */
void eng_chain_run(const eng_chain_t *c, const int8_t *in, int8_t *out, int8_t *bufs, void *scratch);

#ifdef __cplusplus
}
#endif
#endif /* ENGINE_CHAIN_H */
