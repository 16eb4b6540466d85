"""What edgetpu_compiler reports about a compilation, read from its stdout and its *_edgetpu.log.

Tested on real published compiler output (tests/data/edgetpu/), since the compiler cannot run here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from models.errors import UserError


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
    unknown_op_version: tuple[str, int] | None = None  # from "Didn't find op for builtin opcode 'X' version 'N'"
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


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_SIZE = re.compile(r"^\s*([\d.]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)\s*$")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::\S+)?)\s+(\d+)\s+(\S.*?)\s*$")
# Summary line -> (CompileReport field, how to read the value: a size with units, or a converter).
_FIELDS: dict[str, tuple[str, Callable[[str], Any] | str]] = {
    "Input model": ("input_model", str),
    "Input": ("input_model", str),
    "Output model": ("output_model", str),
    "Output": ("output_model", str),
    "Input size": ("input_size_bytes", "size"),
    "Output size": ("output_size_bytes", "size"),
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
        if (
            line.startswith("ERROR:")
            or line.startswith("Invalid model")
            or line == "Model could not be parsed"
            or line.startswith("Compilation failed")
            or line.startswith("Internal compiler error")
        ):
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
                parsed = parse_size(value) if isinstance(kind, str) else kind(value.strip())
            except ValueError:
                raise CompilerLogError(
                    f"unreadable value {value.strip()!r} for '{key}' in edgetpu_compiler output"
                ) from None
            setattr(report, name, parsed)

    if report.compiler_version is None and not report.operators:
        raise CompilerLogError(
            "the text is not edgetpu_compiler output (no 'Edge TPU Compiler version' line "
            "and no operator table); pass the compiler's stdout or its *_edgetpu.log"
        )
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


def merge_operation_log(report: CompileReport, log_text: str) -> CompileReport:
    """Fill the operator table from the *_edgetpu.log the compiler wrote when stdout did not carry it."""
    if not report.operators and log_text.strip():
        log = parse_compiler_output(log_text)
        report.operators = log.operators
        for name in ("total_ops", "ops_on_edgetpu", "ops_on_cpu"):
            if getattr(report, name) is None:
                setattr(report, name, getattr(log, name))
    return report
