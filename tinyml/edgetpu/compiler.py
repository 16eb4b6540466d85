"""Running edgetpu_compiler (when installed) and turning its report into one line a user can act on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from models.errors import UserError
from tinyml.edgetpu.compiler_log import CompileReport, merge_operation_log, parse_compiler_output
from tinyml.edgetpu.precheck import version_fix

COMPILER = "edgetpu_compiler"
INSTALL_STEPS = (
    "install the Edge TPU compiler (Debian/Ubuntu x86-64 only): "
    "curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/coral.gpg && "
    "echo 'deb [signed-by=/usr/share/keyrings/coral.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main' "
    "| sudo tee /etc/apt/sources.list.d/coral-edgetpu.list && sudo apt-get update && sudo apt-get install -y edgetpu-compiler "
    "(other machines: compile in Google's Colab notebook google-coral/tutorials compile_for_edgetpu.ipynb; see docs/coral.md)"
)


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


def run_compiler(compiler: str, model: Path, out_dir: Path, timeout_s: int = 180) -> tuple[CompileReport, str]:
    """Run the compiler on ``model`` into ``out_dir``; return the parsed report and the raw stdout+stderr."""
    try:
        proc = subprocess.run(
            compiler_command(compiler, model, out_dir, timeout_s),
            capture_output=True,
            text=True,
            timeout=timeout_s + 60,
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"edgetpu_compiler did not finish within {timeout_s + 60} s; retry with a larger --timeout"
        ) from None
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


def failure_message(report: CompileReport) -> str:
    """One line for a failed compilation: the compiler's first error and what to do about it."""
    if report.unknown_op_version:
        op, version = report.unknown_op_version
        return (
            f"edgetpu_compiler {report.compiler_version or ''} cannot parse the model: {op} version {version} "
            f"is newer than it knows; {version_fix(op)} (docs/coral.md 'Op versions')"
        )
    errors = (report.error or "no output model").split("; ")
    reason = next(
        (e.removeprefix("Compilation failed: ") for e in errors if e.startswith("Compilation failed: ")), errors[0]
    )
    return f"edgetpu_compiler failed: {reason}; its full output is in edgetpu_compiler.txt in the bundle"
