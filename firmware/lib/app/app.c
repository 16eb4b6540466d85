/* Portable application loop; see app.h for the behaviour and docs/firmware.md for the design. */
#include "app.h"

#include <string.h>

#include "port.h"

#define RX_CHUNK 64u

static void send_error(app_t *app, uint16_t seq, uint8_t code, uint8_t flags, uint32_t detail) {
  size_t n = proto_encode_error(app->cfg.tx, app->cfg.tx_cap, seq, code, flags, detail);
  port_write(app->cfg.tx, n);
  app->errors++;
}

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  if (src != NULL)
    for (; src[i] != '\0' && i + 1 < cap; ++i) dst[i] = src[i];
  dst[i] = '\0';
}

/* HELLO from the runner's info; after a failed init the "no model" HELLO (protocol.h PROTO_DTYPE_NONE): every
 * model field zero, whatever the runner left half-filled, and `engine` carrying the runner's failure tag. */
void app_send_hello(app_t *app, uint16_t seq) {
  proto_hello_t hello;
  static const runner_info_t no_model;
  const runner_info_t *info = app->runner_status == RUNNER_OK ? &app->info : &no_model;
  memset(&hello, 0, sizeof hello);
  hello.version = PROTO_VERSION;
  hello.credits = (uint8_t)(app->cfg.n_frame_bufs - 1u);
  hello.in_dtype = info->in_dtype;
  hello.out_dtype = info->out_dtype;
  hello.max_payload = (uint32_t)(app->cfg.frame_buf_size - PROTO_OVERHEAD); /* what proto_parser_init accepts */
  memcpy(hello.model_id, info->model_id, PROTO_MODEL_ID_LEN);
  hello.in_h = info->in_h;
  hello.in_w = info->in_w;
  hello.in_c = info->in_c;
  hello.out_len = info->out_len;
  hello.in_scale = info->in_scale;
  hello.in_zero_point = info->in_zero_point;
  hello.out_scale = info->out_scale;
  hello.out_zero_point = info->out_zero_point;
  hello.arena_bytes = info->arena_bytes;
  copy_str(hello.engine, sizeof hello.engine, app->info.engine != NULL ? app->info.engine : "none");
  copy_str(hello.build, sizeof hello.build, port_build_id());
  size_t n = proto_encode_hello(app->cfg.tx, app->cfg.tx_cap, seq, &hello);
  port_write(app->cfg.tx, n);
}

int app_init(app_t *app, const runner_t *runner, const app_config_t *cfg) {
  if (app == NULL || runner == NULL || cfg == NULL || cfg->frame_bufs == NULL || cfg->output == NULL ||
      cfg->tx == NULL || cfg->n_frame_bufs < 2u || cfg->n_frame_bufs > APP_MAX_FRAME_BUFS)
    return APP_ERR_CONFIG;
  memset(app, 0, sizeof *app);
  app->runner = runner;
  app->cfg = *cfg;
  app->runner_status = runner->init(runner->ctx, &app->info);
  app->in_bytes = (size_t)app->info.in_h * app->info.in_w * app->info.in_c;
  if (cfg->frame_buf_size < APP_FRAME_BUF_SIZE(app->in_bytes)) return APP_ERR_FRAME_BUF;
  if (cfg->output_cap < app->info.out_len || cfg->tx_cap < APP_TX_SIZE(app->info.out_len)) return APP_ERR_OUTPUT_BUF;
  if (proto_parser_init(&app->parser, cfg->frame_bufs, cfg->frame_buf_size) != 0) return APP_ERR_FRAME_BUF;
  for (uint8_t i = 1; i < cfg->n_frame_bufs; ++i)
    app->free_bufs[app->n_free++] = cfg->frame_bufs + i * cfg->frame_buf_size;
  app_send_hello(app, 0);
  return APP_OK;
}

const runner_info_t *app_runner_info(const app_t *app) { return &app->info; }

/* Run one inference on `pixels` and answer with RESULT, or ERROR RUNNER carrying the runner's status. */
static int infer(app_t *app, const uint8_t *pixels, uint16_t seq) {
  if (app->runner_status != RUNNER_OK) {
    send_error(app, seq, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, (uint32_t)app->runner_status);
    return app->runner_status;
  }
  uint64_t c0 = port_cycles();
  uint32_t t0 = port_micros();
  int status = app->runner->invoke(app->runner->ctx, pixels, app->cfg.output);
  uint32_t us = port_micros() - t0;
  uint64_t cycles = port_cycles() - c0;
  if (status != RUNNER_OK) {
    send_error(app, seq, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, (uint32_t)status);
    return status;
  }
  size_t n = proto_encode_result(app->cfg.tx, app->cfg.tx_cap, seq, us, cycles, app->cfg.output, app->info.out_len);
  port_write(app->cfg.tx, n);
  app->results++;
  return RUNNER_OK;
}

int app_submit_frame(app_t *app, const uint8_t *pixels, uint16_t seq) { return infer(app, pixels, seq); }

/* Run the oldest queued frame and give its buffer back. */
static void run_queued(app_t *app) {
  app_slot_t *slot = &app->queue[app->q_head];
  infer(app, slot->pixels, slot->seq);
  app->free_bufs[app->n_free++] = slot->buf;
  app->q_head = (uint8_t)((app->q_head + 1u) % APP_MAX_FRAME_BUFS);
  app->q_len--;
}

/* Echo a PING payload straight out of the parser buffer (header, payload, trailer: no copy). */
static void send_pong(const proto_event_t *ev) {
  uint8_t header[PROTO_HEADER_LEN];
  uint8_t trailer[PROTO_TRAILER_LEN];
  proto_encode_header(header, PROTO_PONG, ev->seq, ev->length);
  proto_encode_trailer(trailer, proto_crc32(0, ev->payload, ev->length));
  port_write(header, sizeof header);
  port_write(ev->payload, ev->length);
  port_write(trailer, sizeof trailer);
}

/* Answer every queued frame: a reply to a later request must never overtake them (the host reads an
 * answer to seq S as "everything before S that is still open was lost"). */
static void drain(app_t *app) {
  while (app->q_len > 0) run_queued(app);
}

/* A complete FRAME of the right size: queue it and give the parser a fresh buffer. With every buffer
 * taken (the host sent beyond its credits) the oldest frame runs first to free one; the new frame is
 * safe meanwhile, because the parser does not touch its buffer until the next push. */
static void accept_frame(app_t *app, const proto_event_t *ev) {
  if (app->n_free == 0) run_queued(app);
  uint8_t *held = proto_parser_swap_buffer(&app->parser, app->free_bufs[--app->n_free]);
  app_slot_t *slot = &app->queue[(app->q_head + app->q_len) % APP_MAX_FRAME_BUFS];
  slot->buf = held;
  slot->pixels = ev->payload;
  slot->seq = ev->seq;
  app->q_len++;
}

static void handle_event(app_t *app, const proto_event_t *ev) {
  if (ev->kind == PROTO_EV_FRAME && ev->type == PROTO_FRAME && ev->length == app->in_bytes) {
    accept_frame(app, ev);
    return;
  }
  drain(app);
  if (ev->kind == PROTO_EV_FAULT) {
    send_error(app, ev->seq_valid ? ev->seq : 0, ev->code, ev->seq_valid ? PROTO_ERROR_SEQ_VALID : 0, ev->detail);
    return;
  }
  switch (ev->type) {
    case PROTO_FRAME: /* without a model (the runner failed) no size is right: name the runner's fault instead */
      if (app->runner_status != RUNNER_OK)
        send_error(app, ev->seq, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, (uint32_t)app->runner_status);
      else
        send_error(app, ev->seq, PROTO_ERR_WRONG_FRAME_SIZE, PROTO_ERROR_SEQ_VALID, (uint32_t)app->in_bytes);
      break;
    case PROTO_HELLO_REQ: {
      uint32_t host_max = 0;
      uint8_t host_version = 0;
      if (proto_decode_hello_req(ev->payload, ev->length, &host_max, &host_version) != 0)
        send_error(app, ev->seq, PROTO_ERR_MALFORMED, PROTO_ERROR_SEQ_VALID, ev->length);
      else if (host_version != PROTO_VERSION)
        send_error(app, ev->seq, PROTO_ERR_VERSION, PROTO_ERROR_SEQ_VALID, PROTO_VERSION);
      else
        app_send_hello(app, ev->seq);
      break;
    }
    case PROTO_PING: send_pong(ev); break;
    default: send_error(app, ev->seq, PROTO_ERR_UNKNOWN_TYPE, PROTO_ERROR_SEQ_VALID, ev->type);
  }
}

int app_poll(app_t *app) {
  int active = 0;
  /* Read eagerly (a real UART's small RX buffer must not overflow while a buffer is free), but bounded so
   * a flood of bytes cannot starve the queued inferences. */
  size_t budget = app->cfg.frame_buf_size * app->cfg.n_frame_bufs;
  while (budget > 0) {
    uint8_t rx[RX_CHUNK];
    size_t n = port_read(rx, budget < sizeof rx ? budget : sizeof rx);
    if (n == 0) break;
    active = 1;
    budget -= n;
    size_t off = 0;
    proto_event_t ev;
    do {
      off += proto_parser_push(&app->parser, rx + off, n - off, &ev);
      if (ev.kind != PROTO_EV_NONE) handle_event(app, &ev);
    } while (ev.kind != PROTO_EV_NONE);
  }
  uint32_t now = port_micros();
  if (active) {
    app->last_rx_us = now;
    app->rx_since_flush = 1;
  } else if (app->rx_since_flush && now - app->last_rx_us >= PROTO_IDLE_FLUSH_MS * 1000u) {
    proto_event_t ev;
    app->rx_since_flush = 0;
    while (proto_parser_flush(&app->parser, &ev)) {
      handle_event(app, &ev);
      active = 1;
    }
  }
  if (app->q_len > 0) {
    run_queued(app);
    active = 1;
  }
  return active;
}
