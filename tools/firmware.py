"""Build the inference firmware for a bundle, for QEMU, native or the Arduino sketch (the builder is
tinyml/firmware.py; this adds export's model_info.h for the sketch and its fit against the board table).

    python -m tools firmware BUNDLE --port qemu      # prints the image path
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from models.bundle import Bundle
from models.errors import exit_cli
from tinyml import firmware
from tinyml.firmware import DEFAULT_BUILD_ROOT, PORTS, image_size
from tools.boards import KIB, Board, get_board


def write_model_info(bundle: Bundle, tflite: bytes, model_dir: Path) -> Path:
    """model_info.h exactly as ``tools export`` writes it (the sketch's camera mode reads it), without
    touching the bundle: the same arena figure (evaluate's, or measured now), though only a TFLM build uses it."""
    from tinyml.tflite_graph import load_graph
    from tinyml.tflm import bundle_arena
    from tools import export

    measured = bundle_arena(bundle)
    text = export.render_model_info(
        bundle, load_graph(tflite), tflite, measured, export.arena_with_margin(measured), export.ARENA_MARGIN_PERCENT
    )
    path = model_dir / "model_info.h"
    path.write_text(text)
    return path


def build(bundle: Bundle | str | Path, port: str, **options) -> Path:
    """tinyml.firmware.build, with model_info.h for the sketch ports (``arduino``, ``arduino-m4``)."""
    sketch = port in PORTS and PORTS[port].sketch
    return firmware.build(bundle, port, model_files=write_model_info if sketch else None, **options)


def fit_summary(size: dict[str, int], board: Board) -> str:
    """One line: an engine image's flash and static RAM against a board table entry (tools/boards.py).

    Conservative: the image must fit what the table leaves after the board's core and RTOS (code_reserved,
    ram_reserved), although those estimates also cover TFLM's kernels and buffers this image does not need.
    """
    flash, ram = size["text"] + size["data"], size["data"] + size["bss"]
    verdict = "fits" if flash <= board.model_budget and ram <= board.arena_budget else "does NOT fit"
    return (
        f"{board.name}: {verdict}: flash {flash / KIB:.1f} KiB of the {board.model_budget / KIB:.0f} KiB left "
        f"after the core's {board.code_reserved / KIB:.0f} KiB ({board.app_flash / KIB:.0f} KiB app flash), "
        f"static RAM {ram / KIB:.1f} KiB of the {board.arena_budget / KIB:.0f} KiB left after "
        f"{board.ram_reserved / KIB:.0f} KiB ({board.sram / KIB:.0f} KiB SRAM)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools firmware",
        description="Build the inference firmware for a model bundle: generate the engine's C "
        "(tinyml/codegen) and compile it with the portable core. Prints the image path; run it "
        "with host/stream.py --board PORT, or by hand as docs/firmware.md shows.",
    )
    parser.add_argument("bundle", help="model bundle directory (with model_int8.tflite)")
    parser.add_argument(
        "--port",
        choices=sorted(PORTS),
        default="qemu",
        help="qemu: ELF for qemu-system-arm -M mps2-an386 (Cortex-M4F, arm-none-eabi-gcc); "
        "native: Linux executable serving on a pty (host gcc); arduino: the PlatformIO "
        "sketch (firmware/src/main.cpp) with the engine on the Arduino API stand-in, on a pty; "
        "arduino-m4: the same cross-compiled for the Nano 33 BLE's Cortex-M4F (prints its "
        "flash/RAM against the board table; boots on QEMU too). Default: qemu",
    )
    parser.add_argument(
        "--build-root",
        type=Path,
        default=None,
        help=f"cache directory; the image goes to ROOT/<model-id>/<port>/ (default {DEFAULT_BUILD_ROOT})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the cached image is up to date")
    args = parser.parse_args(argv)
    image = build(args.bundle, args.port, build_root=args.build_root, force=args.force)
    print(image)
    if image.suffix == ".elf":
        size = image_size(image)
        print(f"flash {size['text'] + size['data']} B, static RAM {size['data'] + size['bss']} B")
        if args.port == "arduino-m4":
            print(fit_summary(size, get_board("nano33ble")))
    return 0


if __name__ == "__main__":
    exit_cli(main)
