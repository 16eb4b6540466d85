/* Unit test of the portable application loop (firmware/lib/app/app.c) with the real protocol library.
 *
 * The harness plays the port (port.h: an in-memory byte stream in, captured bytes out, a clock the test
 * runner advances) and a test runner whose output is a checksum of its input, so every RESULT proves the
 * runner saw exactly the bytes the host sent. The device's replies are decoded with the protocol parser,
 * as a host would. Each case prints "ok <name>" or "FAIL <name>: <why>"; tests/test_app_core.py runs it
 * under AddressSanitizer/UBSan and checks every case. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "port.h"
#include "protocol.h"

#define IN_H 6
#define IN_W 5
#define IN_C 3
#define IN_BYTES (IN_H * IN_W * IN_C)
#define OUT_LEN 10
#define CREDITS 2
#define INVOKE_US 1234u
#define INVOKE_CYCLES 987654321ull
#define FAIL_MARKER 0xEEu /* an input starting with this byte makes the test runner fail */

/* ---- the port: scripted input, captured output, a test-driven clock ---------------------------- */
static uint8_t rx_data[1 << 16];
static size_t rx_len, rx_pos, rx_chunk = 64;
static uint8_t tx_data[1 << 16];
static size_t tx_len;
static uint32_t clock_us;
static uint64_t clock_cycles;

size_t port_read(uint8_t *buf, size_t max) {
  size_t n = rx_len - rx_pos;
  if (n > max) n = max;
  if (n > rx_chunk) n = rx_chunk;
  memcpy(buf, rx_data + rx_pos, n);
  rx_pos += n;
  return n;
}

void port_write(const uint8_t *buf, size_t len) {
  if (tx_len + len > sizeof tx_data) abort();
  memcpy(tx_data + tx_len, buf, len);
  tx_len += len;
}

uint32_t port_micros(void) { return clock_us; }
uint64_t port_cycles(void) { return clock_cycles; }
const char *port_build_id(void) { return "app-test"; }

/* ---- the test runner --------------------------------------------------------------------------- */
static uint8_t last_input[IN_BYTES];
static int invokes;
static int init_status;

static int test_init(void *ctx, runner_info_t *info) {
  (void)ctx;
  memset(info, 0, sizeof *info);
  info->engine = "test-checksum";
  for (int i = 0; i < RUNNER_MODEL_ID_LEN; ++i) info->model_id[i] = (uint8_t)(0xA0 + i);
  info->in_h = IN_H;
  info->in_w = IN_W;
  info->in_c = IN_C;
  info->in_dtype = RUNNER_DTYPE_INT8;
  info->in_scale = 0.5f;
  info->in_zero_point = -3;
  info->out_len = OUT_LEN;
  info->out_dtype = RUNNER_DTYPE_INT8;
  info->out_scale = 1.0f / 256.0f;
  info->out_zero_point = -128;
  info->arena_bytes = 4242;
  /* A failing runner leaves its info half-filled, as runner_tflm does after reading the shape: the app must
   * send the "no model" HELLO regardless, carrying only the failure tag. */
  if (init_status != RUNNER_OK) info->engine = "test:arena-too-small";
  return init_status;
}

/* output[k] = sum over i of input[i] * (i + k + 1), mod 256: any changed, missing or reordered byte shows. */
static void checksum(const uint8_t *input, uint8_t *output) {
  for (int k = 0; k < OUT_LEN; ++k) {
    uint32_t acc = 0;
    for (int i = 0; i < IN_BYTES; ++i) acc += (uint32_t)input[i] * (uint32_t)(i + k + 1);
    output[k] = (uint8_t)acc;
  }
}

static int test_invoke(void *ctx, const uint8_t *input, uint8_t *output) {
  (void)ctx;
  memcpy(last_input, input, IN_BYTES);
  invokes++;
  clock_us += INVOKE_US;
  clock_cycles += INVOKE_CYCLES;
  if (input[0] == FAIL_MARKER) return RUNNER_ERR_INVOKE;
  checksum(input, output);
  return RUNNER_OK;
}

static const runner_t test_runner = {test_init, test_invoke, NULL};

/* ---- the device under test ---------------------------------------------------------------------- */
static uint8_t frame_bufs[CREDITS + 1][APP_FRAME_BUF_SIZE(IN_BYTES)];
static uint8_t output[OUT_LEN];
static uint8_t tx[APP_TX_SIZE(OUT_LEN)];
static app_t app;

static int failures;
static const char *current;

static int check(int cond, const char *fmt, ...) {
  if (!cond) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", current);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
  }
  return cond;
}

static app_config_t config(void) {
  app_config_t cfg = {&frame_bufs[0][0], sizeof frame_bufs[0], CREDITS + 1, output, sizeof output, tx, sizeof tx};
  return cfg;
}

static void boot(void) {
  rx_len = rx_pos = tx_len = 0;
  rx_chunk = 64;
  invokes = 0;
  init_status = RUNNER_OK;
  app_config_t cfg = config();
  if (app_init(&app, &test_runner, &cfg) != APP_OK) {
    printf("FAIL %s: app_init refused a valid configuration\n", current);
    exit(1);
  }
}

static void host_send(const uint8_t *bytes, size_t n) {
  memcpy(rx_data + rx_len, bytes, n);
  rx_len += n;
}

static void host_send_msg(uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len) {
  uint8_t buf[4096];
  host_send(buf, proto_encode(buf, sizeof buf, type, seq, payload, len));
}

static void make_pixels(uint8_t *px, int salt) {
  for (int i = 0; i < IN_BYTES; ++i) px[i] = (uint8_t)(i * 7 + salt * 31 + 1);
  if (px[0] == FAIL_MARKER) px[0] = 0;
}

/* Poll until the device has consumed all input and has nothing left to do. */
static void run_device(void) {
  for (int guard = 0; guard < 100000; ++guard)
    if (!app_poll(&app) && rx_pos == rx_len) return;
  check(0, "app_poll never went idle");
}

/* Decode everything the device sent since `from`. */
typedef struct reply {
  uint8_t type;
  uint16_t seq;
  uint8_t payload[512];
  uint32_t length;
} reply_t;

static int decode_replies(size_t from, reply_t *out, int max) {
  static uint8_t pbuf[PROTO_BUFFER_SIZE(1024)];
  proto_parser_t p;
  proto_parser_init(&p, pbuf, sizeof pbuf);
  int count = 0;
  size_t off = from;
  proto_event_t ev;
  do {
    off += proto_parser_push(&p, tx_data + off, tx_len - off, &ev);
    if (ev.kind == PROTO_EV_FAULT) check(0, "device sent a corrupt frame (fault %d)", ev.code);
    if (ev.kind == PROTO_EV_FRAME && count < max) {
      out[count].type = ev.type;
      out[count].seq = ev.seq;
      out[count].length = ev.length;
      memcpy(out[count].payload, ev.payload, ev.length);
      count++;
    }
  } while (ev.kind != PROTO_EV_NONE);
  return count;
}

static void expect_result(const reply_t *r, uint16_t seq, const uint8_t *pixels) {
  uint32_t us = 0, out_len = 0;
  uint64_t cycles = 0;
  const uint8_t *out = NULL;
  uint8_t want[OUT_LEN];
  if (!check(r->type == PROTO_RESULT, "seq %u: expected RESULT, got type %u", seq, r->type)) return;
  check(r->seq == seq, "RESULT seq %u, expected %u", r->seq, seq);
  check(proto_decode_result(r->payload, r->length, &us, &cycles, &out, &out_len) == 0, "RESULT does not decode");
  check(us == INVOKE_US && cycles == INVOKE_CYCLES, "RESULT timing %u us %llu cycles", us, (unsigned long long)cycles);
  checksum(pixels, want);
  check(out_len == OUT_LEN && memcmp(out, want, OUT_LEN) == 0,
        "RESULT output is not the runner's output for the sent pixels");
}

static void expect_error(const reply_t *r, uint16_t seq, uint8_t code, uint8_t flags, uint32_t detail) {
  uint8_t c = 0, f = 0;
  uint32_t d = 0;
  if (!check(r->type == PROTO_ERROR, "expected ERROR %u, got type %u", code, r->type)) return;
  check(proto_decode_error(r->payload, r->length, &c, &f, &d) == 0, "ERROR does not decode");
  check(c == code && f == flags && d == detail, "ERROR code %u flags %u detail %u, expected %u %u %u", c, f, d, code,
        flags, detail);
  if (flags & PROTO_ERROR_SEQ_VALID) check(r->seq == seq, "ERROR seq %u, expected %u", r->seq, seq);
}

/* ---- cases -------------------------------------------------------------------------------------- */
static void test_boot_hello_and_hello_req(void) {
  reply_t r[4];
  proto_hello_t h;
  boot();
  check(decode_replies(0, r, 4) == 1 && r[0].type == PROTO_HELLO && r[0].seq == 0, "no boot HELLO with seq 0");
  uint8_t req[PROTO_HELLO_REQ_LEN + PROTO_OVERHEAD];
  host_send(req, proto_encode_hello_req(req, sizeof req, 77, 4096));
  size_t mark = tx_len;
  run_device();
  if (!check(decode_replies(mark, r, 4) == 1 && r[0].type == PROTO_HELLO && r[0].seq == 77, "HELLO_REQ not answered"))
    return;
  check(proto_decode_hello(r[0].payload, r[0].length, &h) == 0, "HELLO does not decode");
  check(h.version == PROTO_VERSION && h.credits == CREDITS, "version %u credits %u", h.version, h.credits);
  check(h.in_h == IN_H && h.in_w == IN_W && h.in_c == IN_C && h.out_len == OUT_LEN, "shape in HELLO");
  check(h.in_dtype == RUNNER_DTYPE_INT8 && h.in_scale == 0.5f && h.in_zero_point == -3, "input quantisation");
  check(h.out_scale == 1.0f / 256.0f && h.out_zero_point == -128 && h.arena_bytes == 4242, "output quantisation/arena");
  check(h.max_payload == APP_FRAME_BUF_SIZE(IN_BYTES) - PROTO_OVERHEAD, "max_payload %u", h.max_payload);
  check(h.model_id[0] == 0xA0 && h.model_id[31] == 0xA0 + 31, "model id");
  check(strcmp(h.engine, "test-checksum") == 0 && strcmp(h.build, "app-test") == 0, "engine/build strings");
}

static void test_frames_give_results_in_order(void) {
  reply_t r[8];
  uint8_t px[5][IN_BYTES];
  boot();
  size_t mark = tx_len;
  for (int i = 0; i < 5; ++i) {
    make_pixels(px[i], i);
    host_send_msg(PROTO_FRAME, (uint16_t)(100 + i), px[i], IN_BYTES);
    run_device(); /* one frame in flight at a time */
  }
  check(invokes == 5, "runner invoked %d times for 5 frames", invokes);
  check(memcmp(last_input, px[4], IN_BYTES) == 0, "runner did not see the last frame's exact bytes");
  if (!check(decode_replies(mark, r, 8) == 5, "expected 5 replies")) return;
  for (int i = 0; i < 5; ++i) expect_result(&r[i], (uint16_t)(100 + i), px[i]);
}

static void test_byte_at_a_time_transport(void) {
  reply_t r[2];
  uint8_t px[IN_BYTES];
  boot();
  rx_chunk = 1; /* a UART with a one-byte holding register, like the CMSDK UART under QEMU */
  size_t mark = tx_len;
  make_pixels(px, 9);
  host_send_msg(PROTO_FRAME, 5, px, IN_BYTES);
  run_device();
  if (check(decode_replies(mark, r, 2) == 1, "expected one reply")) expect_result(&r[0], 5, px);
}

static void test_credits_pipeline_and_overrun(void) {
  reply_t r[8];
  uint8_t px[4][IN_BYTES];
  boot();
  rx_chunk = 1 << 16; /* everything arrives before the device gets to run inference */
  size_t mark = tx_len;
  for (int i = 0; i < 4; ++i) {
    make_pixels(px[i], 20 + i);
    host_send_msg(PROTO_FRAME, (uint16_t)(10 + i), px[i], IN_BYTES);
  }
  run_device();
  /* Credits 2, four frames at once: the third and fourth complete while both buffers are taken, so the
   * oldest frames run first to free them; nothing is refused and the replies keep the request order. */
  if (!check(decode_replies(mark, r, 8) == 4, "expected 4 replies")) return;
  for (int i = 0; i < 4; ++i) expect_result(&r[i], (uint16_t)(10 + i), px[i]);
  /* Within credits nothing is refused, and buffers come back for reuse. */
  mark = tx_len;
  for (int round = 0; round < 3; ++round) {
    host_send_msg(PROTO_FRAME, (uint16_t)(50 + 2 * round), px[2], IN_BYTES);
    host_send_msg(PROTO_FRAME, (uint16_t)(51 + 2 * round), px[3], IN_BYTES);
    run_device();
  }
  if (!check(decode_replies(mark, r, 8) == 6, "expected 6 replies within credits")) return;
  for (int i = 0; i < 6; ++i) expect_result(&r[i], (uint16_t)(50 + i), px[2 + (i & 1)]);
}

static void test_bad_frames_get_errors_and_loop_continues(void) {
  reply_t r[16];
  uint8_t px[IN_BYTES], frame[IN_BYTES + PROTO_OVERHEAD];
  boot();
  size_t mark = tx_len;
  make_pixels(px, 3);
  host_send_msg(PROTO_FRAME, 1, px, IN_BYTES - 1); /* wrong size */
  size_t n = proto_encode(frame, sizeof frame, PROTO_FRAME, 2, px, IN_BYTES);
  frame[PROTO_HEADER_LEN + 10] ^= 0x40; /* corrupt payload byte */
  host_send(frame, n);
  host_send_msg(0x7E, 3, px, 4); /* unknown type */
  uint8_t fail_px[IN_BYTES];
  memcpy(fail_px, px, IN_BYTES);
  fail_px[0] = FAIL_MARKER;
  host_send_msg(PROTO_FRAME, 4, fail_px, IN_BYTES); /* runner fails */
  uint8_t bad_req[1] = {PROTO_VERSION};
  host_send_msg(PROTO_HELLO_REQ, 5, bad_req, 1); /* too short */
  host_send_msg(PROTO_FRAME, 6, px, IN_BYTES); /* and a good frame still works */
  run_device();
  int count = decode_replies(mark, r, 16);
  if (!check(count == 6, "expected 6 replies")) return;
  /* in request order, although frame 4 waited in the queue while 5 was parsed */
  expect_error(&r[0], 1, PROTO_ERR_WRONG_FRAME_SIZE, PROTO_ERROR_SEQ_VALID, IN_BYTES);
  expect_error(&r[1], 2, PROTO_ERR_BAD_PAYLOAD_CRC, PROTO_ERROR_SEQ_VALID, 0);
  expect_error(&r[2], 3, PROTO_ERR_UNKNOWN_TYPE, PROTO_ERROR_SEQ_VALID, 0x7E);
  expect_error(&r[3], 4, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, RUNNER_ERR_INVOKE);
  expect_error(&r[4], 5, PROTO_ERR_MALFORMED, PROTO_ERROR_SEQ_VALID, 1);
  expect_result(&r[5], 6, px);
}

static void test_oversized_and_version(void) {
  reply_t r[8];
  static uint8_t big[2048];
  boot();
  size_t mark = tx_len;
  host_send_msg(PROTO_FRAME, 8, big, sizeof big);
  uint8_t req[PROTO_HELLO_REQ_LEN + PROTO_OVERHEAD];
  size_t n = proto_encode_hello_req(req, sizeof req, 9, 4096);
  req[PROTO_HEADER_LEN + 4] = PROTO_VERSION + 1; /* a future host; re-encode so the CRCs hold */
  uint8_t payload[PROTO_HELLO_REQ_LEN];
  memcpy(payload, req + PROTO_HEADER_LEN, sizeof payload);
  n = proto_encode(req, sizeof req, PROTO_HELLO_REQ, 9, payload, sizeof payload);
  host_send(req, n);
  uint8_t ping[3] = {1, 2, 3};
  host_send_msg(PROTO_PING, 10, ping, 3);
  run_device();
  int count = decode_replies(mark, r, 8);
  if (!check(count == 3, "expected 3 replies, got %d", count)) return;
  expect_error(&r[0], 8, PROTO_ERR_OVERSIZED, PROTO_ERROR_SEQ_VALID, APP_FRAME_BUF_SIZE(IN_BYTES) - PROTO_OVERHEAD);
  expect_error(&r[1], 9, PROTO_ERR_VERSION, PROTO_ERROR_SEQ_VALID, PROTO_VERSION);
  check(r[2].type == PROTO_PONG && r[2].seq == 10 && r[2].length == 3 && memcmp(r[2].payload, ping, 3) == 0,
        "PING not echoed as PONG");
}

static uint32_t rng_state = 12345u;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Random noise, truncated and bit-flipped frames between intact ones: the device never crashes (ASan
 * watches), every intact frame gets its RESULT, and every RESULT is right. */
static void test_corrupt_stream_never_breaks_the_loop(void) {
  static reply_t r[512];
  uint8_t px[IN_BYTES], frame[IN_BYTES + PROTO_OVERHEAD];
  boot();
  rx_chunk = 7;
  size_t mark = tx_len;
  int intact = 0;
  for (int i = 0; i < 60; ++i) {
    uint32_t kind = rng() % 4;
    make_pixels(px, 40 + i);
    size_t n = proto_encode(frame, sizeof frame, PROTO_FRAME, (uint16_t)(1000 + i), px, IN_BYTES);
    if (kind == 0) { /* noise, sometimes containing sync bytes */
      for (uint32_t k = rng() % 40; k > 0; --k)
        frame[k % sizeof frame] = (uint8_t)(rng() % 3 == 0 ? PROTO_SYNC0 : rng());
      host_send(frame, rng() % 40);
    } else if (kind == 1) { /* truncated frame */
      host_send(frame, rng() % n);
    } else if (kind == 2) { /* bit flip anywhere */
      frame[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
      host_send(frame, n);
    }
    /* then always an intact frame with a distinct seq */
    n = proto_encode(frame, sizeof frame, PROTO_FRAME, (uint16_t)(2000 + i), px, IN_BYTES);
    host_send(frame, n);
    intact++;
    run_device();
  }
  int count = decode_replies(mark, r, 512);
  int results = 0;
  for (int i = 0; i < count; ++i) {
    if (r[i].type != PROTO_RESULT) continue;
    results++;
    if (r[i].seq >= 2000) {
      make_pixels(px, 40 + (r[i].seq - 2000));
      expect_result(&r[i], r[i].seq, px);
    }
  }
  int last_key = -1; /* requests went out as 1000+i (damaged) then 2000+i (intact): replies keep that order */
  for (int i = 0; i < count; ++i) {
    if (r[i].type != PROTO_RESULT) continue;
    int key = (r[i].seq % 1000) * 2 + (r[i].seq >= 2000);
    check(key > last_key, "RESULT %u overtook an earlier request", r[i].seq);
    last_key = key;
  }
  int intact_results = 0;
  for (int i = 0; i < count; ++i) intact_results += r[i].type == PROTO_RESULT && r[i].seq >= 2000;
  check(intact_results == intact, "%d of %d intact frames got a RESULT", intact_results, intact);
  check(invokes == results, "runner ran %d times for %d RESULTs", invokes, results);
}

static void test_runner_init_failure_reported(void) {
  reply_t r[4];
  uint8_t px[IN_BYTES];
  rx_len = rx_pos = tx_len = 0;
  invokes = 0;
  init_status = RUNNER_ERR_ARENA;
  app_config_t cfg = config();
  check(app_init(&app, &test_runner, &cfg) == APP_OK, "a runner failure must not stop the app");
  make_pixels(px, 1);
  host_send_msg(PROTO_FRAME, 3, px, IN_BYTES);
  host_send_msg(PROTO_FRAME, 4, px, 7); /* any size: the HELLO announced no shape */
  run_device();
  if (!check(decode_replies(0, r, 4) == 3, "expected HELLO + 2 ERRORs")) return;
  check(r[0].type == PROTO_HELLO, "boot HELLO missing");
  expect_error(&r[1], 3, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, RUNNER_ERR_ARENA);
  expect_error(&r[2], 4, PROTO_ERR_RUNNER, PROTO_ERROR_SEQ_VALID, RUNNER_ERR_ARENA);
  check(invokes == 0, "runner invoked after a failed init");
  proto_hello_t h;
  if (!check(proto_decode_hello(r[0].payload, r[0].length, &h) == 0, "the no-model HELLO does not decode")) return;
  check(h.in_dtype == PROTO_DTYPE_NONE && h.out_dtype == PROTO_DTYPE_NONE, "no-model HELLO dtypes %u/%u", h.in_dtype,
        h.out_dtype);
  check(h.in_h == 0 && h.in_w == 0 && h.in_c == 0 && h.out_len == 0 && h.arena_bytes == 0 && h.model_id[0] == 0,
        "no-model HELLO carries the half-filled model fields");
  check(strcmp(h.engine, "test:arena-too-small") == 0, "no-model HELLO engine '%s'", h.engine);
  /* The exact boot HELLO bytes, for tests/test_app_core.py to feed the Python host. */
  printf("bytes no_model_hello ");
  for (size_t i = 0; i < PROTO_OVERHEAD + r[0].length; ++i) printf("%02x", tx_data[i]);
  printf("\n");
}

static void test_config_checked(void) {
  app_config_t cfg = config();
  init_status = RUNNER_OK;
  tx_len = 0;
  cfg.frame_buf_size = APP_FRAME_BUF_SIZE(IN_BYTES) - 1;
  check(app_init(&app, &test_runner, &cfg) == APP_ERR_FRAME_BUF, "small frame buffers accepted");
  cfg = config();
  cfg.tx_cap = APP_TX_SIZE(OUT_LEN) - 1;
  check(app_init(&app, &test_runner, &cfg) == APP_ERR_OUTPUT_BUF, "small tx buffer accepted");
  cfg = config();
  cfg.n_frame_bufs = 1;
  check(app_init(&app, &test_runner, &cfg) == APP_ERR_CONFIG, "one frame buffer accepted");
  check(tx_len == 0, "a refused configuration sent bytes");
}

static void test_pong_follows_earlier_frames(void) {
  reply_t r[4];
  uint8_t px[2][IN_BYTES], ping[2] = {9, 8};
  boot();
  rx_chunk = 1 << 16; /* both frames and the PING arrive in one read, before any inference */
  size_t mark = tx_len;
  make_pixels(px[0], 61);
  make_pixels(px[1], 62);
  host_send_msg(PROTO_FRAME, 1, px[0], IN_BYTES);
  host_send_msg(PROTO_FRAME, 2, px[1], IN_BYTES);
  host_send_msg(PROTO_PING, 3, ping, 2);
  run_device();
  if (!check(decode_replies(mark, r, 4) == 3, "expected 3 replies")) return;
  expect_result(&r[0], 1, px[0]);
  expect_result(&r[1], 2, px[1]);
  check(r[2].type == PROTO_PONG && r[2].seq == 3, "PONG overtook a FRAME");
}

static void test_camera_mode_submit(void) {
  reply_t r[2];
  uint8_t px[IN_BYTES];
  boot();
  size_t mark = tx_len;
  make_pixels(px, 77);
  check(app_submit_frame(&app, px, 4321) == RUNNER_OK, "submit failed");
  if (check(decode_replies(mark, r, 2) == 1, "expected one RESULT")) expect_result(&r[0], 4321, px);
}

/* A frame cut short at the end of a burst is given up once the link has been idle for
 * PROTO_IDLE_FLUSH_MS: the host hears ERROR for it at once instead of at its next burst. */
static void test_idle_link_flushes_truncated_frame(void) {
  reply_t r[4];
  uint8_t px[IN_BYTES], frame[IN_BYTES + PROTO_OVERHEAD];
  boot();
  size_t mark = tx_len;
  make_pixels(px, 5);
  size_t n = proto_encode(frame, sizeof frame, PROTO_FRAME, 9, px, IN_BYTES);
  host_send(frame, n - 3); /* the last three bytes never arrive */
  run_device();
  check(decode_replies(mark, r, 4) == 0, "a reply before the link went idle");
  clock_us += PROTO_IDLE_FLUSH_MS * 1000u - 1u;
  run_device();
  check(decode_replies(mark, r, 4) == 0, "flushed before PROTO_IDLE_FLUSH_MS passed");
  clock_us += 1u;
  run_device();
  if (!check(decode_replies(mark, r, 4) == 1, "no ERROR after the idle time")) return;
  expect_error(&r[0], 9, PROTO_ERR_BAD_PAYLOAD_CRC, PROTO_ERROR_SEQ_VALID, 0);
  host_send_msg(PROTO_FRAME, 10, px, IN_BYTES); /* the link works on */
  run_device();
  if (check(decode_replies(mark, r, 4) == 2, "no RESULT after the flush")) expect_result(&r[1], 10, px);
}

int main(void) {
  struct {
    const char *name;
    void (*fn)(void);
  } cases[] = {
      {"boot_hello_and_hello_req", test_boot_hello_and_hello_req},
      {"frames_give_results_in_order", test_frames_give_results_in_order},
      {"byte_at_a_time_transport", test_byte_at_a_time_transport},
      {"credits_pipeline_and_overrun", test_credits_pipeline_and_overrun},
      {"bad_frames_get_errors_and_loop_continues", test_bad_frames_get_errors_and_loop_continues},
      {"oversized_and_version", test_oversized_and_version},
      {"corrupt_stream_never_breaks_the_loop", test_corrupt_stream_never_breaks_the_loop},
      {"runner_init_failure_reported", test_runner_init_failure_reported},
      {"config_checked", test_config_checked},
      {"pong_follows_earlier_frames", test_pong_follows_earlier_frames},
      {"camera_mode_submit", test_camera_mode_submit},
      {"idle_link_flushes_truncated_frame", test_idle_link_flushes_truncated_frame},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    int before = failures;
    current = cases[i].name;
    cases[i].fn();
    if (failures == before) printf("ok %s\n", current);
  }
  return failures ? 1 : 0;
}
