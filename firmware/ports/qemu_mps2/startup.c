/* Reset and exception handling for QEMU mps2-an386 (Cortex-M4F): vector table, .data/.bss set-up, FPU
 * enable, SysTick wrap counting. A fault ends the emulation with a distinct exit status instead of
 * hanging, so a test sees it at once. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void SysTick_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define FAULT_EXIT_STATUS 3

void Reset_Handler(void);

static void Fault_Handler(void) { board_exit(FAULT_EXIT_STATUS); }

static void Default_Handler(void) { board_exit(FAULT_EXIT_STATUS + 1); }

/* An interrupt whose handler only wakes the core from WFI (the port polls the UART itself). */
static void Wake_Handler(void) {}

typedef void (*vector_t)(void);

#define DEFAULT_X4 Default_Handler, Default_Handler, Default_Handler, Default_Handler

/* 16 system exceptions, then the an386's external interrupts; UART0 RX is IRQ 0. */
__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + 32] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    Wake_Handler, /* IRQ0: UART0 RX */
    Default_Handler,
    Default_Handler,
    Default_Handler, /* IRQ1-3 */
    DEFAULT_X4,
    DEFAULT_X4,
    DEFAULT_X4,
    DEFAULT_X4,
    DEFAULT_X4,
    DEFAULT_X4,
    DEFAULT_X4, /* IRQ4-31 */
};

void Reset_Handler(void) {
  uint32_t *src = &_sidata;
  uint32_t *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0;
  SCB_CPACR |= 0xFu << 20; /* full access to CP10/CP11: the FPU */
  __asm volatile("dsb\n\tisb" ::: "memory");
  board_exit(main());
}
