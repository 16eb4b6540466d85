/* port.h for the programs that run straight on a board port (native Linux, QEMU mps2-an386): the port's
 * byte line and clock (board_io.h) as they are, and the build string the Makefile passes. */
#include "board_io.h"
#include "port.h"

#ifndef FIRMWARE_BUILD_ID
#error "build with -DFIRMWARE_BUILD_ID=\"...\" (the port's Makefile passes BUILD_ID)"
#endif

size_t port_read(uint8_t *buf, size_t max) { return board_read(buf, max); }

void port_write(const uint8_t *buf, size_t len) { board_write(buf, len); }

uint32_t port_micros(void) { return board_micros(); }

uint64_t port_cycles(void) { return board_cycles(); }

const char *port_build_id(void) { return FIRMWARE_BUILD_ID; }
