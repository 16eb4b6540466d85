"""Coral Edge TPU: pre-check op mapping, run edgetpu_compiler, parse its report into model.json.

Why a pre-check: the compiler is x86-64 Linux only, closed source, and silently moves everything after the
first unsupported op to the CPU (it maps one contiguous Edge TPU segment). It also refuses the whole model when
a newer TensorFlow wrote an op version its built-in TFLite (about TF 2.5) does not know ("Didn't find op for
builtin opcode 'QUANTIZE' version '3'"). The pre-check reads the int8 .tflite with tinyml.tflite_graph and
applies Coral's documented rules op by op, so the cut point and version blockers are known before (and without)
the compiler. When ``edgetpu_compiler`` is on PATH it is then run and its own report is parsed and recorded.

    python -m tools edgetpu BUNDLE                       # pre-check, then compile if the compiler is installed
    python -m tools edgetpu BUNDLE --precheck-only       # just the op-by-op report
    python -m tools edgetpu BUNDLE --allow-cpu-fallback  # accept a partly mapped model
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.bundle import load_bundle
from models.errors import UserError, run_cli
from tinyml.tflite_graph import Graph, Operator, Tensor, load_graph

COMPILER = "edgetpu_compiler"
RULES = "edgetpu_compiler 16.0"

INSTALL_STEPS = (
    "install the Edge TPU compiler (Debian/Ubuntu x86-64 only): "
    "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/coral.gpg && "
    "echo 'deb [signed-by=/usr/share/keyrings/coral.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main' "
    "| sudo tee /etc/apt/sources.list.d/coral-edgetpu.list && sudo apt-get update && sudo apt-get install -y edgetpu-compiler "
    "(other machines: compile in Google's Colab notebook google-coral/tutorials compile_for_edgetpu.ipynb; see docs/coral.md)"
)

# Highest version of each builtin op that compiler 16.0 parses. The compiler links TFLite of about TF 2.5, so
# every op version TFLite's runtime_version table dates at <= 2.5.0 is known to it; versions dated later are
# refused at parse time. Evidence: QUANTIZE v3 (TF 2.7) google-coral/edgetpu#879, CONV_2D v6 (TF 2.9) #631,
# TRANSPOSE_CONV v4 #845, EXP v2 google-coral/libedgetpu#71. Ops not listed here are reported as unknown.
COMPILER16_MAX_VERSION: dict[str, int] = {
    "ADD": 3, "ARG_MAX": 2, "ARG_MIN": 2, "AVERAGE_POOL_2D": 3, "BATCH_MATMUL": 4, "BATCH_TO_SPACE_ND": 3,
    "CAST": 1, "CONCATENATION": 3, "CONV_2D": 5, "DEPTH_TO_SPACE": 2, "DEPTHWISE_CONV_2D": 6, "DEQUANTIZE": 4,
    "DIV": 2, "EQUAL": 3, "EXP": 1, "EXPAND_DIMS": 1, "FILL": 3, "FULLY_CONNECTED": 9, "GATHER": 5,
    "GATHER_ND": 3, "GREATER": 2, "GREATER_EQUAL": 2, "HARD_SWISH": 1, "L2_NORMALIZATION": 2, "L2_POOL_2D": 1,
    "LEAKY_RELU": 2, "LESS": 2, "LESS_EQUAL": 2, "LOG_SOFTMAX": 2, "LOGISTIC": 3, "MAX_POOL_2D": 3,
    "MAXIMUM": 4, "MEAN": 3, "MINIMUM": 4, "MIRROR_PAD": 2, "MUL": 4, "NOT_EQUAL": 3, "PACK": 3, "PAD": 3,
    "PADV2": 3, "PRELU": 1, "QUANTIZE": 2, "REDUCE_MAX": 3, "REDUCE_MIN": 3, "REDUCE_PROD": 1, "RELU": 3,
    "RELU6": 3, "RELU_N1_TO_1": 1, "RESHAPE": 1, "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4,
    "REVERSE_V2": 3, "RSQRT": 2, "SELECT": 2, "SELECT_V2": 1, "SHAPE": 1, "SLICE": 5, "SOFTMAX": 3,
    "SPACE_TO_BATCH_ND": 3, "SPACE_TO_DEPTH": 2, "SPLIT": 4, "SPLIT_V": 2, "SQUARED_DIFFERENCE": 2,
    "SQUEEZE": 2, "STRIDED_SLICE": 5, "SUB": 5, "SUM": 2, "TANH": 3, "TILE": 2, "TOPK_V2": 2, "TRANSPOSE": 5,
    "TRANSPOSE_CONV": 3, "UNIDIRECTIONAL_SEQUENCE_LSTM": 3, "UNPACK": 4,
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


# ---------------------------------------------------------------------------------------------------------------
# Pre-check: Coral's documented model requirements and supported-op list, applied to the graph
# ---------------------------------------------------------------------------------------------------------------
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
    axes = _const(graph, op, 1)
    shape = graph.tensors[op.inputs[0]].shape
    if axes is None:
        return ["reduction axes are not a compile-time constant"]
    rank = len(shape)
    axes = sorted({int(a) % rank for a in np.asarray(axes).reshape(-1)}) if rank else []
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
    "ADD": _no_checks, "AVERAGE_POOL_2D": _no_fused_activation, "CONCATENATION": _concatenation,
    "CONV_2D": _same_dilation, "DEPTHWISE_CONV_2D": _same_dilation, "EXPAND_DIMS": _no_checks,
    "FULLY_CONNECTED": _fully_connected, "L2_NORMALIZATION": _no_checks, "LOGISTIC": _no_checks,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _no_checks, "MAXIMUM": _no_checks, "MAX_POOL_2D": _no_fused_activation,
    "MEAN": _reduction, "MINIMUM": _no_checks, "MUL": _no_checks, "PACK": _no_checks, "PAD": _pad,
    "PRELU": _no_checks, "QUANTIZE": _no_checks, "REDUCE_MAX": _reduction, "REDUCE_MIN": _reduction,
    "RELU": _no_checks, "RELU6": _no_checks, "RELU_N1_TO_1": _no_checks, "RESHAPE": _no_checks,
    "RESIZE_BILINEAR": _no_checks, "RESIZE_NEAREST_NEIGHBOR": _no_checks, "RSQRT": _no_checks,
    "SLICE": _no_checks, "SOFTMAX": _softmax, "SPACE_TO_DEPTH": _no_checks, "SPLIT": _no_checks,
    "SQUARED_DIFFERENCE": _no_checks, "SQUEEZE": _no_checks, "STRIDED_SLICE": _no_checks, "SUB": _no_checks,
    "SUM": _reduction, "TANH": _no_checks, "TRANSPOSE": _no_checks, "TRANSPOSE_CONV": _no_checks,
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
        t = graph.tensors[op.inputs[pos]] if op.inputs[pos] >= 0 else None
        if t is not None and t.is_constant and t.dtype.startswith("float"):
            problems.append(f"constant '{t.name}' is {t.dtype}, not quantized")
    return list(dict.fromkeys(problems))


@dataclass
class OpVerdict:
    """One operator's pre-check result. placement: "edgetpu" or "cpu"."""

    index: int
    op: str
    version: int
    placement: str = "edgetpu"
    problems: list[str] = field(default_factory=list)   # why this op itself cannot map
    note: str = ""                                      # e.g. "after the cut"
    version_ok: bool | None = True                      # None: op unknown to the version table


@dataclass
class Precheck:
    """The pre-check of one model: per-op verdicts, the cut point and whether the compiler can parse it."""

    model: str
    ops: list[OpVerdict]
    cut_index: int | None            # first unmappable op after the Edge TPU segment started
    segment: tuple[int, int] | None  # [first, last] op index of the Edge TPU segment
    version_blockers: list[str]      # "QUANTIZE v3" ... that compiler 16.0 refuses to parse
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
            return (f"edgetpu_compiler 16.0 cannot parse this model: {', '.join(self.version_blockers)} "
                    f"is newer than it knows; see docs/coral.md 'Op versions'")
        if self.fully_mapped:
            return f"all {n} ops can map to the Edge TPU (one subgraph)"
        if self.cut_index is not None:
            cut = self.ops[self.cut_index]
            return (f"{self.edgetpu_ops} of {n} ops map to the Edge TPU; the graph is cut at op #{cut.index} "
                    f"{cut.op} ({'; '.join(cut.problems)}), so ops #{cut.index}..#{n - 1} run on the CPU")
        if self.segment is None:
            return f"no op can map to the Edge TPU; all {n} run on the CPU"
        return f"{self.edgetpu_ops} of {n} ops map to the Edge TPU; the ops before #{self.segment[0]} run on the CPU"

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules, "fully_mapped": self.fully_mapped, "edgetpu_ops": self.edgetpu_ops,
            "total_ops": len(self.ops), "cut_index": self.cut_index,
            "segment": list(self.segment) if self.segment else None,
            "version_blockers": self.version_blockers, "verdict": self.verdict(),
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
        raise UserError(f"LiteRT cannot load {model_path} ({str(exc).strip().splitlines()[0]}); "
                        "re-create it with python -m tools quantize") from None
    return {int(d["index"]) for d in details if np.any(np.asarray(d.get("shape_signature", [])) < 0)}


def precheck_model(model_path: str | os.PathLike) -> Precheck:
    """Pre-check a .tflite file."""
    path = Path(model_path)
    graph = load_graph(path)
    if graph.num_subgraphs > 1:
        raise UserError(f"{path} has {graph.num_subgraphs} subgraphs (control flow); the Edge TPU compiler "
                        "maps only models with one; remove the control-flow ops and re-quantize")
    return precheck_graph(graph, str(path), dynamic_tensor_indices(path))


# ---------------------------------------------------------------------------------------------------------------
# The compiler's report: stdout and the operation .log file
# ---------------------------------------------------------------------------------------------------------------
class CompilerLogError(UserError):
    """Text that is not edgetpu_compiler output (or is truncated before anything useful)."""


@dataclass
class OperatorRow:
    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == "Mapped to Edge TPU"


@dataclass
class CompileReport:
    """Everything edgetpu_compiler prints about one compilation (fields absent from the text stay None)."""

    compiler_version: str | None = None
    succeeded: bool = False
    error: str | None = None
    unknown_op_version: tuple[str, int] | None = None   # from "Didn't find op for builtin opcode 'X' version 'N'"
    input_model: str | None = None
    output_model: str | None = None
    input_size_bytes: int | None = None
    output_size_bytes: int | None = None
    on_chip_used_bytes: int | None = None
    on_chip_remaining_bytes: int | None = None
    off_chip_bytes: int | None = None
    edgetpu_subgraphs: int | None = None
    total_ops: int | None = None
    ops_on_edgetpu: int | None = None
    ops_on_cpu: int | None = None
    operators: list[OperatorRow] = field(default_factory=list)

    @property
    def cpu_rows(self) -> list[OperatorRow]:
        return [r for r in self.operators if not r.mapped]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = [asdict(r) | {"mapped": r.mapped} for r in self.operators]
        return data


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
_SIZE = re.compile(r"^\s*([\d.]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)\s*$")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::\S+)?)\s+(\d+)\s+(\S.*?)\s*$")
_FIELDS = {
    "Input model": ("input_model", str), "Input": ("input_model", str),
    "Output model": ("output_model", str), "Output": ("output_model", str),
    "Input size": ("input_size_bytes", "size"), "Output size": ("output_size_bytes", "size"),
    "On-chip memory used for caching model parameters": ("on_chip_used_bytes", "size"),
    "On-chip memory remaining for caching model parameters": ("on_chip_remaining_bytes", "size"),
    "Off-chip memory used for streaming uncached model parameters": ("off_chip_bytes", "size"),
    "Number of Edge TPU subgraphs": ("edgetpu_subgraphs", int),
    "Total number of operations": ("total_ops", int),
    "Number of operations that will run on Edge TPU": ("ops_on_edgetpu", int),
    "Number of operations that will run on CPU": ("ops_on_cpu", int),
}


def parse_size(text: str) -> int:
    """'4.24MiB' -> bytes; the compiler prints binary units (older docs show KB/MB)."""
    m = _SIZE.match(text)
    if not m:
        raise CompilerLogError(f"unreadable size {text!r} in edgetpu_compiler output")
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def parse_compiler_output(text: str) -> CompileReport:
    """Parse edgetpu_compiler stdout (with or without -s) and/or its operation .log into a CompileReport.

    A failed compilation (unparseable model, internal error) is a report with ``error`` set, not an exception;
    text that is not compiler output at all raises CompilerLogError.
    """
    report = CompileReport()
    errors: list[str] = []
    in_table = False
    success = failure = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"Edge TPU Compiler version (\S+)", line)
        if m:
            report.compiler_version = m.group(1)
            in_table = False
            continue
        if re.match(r"Operator\s+Count\s+Status$", line):
            in_table = True
            continue
        if in_table:
            row = _ROW.match(line)
            if row:
                report.operators.append(OperatorRow(row.group(1), int(row.group(2)), row.group(3)))
                continue
            in_table = False
        m = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", line)
        if m:
            report.unknown_op_version = (m.group(1), int(m.group(2)))
        if line.startswith("ERROR:") or line.startswith("Invalid model") or line == "Model could not be parsed" \
                or line.startswith("Compilation failed") or line.startswith("Internal compiler error"):
            failure = True
            message = line.removeprefix("ERROR:").strip()
            if message and message != "Compilation failed!":
                errors.append(message)
            continue
        if line.startswith("Model compiled successfully") or line.startswith("Compilation succeeded"):
            success = True
            continue
        key, sep, value = line.partition(":")
        if sep and key in _FIELDS:
            name, kind = _FIELDS[key]
            try:
                parsed = parse_size(value) if kind == "size" else kind(value.strip())
            except ValueError:
                raise CompilerLogError(f"unreadable value {value.strip()!r} for '{key}' in edgetpu_compiler output") from None
            setattr(report, name, parsed)

    if report.compiler_version is None and not report.operators:
        raise CompilerLogError("the text is not edgetpu_compiler output (no 'Edge TPU Compiler version' line "
                               "and no operator table); pass the compiler's stdout or its *_edgetpu.log")
    report.error = "; ".join(dict.fromkeys(errors)) or None
    # The operation .log has no success line: a table and no error means the compiler wrote an output model.
    report.succeeded = not failure and (success or bool(report.operators))
    if report.operators:
        table_total = sum(r.count for r in report.operators)
        table_tpu = sum(r.count for r in report.operators if r.mapped)
        report.total_ops = report.total_ops if report.total_ops is not None else table_total
        report.ops_on_edgetpu = report.ops_on_edgetpu if report.ops_on_edgetpu is not None else table_tpu
        report.ops_on_cpu = report.ops_on_cpu if report.ops_on_cpu is not None else table_total - table_tpu
    elif report.succeeded and report.total_ops is not None and report.ops_on_cpu is None:
        # Without -s the compiler prints the Edge TPU / CPU split only when something falls back.
        report.ops_on_edgetpu, report.ops_on_cpu = report.total_ops, 0
    return report


# ---------------------------------------------------------------------------------------------------------------
# Running the compiler
# ---------------------------------------------------------------------------------------------------------------
def find_compiler(explicit: str | None = None) -> str | None:
    """Path of edgetpu_compiler (an explicit path, else PATH), or None when it is not installed."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise UserError(f"--compiler {explicit} is not an executable file; {INSTALL_STEPS}")
        return explicit
    return shutil.which(COMPILER)


def compiler_version(compiler: str) -> str:
    """The compiler's version string ("16.0.384591198"), recorded in model.json next to its report."""
    proc = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    m = re.search(r"version (\S+)", proc.stdout + proc.stderr)
    return m.group(1) if m else "unknown"


def compiler_command(compiler: str, model: Path, out_dir: Path, timeout_s: int = 180) -> list[str]:
    """``edgetpu_compiler -s -o OUT_DIR -t SECONDS MODEL``: -s prints the operator table on stdout too."""
    return [compiler, "-s", "-o", str(out_dir), "-t", str(timeout_s), str(model)]


def merge_operation_log(report: CompileReport, log_text: str) -> CompileReport:
    """Fill the operator table from the *_edgetpu.log the compiler wrote when stdout did not carry it."""
    if not report.operators and log_text.strip():
        log = parse_compiler_output(log_text)
        report.operators = log.operators
        for name in ("total_ops", "ops_on_edgetpu", "ops_on_cpu"):
            if getattr(report, name) is None:
                setattr(report, name, getattr(log, name))
    return report


def run_compiler(compiler: str, model: Path, out_dir: Path, timeout_s: int = 180) -> tuple[CompileReport, str]:
    """Run the compiler on ``model`` into ``out_dir``; return the parsed report and the raw stdout+stderr."""
    try:
        proc = subprocess.run(compiler_command(compiler, model, out_dir, timeout_s), capture_output=True, text=True,
                              timeout=timeout_s + 60)
    except subprocess.TimeoutExpired:
        raise UserError(f"edgetpu_compiler did not finish within {timeout_s + 60} s; retry with a larger --timeout") from None
    text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    report = parse_compiler_output(text)
    log_path = out_dir / (model.stem + "_edgetpu.log")
    if log_path.exists():
        merge_operation_log(report, log_path.read_text(errors="replace"))
    if proc.returncode != 0 and report.error is None:
        report.succeeded = False
        report.error = f"edgetpu_compiler exited with status {proc.returncode}"
    return report, text


def fallback_problem(report: CompileReport) -> str | None:
    """Why a successful compilation is still not what was asked for: ops left on the CPU, named; else None."""
    if not report.ops_on_cpu:
        return None
    rows = ", ".join(f"{r.op} x{r.count} ({r.status})" for r in report.cpu_rows) or f"{report.ops_on_cpu} ops"
    return f"{report.ops_on_cpu} of {report.total_ops} ops fall back to the CPU: {rows}"


def version_fix(op: str) -> str:
    return VERSION_FIXES.get(op, GENERIC_VERSION_FIX)


def failure_message(report: CompileReport) -> str:
    """One line for a failed compilation: the compiler's first error and what to do about it."""
    if report.unknown_op_version:
        op, version = report.unknown_op_version
        return (f"edgetpu_compiler {report.compiler_version or ''} cannot parse the model: {op} version {version} "
                f"is newer than it knows; {version_fix(op)} (docs/coral.md 'Op versions')")
    errors = (report.error or "no output model").split("; ")
    reason = next((e.removeprefix("Compilation failed: ") for e in errors if e.startswith("Compilation failed: ")),
                  errors[0])
    return f"edgetpu_compiler failed: {reason}; its full output is in edgetpu_compiler.txt in the bundle"


# ---------------------------------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------------------------------
def edgetpu(bundle_path: str | os.PathLike, allow_cpu_fallback: bool = False, precheck_only: bool = False,
            compiler: str | None = None, timeout_s: int = 180, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Pre-check the bundle's int8 model, compile it for the Edge TPU when the compiler exists, record both.

    Returns the ``edgetpu`` section written to model.json. Raises UserError (non-zero exit) when the compiler
    is missing (after printing the pre-check), when it fails, or when ops fall back to the CPU and
    ``allow_cpu_fallback`` is False.
    """
    bundle = load_bundle(bundle_path)
    model = bundle.verified_artifact("tflite")
    check = precheck_model(model)
    echo(f"Edge TPU pre-check of {model} ({RULES} rules, {len(check.ops)} ops)")
    echo(check.table())
    echo(f"verdict: {check.verdict()}")
    section: dict[str, Any] = {"precheck": check.to_json()}
    bundle.update("edgetpu", section)
    bundle.save()

    if check.version_blockers:
        fixes = "; ".join(f"{b}: {version_fix(b.split()[0])}" for b in check.version_blockers)
        raise UserError(f"edgetpu_compiler 16.0 will refuse this model ({fixes})")
    if precheck_only:
        if not check.fully_mapped and not allow_cpu_fallback:
            raise UserError(f"{check.verdict()}; change the model or pass --allow-cpu-fallback")
        return section

    path = find_compiler(compiler)
    if path is None:
        raise UserError(f"{COMPILER} is not on PATH, so only the pre-check ran; {INSTALL_STEPS}")
    version = compiler_version(path)
    echo(f"running {path} (version {version})")
    report, raw = run_compiler(path, model, bundle.path, timeout_s)
    (bundle.path / "edgetpu_compiler.txt").write_text(raw)
    section["compiler"] = {"path": path, "version": version, "report": report.to_json(),
                           "output": "edgetpu_compiler.txt"}
    bundle.update("edgetpu", section)
    bundle.save()
    if not report.succeeded:
        raise UserError(failure_message(report))
    compiled = bundle.artifact_path("edgetpu")
    bundle.record_artifact("edgetpu", compiler_version=version, source_sha256=bundle.model_id)
    bundle.save()
    echo(f"compiled {compiled}: {report.ops_on_edgetpu}/{report.total_ops} ops on the Edge TPU, "
         f"{report.edgetpu_subgraphs} subgraph(s), on-chip {report.on_chip_used_bytes} B, "
         f"off-chip {report.off_chip_bytes} B")
    problem = fallback_problem(report)
    if problem and not allow_cpu_fallback:
        raise UserError(f"{problem}; change the model or pass --allow-cpu-fallback")
    if problem:
        echo(f"warning: {problem}")
    return section


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools edgetpu",
        description="Pre-check a bundle's int8 model against the Edge TPU rules (op by op, with the point where "
                    "the first CPU fallback cuts the graph), then compile it with edgetpu_compiler when installed "
                    "and record the compiler's op-mapping report in model.json.")
    parser.add_argument("bundle", help="model bundle directory (holds model.json and model_int8.tflite)")
    parser.add_argument("--allow-cpu-fallback", action="store_true",
                        help="succeed even when some ops will run on the CPU (default: fail, naming them)")
    parser.add_argument("--precheck-only", action="store_true",
                        help="only run the pre-check; never call edgetpu_compiler")
    parser.add_argument("--compiler", metavar="PATH",
                        help="edgetpu_compiler executable to use (default: the one on PATH)")
    parser.add_argument("--timeout", type=int, default=180, metavar="SECONDS",
                        help="compiler time limit, passed as edgetpu_compiler -t (default: 180)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    edgetpu(args.bundle, allow_cpu_fallback=args.allow_cpu_fallback, precheck_only=args.precheck_only,
            compiler=args.compiler, timeout_s=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
