"""Memory figures of the TFLite-Micro export: flash (the .tflite), measured arena, arena with margin, frame buffers
and the fit verdict per board, for the bundles given (default: the bench bundles under runs/).

    python bench/export_memory.py [BUNDLE ...]

Prints a Markdown table for docs/benchmarks.md ("TFLite-Micro export" section). Exports into a temporary
directory, so the firmware tree is untouched (model.json still records the export, as every export does).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from models.errors import UserError, exit_cli
from tools.boards import BOARDS, KIB
from tools.export import export_bundle

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    bundles = [Path(a) for a in args] or sorted(p.parent for p in (REPO / "runs").glob("*/model_int8.tflite"))
    if not bundles:
        raise UserError("no bundles given and none under runs/; pass bundle directories")
    header = (
        "| bundle | ops | .tflite KiB | arena measured KiB | arena + margin KiB | frame buffers KiB | "
        + " | ".join(BOARDS)
        + " |"
    )
    print(header)
    print("|" + "---|" * (6 + len(BOARDS)))
    for bundle in bundles:
        with tempfile.TemporaryDirectory() as out:
            result = export_bundle(bundle, out_dir=out)
        fits = {f.board.name: ("PSRAM" if f.arena_in_psram else "yes") if f.fits else "no" for f in result.fits}
        print(
            f"| {bundle.name} | {len(result.ops)} | {result.fits[0].model_bytes / KIB:.1f} | "
            f"{result.arena_measured / KIB:.1f} | {result.arena_bytes / KIB:.1f} | "
            f"{result.fits[0].buffer_bytes / KIB:.1f} | " + " | ".join(fits[name] for name in BOARDS) + " |"
        )
    return 0


if __name__ == "__main__":
    exit_cli(main)
