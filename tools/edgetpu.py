"""Coral Edge TPU: pre-check op mapping, run edgetpu_compiler, parse its report into model.json.

The pre-check (tinyml/edgetpu/precheck.py) finds the cut point and the op-version blockers without the compiler;
when ``edgetpu_compiler`` is on PATH it is then run (tinyml/edgetpu/compiler.py) and its own report is parsed
(tinyml/edgetpu/compiler_log.py) and recorded.

    python -m tools edgetpu BUNDLE                       # pre-check, then compile if the compiler is installed
    python -m tools edgetpu BUNDLE --precheck-only       # just the op-by-op report
    python -m tools edgetpu BUNDLE --allow-cpu-fallback  # accept a partly mapped model
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Sequence

from models.bundle import load_bundle
from models.errors import UserError, exit_cli
from tinyml.edgetpu.compiler import (
    COMPILER,
    INSTALL_STEPS,
    compiler_version,
    failure_message,
    fallback_problem,
    find_compiler,
    run_compiler,
)
from tinyml.edgetpu.precheck import RULES, precheck_model, version_fix


def edgetpu(
    bundle_path: str | os.PathLike,
    allow_cpu_fallback: bool = False,
    precheck_only: bool = False,
    compiler: str | None = None,
    timeout_s: int = 180,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
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
    section["compiler"] = {
        "path": path,
        "version": version,
        "report": report.to_json(),
        "output": "edgetpu_compiler.txt",
    }
    bundle.update("edgetpu", section)
    bundle.save()
    if not report.succeeded:
        raise UserError(failure_message(report))
    compiled = bundle.artifact_path("edgetpu")
    bundle.record_artifact("edgetpu", compiler_version=version, source_sha256=bundle.model_id)
    bundle.save()
    echo(
        f"compiled {compiled}: {report.ops_on_edgetpu}/{report.total_ops} ops on the Edge TPU, "
        f"{report.edgetpu_subgraphs} subgraph(s), on-chip {report.on_chip_used_bytes} B, "
        f"off-chip {report.off_chip_bytes} B"
    )
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
        "and record the compiler's op-mapping report in model.json.",
    )
    parser.add_argument("bundle", help="model bundle directory (holds model.json and model_int8.tflite)")
    parser.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="succeed even when some ops will run on the CPU (default: fail, naming them)",
    )
    parser.add_argument(
        "--precheck-only", action="store_true", help="only run the pre-check; never call edgetpu_compiler"
    )
    parser.add_argument(
        "--compiler", metavar="PATH", help="edgetpu_compiler executable to use (default: the one on PATH)"
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=180,
        metavar="SECONDS",
        help="compiler time limit, passed as edgetpu_compiler -t (default: 180)",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    edgetpu(
        args.bundle,
        allow_cpu_fallback=args.allow_cpu_fallback,
        precheck_only=args.precheck_only,
        compiler=args.compiler,
        timeout_s=args.timeout,
    )
    return 0


if __name__ == "__main__":
    exit_cli(main)
