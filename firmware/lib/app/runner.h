/* Runner interface: what the portable application loop needs from an inference backend.
 *
 * Two backends implement it: the project's own int8 engine (firmware/lib/engine, generated C, runs
 * everywhere incl. native Linux and QEMU) and TFLite-Micro (firmware/lib/runner_tflm, PlatformIO boards).
 * The app never knows which one it drives; HELLO reports `info.engine`.
 * C99, no heap, no Arduino, no TFLM.
 */
#ifndef RUNNER_H
#define RUNNER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The codes are DTYPES in tinyml/protocol.py (HELLO carries them); tests/test_constants.py checks this enum.
 * NONE is no tensor at all: a runner whose init fails may leave it (the app then sends the "no model" HELLO). */
enum runner_dtype { RUNNER_DTYPE_NONE = 0, RUNNER_DTYPE_INT8 = 1, RUNNER_DTYPE_UINT8 = 2 };

/* Error codes a runner returns; the app forwards them in ERROR messages. 0 is success. */
enum runner_status {
  RUNNER_OK = 0,
  RUNNER_ERR_INIT = 1, /* backend failed to initialise (schema, ops, arena) */
  RUNNER_ERR_ARENA = 2, /* tensor arena too small */
  RUNNER_ERR_UNSUPPORTED = 3, /* model uses an op or type the backend lacks */
  RUNNER_ERR_INVOKE = 4 /* inference failed */
};

#define RUNNER_MODEL_ID_LEN 32 /* sha256 of the int8 .tflite, as in the bundle's model.json */

typedef struct runner_info {
  const char *engine; /* "engine" or "tflm" (+ optional variant) */
  uint8_t model_id[RUNNER_MODEL_ID_LEN]; /* sha256 of the .tflite the code was generated from */
  uint16_t in_h, in_w, in_c; /* input tensor shape (batch 1, NHWC) */
  uint8_t in_dtype; /* enum runner_dtype */
  float in_scale;
  int32_t in_zero_point;
  uint16_t out_len; /* number of output elements (classes) */
  uint8_t out_dtype; /* enum runner_dtype */
  float out_scale;
  int32_t out_zero_point;
  uint32_t arena_bytes; /* activation memory the backend uses (informational) */
} runner_info_t;

typedef struct runner {
  /* Prepare the backend and fill *info. Returns enum runner_status; on failure only info->engine counts: set it
   * to a tag naming the reason ("tflm:missing-op"), which the "no model" HELLO carries to the host. */
  int (*init)(void *ctx, runner_info_t *info);
  /* Run one inference: `input` holds in_h*in_w*in_c bytes in in_dtype, `output` receives out_len bytes. */
  int (*invoke)(void *ctx, const uint8_t *input, uint8_t *output);
  void *ctx;
} runner_t;

#ifdef __cplusplus
}
#endif
#endif /* RUNNER_H */
