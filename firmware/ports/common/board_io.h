/* The byte line and clock a board port supplies below the firmware: port_board.c turns them into port.h
 * for the portable app, and the Arduino API stand-in (ports/arduino) turns them into Serial and micros(),
 * so every program on a port (native firmware, QEMU firmware, Arduino sketch) shares one driver. C99. */
#ifndef BOARD_IO_H
#define BOARD_IO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Up to `max` bytes that have already arrived; never blocks. Returns the count (0 if none). */
size_t board_read(uint8_t *buf, size_t max);
/* All `len` bytes, blocking until the transport has taken them. */
void board_write(const uint8_t *buf, size_t len);
/* Monotonic microseconds since boot (wraps at 2^32). */
uint32_t board_micros(void);
/* Instruction or cycle count since boot, or 0 where the board cannot count. */
uint64_t board_cycles(void);
/* Sleep until input may have arrived (or a short timeout passes), so an idle program uses no host CPU. */
void board_wait_for_rx(void);

#ifdef __cplusplus
}
#endif
#endif /* BOARD_IO_H */
