/* runner.h backend for the generated engine model: init reports the generated model_engine_info (shapes,
 * quantisation, model id, arena), invoke runs model_engine_invoke. All state is static in model_engine.c. */
#include "runner_engine.h"

#include "model_engine.h"

static int engine_init(void *ctx, runner_info_t *info) {
  (void)ctx;
  if (info == 0) return RUNNER_ERR_INIT;
  *info = model_engine_info;
  return RUNNER_OK;
}

static int engine_invoke(void *ctx, const uint8_t *input, uint8_t *output) {
  (void)ctx;
  return model_engine_invoke(input, output);
}

static const runner_t engine = {engine_init, engine_invoke, 0};

const runner_t *engine_runner(void) { return &engine; }
