"""The fidelity oracle: an int8 .tflite run by LiteRT's reference kernels.

LiteRT with ``OpResolverType.BUILTIN_REF`` is bit-identical to TFLite-Micro's reference kernels, so every
claim of the form "the board will answer X" (the engine's bit-exact tests, ``host/stream.py --cpu``,
evaluation) is checked against this one class. The default XNNPACK path is *not* bit-identical and is
never used here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError

RUNTIME = "litert-builtin-ref"


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
