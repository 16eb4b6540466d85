/* Test harness for the generated engine, driven through the runner interface.
 *
 * Native (default): `engine_harness IN OUT` reads N input tensors (N * MODEL_ENGINE_INPUT_BYTES bytes) from
 * IN, runs each, writes the N output tensors to OUT and prints N. Exit: 0 ok, 1 usage/IO error, 2 runner error.
 *
 * ENGINE_HARNESS_QEMU (bench/engine_qemu.py, linked with the qemu_mps2 port's startup and board code): runs the
 * HARNESS_COUNT inputs compiled in from harness_inputs.h and prints one line per inference on UART0,
 * "R <index> <instructions> <output bytes in hex>", then "DONE" and exits the emulation (semihosting). */
#include <string.h>

#include "model_engine.h"
#include "runner_engine.h"

#ifdef ENGINE_HARNESS_QEMU
#include "board.h"
#include "harness_inputs.h"
#include "port.h"

#ifdef ENG_LAYER_HOOK
/* --profile: instructions spent in each layer of the first inference, one "L <op> <instructions>" line each. */
static uint64_t layer_mark;
static int profiling;
void ENG_LAYER_HOOK(int op_index) {
  if (!profiling) return;
  const uint64_t now = port_cycles();
  board_print("L ");
  board_print_u64((uint64_t)op_index);
  board_print(" ");
  board_print_u64(now - layer_mark);
  board_print("\n");
  layer_mark = port_cycles(); /* the printing itself is not charged to the next layer */
}
#endif

int main(void) {
  static const char hex[] = "0123456789abcdef";
  static uint8_t output[MODEL_ENGINE_OUTPUT_BYTES];
  board_init();
  const runner_t *runner = engine_runner();
  runner_info_t info;
  if (runner->init(runner->ctx, &info) != RUNNER_OK) board_exit(2);
#ifdef ENG_LAYER_HOOK
  profiling = 1;
  layer_mark = port_cycles();
  (void)runner->invoke(runner->ctx, harness_inputs[0], output);
  profiling = 0;
#endif
  for (uint32_t n = 0; n < HARNESS_COUNT; n++) {
    const uint64_t start = port_cycles();
    const int status = runner->invoke(runner->ctx, harness_inputs[n], output);
    const uint64_t used = port_cycles() - start;
    if (status != RUNNER_OK) board_exit(3);
    board_print("R ");
    board_print_u64(n);
    board_print(" ");
    board_print_u64(used);
    board_print(" ");
    for (uint32_t i = 0; i < info.out_len; i++) {
      const char pair[2] = {hex[output[i] >> 4], hex[output[i] & 15]};
      port_write((const uint8_t *)pair, 2);
    }
    board_print("\n");
  }
  board_print("DONE\n");
  board_exit(0);
}

#else
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin\n", argv[0]);
    return 1;
  }
  FILE *in = fopen(argv[1], "rb");
  FILE *out = fopen(argv[2], "wb");
  if (in == NULL || out == NULL) {
    fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
    return 1;
  }
  const runner_t *runner = engine_runner();
  runner_info_t info;
  memset(&info, 0, sizeof info);
  if (runner->init(runner->ctx, &info) != RUNNER_OK) return 2;
  const size_t in_bytes = (size_t)info.in_h * info.in_w * info.in_c;
  if (in_bytes != MODEL_ENGINE_INPUT_BYTES || info.out_len != MODEL_ENGINE_OUTPUT_BYTES) {
    fprintf(stderr, "runner info does not match the generated header\n");
    return 2;
  }
  static uint8_t input[MODEL_ENGINE_INPUT_BYTES];
  static uint8_t output[MODEL_ENGINE_OUTPUT_BYTES];
  size_t count = 0;
  while (fread(input, 1, in_bytes, in) == in_bytes) {
    const int status = runner->invoke(runner->ctx, input, output);
    if (status != RUNNER_OK) {
      fprintf(stderr, "invoke %zu failed with status %d\n", count, status);
      return 2;
    }
    if (fwrite(output, 1, info.out_len, out) != info.out_len) return 1;
    count++;
  }
  fclose(in);
  if (fclose(out) != 0) return 1;
  printf("%zu\n", count);
  return 0;
}
#endif /* ENGINE_HARNESS_QEMU */
