/* Port self-test for mps2-an386, driven by tests/test_firmware_qemu.py over UART0. One command per line:
 *   e<text>  echo <text> back
 *   c<n>     run a loop of exactly 4*n+k instructions and report the SysTick-derived instruction count
 *   x<code>  exit the emulation with status <code> (semihosting)
 *   f        fault (read from unmapped memory): the fault handler must end the emulation
 * It proves the startup code, UART driver, timing and exit path before any real firmware runs on them. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "port.h"

static uint32_t parse_u32(const char *s) {
  uint32_t v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10u + (uint32_t)(*s++ - '0');
  return v;
}

/* subs + bne: 2 instructions per iteration, counted as executed by QEMU's icount. */
static void spin(uint32_t n) { __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc"); }

static size_t read_line(char *line, size_t max) {
  size_t n = 0;
  for (;;) {
    uint8_t byte;
    if (port_read(&byte, 1) == 0) {
      board_wait_for_rx();
      continue;
    }
    if (byte == '\n') break;
    if (n + 1 < max) line[n++] = (char)byte;
  }
  line[n] = '\0';
  return n;
}

int main(void) {
  board_init();
  board_print("smoke ");
  board_print(port_build_id());
  board_print("\n");
  for (;;) {
    char line[128];
    if (read_line(line, sizeof line) == 0) continue;
    switch (line[0]) {
      case 'e':
        board_print(line + 1);
        board_print("\n");
        break;
      case 'c': {
        uint32_t n = parse_u32(line + 1);
        uint64_t t0 = port_cycles();
        uint32_t us0 = port_micros();
        spin(n);
        uint64_t t1 = port_cycles();
        uint32_t us1 = port_micros();
        board_print("cycles ");
        board_print_u64(t1 - t0);
        board_print(" us ");
        board_print_u64(us1 - us0);
        board_print("\n");
        break;
      }
      case 'x': return (int)parse_u32(line + 1);
      case 'f':
        (void)*(volatile uint32_t *)0xF0000000u;
        board_print("no fault\n");
        break;
      default: board_print("?\n");
    }
  }
}
