"""Build the inference firmware for a bundle, for QEMU or native (the builder is tinyml/firmware.py).

    python -m tools firmware BUNDLE --port qemu      # prints the image path
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from models.errors import run_cli
from tinyml.firmware import DEFAULT_BUILD_ROOT, PORTS, build, image_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools firmware",
        description="Build the inference firmware for a model bundle: generate the engine's C "
                    "(tinyml/codegen.py) and compile it with the portable core. Prints the image path; run it "
                    "with host/stream.py --board PORT, or by hand as docs/firmware.md shows.")
    parser.add_argument("bundle", help="model bundle directory (with model_int8.tflite)")
    parser.add_argument("--port", choices=sorted(PORTS), default="qemu",
                        help="qemu: ELF for qemu-system-arm -M mps2-an386 (Cortex-M4F, arm-none-eabi-gcc); "
                             "native: Linux executable serving on a pty (host gcc). Default: qemu")
    parser.add_argument("--build-root", type=Path, default=None,
                        help=f"cache directory; the image goes to ROOT/<model-id>/<port>/ (default {DEFAULT_BUILD_ROOT})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cached image is up to date")
    args = parser.parse_args(argv)
    image = build(args.bundle, args.port, build_root=args.build_root, force=args.force)
    print(image)
    if args.port == "qemu":
        size = image_size(image)
        print(f"flash {size['text'] + size['data']} B, static RAM {size['data'] + size['bss']} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
