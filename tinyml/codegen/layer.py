"""One live operator lowered to one kernel call, and the graph helpers every op shares.

Each op class (tools/codegen/ops/) owns four decisions, so adding or changing a kernel touches one file:
which kernel (and variant) runs it, how its constants are laid out, how much scratch it needs (the kernel
header's own macro, see kernel_abi) and whether its output may overwrite one of its inputs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from models.errors import UserError
from tinyml.codegen.arithmetic import TFLM_HINT
from tinyml.codegen.kernel_abi import scratch_bytes
from tinyml.tflite_graph import Graph, Operator, Tensor

IN_PLACE_TOKEN = "@IN_PLACE@"


def unsupported(op: Operator, why: str) -> UserError:
    return UserError(f"op #{op.index} {op.name} ({why}) is not supported by the engine's code generator; {TFLM_HINT}")


def quant(t: Tensor) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantised tensor, or the one-line error for a float model."""
    if t.quantization is None:
        raise UserError(
            f"tensor {t.name!r} has no quantisation; the engine runs full-integer int8 models "
            f"(re-create it with python -m tools quantize) or {TFLM_HINT}"
        )
    return float(t.quantization.scale[0]), int(t.quantization.zero_point[0])


def nbytes(t: Tensor) -> int:
    return t.size * (4 if t.dtype in ("float32", "int32") else 1)


def nhwc(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        return shape
    if len(shape) == 2:
        return shape[0], 1, 1, shape[1]
    if len(shape) == 1:
        return 1, 1, 1, shape[0]
    if len(shape) == 3:
        return 1, shape[0], shape[1], shape[2]
    raise ValueError(shape)


class Layer:
    """Base of every op: reads the operator, computes its constants once (in ``lower``), emits its C.

    Attributes set by ``lower``: ``decls`` (C declarations; ``IN_PLACE_TOKEN`` stands for the planner's
    in-place decision), ``call`` (a format string over {in0} {in1} {out0} {scratch}), ``weight_bytes``
    and ``scratch`` (the kernel header's scratch macro and its arguments, or None).
    """

    kernel: ClassVar[str] = ""  # short name of the kernel family (plans and tests refer to it)
    alias: ClassVar[bool] = False  # output is the input's bytes under another shape: no code
    internal_bytes: int = 0  # arena bytes the layer needs while it runs besides its tensors (a chain's row buffers)

    def __init__(self, graph: Graph, op: Operator):
        self.g = graph
        self.op = op
        self.name = f"L{op.index}"
        self.inputs: list[int] = [op.inputs[0]]
        self.outputs: list[int] = [op.outputs[0]]
        self.decls = ""
        self.call = ""
        self.weight_bytes = 0
        self.scratch: tuple[str, tuple[int, ...]] | None = None
        self.in_place = False  # set by the memory planner
        self.lower()

    def lower(self) -> None:  # pragma: no cover - every op overrides it
        raise NotImplementedError

    def in_place_candidates(self) -> list[int]:
        """Inputs whose buffer the output may take over when nothing reads them afterwards (default: none)."""
        return []

    @property
    def scratch_bytes(self) -> int:
        return 0 if self.scratch is None else scratch_bytes(*self.scratch)

    @property
    def base_scratch_bytes(self) -> int:
        """The scratch the layer needs with its leanest kernel (lower_graph sizes the region from these)."""
        return self.scratch_bytes

    def fit_scratch(self, limit: int) -> None:
        """Choose a kernel whose scratch fits limit bytes (default: the layer has one kernel)."""

    def scratch_needs(self) -> list[tuple[str, tuple[int, ...]]]:
        """The kernel scratch macros (and arguments) the generated C checks its scratch region against."""
        return [] if self.scratch is None else [self.scratch]

    @property
    def label(self) -> str:
        """How the generated C's comments name it."""
        return f"op #{self.op.index} {self.op.name}"

    def declarations(self) -> str:
        return self.decls.replace(IN_PLACE_TOKEN, str(int(self.in_place)))

    # -- helpers for subclasses
    def tensor(self, idx: int) -> Tensor:
        return self.g.tensors[idx]

    def require_dtype(self, idx: int, dtypes: tuple[str, ...]) -> Tensor:
        t = self.tensor(idx)
        if t.dtype not in dtypes:
            raise unsupported(self.op, f"{t.dtype} tensor {t.name!r}")
        return t

    def optional_input(self, i: int) -> int:
        return self.op.inputs[i] if len(self.op.inputs) > i else -1

    def bias(self, idx: int, out_c: int) -> np.ndarray:
        if idx < 0:
            return np.zeros(out_c, np.int64)
        b = self.tensor(idx)
        if b.dtype != "int32" or b.data is None:
            raise unsupported(self.op, f"{b.dtype} bias")
        return b.data.reshape(-1).astype(np.int64)
