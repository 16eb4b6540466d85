/* mps2-an386 peripherals: CMSDK APB UART0 (polled, 1-byte RX holding register), SysTick as the clock,
 * semihosting exit.
 *
 * Why polled RX: an RX interrupt would run during inference whenever the host pipelines the next frame,
 * adding instructions to the measured count. Instead the port reads the holding register itself; QEMU
 * stops taking bytes from the socket while it is full, so nothing is lost. When idle the core sleeps in
 * WFI with the RX interrupt armed, so an idle board does not burn a host CPU. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"

typedef struct {
  volatile uint32_t data;
  volatile uint32_t state;
  volatile uint32_t ctrl;
  volatile uint32_t intstatus; /* write 1 to clear */
  volatile uint32_t bauddiv;
} cmsdk_uart_t;

#define UART0 ((cmsdk_uart_t *)0x40004000u)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TXEN (1u << 0)
#define UART_CTRL_RXEN (1u << 1)
#define UART_CTRL_RXINTEN (1u << 3)
#define UART_INT_RX (1u << 1)
#define UART0_RX_IRQ 0u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CPUCLK (1u << 2)
#define SYST_PERIOD (1u << 24)

#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)

#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define NVIC_ICPR0 (*(volatile uint32_t *)0xE000E280u)

#define SYSCLK_HZ 25000000u
#define INSTRUCTIONS_PER_TICK 40u /* 1 ns per instruction under -icount shift=0, 40 ns per 25 MHz tick */

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

void board_init(void) {
  UART0->bauddiv = 16; /* the smallest divider the CMSDK UART accepts; QEMU does not model baud timing */
  UART0->ctrl = UART_CTRL_TXEN | UART_CTRL_RXEN;
  NVIC_ISER0 = 1u << UART0_RX_IRQ;
  SYST_RVR = SYST_PERIOD - 1u;
  SYST_CVR = 0;
  SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CPUCLK;
}

uint64_t board_ticks(void) {
  /* With interrupts masked, a wrap whose handler has not run yet shows as a pending SysTick; a counter value
   * from the upper half of the period was then read after the reload, so that wrap counts already. */
  uint32_t primask;
  __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");
  uint32_t wraps = systick_wraps;
  uint32_t value = SYST_CVR;
  if ((SCB_ICSR & SCB_ICSR_PENDSTSET) && value >= SYST_PERIOD / 2u) wraps++;
  __asm volatile("msr primask, %0" : : "r"(primask) : "memory");
  return (uint64_t)wraps * SYST_PERIOD + (SYST_PERIOD - 1u - value);
}

void board_exit(int code) {
  /* SYS_EXIT_EXTENDED takes {reason, status}; ADP_Stopped_ApplicationExit makes `status` QEMU's exit code. */
  static volatile uint32_t block[2];
  block[0] = 0x20026u;
  block[1] = (uint32_t)code;
  register uint32_t op __asm("r0") = 0x20u;
  register volatile uint32_t *arg __asm("r1") = block;
  __asm volatile("bkpt 0xAB" : : "r"(op), "r"(arg) : "memory");
  for (;;) {}
}

void board_wait_for_rx(void) {
  __asm volatile("cpsid i" ::: "memory");
  UART0->ctrl |= UART_CTRL_RXINTEN;
  if (!(UART0->state & UART_STATE_RXFULL)) __asm volatile("wfi" ::: "memory");
  UART0->ctrl &= ~UART_CTRL_RXINTEN;
  UART0->intstatus = UART_INT_RX;
  NVIC_ICPR0 = 1u << UART0_RX_IRQ;
  __asm volatile("cpsie i" ::: "memory");
}

size_t board_read(uint8_t *buf, size_t max) {
  size_t n = 0;
  while (n < max && (UART0->state & UART_STATE_RXFULL)) buf[n++] = (uint8_t)UART0->data;
  return n;
}

void board_write(const uint8_t *buf, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    while (UART0->state & UART_STATE_TXFULL) {}
    UART0->data = buf[i];
  }
}

uint32_t board_micros(void) { return (uint32_t)(board_ticks() / (SYSCLK_HZ / 1000000u)); }

uint64_t board_cycles(void) { return board_ticks() * INSTRUCTIONS_PER_TICK; }

void board_print(const char *s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  board_write((const uint8_t *)s, n);
}

void board_print_u64(uint64_t v) {
  char digits[21];
  int i = 20;
  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  board_print(&digits[i]);
}
