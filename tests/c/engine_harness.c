/* Native test harness for the generated engine: `engine_harness IN OUT` reads N input tensors
 * (N * MODEL_ENGINE_INPUT_BYTES bytes) from IN, runs each through the engine via the runner interface, and
 * writes the N output tensors to OUT. Exit status: 0 ok, 1 usage/IO error, 2 a runner error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_engine.h"
#include "runner_engine.h"

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
