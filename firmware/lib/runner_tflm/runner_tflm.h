/* TFLite-Micro as a runner backend (firmware/lib/app/runner.h) for the PlatformIO boards.
 *
 * Model-independent: the entry point (firmware/src/main.cpp) hands in the generated flatbuffer array, the
 * generated op resolver, the arena and the model id, so this library never includes generated files.
 * init() checks what would otherwise crash or fail obscurely on the board and reports it as a runner error
 * (the app answers FRAMEs with ERROR RUNNER) and in HELLO's engine field (at most 32 characters):
 *   "tflm"                   ready
 *   "tflm:schema-mismatch"   the .tflite's schema version differs from the TFLM library's
 *   "tflm:missing-op"        the resolver lacks an op the model uses (re-run python -m tools export)
 *   "tflm:no-arena"          no arena memory could be allocated
 *   "tflm:allocate-failed"   AllocateTensors failed: arena too small for this TFLM build, or a kernel
 *                            rejected the model during Prepare
 *   "tflm:bad-io"            input/output is not one int8/uint8 tensor with an NHWC batch-1 input
 * runner_tflm_error() has the full sentence for a debug console. C++ (TFLM is C++); no heap use here. */
#ifndef RUNNER_TFLM_H
#define RUNNER_TFLM_H

#include <stddef.h>
#include <stdint.h>

#include "runner.h"

namespace tflite {
class MicroOpResolver;
}

struct runner_tflm_config {
  const unsigned char *model; /* .tflite flatbuffer, 16-byte aligned (model_data.cc) */
  const tflite::MicroOpResolver *resolver; /* registers the model's ops (model_ops.h) */
  uint8_t *arena; /* tensor arena, 16-byte aligned; NULL if allocation failed */
  size_t arena_bytes;
  const uint8_t *model_id; /* RUNNER_MODEL_ID_LEN bytes: sha256 of the .tflite */
};

/* The TFLM runner for `config` (copied; call once at boot, before app_init). */
const runner_t *runner_tflm(const runner_tflm_config *config);

/* Why init failed, as one sentence; "" when it succeeded or has not run. */
const char *runner_tflm_error(void);

#endif /* RUNNER_TFLM_H */
