"""Generate plain C for the project's int8 engine from a bundle's int8 .tflite (firmware/lib/engine).

Instead of shipping an interpreter, the model becomes code (as TinyEngine and Edge Impulse's EON do):
const weights, per-channel requantisation multipliers/shifts and zero-point-folded biases computed here
once, a static activation-memory plan (liveness-based buffer reuse; RESHAPE as an alias; 1x1
convolutions, ADD, QUANTIZE and SOFTMAX in place), and one kernel call per op. The generated API::

    #include "model_engine.h"
    extern const runner_info_t model_engine_info;    // engine "engine", model id = sha256 of the .tflite
    int model_engine_invoke(const uint8_t *input, uint8_t *output);   // enum runner_status
    #define MODEL_ENGINE_ARENA_BYTES ...

Every constant follows TFLite's reference arithmetic (QuantizeMultiplier's rounding, double-precision
effective scales, float32 activation bounds), so the engine is bit-exact with LiteRT BUILTIN_REF.
An op or type the engine lacks is a one-line error naming it and pointing at the TFLM backend.

The package: ``arithmetic`` (TFLite's quantisation arithmetic), ``ops/`` (one class per operator: kernel
choice, constant layout, scratch need, in-place rule), ``kernel_abi`` (the kernels' scratch macros, read
from their headers), ``memory_plan`` (the arena), ``emit`` (the C files), ``bundle`` (a bundle or bare .tflite in, files and
model.json record out; ``python -m tools codegen`` is its command line).

"""

from tinyml.codegen.arithmetic import activation_range, quantize_multiplier
from tinyml.codegen.bundle import generate
from tinyml.codegen.emit import HEADER_NAME, SOURCE_NAME, Generated, generate_from_tflite, lower_graph
from tinyml.codegen.memory_plan import live_operators, plan_memory

__all__ = [
    "HEADER_NAME",
    "SOURCE_NAME",
    "Generated",
    "activation_range",
    "generate",
    "generate_from_tflite",
    "live_operators",
    "lower_graph",
    "plan_memory",
    "quantize_multiplier",
]
