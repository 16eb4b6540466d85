/* Port interface: what each board (PlatformIO/Arduino, QEMU mps2-an386, native Linux) supplies to
 * the portable application loop: a byte transport and a clock. C99. */
#ifndef PORT_H
#define PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read up to `max` bytes that have already arrived; never blocks. Returns the count (0 if none). */
size_t port_read(uint8_t *buf, size_t max);
/* Write all `len` bytes (blocking until handed to the transport). */
void port_write(const uint8_t *buf, size_t len);
/* Monotonic microseconds since boot (wraps at 2^32). */
uint32_t port_micros(void);
/* Instruction or cycle count since boot if the port can measure it, else 0 (QEMU: SysTick ticks x 40). */
uint64_t port_cycles(void);
/* Firmware build string for HELLO, e.g. "qemu-mps2-an386 2026-11-25 abc123". */
const char *port_build_id(void);

#ifdef __cplusplus
}
#endif
#endif /* PORT_H */
