/* Inference firmware for QEMU mps2-an386: the portable app loop driving the engine runner over UART0.
 * Buffers are sized by the generated model_engine.h (tinyml/codegen). */
#include <stdint.h>

#include "app.h"
#include "board.h"
#include "model_engine.h"
#include "runner_engine.h"

#define CREDITS 2 /* QEMU holds back UART bytes while the core is busy, so a second frame can wait safely */
#define INIT_FAILURE_EXIT 10

static uint8_t frame_bufs[CREDITS + 1][APP_FRAME_BUF_SIZE(MODEL_ENGINE_INPUT_BYTES)] __attribute__((aligned(16)));
static uint8_t output[MODEL_ENGINE_OUTPUT_BYTES] __attribute__((aligned(16)));
static uint8_t tx[APP_TX_SIZE(MODEL_ENGINE_OUTPUT_BYTES)];
static app_t app;

int main(void) {
  board_init();
  const app_config_t cfg = {&frame_bufs[0][0], sizeof frame_bufs[0], CREDITS + 1, output, sizeof output, tx, sizeof tx};
  int status = app_init(&app, engine_runner(), &cfg);
  if (status != APP_OK) return INIT_FAILURE_EXIT - status; /* the build and the model disagree: fail loudly */
  for (;;)
    if (!app_poll(&app)) board_wait_for_rx();
}
