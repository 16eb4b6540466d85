"""Generate plain C for the project's int8 engine from a bundle (the generator is tinyml/codegen).

python -m tools codegen BUNDLE [--out DIR]      # writes BUNDLE/codegen/ and records it in model.json
python -m tools codegen BUNDLE --ram-budget 64K # the fastest schedule whose arena fits 64 KiB
"""

from __future__ import annotations

import argparse
import re
from typing import Sequence

from models.errors import UserError, exit_cli
from tinyml.codegen import generate

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:i?[bB])?\s*$")


def parse_bytes(text: str) -> int:
    """'65536', '64K', '64KB', '64KiB', '1.5M' -> bytes (K = 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise UserError(f"--ram-budget {text!r} is not a size; give bytes or K/M, e.g. --ram-budget 64K")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if value < 1:
        raise UserError(f"--ram-budget {text!r} is not a positive size; e.g. --ram-budget 64K")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools codegen",
        description="Generate C for the project's int8 engine (firmware/lib/engine) from a bundle's "
        "model_int8.tflite: weights, requantisation constants, a static memory plan and the kernel "
        "call sequence. The result links into the native and QEMU firmware ports.",
    )
    parser.add_argument(
        "bundle", help="model bundle directory (holding model.json and model_int8.tflite), or a bare .tflite file"
    )
    parser.add_argument("--out", help="output directory for model_engine.h/.c (default: BUNDLE/codegen/)")
    parser.add_argument(
        "--ram-budget",
        type=parse_bytes,
        metavar="SIZE",
        help="engine RAM (activations + scratch) allowed, e.g. 64K: the fastest schedule that fits "
        "(layer by layer where it fits, fused row-band chains where it must); default: the "
        "smallest arena, at the fewest extra instructions",
    )
    args = parser.parse_args(argv)
    paths = generate(args.bundle, args.out, args.ram_budget)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    exit_cli(main)
