/* Unit tests of firmware/lib/protocol that the golden vectors do not cover: CRC check values, encoder
 * bounds, the gather (header / payload chunks / trailer) form, parser limits, double buffering.
 * Built with the host gcc (+ASan/UBSan) and run by tests/test_protocol_c.py; exits non-zero on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static int failures;

#define CHECK(cond)                                          \
  do {                                                       \
    if (!(cond)) {                                           \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                            \
    }                                                        \
  } while (0)

/* Push everything; collect up to `max` events (payloads copied out) and return how many arrived. */
typedef struct {
  proto_event_t ev;
  uint8_t payload[256];
} got_t;

static int push_all(proto_parser_t *p, const uint8_t *data, size_t len, got_t *got, int max) {
  int n = 0;
  size_t off = 0;
  proto_event_t ev;
  do {
    off += proto_parser_push(p, data + off, len - off, &ev);
    if (ev.kind != PROTO_EV_NONE && n < max) {
      got[n].ev = ev;
      if (ev.kind == PROTO_EV_FRAME && ev.length <= sizeof got[n].payload)
        memcpy(got[n].payload, ev.payload, ev.length);
      n++;
    }
  } while (ev.kind != PROTO_EV_NONE);
  return n;
}

static void test_crc_check_values(void) {
  const uint8_t check[] = "123456789";
  /* Catalogue check values of CRC-16/CCITT-FALSE and CRC-32 (ISO-HDLC). */
  CHECK(proto_crc16(PROTO_CRC16_INIT, check, 9) == 0x29B1);
  CHECK(proto_crc32(0, check, 9) == 0xCBF43926u);
  /* Chaining over chunks equals one pass. */
  CHECK(proto_crc32(proto_crc32(0, check, 4), check + 4, 5) == 0xCBF43926u);
  CHECK(proto_crc32(0, check, 0) == 0);
}

static void test_encoder_bounds(void) {
  uint8_t out[64];
  const uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  memset(out, 0xEE, sizeof out);
  CHECK(proto_encode(out, PROTO_OVERHEAD + 7, PROTO_PING, 1, payload, 8) == 0);
  CHECK(out[0] == 0xEE); /* nothing written when it does not fit */
  CHECK(proto_encode(out, PROTO_OVERHEAD + 8, PROTO_PING, 1, payload, 8) == PROTO_OVERHEAD + 8);
  CHECK(out[PROTO_OVERHEAD + 8] == 0xEE);
  CHECK(proto_encode_error(out, PROTO_OVERHEAD + PROTO_ERROR_LEN - 1, 0, 1, 0, 0) == 0);
  CHECK(proto_encode_result(out, PROTO_OVERHEAD + PROTO_RESULT_FIXED_LEN + 9, 0, 1, 2, payload, 10) == 0);
  CHECK(proto_encode_hello_req(out, PROTO_OVERHEAD + PROTO_HELLO_REQ_LEN - 1, 0, 100) == 0);
  proto_hello_t h;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  h.credits = 1;
  h.in_dtype = h.out_dtype = 1;
  strcpy(h.engine, "e");
  CHECK(proto_encode_hello(out, PROTO_OVERHEAD + PROTO_HELLO_FIXED_LEN + 2, 0, &h) == 0);
  CHECK(proto_encode_hello(out, sizeof out + 0, 0, &h) == 0); /* 87 bytes do not fit in 64 */
}

static void test_gather_equals_whole(void) {
  uint8_t payload[300], whole[400], gathered[400];
  for (int i = 0; i < 300; i++) payload[i] = (uint8_t)(i * 7);
  size_t n = proto_encode(whole, sizeof whole, PROTO_FRAME, 42, payload, sizeof payload);
  CHECK(n == sizeof payload + PROTO_OVERHEAD);
  proto_encode_header(gathered, PROTO_FRAME, 42, sizeof payload);
  memcpy(gathered + PROTO_HEADER_LEN, payload, sizeof payload);
  uint32_t crc = proto_crc32(0, payload, 100);
  crc = proto_crc32(crc, payload + 100, 200);
  proto_encode_trailer(gathered + PROTO_HEADER_LEN + sizeof payload, crc);
  CHECK(memcmp(whole, gathered, n) == 0);
}

static void test_parser_limits(void) {
  uint8_t buf[PROTO_OVERHEAD];
  proto_parser_t p;
  CHECK(proto_parser_init(&p, buf, PROTO_OVERHEAD - 1) == -1);
  CHECK(proto_parser_init(&p, NULL, 100) == -1);
  CHECK(proto_parser_init(&p, buf, sizeof buf) == 0); /* max payload 0: empty frames only */
  uint8_t wire[64];
  got_t got[4];
  size_t n = proto_encode(wire, sizeof wire, PROTO_PING, 3, NULL, 0);
  n += proto_encode(wire + n, sizeof wire - n, PROTO_PING, 4, (const uint8_t *)"x", 1);
  n += proto_encode(wire + n, sizeof wire - n, PROTO_PING, 5, NULL, 0);
  int k = push_all(&p, wire, n, got, 4);
  CHECK(k == 3);
  CHECK(got[0].ev.kind == PROTO_EV_FRAME && got[0].ev.seq == 3 && got[0].ev.length == 0);
  CHECK(got[1].ev.kind == PROTO_EV_FAULT && got[1].ev.code == PROTO_ERR_OVERSIZED && got[1].ev.seq == 4 &&
        got[1].ev.seq_valid && got[1].ev.detail == 0);
  CHECK(got[2].ev.kind == PROTO_EV_FRAME && got[2].ev.seq == 5);
  proto_event_t ev;
  CHECK(proto_parser_push(&p, NULL, 0, &ev) == 0 && ev.kind == PROTO_EV_NONE);
  CHECK(p.stats.frames == 2 && p.stats.faults == 1 && p.stats.bytes_in == n);
}

/* A truncated frame swallows the next two; both come back from the re-scan, and the app swaps buffers
 * after the first while the second is still pending in the old buffer. */
static void test_swap_buffer_with_pending_rescan(void) {
  enum { MAXP = 64, CAP = MAXP + PROTO_OVERHEAD };
  uint8_t a[CAP], b[CAP], wire[256];
  uint8_t pa[40], pb[5] = {'h', 'e', 'l', 'l', 'o'}, pc[6] = {'w', 'o', 'r', 'l', 'd', '!'};
  memset(pa, 0x11, sizeof pa);
  size_t n = proto_encode(wire, sizeof wire, PROTO_FRAME, 1, pa, sizeof pa) - 30; /* cut 30 bytes */
  n += proto_encode(wire + n, sizeof wire - n, PROTO_FRAME, 2, pb, sizeof pb);
  n += proto_encode(wire + n, sizeof wire - n, PROTO_FRAME, 3, pc, sizeof pc);
  proto_parser_t p;
  CHECK(proto_parser_init(&p, a, CAP) == 0);
  proto_event_t ev;
  size_t off = proto_parser_push(&p, wire, n, &ev);
  CHECK(ev.kind == PROTO_EV_FAULT && ev.code == PROTO_ERR_BAD_PAYLOAD_CRC && ev.seq == 1);
  CHECK(off == 56); /* the truncated frame (declared 56 bytes) fails inside frame 3 */
  off += proto_parser_push(&p, wire + off, n - off, &ev);
  CHECK(ev.kind == PROTO_EV_FRAME && ev.seq == 2 && ev.length == 5);
  const uint8_t *kept = ev.payload;
  uint8_t *old = proto_parser_swap_buffer(&p, b);
  CHECK(old == a && kept >= a && kept < a + CAP);
  off += proto_parser_push(&p, wire + off, n - off, &ev);
  CHECK(ev.kind == PROTO_EV_FRAME && ev.seq == 3 && ev.length == 6 && memcmp(ev.payload, pc, 6) == 0);
  CHECK(ev.payload >= b && ev.payload < b + CAP);
  CHECK(memcmp(kept, pb, 5) == 0); /* the swapped-out payload was not touched */
  off += proto_parser_push(&p, wire + off, n - off, &ev);
  CHECK(ev.kind == PROTO_EV_NONE && off == n);
}

static void test_hello_roundtrip_cuts_long_strings(void) {
  proto_hello_t h, d;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  h.credits = 3;
  h.in_dtype = 2;
  h.out_dtype = 1;
  h.max_payload = 150528;
  for (int i = 0; i < 32; i++) h.model_id[i] = (uint8_t)i;
  h.in_h = h.in_w = 224;
  h.in_c = 3;
  h.out_len = 1000;
  h.in_scale = 0.5f;
  h.in_zero_point = 128;
  h.out_scale = 0.25f;
  h.out_zero_point = -3;
  memset(h.build, 'b', PROTO_BUILD_MAX);
  strcpy(h.engine, "tflm");
  uint8_t out[PROTO_OVERHEAD + PROTO_HELLO_MAX_LEN];
  size_t n = proto_encode_hello(out, sizeof out, 7, &h);
  CHECK(n == PROTO_OVERHEAD + PROTO_HELLO_FIXED_LEN + 2 + 4 + PROTO_BUILD_MAX);
  CHECK(proto_decode_hello(out + PROTO_HEADER_LEN, (uint32_t)(n - PROTO_OVERHEAD), &d) == 0);
  CHECK(d.credits == 3 && d.in_h == 224 && d.in_c == 3 && d.out_len == 1000 && d.max_payload == 150528);
  CHECK(d.in_scale == 0.5f && d.in_zero_point == 128 && d.out_zero_point == -3);
  CHECK(strcmp(d.engine, "tflm") == 0 && strlen(d.build) == PROTO_BUILD_MAX);
  CHECK(memcmp(d.model_id, h.model_id, 32) == 0);
  /* A string length pointing past the payload is refused. */
  out[PROTO_HEADER_LEN + PROTO_HELLO_FIXED_LEN] = 200;
  CHECK(proto_decode_hello(out + PROTO_HEADER_LEN, (uint32_t)(n - PROTO_OVERHEAD), &d) == PROTO_ERR_MALFORMED);
}

static void test_names(void) {
  CHECK(strcmp(proto_type_name(PROTO_RESULT), "RESULT") == 0);
  CHECK(strcmp(proto_type_name(0x7E), "?") == 0);
  CHECK(strcmp(proto_error_name(PROTO_ERR_VERSION), "VERSION") == 0);
  CHECK(strcmp(proto_error_name(0), "?") == 0);
}

int main(void) {
  test_crc_check_values();
  test_encoder_bounds();
  test_gather_equals_whole();
  test_parser_limits();
  test_swap_buffer_with_pending_rescan();
  test_hello_roundtrip_cuts_long_strings();
  test_names();
  if (failures) {
    printf("%d check(s) failed\n", failures);
    return 1;
  }
  printf("all protocol unit checks passed\n");
  return 0;
}
