"""``python -m tools <step> [options]``: run one build step.

Steps are discovered, not registered: every module ``tools/<step>.py`` that defines ``main(argv)`` is a step, so
a new step needs no edit here. Discovery reads the source (no import), so listing steps stays fast even though
steps import TensorFlow.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Sequence

import models.quiet  # noqa: F401  (quiet TensorFlow/OpenCV log levels, before a step loads either)
from models.errors import UserError, exit_cli, run_cli

TOOLS_DIR = Path(__file__).resolve().parent


def discover_steps() -> dict[str, str]:
    """Map step name -> first line of its module docstring, for every tools module with a top-level main()."""
    steps: dict[str, str] = {}
    for path in sorted(TOOLS_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            doc = ast.get_docstring(tree) or ""
            steps[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return steps


def usage(steps: dict[str, str]) -> str:
    lines = [
        "usage: python -m tools <step> [options]   (python -m tools <step> --help for a step's options)",
        "",
        "steps:",
    ]
    lines += [f"  {name:10s} {doc}" for name, doc in steps.items()]
    return "\n".join(lines)


def dispatch(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    steps = discover_steps()
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(steps))  # no step given is a request for the list, not an error
        return 0
    step, rest = args[0], args[1:]
    if step not in steps:
        raise UserError(f"unknown step {step!r}; available steps: {', '.join(steps)}")
    module = importlib.import_module(f"tools.{step}")
    return int(module.main(rest) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch and turn user errors into one line, returning the exit code (in-process callers, tests)."""
    return run_cli(dispatch, argv)


def entry() -> None:
    """The `tinyml` console script and ``python -m tools``: :func:`main` that exits the process itself, keeping
    the exit codes of a stop signal that lands during interpreter shutdown (models.errors.exit_cli)."""
    exit_cli(dispatch)


if __name__ == "__main__":
    entry()
