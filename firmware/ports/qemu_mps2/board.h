/* QEMU mps2-an386 board support: board_io.h (UART0 as the byte line, SysTick as the clock and instruction
 * counter) plus what a firmware image for the emulated Cortex-M4 needs beyond it. C99. */
#ifndef QEMU_MPS2_BOARD_H
#define QEMU_MPS2_BOARD_H

#include <stdint.h>

#include "board_io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start UART0 and the SysTick counter; called once by main before anything else. */
void board_init(void);
/* SysTick ticks since boot (25 MHz; with `-icount shift=0` one tick is exactly 40 instructions). */
uint64_t board_ticks(void);
/* board_wait_for_rx (board_io.h) sleeps until UART0 holds a byte or another interrupt (e.g. the SysTick
 * wrap) arrives, so an idle board does not burn a host CPU. PRIMASK stays set across the check and the WFI,
 * so a byte landing in between still wakes the core at once. */
/* Text on UART0 for self-test and bench programs (the inference firmware speaks only the wire protocol). */
void board_print(const char *s);
/* An unsigned number in decimal on UART0. */
void board_print_u64(uint64_t v);
/* End the emulation with `code` as QEMU's exit status (ARM semihosting SYS_EXIT_EXTENDED). */
void board_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif /* QEMU_MPS2_BOARD_H */
