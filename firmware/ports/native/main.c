/* Inference firmware as a Linux process: the portable app loop driving the engine runner over a pty
 * (default) or stdin/stdout (--stdio). MODEL_IN_BYTES and MODEL_OUT_LEN come from the build. */
#include <stdint.h>
#include <stdio.h>

#include "app.h"
#include "board.h"
#include "runner_engine.h"

#if !defined(MODEL_IN_BYTES) || !defined(MODEL_OUT_LEN)
#error "build with MODEL_IN_BYTES=<in_h*in_w*in_c> MODEL_OUT_LEN=<classes> (tools/firmware.py does this)"
#endif

#define CREDITS 2 /* the pty blocks the host's writes when full, so a second frame can wait safely */

static uint8_t frame_bufs[CREDITS + 1][APP_FRAME_BUF_SIZE(MODEL_IN_BYTES)] __attribute__((aligned(16)));
static uint8_t output[MODEL_OUT_LEN] __attribute__((aligned(16)));
static uint8_t tx[APP_TX_SIZE(MODEL_OUT_LEN)];
static app_t app;

int main(int argc, char **argv) {
  int status = board_init(argc, argv);
  if (status != 0) return status;
  const app_config_t cfg = {&frame_bufs[0][0], sizeof frame_bufs[0], CREDITS + 1, output, sizeof output, tx,
                            sizeof tx};
  status = app_init(&app, engine_runner(), &cfg);
  if (status != APP_OK) {
    fprintf(stderr, "error: firmware buffers do not fit the model (app_init %d); rebuild with tools/firmware.py\n",
            status);
    return 3;
  }
  for (;;)
    if (!app_poll(&app)) board_wait_for_rx();
}
