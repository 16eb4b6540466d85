"""The fidelity oracles: an int8 .tflite run by LiteRT's reference kernels, or by TFLite-Micro's.

LiteRT with ``OpResolverType.BUILTIN_REF`` (``ReferenceModel``) is the answer the project's own engine must give
byte for byte (the engine's bit-exact tests, ``host/stream.py --cpu``, evaluation). It is bit-identical to
TFLite-Micro's reference kernels on every op these models use but one: int8 FULLY_CONNECTED requantises its
accumulator as ``round(acc * (double)(s_in * s_w / s_out))`` in LiteRT 2.3, while TFLM's kernel uses the
fixed-point ``MultiplyByQuantizedMultiplier`` (gemmlowp's two roundings). The two differ by one LSB on accumulators
that land within about 2^-31 (relative) of a half, which reaches a few images in 10,000 through the final softmax
(docs/benchmarks.md, "LiteRT-ref vs TFLite-Micro"). So a TFLM board is checked against ``MicroModel`` (the
tflite-micro Python runtime, TFLM's reference kernels): ``reference_for(engine, model)`` picks by the engine a
device announces. The default XNNPACK path is bit-identical to neither and is never used here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError

RUNTIME = "litert-builtin-ref"
MICRO_RUNTIME = "tflite-micro"


def reference_interpreter(model: str | os.PathLike | bytes) -> Any:
    """A LiteRT Interpreter on the BUILTIN_REF kernels, tensors allocated: the one CPU oracle (``--cpu`` of
    stream.py and of ``tools classify``, evaluate, the bit-exact tests all run through it)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, bytes | str]
    if isinstance(model, (bytes, bytearray)):
        kwargs = {"model_content": bytes(model)}
    elif not Path(model).exists():
        raise UserError(f"model file {model!s} does not exist; run: python -m tools quantize BUNDLE")
    else:
        kwargs = {"model_path": str(model)}
    try:
        interpreter = Interpreter(experimental_op_resolver_type=OpResolverType.BUILTIN_REF, **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot load the .tflite model ({first_line}); re-create it with python -m tools quantize"
        ) from None
    return interpreter


class ReferenceModel:
    """A .tflite model under LiteRT BUILTIN_REF, one input and one output tensor, batch 1."""

    def __init__(self, model: str | os.PathLike | bytes):
        self._interp = reference_interpreter(model)
        self.input_detail = self._interp.get_input_details()[0]
        self.output_detail = self._interp.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_detail["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_detail["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self.output_detail["dtype"])

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one input (HxWxC or 1xHxWxC, already in the model's input dtype); return the flat output."""
        data = np.asarray(tensor)
        if data.dtype != self.input_dtype:
            raise UserError(
                f"input dtype {data.dtype} does not match the model's {self.input_dtype}; quantize the frame first"
            )
        data = data.reshape(self.input_shape)
        self._interp.set_tensor(self.input_detail["index"], data)
        self._interp.invoke()
        return self._interp.get_tensor(self.output_detail["index"]).reshape(-1).copy()


class MicroModel:
    """A .tflite model under the tflite-micro Python runtime (TFLM's reference kernels), batch 1: what a TFLM
    board built with the reference kernels answers (boards with optimised kernels, ESP-NN or CMSIS-NN, may not)."""

    def __init__(self, model: str | os.PathLike | bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        if not isinstance(model, (bytes, bytearray)):
            if not Path(model).exists():
                raise UserError(f"model file {model!s} does not exist; run: python -m tools quantize BUNDLE")
            model = Path(model).read_bytes()
        try:
            self._interp = runtime.Interpreter.from_bytes(bytes(model), arena_size=arena_size)
        except (RuntimeError, ValueError) as exc:
            lines = str(exc).strip().splitlines()
            raise UserError(
                f"TFLite-Micro cannot load the model ({lines[0] if lines else type(exc).__name__}); "
                "it uses an op or type TFLM lacks, or needs a larger arena"
            ) from None
        detail = self._interp.get_input_details(0)
        self.input_shape = tuple(int(d) for d in detail["shape"])
        self.input_dtype = np.dtype(detail["dtype"])

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one input (HxWxC or 1xHxWxC, already in the model's input dtype); return the flat output."""
        data = np.asarray(tensor)
        if data.dtype != self.input_dtype:
            raise UserError(
                f"input dtype {data.dtype} does not match the model's {self.input_dtype}; quantize the frame first"
            )
        self._interp.set_input(data.reshape(self.input_shape), 0)
        self._interp.invoke()
        return np.asarray(self._interp.get_output(0)).reshape(-1).copy()


def reference_for(engine: str, model: str | os.PathLike | bytes) -> tuple[ReferenceModel | MicroModel, str]:
    """The oracle for a device whose HELLO names ``engine``, and its runtime's name: the tflite-micro runtime for
    TFLite-Micro firmware ("tflm"), LiteRT BUILTIN_REF for everything else (the project's engine implements
    LiteRT's kernels, FULLY_CONNECTED's rounding included)."""
    if engine == "tflm" or engine.startswith("tflm:"):
        return MicroModel(model), MICRO_RUNTIME
    return ReferenceModel(model), RUNTIME
