/* libFuzzer target for the C parser (built by tests/test_protocol_c.py and bench/fuzz_protocol.py with
 * clang -fsanitize=fuzzer,address,undefined).
 *
 * Input byte 0 picks the receiver's max payload (0..255), byte 1 the feed chunk size and the mode:
 *   raw mode:    the rest is the byte stream.
 *   frames mode: the rest is a script of records [op][len][len bytes]; each becomes a frame with correct
 *                CRCs (op & 7 = type, seq = record index), damaged by op >> 3 (0 none, 1 flip, 2 drop,
 *                3 insert, at a position taken from the next script byte), so the fuzzer reaches deep into
 *                the re-scan logic instead of failing on CRCs.
 * Checks (abort = crash report): the parser never touches memory outside its exactly-sized heap buffer
 * (ASan), a whole-input feed and a chunked feed give the same events, every frame it delivers is the
 * exact bytes at its offset with both CRCs valid, offsets never go back, the event count stays bounded
 * (no livelock), flushing at the end leaves nothing pending, and in frames mode every undamaged frame is
 * delivered (by the end of the flush: a frame swallowed by a truncated one waits for bytes until then).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define MAX_EVENTS 4096
#define MAX_STREAM 65536

typedef struct {
  uint8_t kind, type, code, seq_valid;
  uint16_t seq;
  uint32_t detail, length;
  uint64_t offset;
} rec_t;

static rec_t ev_a[MAX_EVENTS], ev_b[MAX_EVENTS];
static uint8_t stream[MAX_STREAM];
static uint64_t intact_off[MAX_STREAM / PROTO_OVERHEAD + 1];

typedef struct {
  const uint8_t *data; /* the whole input, to check delivered frames against */
  size_t size, max_payload, n;
  const uint8_t *buf; /* the parser buffer */
  uint64_t last;
  rec_t *out;
} run_t;

/* Check one event against the invariants and append it to the record. */
static void check_and_record(run_t *r, const proto_event_t *ev) {
  if (r->n >= MAX_EVENTS || r->n > 2 * r->size + 2) abort(); /* more events than bytes: livelock */
  if (ev->offset < r->last || ev->offset >= r->size) abort();
  r->last = ev->offset;
  if (ev->kind == PROTO_EV_FRAME) {
    if (ev->length > r->max_payload || ev->payload != r->buf + PROTO_HEADER_LEN) abort();
    if (ev->offset + PROTO_OVERHEAD + ev->length > r->size) abort();
    const uint8_t *at = r->data + ev->offset;
    if (memcmp(at + PROTO_HEADER_LEN, ev->payload, ev->length) != 0) abort();
    uint8_t head[PROTO_HEADER_LEN], trailer[PROTO_TRAILER_LEN];
    proto_encode_header(head, ev->type, ev->seq, ev->length);
    head[3] = at[3]; /* flags are not set by the encoder */
    uint16_t hcrc = proto_crc16(PROTO_CRC16_INIT, head + 2, 8);
    head[10] = (uint8_t)hcrc;
    head[11] = (uint8_t)(hcrc >> 8);
    proto_encode_trailer(trailer, proto_crc32(0, ev->payload, ev->length));
    if (memcmp(at, head, PROTO_HEADER_LEN) || memcmp(at + PROTO_HEADER_LEN + ev->length, trailer, 4)) abort();
    /* Exercise the payload decoders on whatever arrived. */
    proto_hello_t h;
    uint32_t u32, u32b;
    uint64_t u64;
    uint8_t c, f;
    const uint8_t *o;
    (void)proto_decode_hello(ev->payload, ev->length, &h);
    (void)proto_decode_hello_req(ev->payload, ev->length, &u32, &c);
    (void)proto_decode_result(ev->payload, ev->length, &u32, &u64, &o, &u32b);
    (void)proto_decode_error(ev->payload, ev->length, &c, &f, &u32);
  } else if (ev->code < PROTO_ERR_BAD_HEADER_CRC || ev->code > PROTO_ERR_NOISE) {
    abort();
  }
  rec_t *rec = &r->out[r->n++];
  memset(rec, 0, sizeof *rec);
  rec->kind = ev->kind;
  rec->type = ev->type;
  rec->code = ev->code;
  rec->seq_valid = ev->seq_valid;
  rec->seq = ev->seq;
  rec->detail = ev->detail;
  rec->length = ev->length;
  rec->offset = ev->offset;
}

static size_t run(const uint8_t *data, size_t size, size_t max_payload, size_t chunk, rec_t *out) {
  size_t cap = PROTO_BUFFER_SIZE(max_payload);
  uint8_t *buf = malloc(cap);
  proto_parser_t p;
  if (buf == NULL || proto_parser_init(&p, buf, cap) != 0) abort();
  run_t r = {data, size, max_payload, 0, buf, 0, out};
  size_t pos = 0;
  proto_event_t ev;
  while (pos < size) {
    size_t len = size - pos < chunk ? size - pos : chunk;
    size_t off = 0;
    do {
      off += proto_parser_push(&p, data + pos + off, len - off, &ev);
      if (off > len) abort();
      if (ev.kind != PROTO_EV_NONE) check_and_record(&r, &ev);
    } while (ev.kind != PROTO_EV_NONE);
    pos += len;
  }
  while (proto_parser_flush(&p, &ev)) check_and_record(&r, &ev);
  if (p.state != 0 || p.rp < p.re || p.noise) abort(); /* flushed: nothing may stay pending */
  if (p.stats.bytes_in != size) abort();
  free(buf);
  return r.n;
}

/* Build a frames-mode stream from the script; returns its length and fills intact_off. */
static size_t build(const uint8_t *s, size_t n, size_t *n_intact) {
  size_t len = 0, i = 0;
  uint16_t seq = 0;
  *n_intact = 0;
  while (i + 2 <= n) {
    uint8_t op = s[i], plen = s[i + 1];
    i += 2;
    if (i + plen > n) plen = (uint8_t)(n - i);
    if (len + PROTO_OVERHEAD + plen + 1 > MAX_STREAM) break;
    size_t start = len;
    len += proto_encode(stream + len, MAX_STREAM - len, (uint8_t)(op & 7), seq++, s + i, plen);
    i += plen;
    uint8_t damage = (uint8_t)(op >> 3) & 3;
    size_t flen = len - start;
    size_t at = start + 1 + (i < n ? s[i++] : 0) % (flen - 1);
    if (damage == 1) {
      stream[at] ^= (uint8_t)(1u << (op >> 5));
    } else if (damage == 2) {
      memmove(stream + at, stream + at + 1, len - at - 1);
      len--;
    } else if (damage == 3) {
      memmove(stream + at + 1, stream + at, len - at);
      stream[at] = op;
      len++;
    } else {
      intact_off[(*n_intact)++] = start;
    }
  }
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max_payload = data[0];
  size_t chunk = (size_t)(data[1] & 0x3f) + 1;
  int frames_mode = data[1] & 0x80;
  data += 2;
  size -= 2;
  size_t n_intact = 0;
  if (frames_mode) {
    size = build(data, size, &n_intact);
    data = stream;
  }
  size_t na = run(data, size, max_payload, size ? size : 1, ev_a);
  size_t nb = run(data, size, max_payload, chunk, ev_b);
  if (na != nb || memcmp(ev_a, ev_b, na * sizeof(rec_t)) != 0) abort(); /* split changed the events */
  /* Every undamaged frame that fits the receiver is delivered (re-scan recovers it). */
  size_t k = 0;
  for (size_t i = 0; i < n_intact; i++) {
    uint32_t length = (uint32_t)stream[intact_off[i] + 6];
    if (length > max_payload) continue;
    while (k < na && !(ev_a[k].kind == PROTO_EV_FRAME && ev_a[k].offset == intact_off[i])) k++;
    if (k == na) abort();
  }
  return 0;
}
