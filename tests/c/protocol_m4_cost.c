/* Device-side cost of the protocol on a Cortex-M4 (QEMU mps2-an386, `-icount shift=0`: the SysTick count
 * is exact instructions, 40 per tick). Built with the QEMU port by bench/wire_efficiency.py --m4; prints
 * one "name instructions" line per measurement on UART0, then exits 0.
 *
 *   frame_parse   parse one 96x96x1 FRAME (9,232 bytes) fed in 64-byte reads, CRCs included
 *   crc32_9216    CRC-32 of the 9,216 pixels alone
 *   result_encode encode one RESULT with 10 scores
 *   hello_encode  encode one HELLO */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "port.h"
#include "protocol.h"

#define PIXELS (96u * 96u)
#define REPEAT 8u

static uint8_t wire[PROTO_BUFFER_SIZE(PIXELS)];
static uint8_t parse_buf[PROTO_BUFFER_SIZE(PIXELS)];
static uint8_t out[PROTO_OVERHEAD + PROTO_HELLO_MAX_LEN];

static void report(const char *name, uint64_t instructions) {
  board_print(name);
  board_print(" ");
  board_print_u64(instructions);
  board_print("\n");
}

int main(void) {
  board_init();
  static uint8_t pixels[PIXELS];
  for (uint32_t i = 0; i < PIXELS; i++) pixels[i] = (uint8_t)(i * 2654435761u >> 24);
  size_t n = proto_encode(wire, sizeof wire, PROTO_FRAME, 1, pixels, PIXELS);

  proto_parser_t p;
  proto_parser_init(&p, parse_buf, sizeof parse_buf);
  uint32_t frames = 0;
  uint64_t t0 = port_cycles();
  for (uint32_t r = 0; r < REPEAT; r++) {
    for (size_t off = 0; off < n;) {
      size_t len = n - off < 64 ? n - off : 64, used = 0;
      proto_event_t ev;
      do {
        used += proto_parser_push(&p, wire + off + used, len - used, &ev);
        frames += ev.kind == PROTO_EV_FRAME;
      } while (ev.kind != PROTO_EV_NONE);
      off += len;
    }
  }
  uint64_t t1 = port_cycles();
  report("frame_parse", (t1 - t0) / REPEAT);
  if (frames != REPEAT) {
    board_print("error frames not decoded\n");
    board_exit(1);
  }

  volatile uint32_t sink = 0;
  t0 = port_cycles();
  for (uint32_t r = 0; r < REPEAT; r++) sink += proto_crc32(0, pixels, PIXELS);
  t1 = port_cycles();
  report("crc32_9216", (t1 - t0) / REPEAT);

  const uint8_t scores[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  t0 = port_cycles();
  for (uint32_t r = 0; r < REPEAT * 16; r++)
    sink += (uint32_t)proto_encode_result(out, sizeof out, (uint16_t)r, 1000, 0, scores, 10);
  t1 = port_cycles();
  report("result_encode", (t1 - t0) / (REPEAT * 16));

  proto_hello_t h;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  h.credits = 2;
  h.in_dtype = h.out_dtype = 1;
  h.in_h = h.in_w = 96;
  h.in_c = 1;
  h.out_len = 10;
  strcpy(h.engine, "engine");
  strcpy(h.build, "qemu-mps2-an386 bench");
  t0 = port_cycles();
  for (uint32_t r = 0; r < REPEAT; r++) sink += (uint32_t)proto_encode_hello(out, sizeof out, 0, &h);
  t1 = port_cycles();
  report("hello_encode", (t1 - t0) / REPEAT);
  (void)sink;
  board_print("done\n");
  board_exit(0);
}
