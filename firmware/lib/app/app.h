/* The portable application loop: bytes in -> protocol parser -> runner -> RESULT bytes out.
 *
 * Same code on every board (QEMU, native Linux, PlatformIO/Arduino): it talks to the world only through
 * port.h (bytes, clock) and runner.h (inference). No heap, no Arduino, no TFLM; all memory is handed in
 * by the port, sized by the APP_*_SIZE macros below. C99.
 *
 * Behaviour (docs/protocol.md is the wire spec, docs/firmware.md the design):
 * - app_init() initialises the runner and sends HELLO (seq 0); HELLO_REQ gets HELLO with the request's seq.
 * - FRAME of exactly in_h*in_w*in_c bytes -> inference -> RESULT (same seq, inference microseconds, cycle
 *   or instruction count, raw output tensor). Anything else gets ERROR naming the fault, and the loop goes on:
 *   corrupt/truncated/oversized frames and noise (parser faults), wrong frame size, unknown type, runner
 *   failure, malformed request, unsupported protocol version.
 * - Replies leave in the order the requests arrived (the host counts an answer to seq S as proof that open
 *   requests before S were lost), so PONG also means "every earlier FRAME is answered".
 * - Credit-based flow control: HELLO announces `credits` = n_frame_bufs - 1 (one buffer always belongs to
 *   the parser); the host keeps at most that many FRAMEs unanswered. No inference runs while a poll reads,
 *   and none reads while an inference runs, so a port announces more than one credit only if its transport
 *   holds the bytes that arrive during an inference (QEMU's UART and the pty push back; an Arduino core
 *   needs an RX buffer of a whole frame). A host that exceeds its credits is not refused: the oldest frame
 *   runs first to free a buffer (bytes its transport dropped meanwhile show up as parser faults).
 */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "runner.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APP_MAX_FRAME_BUFS 8u

/* Size of each frame buffer for a model input of `in_bytes` bytes. */
#define APP_FRAME_BUF_SIZE(in_bytes) PROTO_BUFFER_SIZE(in_bytes)
/* Size of the transmit buffer for a model with `out_len` output bytes (the larger of HELLO and RESULT). */
#define APP_TX_SIZE(out_len)                                                            \
  (PROTO_OVERHEAD + ((PROTO_HELLO_MAX_LEN > PROTO_RESULT_FIXED_LEN + (size_t)(out_len)) \
                         ? PROTO_HELLO_MAX_LEN                                          \
                         : PROTO_RESULT_FIXED_LEN + (size_t)(out_len)))

/* Memory the port hands to the app (static arrays on every port). */
typedef struct app_config {
  uint8_t *frame_bufs; /* n_frame_bufs buffers of frame_buf_size bytes, back to back */
  size_t frame_buf_size; /* >= APP_FRAME_BUF_SIZE(in_h*in_w*in_c); the max payload HELLO announces */
  uint8_t n_frame_bufs; /* 2..APP_MAX_FRAME_BUFS: one for the parser, the rest are the host's credits */
  uint8_t *output; /* >= out_len bytes: the runner's output tensor */
  size_t output_cap;
  uint8_t *tx; /* >= APP_TX_SIZE(out_len) bytes: one encoded HELLO/RESULT/ERROR frame */
  size_t tx_cap;
} app_config_t;

/* Why app_init() refused the configuration (0 = ready). The runner's own failure is not one of these:
 * the app still runs, announces itself in HELLO and answers every FRAME with ERROR RUNNER. */
enum app_status {
  APP_OK = 0,
  APP_ERR_CONFIG = -1, /* NULL pointer or buffer count out of range */
  APP_ERR_FRAME_BUF = -2, /* frame buffers smaller than APP_FRAME_BUF_SIZE(input bytes) */
  APP_ERR_OUTPUT_BUF = -3, /* output or tx buffer smaller than the model needs */
};

typedef struct app_slot {
  uint8_t *buf; /* frame buffer holding the payload */
  const uint8_t *pixels; /* the FRAME payload inside buf */
  uint16_t seq;
} app_slot_t;

typedef struct app {
  /* private: use the functions below */
  const runner_t *runner;
  runner_info_t info;
  int runner_status; /* enum runner_status from init */
  app_config_t cfg;
  size_t in_bytes;
  proto_parser_t parser;
  uint8_t *free_bufs[APP_MAX_FRAME_BUFS];
  uint8_t n_free;
  app_slot_t queue[APP_MAX_FRAME_BUFS]; /* FIFO of received frames waiting for inference */
  uint8_t q_head, q_len;
  uint32_t results, errors; /* counters for diagnostics */
  uint32_t last_rx_us; /* port_micros() of the last received byte */
  uint8_t rx_since_flush; /* bytes arrived since the last idle flush */
} app_t;

/* Initialise the runner, set up the parser and send the boot HELLO (seq 0). Returns enum app_status;
 * on a configuration error nothing is sent and app_poll() must not be called. */
int app_init(app_t *app, const runner_t *runner, const app_config_t *cfg);

/* Read whatever bytes have arrived (port_read), answer complete messages, then run at most one queued
 * inference. After PROTO_IDLE_FLUSH_MS without a byte, a frame cut short is given up (ERROR) so the
 * frames behind it are not held back until the next burst. Never blocks. Returns 1 if it did anything (the port may
 * sleep until input when it returns 0). */
int app_poll(app_t *app);

/* Camera mode (e.g. ESP32-CAM): the board grabbed and preprocessed `pixels` (in_h*in_w*in_c bytes in the
 * model's input type) itself; run inference and send RESULT (or ERROR) with `seq`. Returns enum
 * runner_status. */
int app_submit_frame(app_t *app, const uint8_t *pixels, uint16_t seq);

/* Send HELLO with `seq` (app_init sends one with seq 0; HELLO_REQ triggers one). */
void app_send_hello(app_t *app, uint16_t seq);

/* The runner's description, filled by app_init (for a port that shows it, e.g. on a display). */
const runner_info_t *app_runner_info(const app_t *app);

#ifdef __cplusplus
}
#endif
#endif /* APP_H */
