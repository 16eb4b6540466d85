/* Wire protocol: CRCs, encoders, payload decoders and the re-scanning byte parser (see protocol.h and
 * docs/protocol.md). C99, no heap, no OS calls. */
#include "protocol.h"

#include <string.h>

/* ---- little-endian helpers ---------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static void putf32(uint8_t *p, float f) {
  uint32_t v;
  memcpy(&v, &f, sizeof v);
  put32(p, v);
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

static float getf32(const uint8_t *p) {
  uint32_t v = get32(p);
  float f;
  memcpy(&f, &v, sizeof f);
  return f;
}

/* ---- CRCs: nibble tables (64 + 32 bytes of flash) are a good speed/size trade on a microcontroller ---- */

uint16_t proto_crc16(uint16_t crc, const uint8_t *data, size_t len) {
  static const uint16_t table[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
                                     0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef};
  for (size_t i = 0; i < len; i++) {
    crc = (uint16_t)((crc << 4) ^ table[(crc >> 12) ^ (data[i] >> 4)]);
    crc = (uint16_t)((crc << 4) ^ table[(crc >> 12) ^ (data[i] & 0x0f)]);
  }
  return crc;
}

uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len) {
  static const uint32_t table[16] = {0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
                                     0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
                                     0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
  crc = ~crc;
  for (size_t i = 0; i < len; i++) {
    crc = (crc >> 4) ^ table[(crc ^ data[i]) & 0x0f];
    crc = (crc >> 4) ^ table[(crc ^ ((uint32_t)data[i] >> 4)) & 0x0f];
  }
  return ~crc;
}

/* ---- encoders -------------------------------------------------------------------------------------- */

size_t proto_encode_header(uint8_t out[PROTO_HEADER_LEN], uint8_t type, uint16_t seq, uint32_t length) {
  out[0] = PROTO_SYNC0;
  out[1] = PROTO_SYNC1;
  out[2] = type;
  out[3] = 0; /* flags */
  put16(out + 4, seq);
  put32(out + 6, length);
  put16(out + 10, proto_crc16(PROTO_CRC16_INIT, out + 2, 8));
  return PROTO_HEADER_LEN;
}

void proto_encode_trailer(uint8_t out[PROTO_TRAILER_LEN], uint32_t payload_crc) { put32(out, payload_crc); }

size_t proto_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t length) {
  if (cap < PROTO_OVERHEAD || cap - PROTO_OVERHEAD < length) return 0;
  proto_encode_header(out, type, seq, length);
  if (length) memmove(out + PROTO_HEADER_LEN, payload, length);
  proto_encode_trailer(out + PROTO_HEADER_LEN + length, proto_crc32(0, out + PROTO_HEADER_LEN, length));
  return PROTO_OVERHEAD + (size_t)length;
}

/* Finish a frame whose payload the caller wrote at out + PROTO_HEADER_LEN. */
static size_t seal(uint8_t *out, uint8_t type, uint16_t seq, uint32_t length) {
  proto_encode_header(out, type, seq, length);
  proto_encode_trailer(out + PROTO_HEADER_LEN + length, proto_crc32(0, out + PROTO_HEADER_LEN, length));
  return PROTO_OVERHEAD + (size_t)length;
}

static size_t bounded_strlen(const char *s, size_t max) {
  size_t n = 0;
  if (s == NULL) return 0;
  while (n < max && s[n] != '\0') n++;
  return n;
}

size_t proto_encode_hello(uint8_t *out, size_t cap, uint16_t seq, const proto_hello_t *h) {
  size_t engine_len = bounded_strlen(h->engine, PROTO_ENGINE_MAX);
  size_t build_len = bounded_strlen(h->build, PROTO_BUILD_MAX);
  uint32_t length = (uint32_t)(PROTO_HELLO_FIXED_LEN + 2u + engine_len + build_len);
  if (cap < PROTO_OVERHEAD + (size_t)length) return 0;
  uint8_t *p = out + PROTO_HEADER_LEN;
  p[0] = h->version;
  p[1] = h->credits;
  p[2] = h->in_dtype;
  p[3] = h->out_dtype;
  put32(p + 4, h->max_payload);
  memcpy(p + 8, h->model_id, PROTO_MODEL_ID_LEN);
  put16(p + 40, h->in_h);
  put16(p + 42, h->in_w);
  put16(p + 44, h->in_c);
  put16(p + 46, h->out_len);
  putf32(p + 48, h->in_scale);
  put32(p + 52, (uint32_t)h->in_zero_point);
  putf32(p + 56, h->out_scale);
  put32(p + 60, (uint32_t)h->out_zero_point);
  put32(p + 64, h->arena_bytes);
  p += PROTO_HELLO_FIXED_LEN;
  *p++ = (uint8_t)engine_len;
  memcpy(p, h->engine, engine_len);
  p += engine_len;
  *p++ = (uint8_t)build_len;
  memcpy(p, h->build, build_len);
  return seal(out, PROTO_HELLO, seq, length);
}

size_t proto_encode_result(uint8_t *out, size_t cap, uint16_t seq, uint32_t inference_us, uint64_t cycles,
                           const uint8_t *output, uint16_t out_len) {
  uint32_t length = PROTO_RESULT_FIXED_LEN + (uint32_t)out_len;
  if (cap < PROTO_OVERHEAD + (size_t)length) return 0;
  uint8_t *p = out + PROTO_HEADER_LEN;
  put32(p, inference_us);
  put64(p + 4, cycles);
  if (out_len) memmove(p + PROTO_RESULT_FIXED_LEN, output, out_len);
  return seal(out, PROTO_RESULT, seq, length);
}

size_t proto_encode_error(uint8_t *out, size_t cap, uint16_t seq, uint8_t code, uint8_t flags, uint32_t detail) {
  if (cap < PROTO_OVERHEAD + PROTO_ERROR_LEN) return 0;
  uint8_t *p = out + PROTO_HEADER_LEN;
  p[0] = code;
  p[1] = flags;
  put32(p + 2, detail);
  return seal(out, PROTO_ERROR, seq, PROTO_ERROR_LEN);
}

size_t proto_encode_hello_req(uint8_t *out, size_t cap, uint16_t seq, uint32_t host_max_payload) {
  if (cap < PROTO_OVERHEAD + PROTO_HELLO_REQ_LEN) return 0;
  uint8_t *p = out + PROTO_HEADER_LEN;
  put32(p, host_max_payload);
  p[4] = PROTO_VERSION;
  return seal(out, PROTO_HELLO_REQ, seq, PROTO_HELLO_REQ_LEN);
}

/* ---- payload decoders ------------------------------------------------------------------------------ */

int proto_decode_hello(const uint8_t *p, uint32_t length, proto_hello_t *h) {
  if (length < PROTO_HELLO_FIXED_LEN + 2u) return PROTO_ERR_MALFORMED;
  memset(h, 0, sizeof *h);
  h->version = p[0];
  h->credits = p[1];
  h->in_dtype = p[2];
  h->out_dtype = p[3];
  h->max_payload = get32(p + 4);
  memcpy(h->model_id, p + 8, PROTO_MODEL_ID_LEN);
  h->in_h = get16(p + 40);
  h->in_w = get16(p + 42);
  h->in_c = get16(p + 44);
  h->out_len = get16(p + 46);
  h->in_scale = getf32(p + 48);
  h->in_zero_point = (int32_t)get32(p + 52);
  h->out_scale = getf32(p + 56);
  h->out_zero_point = (int32_t)get32(p + 60);
  h->arena_bytes = get32(p + 64);
  /* Both dtypes NONE: the "no model" HELLO of a board whose runner failed (engine names why); valid. */
  const int no_model = h->in_dtype == PROTO_DTYPE_NONE && h->out_dtype == PROTO_DTYPE_NONE;
  if (h->credits < 1 || (!no_model && (h->in_dtype < PROTO_DTYPE_MIN || h->in_dtype > PROTO_DTYPE_MAX ||
                                       h->out_dtype < PROTO_DTYPE_MIN || h->out_dtype > PROTO_DTYPE_MAX)))
    return PROTO_ERR_MALFORMED;
  uint32_t pos = PROTO_HELLO_FIXED_LEN;
  uint32_t engine_len = p[pos++];
  if (engine_len > PROTO_ENGINE_MAX || pos + engine_len + 1u > length) return PROTO_ERR_MALFORMED;
  memcpy(h->engine, p + pos, engine_len);
  pos += engine_len;
  uint32_t build_len = p[pos++];
  if (build_len > PROTO_BUILD_MAX || pos + build_len > length) return PROTO_ERR_MALFORMED;
  memcpy(h->build, p + pos, build_len);
  return 0;
}

int proto_decode_hello_req(const uint8_t *p, uint32_t length, uint32_t *host_max_payload, uint8_t *host_version) {
  if (length < PROTO_HELLO_REQ_LEN) return PROTO_ERR_MALFORMED;
  *host_max_payload = get32(p);
  *host_version = p[4];
  return 0;
}

int proto_decode_result(const uint8_t *p, uint32_t length, uint32_t *inference_us, uint64_t *cycles,
                        const uint8_t **output, uint32_t *out_len) {
  if (length < PROTO_RESULT_FIXED_LEN) return PROTO_ERR_MALFORMED;
  *inference_us = get32(p);
  *cycles = get64(p + 4);
  *output = p + PROTO_RESULT_FIXED_LEN;
  *out_len = length - PROTO_RESULT_FIXED_LEN;
  return 0;
}

int proto_decode_error(const uint8_t *p, uint32_t length, uint8_t *code, uint8_t *flags, uint32_t *detail) {
  if (length < PROTO_ERROR_LEN) return PROTO_ERR_MALFORMED;
  *code = p[0];
  *flags = p[1];
  *detail = get32(p + 2);
  return 0;
}

/* ---- parser ---------------------------------------------------------------------------------------- */

enum { ST_HUNT, ST_SYNC1, ST_HEADER, ST_PAYLOAD };

int proto_parser_init(proto_parser_t *p, uint8_t *buf, size_t cap) {
  memset(p, 0, sizeof *p);
  if (buf == NULL || cap < PROTO_OVERHEAD) return -1;
  p->buf = buf;
  p->cap = cap;
  size_t max = cap - PROTO_OVERHEAD;
  p->max_payload = max > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)max;
  p->state = ST_HUNT;
  return 0;
}

/* Bytes at stream offset `off` belong to no frame: extend the current noise run. */
static void skip(proto_parser_t *p, uint64_t off, uint32_t n) {
  if (p->noise == 0) p->noise_off = off;
  p->noise += n;
  p->stats.bytes_skipped += n;
}

/* Report a fault unless it belongs to one already reported (no valid header since). Returns 1 if reported. */
static int fault(proto_parser_t *p, proto_event_t *ev, uint8_t code, int header_valid, uint16_t seq, uint32_t detail,
                 uint64_t off) {
  int report = header_valid || !p->quiet;
  p->quiet = 1;
  if (!report) {
    p->stats.suppressed++;
    return 0;
  }
  ev->kind = PROTO_EV_FAULT;
  ev->code = code;
  ev->seq_valid = (uint8_t)(header_valid != 0);
  ev->seq = header_valid ? seq : 0;
  ev->detail = detail;
  ev->offset = off;
  p->stats.faults++;
  return 1;
}

/* The candidate in buf[0..fill) failed: queue its bytes after the sync byte for re-scanning, in front of
 * any bytes still pending. Writes always trail reads (a candidate read from buf[r0..] is stored at buf[0..],
 * and pending starts at index >= 1), so moving in place never overwrites an unread byte. */
static void rescan(proto_parser_t *p) {
  size_t m = p->fill;
  if (p->rp >= p->re) p->rp = p->re = m;
  memmove(p->buf + p->rp - (m - 1), p->buf + 1, m - 1);
  p->rp -= m - 1;
  p->pos = p->cand_off + 1;
  p->fill = 0;
  p->state = ST_HUNT;
}

/* Process one byte at stream offset p->pos. Returns 1 when *ev holds an event. */
static int step(proto_parser_t *p, uint8_t b, proto_event_t *ev) {
  uint64_t off = p->pos++;
  switch (p->state) {
    case ST_HUNT:
      if (b == PROTO_SYNC0) {
        p->buf[0] = b;
        p->fill = 1;
        p->cand_off = off;
        p->state = ST_SYNC1;
      } else {
        skip(p, off, 1);
      }
      return 0;
    case ST_SYNC1:
      if (b == PROTO_SYNC1) {
        p->borrowed = 0;
        p->buf[1] = b;
        p->fill = 2;
        p->state = ST_HEADER;
        if (p->noise) {
          uint32_t n = p->noise;
          p->noise = 0;
          return fault(p, ev, PROTO_ERR_NOISE, 0, 0, n, p->noise_off);
        }
      } else if (b == PROTO_SYNC0) {
        /* the previous A5 was noise (or the borrowed end of a frame); this one may start the sync word */
        if (!p->borrowed) skip(p, p->cand_off, 1);
        p->cand_off = off;
      } else {
        if (!p->borrowed) skip(p, p->cand_off, 1);
        skip(p, off, 1);
        p->fill = 0;
        p->state = ST_HUNT;
      }
      p->borrowed = 0;
      return 0;
    case ST_HEADER:
      p->buf[p->fill++] = b;
      if (p->fill < PROTO_HEADER_LEN) return 0;
      {
        uint16_t seq = get16(p->buf + 4);
        p->length = get32(p->buf + 6);
        if (proto_crc16(PROTO_CRC16_INIT, p->buf + 2, 8) != get16(p->buf + 10)) {
          uint64_t at = p->cand_off;
          rescan(p);
          return fault(p, ev, PROTO_ERR_BAD_HEADER_CRC, 0, 0, 0, at);
        }
        p->quiet = 0;
        if (p->length > p->max_payload) {
          /* Not buffered: hunt on from the end of the header. The payload's bytes then count as noise of
           * this reported fault, and a truncated oversized frame cannot hide the frame behind it. */
          p->stats.bytes_skipped += PROTO_HEADER_LEN;
          p->fill = 0;
          p->state = ST_HUNT;
          return fault(p, ev, PROTO_ERR_OVERSIZED, 1, seq, p->max_payload, p->cand_off);
        }
        p->need = p->length + PROTO_TRAILER_LEN;
        p->state = ST_PAYLOAD;
      }
      return 0;
    case ST_PAYLOAD:
      p->buf[p->fill++] = b;
      if (--p->need) return 0;
      {
        const uint8_t *payload = p->buf + PROTO_HEADER_LEN;
        uint16_t seq = get16(p->buf + 4);
        if (proto_crc32(0, payload, p->length) != get32(payload + p->length)) {
          uint64_t at = p->cand_off;
          rescan(p);
          return fault(p, ev, PROTO_ERR_BAD_PAYLOAD_CRC, 1, seq, 0, at);
        }
        ev->kind = PROTO_EV_FRAME;
        ev->type = p->buf[2];
        ev->seq = seq;
        ev->payload = payload;
        ev->length = p->length;
        ev->offset = p->cand_off;
        p->stats.frames++;
        p->delivered = 1;
        /* A frame whose CRC ends in A5 may have taken that byte from the next frame's sync word (its own
         * last byte was lost and the CRC still matched, 1 in 256). Let that byte start a sync word too;
         * if no 5A follows it is dropped without counting as noise. */
        p->borrowed = (b == PROTO_SYNC0);
        p->state = ST_HUNT;
        return 1;
      }
    default: p->state = ST_HUNT; return 0;
  }
}

size_t proto_parser_push(proto_parser_t *p, const uint8_t *data, size_t len, proto_event_t *ev) {
  size_t used = 0;
  memset(ev, 0, sizeof *ev);
  if (p->buf == NULL) return len; /* never initialised: drop input rather than touch memory */
  if (p->delivered) {
    p->delivered = 0;
    p->fill = 0;
    if (p->borrowed) {
      p->buf[0] = PROTO_SYNC0; /* the buffer may have been swapped */
      p->fill = 1;
      p->cand_off = p->pos - 1;
      p->state = ST_SYNC1;
    }
  }
  for (;;) {
    if (p->state == ST_PAYLOAD && p->need > 1) {
      /* Inside a payload: copy the run in bulk (all but the last byte, which step() checks). The source
       * is the re-scan region or the input; writes trail reads, so memmove is safe for either. */
      int pending = p->rp < p->re;
      size_t run = pending ? p->re - p->rp : len - used;
      if (run > p->need - 1) run = (size_t)(p->need - 1);
      if (run > 0) {
        memmove(p->buf + p->fill, pending ? p->buf + p->rp : data + used, run);
        p->fill += run;
        p->need -= run;
        p->pos += run;
        if (pending) {
          p->rp += run;
        } else {
          used += run;
          p->stats.bytes_in += run;
        }
        continue;
      }
    }
    uint8_t b;
    if (p->rp < p->re) {
      b = p->buf[p->rp++];
    } else if (used < len) {
      b = data[used++];
      p->stats.bytes_in++;
    } else {
      return used;
    }
    if (step(p, b, ev)) return used;
  }
}

int proto_parser_flush(proto_parser_t *p, proto_event_t *ev) {
  for (;;) {
    proto_parser_push(p, NULL, 0, ev); /* re-scanned bytes first */
    if (ev->kind != PROTO_EV_NONE) return 1;
    uint64_t at = p->cand_off;
    switch (p->state) {
      case ST_SYNC1: /* a lone A5 at the end: noise after all, unless it ended the last frame */
        if (!p->borrowed) skip(p, p->cand_off, 1);
        p->borrowed = 0;
        p->fill = 0;
        p->state = ST_HUNT;
        break;
      case ST_HEADER:
        rescan(p);
        if (fault(p, ev, PROTO_ERR_BAD_HEADER_CRC, 0, 0, 0, at)) return 1;
        break;
      case ST_PAYLOAD: {
        uint16_t seq = get16(p->buf + 4);
        rescan(p);
        return fault(p, ev, PROTO_ERR_BAD_PAYLOAD_CRC, 1, seq, 0, at);
      }
      default: /* hunting: report the pending noise run, then nothing is left */
        if (p->noise == 0) return 0;
        {
          uint32_t n = p->noise;
          p->noise = 0;
          if (fault(p, ev, PROTO_ERR_NOISE, 0, 0, n, p->noise_off)) return 1;
        }
        return 0;
    }
  }
}

uint8_t *proto_parser_swap_buffer(proto_parser_t *p, uint8_t *fresh) {
  uint8_t *old = p->buf;
  if (fresh == NULL || fresh == old) return old;
  if (p->rp < p->re) memcpy(fresh + p->rp, old + p->rp, p->re - p->rp);
  p->buf = fresh;
  return old;
}

const char *proto_type_name(uint8_t type) {
  switch (type) {
    case PROTO_HELLO_REQ: return "HELLO_REQ";
    case PROTO_HELLO: return "HELLO";
    case PROTO_FRAME: return "FRAME";
    case PROTO_RESULT: return "RESULT";
    case PROTO_ERROR: return "ERROR";
    case PROTO_PING: return "PING";
    case PROTO_PONG: return "PONG";
    default: return "?";
  }
}

const char *proto_error_name(uint8_t code) {
  switch (code) {
    case PROTO_ERR_BAD_HEADER_CRC: return "BAD_HEADER_CRC";
    case PROTO_ERR_BAD_PAYLOAD_CRC: return "BAD_PAYLOAD_CRC";
    case PROTO_ERR_OVERSIZED: return "OVERSIZED";
    case PROTO_ERR_NOISE: return "NOISE";
    case PROTO_ERR_WRONG_FRAME_SIZE: return "WRONG_FRAME_SIZE";
    case PROTO_ERR_UNKNOWN_TYPE: return "UNKNOWN_TYPE";
    case PROTO_ERR_RUNNER: return "RUNNER";
    case PROTO_ERR_NO_CREDIT: return "NO_CREDIT";
    case PROTO_ERR_MALFORMED: return "MALFORMED";
    case PROTO_ERR_VERSION: return "VERSION";
    default: return "?";
  }
}
