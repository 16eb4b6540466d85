/* Decode a byte file with the C parser and print every event as one JSON line, so pytest can compare the
 * C implementation with the golden vectors and with tinyml/protocol.py.
 *
 *   protocol_harness [--chunk N] [--max-payload M] [--reencode] [--flush] FILE
 *
 * --chunk N        push the input N bytes at a time (1 = a byte-at-a-time ISR-style feed)
 * --max-payload M  parser buffer of PROTO_BUFFER_SIZE(M) bytes (default 1024)
 * --reencode       for each frame also print "reencoded": the frame rebuilt by the C encoders from the
 *                  decoded fields (checks the encoders against the same bytes)
 * --flush          after the input, flush the parser as on an idle link (proto_parser_flush)
 *
 * The parser buffer is followed by guard bytes that must still hold their pattern at exit: a write past
 * the buffer makes the harness exit 3 even without AddressSanitizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define GUARD 64

static void print_hex(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static void print_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* Decode the typed payload; print ,"message":{...} or ,"message_error":"MALFORMED". Re-encode into out. */
static size_t print_message(const proto_event_t *ev, uint8_t *out, size_t cap) {
  size_t n = 0;
  switch (ev->type) {
    case PROTO_HELLO_REQ: {
      uint32_t max;
      uint8_t version;
      if (proto_decode_hello_req(ev->payload, ev->length, &max, &version)) break;
      printf(",\"message\":{\"max_payload\":%lu,\"version\":%u}", (unsigned long)max, version);
      if (ev->length == PROTO_HELLO_REQ_LEN && version == PROTO_VERSION)
        n = proto_encode_hello_req(out, cap, ev->seq, max);
      return n;
    }
    case PROTO_HELLO: {
      proto_hello_t h;
      if (proto_decode_hello(ev->payload, ev->length, &h)) break;
      printf(
          ",\"message\":{\"version\":%u,\"credits\":%u,\"in_dtype\":%u,\"out_dtype\":%u,\"max_payload\":%lu,"
          "\"model_id\":\"",
          h.version, h.credits, h.in_dtype, h.out_dtype, (unsigned long)h.max_payload);
      print_hex(h.model_id, PROTO_MODEL_ID_LEN);
      printf(
          "\",\"in_h\":%u,\"in_w\":%u,\"in_c\":%u,\"out_len\":%u,\"in_scale\":%.9g,\"in_zero_point\":%ld,"
          "\"out_scale\":%.9g,\"out_zero_point\":%ld,\"arena_bytes\":%lu,\"engine\":",
          h.in_h, h.in_w, h.in_c, h.out_len, (double)h.in_scale, (long)h.in_zero_point, (double)h.out_scale,
          (long)h.out_zero_point, (unsigned long)h.arena_bytes);
      print_str(h.engine);
      printf(",\"build\":");
      print_str(h.build);
      printf("}");
      return proto_encode_hello(out, cap, ev->seq, &h);
    }
    case PROTO_RESULT: {
      uint32_t us, len;
      uint64_t cycles;
      const uint8_t *output;
      if (proto_decode_result(ev->payload, ev->length, &us, &cycles, &output, &len)) break;
      printf(",\"message\":{\"inference_us\":%lu,\"cycles\":%llu,\"output\":\"", (unsigned long)us,
             (unsigned long long)cycles);
      print_hex(output, len);
      printf("\"}");
      return len <= 0xFFFFu ? proto_encode_result(out, cap, ev->seq, us, cycles, output, (uint16_t)len) : 0;
    }
    case PROTO_ERROR: {
      uint8_t code, flags;
      uint32_t detail;
      if (proto_decode_error(ev->payload, ev->length, &code, &flags, &detail)) break;
      printf(",\"message\":{\"code\":%u,\"flags\":%u,\"detail\":%lu}", code, flags, (unsigned long)detail);
      return ev->length == PROTO_ERROR_LEN ? proto_encode_error(out, cap, ev->seq, code, flags, detail) : 0;
    }
    default:
      /* FRAME, PING, PONG and unknown types: the payload is the message. */
      printf(",\"message\":{}");
      return proto_encode(out, cap, ev->type, ev->seq, ev->payload, ev->length);
  }
  printf(",\"message_error\":\"%s\"", proto_error_name(PROTO_ERR_MALFORMED));
  return 0;
}

static void print_event(const proto_event_t *ev, int reencode, uint8_t *out, size_t out_cap) {
  if (ev->kind == PROTO_EV_FRAME) {
    printf("{\"event\":\"frame\",\"type\":%u,\"seq\":%u,\"offset\":%llu,\"payload\":\"", ev->type, ev->seq,
           (unsigned long long)ev->offset);
    print_hex(ev->payload, ev->length);
    printf("\"");
    size_t r = print_message(ev, out, out_cap);
    if (reencode) {
      printf(",\"reencoded\":\"");
      print_hex(out, r);
      printf("\"");
    }
    printf("}\n");
  } else if (ev->kind == PROTO_EV_FAULT) {
    printf("{\"event\":\"fault\",\"code\":%u,\"name\":\"%s\",\"seq\":", ev->code, proto_error_name(ev->code));
    if (ev->seq_valid)
      printf("%u", ev->seq);
    else
      printf("null");
    printf(",\"detail\":%lu,\"offset\":%llu}\n", (unsigned long)ev->detail, (unsigned long long)ev->offset);
  }
}

int main(int argc, char **argv) {
  size_t chunk = 0, max_payload = 1024;
  int reencode = 0, flush = 0;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
      chunk = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--max-payload") && i + 1 < argc)
      max_payload = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--reencode"))
      reencode = 1;
    else if (!strcmp(argv[i], "--flush"))
      flush = 1;
    else
      path = argv[i];
  }
  if (path == NULL) {
    fprintf(stderr, "usage: protocol_harness [--chunk N] [--max-payload M] [--reencode] [--flush] FILE\n");
    return 2;
  }
  FILE *fh = fopen(path, "rb");
  if (fh == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return 2;
  }
  fseek(fh, 0, SEEK_END);
  long size = ftell(fh);
  fseek(fh, 0, SEEK_SET);
  uint8_t *data = malloc(size > 0 ? (size_t)size : 1u);
  if (data == NULL || (size > 0 && fread(data, 1, (size_t)size, fh) != (size_t)size)) {
    fprintf(stderr, "cannot read %s\n", path);
    return 2;
  }
  fclose(fh);

  size_t cap = PROTO_BUFFER_SIZE(max_payload);
  uint8_t *buf = malloc(cap + GUARD);
  size_t out_cap = cap + PROTO_HELLO_MAX_LEN + PROTO_OVERHEAD;
  uint8_t *out = malloc(out_cap);
  if (buf == NULL || out == NULL) return 2;
  memset(buf + cap, 0xCD, GUARD);
  proto_parser_t parser;
  if (proto_parser_init(&parser, buf, cap) != 0) return 2;

  size_t total = (size_t)size, pos = 0;
  if (chunk == 0) chunk = total ? total : 1;
  proto_event_t ev;
  for (;;) {
    size_t n = total - pos < chunk ? total - pos : chunk;
    size_t off = 0;
    do {
      off += proto_parser_push(&parser, data + pos + off, n - off, &ev);
      print_event(&ev, reencode, out, out_cap);
    } while (ev.kind != PROTO_EV_NONE);
    pos += n;
    if (pos >= total) break;
  }
  while (flush && proto_parser_flush(&parser, &ev)) print_event(&ev, reencode, out, out_cap);
  printf(
      "{\"event\":\"stats\",\"frames\":%lu,\"faults\":%lu,\"suppressed\":%lu,\"bytes_in\":%llu,"
      "\"bytes_skipped\":%llu}\n",
      (unsigned long)parser.stats.frames, (unsigned long)parser.stats.faults, (unsigned long)parser.stats.suppressed,
      (unsigned long long)parser.stats.bytes_in, (unsigned long long)parser.stats.bytes_skipped);
  for (size_t i = 0; i < GUARD; i++) {
    if (buf[cap + i] != 0xCD) {
      fprintf(stderr, "parser wrote past its buffer\n");
      return 3;
    }
  }
  free(data);
  free(buf);
  free(out);
  return 0;
}
