/* Inference firmware as a Linux process: the portable app loop driving the engine runner over a pty
 * (default) or stdin/stdout (--stdio).
 * Buffers are sized by the generated model_engine.h (tinyml/codegen). */
#include <stdint.h>
#include <stdio.h>

#include "app.h"
#include "board.h"
#include "model_engine.h"
#include "runner_engine.h"

#define CREDITS 2 /* the pty blocks the host's writes when full, so a second frame can wait safely */

static uint8_t frame_bufs[CREDITS + 1][APP_FRAME_BUF_SIZE(MODEL_ENGINE_INPUT_BYTES)] __attribute__((aligned(16)));
static uint8_t output[MODEL_ENGINE_OUTPUT_BYTES] __attribute__((aligned(16)));
static uint8_t tx[APP_TX_SIZE(MODEL_ENGINE_OUTPUT_BYTES)];
static app_t app;

int main(int argc, char **argv) {
  int status = board_init(argc, argv);
  if (status != 0) return status;
  const app_config_t cfg = {&frame_bufs[0][0], sizeof frame_bufs[0], CREDITS + 1, output, sizeof output, tx, sizeof tx};
  status = app_init(&app, engine_runner(), &cfg);
  if (status != APP_OK) {
    fprintf(stderr, "error: firmware buffers do not fit the model (app_init %d); rebuild with tinyml/firmware.py\n",
            status);
    return 3;
  }
  for (;;)
    if (!app_poll(&app)) board_wait_for_rx();
}
