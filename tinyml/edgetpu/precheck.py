"""The Edge TPU pre-check: Coral's documented model requirements and supported-op list, applied op by op.

Why a pre-check: the compiler is x86-64 Linux only, closed source, and silently moves everything after the
first unsupported op to the CPU (it maps one contiguous Edge TPU segment). It also refuses the whole model when
a newer TensorFlow wrote an op version its built-in TFLite (about TF 2.5) does not know ("Didn't find op for
builtin opcode 'QUANTIZE' version '3'"). The pre-check reads the int8 .tflite with tinyml.tflite_graph and
applies those rules op by op, so the cut point and version blockers are known before (and without) the compiler.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.errors import UserError
from tinyml.tflite_graph import Graph, Operator, Tensor, load_graph

RULES = "edgetpu_compiler 16.0"

# Highest version of each builtin op that compiler 16.0 parses. The compiler links TFLite of about TF 2.5, so
# every op version TFLite's runtime_version table dates at <= 2.5.0 is known to it; versions dated later are
# refused at parse time. Evidence: QUANTIZE v3 (TF 2.7) google-coral/edgetpu#879, CONV_2D v6 (TF 2.9) #631,
# TRANSPOSE_CONV v4 #845, EXP v2 google-coral/libedgetpu#71. Ops not listed here are reported as unknown.
COMPILER16_MAX_VERSION: dict[str, int] = {
    "ADD": 3,
    "ARG_MAX": 2,
    "ARG_MIN": 2,
    "AVERAGE_POOL_2D": 3,
    "BATCH_MATMUL": 4,
    "BATCH_TO_SPACE_ND": 3,
    "CAST": 1,
    "CONCATENATION": 3,
    "CONV_2D": 5,
    "DEPTH_TO_SPACE": 2,
    "DEPTHWISE_CONV_2D": 6,
    "DEQUANTIZE": 4,
    "DIV": 2,
    "EQUAL": 3,
    "EXP": 1,
    "EXPAND_DIMS": 1,
    "FILL": 3,
    "FULLY_CONNECTED": 9,
    "GATHER": 5,
    "GATHER_ND": 3,
    "GREATER": 2,
    "GREATER_EQUAL": 2,
    "HARD_SWISH": 1,
    "L2_NORMALIZATION": 2,
    "L2_POOL_2D": 1,
    "LEAKY_RELU": 2,
    "LESS": 2,
    "LESS_EQUAL": 2,
    "LOG_SOFTMAX": 2,
    "LOGISTIC": 3,
    "MAX_POOL_2D": 3,
    "MAXIMUM": 4,
    "MEAN": 3,
    "MINIMUM": 4,
    "MIRROR_PAD": 2,
    "MUL": 4,
    "NOT_EQUAL": 3,
    "PACK": 3,
    "PAD": 3,
    "PADV2": 3,
    "PRELU": 1,
    "QUANTIZE": 2,
    "REDUCE_MAX": 3,
    "REDUCE_MIN": 3,
    "REDUCE_PROD": 1,
    "RELU": 3,
    "RELU6": 3,
    "RELU_N1_TO_1": 1,
    "RESHAPE": 1,
    "RESIZE_BILINEAR": 4,
    "RESIZE_NEAREST_NEIGHBOR": 4,
    "REVERSE_V2": 3,
    "RSQRT": 2,
    "SELECT": 2,
    "SELECT_V2": 1,
    "SHAPE": 1,
    "SLICE": 5,
    "SOFTMAX": 3,
    "SPACE_TO_BATCH_ND": 3,
    "SPACE_TO_DEPTH": 2,
    "SPLIT": 4,
    "SPLIT_V": 2,
    "SQUARED_DIFFERENCE": 2,
    "SQUEEZE": 2,
    "STRIDED_SLICE": 5,
    "SUB": 5,
    "SUM": 2,
    "TANH": 3,
    "TILE": 2,
    "TOPK_V2": 2,
    "TRANSPOSE": 5,
    "TRANSPOSE_CONV": 3,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 3,
    "UNPACK": 4,
}

# What to do when an op version is too new for compiler 16.0 (docs/coral.md "Op versions" has the details).
VERSION_FIXES: dict[str, str] = {
    "QUANTIZE": "a per-channel QUANTIZE comes from quantization-aware training; use post-training int8 "
    "quantization with int8 input/output (python -m tools quantize), which emits no QUANTIZE op",
    "CONV_2D": "version 6 is a grouped convolution; use groups=1 (or a depthwise conv)",
    "TRANSPOSE_CONV": "version 4 fuses an activation; put the activation in its own layer",
}
GENERIC_VERSION_FIX = "convert with TensorFlow <= 2.8 (Coral maintainers' advice) or avoid the feature that needs it"

MAX_SOFTMAX_ELEMENTS = 16000


def version_fix(op: str) -> str:
    return VERSION_FIXES.get(op, GENERIC_VERSION_FIX)


def _activations(graph: Graph, op: Operator) -> list[Tensor]:
    """The op's non-constant tensors (what flows through the Edge TPU), inputs then outputs."""
    return [graph.tensors[i] for i in op.inputs + op.outputs if i >= 0 and not graph.tensors[i].is_constant]


def _const(graph: Graph, op: Operator, position: int) -> np.ndarray | None:
    if position >= len(op.inputs) or op.inputs[position] < 0:
        return None
    return graph.tensors[op.inputs[position]].data


def _non_unit_dims(shape: Sequence[int]) -> int:
    return sum(1 for d in shape if d != 1)


def _no_fused_activation(graph: Graph, op: Operator) -> list[str]:
    act = op.options.get("fused_activation_function", "NONE")
    return [] if act == "NONE" else [f"fused activation {act} is not supported on {op.name} (use a separate layer)"]


def _same_dilation(graph: Graph, op: Operator) -> list[str]:
    dh, dw = op.options.get("dilation_h_factor", 1), op.options.get("dilation_w_factor", 1)
    return [] if dh == dw else [f"dilation {dh}x{dw} differs between y and x"]


def _fully_connected(graph: Graph, op: Operator) -> list[str]:
    problems = []
    if op.options.get("weights_format", 0) != 0:
        problems.append("only the default fully-connected weights format is supported")
    out = graph.tensors[op.outputs[0]]
    if _non_unit_dims(out.shape) > 1:
        problems.append(f"output {list(out.shape)} is not one-dimensional")
    return problems


def _reduction(graph: Graph, op: Operator) -> list[str]:
    const_axes = _const(graph, op, 1)
    shape = graph.tensors[op.inputs[0]].shape
    if const_axes is None:
        return ["reduction axes are not a compile-time constant"]
    rank = len(shape)
    axes = sorted({int(a) % rank for a in np.asarray(const_axes).reshape(-1)}) if rank else []
    problems = []
    if 0 in axes and rank > 1:
        problems.append("reduction over the batch dimension")
    if op.name == "MEAN" and rank >= 3 and rank - 1 in axes and shape[-1] % 4:
        problems.append(f"a channel (z) reduction needs a multiple of 4 channels, got {shape[-1]}")
    return problems


def _pad(graph: Graph, op: Operator) -> list[str]:
    pads = _const(graph, op, 1)
    if pads is None:
        return ["paddings are not a compile-time constant"]
    pads = np.asarray(pads).reshape(-1, 2)
    return ["padding along the batch dimension"] if len(pads) == 4 and np.any(pads[0]) else []


def _softmax(graph: Graph, op: Operator) -> list[str]:
    inp = graph.tensors[op.inputs[0]]
    problems = []
    if _non_unit_dims(inp.shape) > 1:
        problems.append(f"input {list(inp.shape)} is not one-dimensional")
    if inp.size > MAX_SOFTMAX_ELEMENTS:
        problems.append(f"{inp.size} elements exceed the {MAX_SOFTMAX_ELEMENTS} supported")
    return problems


def _concatenation(graph: Graph, op: Operator) -> list[str]:
    problems = _no_fused_activation(graph, op)
    consts = [graph.tensors[i] for i in op.inputs if i >= 0 and graph.tensors[i].is_constant]
    if consts and (len(op.inputs) != 2 or any(np.any(t.data) for t in consts)):
        problems.append("a constant input is only supported as the all-zero second of exactly 2 inputs")
    return problems


def _no_checks(graph: Graph, op: Operator) -> list[str]:
    return []


# Coral's supported-op list (coral.ai/docs/edgetpu/models-intro/#supported-operations) with the constraints that
# can be read from the graph. Constraints the docs leave vague ("certain reshapes might not be mapped for large
# tensor sizes") are left to the compiler.
SUPPORTED_OPS: dict[str, Callable[[Graph, Operator], list[str]]] = {
    "ADD": _no_checks,
    "AVERAGE_POOL_2D": _no_fused_activation,
    "CONCATENATION": _concatenation,
    "CONV_2D": _same_dilation,
    "DEPTHWISE_CONV_2D": _same_dilation,
    "EXPAND_DIMS": _no_checks,
    "FULLY_CONNECTED": _fully_connected,
    "L2_NORMALIZATION": _no_checks,
    "LOGISTIC": _no_checks,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _no_checks,
    "MAXIMUM": _no_checks,
    "MAX_POOL_2D": _no_fused_activation,
    "MEAN": _reduction,
    "MINIMUM": _no_checks,
    "MUL": _no_checks,
    "PACK": _no_checks,
    "PAD": _pad,
    "PRELU": _no_checks,
    "QUANTIZE": _no_checks,
    "REDUCE_MAX": _reduction,
    "REDUCE_MIN": _reduction,
    "RELU": _no_checks,
    "RELU6": _no_checks,
    "RELU_N1_TO_1": _no_checks,
    "RESHAPE": _no_checks,
    "RESIZE_BILINEAR": _no_checks,
    "RESIZE_NEAREST_NEIGHBOR": _no_checks,
    "RSQRT": _no_checks,
    "SLICE": _no_checks,
    "SOFTMAX": _softmax,
    "SPACE_TO_DEPTH": _no_checks,
    "SPLIT": _no_checks,
    "SQUARED_DIFFERENCE": _no_checks,
    "SQUEEZE": _no_checks,
    "STRIDED_SLICE": _no_checks,
    "SUB": _no_checks,
    "SUM": _reduction,
    "TANH": _no_checks,
    "TRANSPOSE": _no_checks,
    "TRANSPOSE_CONV": _no_checks,
}

QUANTIZED_DTYPES = ("int8", "uint8")


def _tensor_problems(graph: Graph, op: Operator, dynamic: set[int]) -> list[str]:
    """Model-wide requirements checked on this op's tensors: 8-bit, static, at most 3 non-batch dimensions."""
    problems = []
    for t in _activations(graph, op):
        if t.dtype not in QUANTIZED_DTYPES:
            problems.append(f"tensor '{t.name}' is {t.dtype}, not 8-bit quantized")
        if t.index in dynamic or any(d <= 0 for d in t.shape):
            problems.append(f"tensor '{t.name}' has a dynamic shape")
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            problems.append(f"tensor '{t.name}' {list(t.shape)} has more than 3 dimensions larger than 1")
    for pos in range(1, len(op.inputs)):
        const = graph.tensors[op.inputs[pos]] if op.inputs[pos] >= 0 else None
        if const is not None and const.is_constant and const.dtype.startswith("float"):
            problems.append(f"constant '{const.name}' is {const.dtype}, not quantized")
    return list(dict.fromkeys(problems))


@dataclass
class OpVerdict:
    """One operator's pre-check result. placement: "edgetpu" or "cpu"."""

    index: int
    op: str
    version: int
    placement: str = "edgetpu"
    problems: list[str] = field(default_factory=list)  # why this op itself cannot map
    note: str = ""  # e.g. "after the cut"
    version_ok: bool | None = True  # None: op unknown to the version table


@dataclass
class Precheck:
    """The pre-check of one model: per-op verdicts, the cut point and whether the compiler can parse it."""

    model: str
    ops: list[OpVerdict]
    cut_index: int | None  # first unmappable op after the Edge TPU segment started
    segment: tuple[int, int] | None  # [first, last] op index of the Edge TPU segment
    version_blockers: list[str]  # "QUANTIZE v3" ... that compiler 16.0 refuses to parse
    rules: str = RULES

    @property
    def fully_mapped(self) -> bool:
        return not self.version_blockers and all(v.placement == "edgetpu" for v in self.ops)

    @property
    def edgetpu_ops(self) -> int:
        return sum(1 for v in self.ops if v.placement == "edgetpu")

    def verdict(self) -> str:
        """One line a user can act on."""
        n = len(self.ops)
        if self.version_blockers:
            return (
                f"edgetpu_compiler 16.0 cannot parse this model: {', '.join(self.version_blockers)} "
                f"is newer than it knows; see docs/coral.md 'Op versions'"
            )
        if self.fully_mapped:
            return f"all {n} ops can map to the Edge TPU (one subgraph)"
        if self.cut_index is not None:
            cut = self.ops[self.cut_index]
            return (
                f"{self.edgetpu_ops} of {n} ops map to the Edge TPU; the graph is cut at op #{cut.index} "
                f"{cut.op} ({'; '.join(cut.problems)}), so ops #{cut.index}..#{n - 1} run on the CPU"
            )
        if self.segment is None:
            return f"no op can map to the Edge TPU; all {n} run on the CPU"
        return f"{self.edgetpu_ops} of {n} ops map to the Edge TPU; the ops before #{self.segment[0]} run on the CPU"

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "fully_mapped": self.fully_mapped,
            "edgetpu_ops": self.edgetpu_ops,
            "total_ops": len(self.ops),
            "cut_index": self.cut_index,
            "segment": list(self.segment) if self.segment else None,
            "version_blockers": self.version_blockers,
            "verdict": self.verdict(),
            "ops": [asdict(v) for v in self.ops],
        }

    def table(self) -> str:
        lines = [f"{'#':>4}  {'op':<28} {'v':>2}  {'placement':<9}  why"]
        for v in self.ops:
            why = "; ".join(v.problems) or v.note
            if v.version_ok is False:
                why = f"op version {v.version} unknown to compiler 16.0" + (f"; {why}" if why else "")
            lines.append(f"{v.index:>4}  {v.op:<28} {v.version:>2}  {v.placement:<9}  {why}")
        return "\n".join(lines)


def precheck_graph(graph: Graph, model: str = "", dynamic_tensors: set[int] | None = None) -> Precheck:
    """Apply the Edge TPU rules to every operator, in execution order, and find the one Edge TPU segment.

    The compiler maps a single contiguous segment: leading ops it cannot map stay on the CPU before it, and the
    first unmappable op after the segment starts cuts the graph; that op and everything after it run on the CPU
    even where they are supported (Coral docs, "Compiling"; the logs' "More than one subgraph is not supported").
    """
    dynamic = dynamic_tensors or set()
    verdicts: list[OpVerdict] = []
    blockers: list[str] = []
    for op in graph.operators:
        v = OpVerdict(op.index, op.name, op.version)
        max_version = COMPILER16_MAX_VERSION.get(op.name)
        if max_version is None:
            v.version_ok = None
        elif op.version > max_version:
            v.version_ok = False
            blockers.append(f"{op.name} v{op.version}")
        check = SUPPORTED_OPS.get(op.name)
        if check is None:
            v.problems.append("not in Coral's supported-op list")
        else:
            v.problems.extend(_tensor_problems(graph, op, dynamic))
            v.problems.extend(check(graph, op))
        verdicts.append(v)

    start = next((v.index for v in verdicts if not v.problems), None)
    cut = None
    if start is not None:
        cut = next((v.index for v in verdicts[start:] if v.problems), None)
    end = (cut - 1 if cut is not None else len(verdicts) - 1) if start is not None else None
    for v in verdicts:
        if start is None or v.index < start:
            v.placement, v.note = "cpu", v.note or "before the Edge TPU segment"
        elif cut is not None and v.index >= cut:
            v.placement = "cpu"
            if v.index > cut and not v.problems:
                v.note = f"after the cut at op #{cut} (one Edge TPU subgraph only)"
    segment = (start, end) if start is not None and end is not None and end >= start else None
    return Precheck(model, verdicts, cut, segment, list(dict.fromkeys(blockers)))


def dynamic_tensor_indices(model_path: Path) -> set[int]:
    """Tensors whose shape signature has an unknown (-1) dimension, read through LiteRT (not a second parser)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        details = Interpreter(model_path=str(model_path)).get_tensor_details()
    except (ValueError, RuntimeError) as exc:
        raise UserError(
            f"LiteRT cannot load {model_path} ({str(exc).strip().splitlines()[0]}); "
            "re-create it with python -m tools quantize"
        ) from None
    return {int(d["index"]) for d in details if np.any(np.asarray(d.get("shape_signature", [])) < 0)}


def precheck_model(model_path: str | os.PathLike) -> Precheck:
    """Pre-check a .tflite file."""
    path = Path(model_path)
    graph = load_graph(path)
    if graph.num_subgraphs > 1:
        raise UserError(
            f"{path} has {graph.num_subgraphs} subgraphs (control flow); the Edge TPU compiler "
            "maps only models with one; remove the control-flow ops and re-quantize"
        )
    return precheck_graph(graph, str(path), dynamic_tensor_indices(path))
