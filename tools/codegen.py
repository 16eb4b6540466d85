"""Generate plain C for the project's int8 engine from a bundle (the generator is tinyml/codegen).

    python -m tools codegen BUNDLE [--out DIR]      # writes BUNDLE/codegen/ and records it in model.json
"""
from __future__ import annotations

import argparse
from typing import Sequence

from models.errors import run_cli
from tinyml.codegen import generate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools codegen",
        description="Generate C for the project's int8 engine (firmware/lib/engine) from a bundle's "
                    "model_int8.tflite: weights, requantisation constants, a static memory plan and the kernel "
                    "call sequence. The result links into the native and QEMU firmware ports.")
    parser.add_argument("bundle", help="model bundle directory (holding model.json and model_int8.tflite), "
                                       "or a bare .tflite file")
    parser.add_argument("--out", help="output directory for model_engine.h/.c (default: BUNDLE/codegen/)")
    args = parser.parse_args(argv)
    paths = generate(args.bundle, args.out)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
