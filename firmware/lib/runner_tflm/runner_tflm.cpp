/* TFLite-Micro runner backend: see runner_tflm.h. Written against TFLM's documented API
 * (tflite::GetModel, MicroOpResolver::FindOp, MicroInterpreter::AllocateTensors/input/output/Invoke,
 * arena_used_bytes); compiled only by PlatformIO board builds. */
#if defined(FIRMWARE_TFLM_CHIRALE)
#include <Chirale_TensorFlowLite.h> /* the Arduino library's setup header must come before TFLM's */
#endif

#include "runner_tflm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

namespace {

struct tflm_state {
  runner_tflm_config config;
  tflite::MicroInterpreter *interpreter;
  TfLiteTensor *input;
  TfLiteTensor *output;
  alignas(tflite::MicroInterpreter) unsigned char storage[sizeof(tflite::MicroInterpreter)];
  char error[128];
};

tflm_state state;

int fail(runner_info_t *info, const char *tag, int status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(state.error, sizeof state.error, format, args);
  va_end(args);
  info->engine = tag;
  return status;
}

uint8_t runner_dtype(TfLiteType type) {
  if (type == kTfLiteInt8) return RUNNER_DTYPE_INT8;
  if (type == kTfLiteUInt8) return RUNNER_DTYPE_UINT8;
  return 0;
}

/* Every op the flatbuffer uses must be in the resolver: checked here so a missing op is a named error,
 * not AllocateTensors' log line on a serial port that carries the binary protocol. */
bool find_missing_op(const tflite::Model *model, const tflite::MicroOpResolver &resolver, const char **name) {
  const auto *codes = model->operator_codes();
  if (codes == nullptr) return false;
  for (unsigned i = 0; i < codes->size(); ++i) {
    const tflite::OperatorCode *code = codes->Get(i);
    const tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
    const bool found =
        (op == tflite::BuiltinOperator_CUSTOM)
            ? (code->custom_code() != nullptr && resolver.FindOp(code->custom_code()->c_str()) != nullptr)
            : resolver.FindOp(op) != nullptr;
    if (!found) {
      *name = (op == tflite::BuiltinOperator_CUSTOM && code->custom_code() != nullptr)
                  ? code->custom_code()->c_str()
                  : tflite::EnumNameBuiltinOperator(op);
      return true;
    }
  }
  return false;
}

int tflm_init(void *ctx, runner_info_t *info) {
  tflm_state *s = static_cast<tflm_state *>(ctx);
  memset(info, 0, sizeof *info);
  info->engine = "tflm";
  memcpy(info->model_id, s->config.model_id, RUNNER_MODEL_ID_LEN);
  s->error[0] = '\0';

  const tflite::Model *model = tflite::GetModel(s->config.model);
  if (model->version() != TFLITE_SCHEMA_VERSION)
    return fail(info, "tflm:schema-mismatch", RUNNER_ERR_INIT, "model schema v%u, this TFLM reads v%d",
                static_cast<unsigned>(model->version()), TFLITE_SCHEMA_VERSION);
  const char *missing = nullptr;
  if (find_missing_op(model, *s->config.resolver, &missing))
    return fail(info, "tflm:missing-op", RUNNER_ERR_UNSUPPORTED,
                "op %s is not registered; re-run python -m tools export", missing != nullptr ? missing : "?");
  if (s->config.arena == nullptr || s->config.arena_bytes == 0)
    return fail(info, "tflm:no-arena", RUNNER_ERR_ARENA, "no memory for a %u-byte arena",
                static_cast<unsigned>(s->config.arena_bytes));

  s->interpreter =
      new (s->storage) tflite::MicroInterpreter(model, *s->config.resolver, s->config.arena, s->config.arena_bytes);
  if (s->interpreter->AllocateTensors() != kTfLiteOk) {
    s->interpreter = nullptr;
    return fail(info, "tflm:allocate-failed", RUNNER_ERR_ARENA,
                "AllocateTensors failed in a %u-byte arena (too small, or a kernel rejected the model)",
                static_cast<unsigned>(s->config.arena_bytes));
  }
  s->input = s->interpreter->input(0);
  s->output = s->interpreter->output(0);
  const TfLiteIntArray *dims = s->input != nullptr ? s->input->dims : nullptr;
  if (s->interpreter->inputs_size() != 1 || s->interpreter->outputs_size() != 1 || dims == nullptr || dims->size != 4 ||
      dims->data[0] != 1 || runner_dtype(s->input->type) == 0 || s->output == nullptr ||
      runner_dtype(s->output->type) == 0) {
    s->interpreter = nullptr;
    return fail(info, "tflm:bad-io", RUNNER_ERR_UNSUPPORTED,
                "the model needs one int8/uint8 NHWC batch-1 input and one int8/uint8 output");
  }
  info->in_h = static_cast<uint16_t>(dims->data[1]);
  info->in_w = static_cast<uint16_t>(dims->data[2]);
  info->in_c = static_cast<uint16_t>(dims->data[3]);
  info->in_dtype = runner_dtype(s->input->type);
  info->in_scale = s->input->params.scale;
  info->in_zero_point = s->input->params.zero_point;
  info->out_len = static_cast<uint16_t>(s->output->bytes);
  info->out_dtype = runner_dtype(s->output->type);
  info->out_scale = s->output->params.scale;
  info->out_zero_point = s->output->params.zero_point;
  info->arena_bytes = static_cast<uint32_t>(s->interpreter->arena_used_bytes());
  return RUNNER_OK;
}

int tflm_invoke(void *ctx, const uint8_t *input, uint8_t *output) {
  tflm_state *s = static_cast<tflm_state *>(ctx);
  if (s->interpreter == nullptr) return RUNNER_ERR_INIT;
  memcpy(s->input->data.data, input, s->input->bytes);
  if (s->interpreter->Invoke() != kTfLiteOk) return RUNNER_ERR_INVOKE;
  memcpy(output, s->output->data.data, s->output->bytes);
  return RUNNER_OK;
}

runner_t tflm_runner = {tflm_init, tflm_invoke, &state};

} // namespace

const runner_t *runner_tflm(const runner_tflm_config *config) {
  state.config = *config;
  state.interpreter = nullptr;
  state.error[0] = '\0';
  return &tflm_runner;
}

const char *runner_tflm_error(void) { return state.error; }
