"""Compare bundles side by side: MobileNet V1 or V2, on my data, on my board?

Every earlier step records its figures in model.json (train: MACs and parameters; evaluate: float, LiteRT-ref and
TFLM accuracy and the TFLM arena; codegen: the engine's RAM and constants). This step reads them, checks each
model against every board in the board table (tools/boards.py, with export's arena margin), and with ``--measure-qemu`` runs a few test
frames through the model's firmware on the emulated Cortex-M4 to count instructions per inference, so the
comparison covers accuracy, flash, RAM and speed in one table. Nothing is estimated: a figure a step has not
recorded yet is shown as "-" together with the command that records it.

Every figure is keyed by what it was measured on: evaluate, codegen and the QEMU measurement record the sha256 of
the .tflite they used, and a figure whose hash is not the bundle's current model_int8.tflite (re-quantized since)
is not shown but named stale with the command that refreshes it. A .tflite that changed after quantize recorded it
(corrupt, replaced) gets no size and no board fit. The "evaluated on" column names the split and image count, and
rows measured on different ones are flagged, as are two bundles with the same name (shown by path).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from models.bundle import Bundle, load_bundle
from models.errors import UserError, run_cli

KIB = 1024
ARCH_NAMES = {"mobilenet_v1": "MobileNet V1", "mobilenet_v2": "MobileNet V2"}


@dataclass
class Row:
    """The figures of one bundle, None where the step that records them has not run."""

    name: str
    model: str
    input: str
    macs: int | None
    params: int | None
    float_acc: float | None
    int8_acc: float | None
    tflm_acc: float | None
    tflite_bytes: int | None
    tflm_arena: int | None
    engine_ram: int | None
    instructions: float | None
    fits: dict[str, bool | None]
    evaluated_on: str | None = None  # "test 1000": the split and image count of the accuracies
    problems: list[tuple[str, str]] | None = None  # (what is wrong, the command that fixes it)


def _get(meta: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(meta, dict) or key not in meta:
            return None
        meta = meta[key]
    return meta


def measure_qemu(bundle: Bundle, frames: int = 4) -> float:
    """Mean instructions per inference of ``bundle`` on QEMU mps2-an386 (icount), over ``frames`` test images.

    Builds the engine firmware (cached), boots it, streams the frames and records the figure in model.json
    ("metrics.qemu"), so later reports need not boot QEMU again.
    """
    from host.local_boards import QemuBoard, run_frames
    from models.preprocess import prepare_frame
    from tools.data import balanced_sample, bundle_splits
    from tools.firmware import build

    images = balanced_sample(bundle_splits(bundle).test, frames, seed=0).images[:frames]  # one per class, then cut
    board = QemuBoard(build(bundle, "qemu"))
    board.start()
    try:
        hello, results = run_frames(board.url, [prepare_frame(img, bundle).tobytes() for img in images])
    finally:
        board.stop()
    if bytes(hello.model_id).hex() != bundle.model_id:
        raise UserError(f"the QEMU firmware reports model {bytes(hello.model_id).hex()[:12]}, the bundle is "
                        f"{bundle.model_id[:12]}; rebuild with: python -m tools firmware {bundle.path} --port qemu")
    instructions = sum(r.cycles for r in results) / len(results)
    bundle.update("metrics", {"qemu": {"board": "mps2-an386 (Cortex-M4, icount)", "frames": len(results),
                                       "instructions_per_inference": instructions, "engine": hello.engine,
                                       "tflite_sha256": bundle.model_id}})
    bundle.save()
    return instructions


def collect(bundle: Bundle, measure: bool = False, frames: int = 4) -> Row:
    """One report row from ``bundle``'s model.json (and a QEMU measurement when ``measure``)."""
    from tools.boards import BOARDS, check_fit
    from tools.export import arena_with_margin

    meta = bundle.meta
    problems: list[tuple[str, str]] = []
    tflite = bundle.artifact_path("tflite", required=False)
    tflite_bytes = None
    if tflite.exists():
        try:
            tflite_bytes = bundle.verified_artifact("tflite").stat().st_size
        except UserError as exc:
            problems.append((str(exc).split(";")[0], f"python -m tools quantize {bundle.path}"))
    model_id = _get(meta, "artifacts", "tflite", "sha256") if tflite_bytes is not None else None

    def current(section: dict | None, step: str, command: str) -> dict:
        """``section`` when it was measured on the current .tflite; else {} and a stale note."""
        if not isinstance(section, dict) or not section:
            return {}
        if model_id is not None and section.get("tflite_sha256") == model_id:
            return section
        if model_id is not None:
            problems.append((f"the {step} figures were measured on another model_int8.tflite (re-quantized since)",
                             command))
        return {}

    evaluation = current(_get(meta, "metrics", "evaluation"), "evaluate", f"python -m tools evaluate {bundle.path}")
    codegen = current(_get(meta, "codegen"), "codegen", f"python -m tools codegen {bundle.path}")
    qemu = current(_get(meta, "metrics", "qemu"), "QEMU", f"python -m tools report {bundle.path} --measure-qemu")
    arena = _get(evaluation, "tflm_arena_bytes", "total")
    height, width, channels = bundle.input_shape
    fits: dict[str, bool | None] = {}
    for name, board in BOARDS.items():
        if tflite_bytes is None or arena is None:
            fits[name] = None
        else:
            fits[name] = check_fit(board, tflite_bytes, arena_with_margin(arena), height * width * channels).fits
    instructions = _get(qemu, "instructions_per_inference")
    if measure and tflite_bytes is not None:
        instructions = measure_qemu(bundle, frames)
        problems[:] = [p for p in problems if "QEMU" not in p[0]]
    return Row(
        name=bundle.name, model=f"{ARCH_NAMES.get(bundle.architecture, bundle.architecture)} {meta.get('width', '?')}",
        input=f"{height}x{width}x{channels}", macs=_get(meta, "metrics", "cost", "macs"),
        params=_get(meta, "metrics", "cost", "params"), float_acc=_get(evaluation, "float", "accuracy"),
        int8_acc=_get(evaluation, "int8_litert_ref", "accuracy"), tflm_acc=_get(evaluation, "int8_tflm", "accuracy"),
        tflite_bytes=tflite_bytes, tflm_arena=arena, engine_ram=_get(codegen, "arena_bytes"),
        instructions=instructions, fits=fits,
        evaluated_on=f"{evaluation['split']} {evaluation['images']}" if "split" in evaluation else None,
        problems=problems)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _kib(value: int | None) -> str:
    return "-" if value is None else f"{value / KIB:.1f} KiB"


def format_rows(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal too), one row per bundle, boards as columns."""
    boards = list(rows[0].fits) if rows else []
    head = ["bundle", "model", "input", "MACs", "params", "float acc", "int8 acc", "TFLM acc", "evaluated on",
            ".tflite", "TFLM arena", "engine RAM", "M4 instructions"] + [f"fits {b}" for b in boards]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.name, r.model, r.input, "-" if r.macs is None else f"{r.macs / 1e6:.2f} M",
                 "-" if r.params is None else f"{r.params / 1e3:.0f} k", _pct(r.float_acc), _pct(r.int8_acc),
                 _pct(r.tflm_acc), r.evaluated_on or "-", _kib(r.tflite_bytes), _kib(r.tflm_arena), _kib(r.engine_ram),
                 "-" if r.instructions is None else f"{r.instructions / 1e6:.2f} M"]
        cells += ["-" if r.fits[b] is None else ("yes" if r.fits[b] else "no") for b in boards]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distinguish(rows: list[Row], bundles: list[Bundle]) -> None:
    """Two bundles with the same name (a copy) are told apart by their path."""
    names = [row.name for row in rows]
    for row, bundle in zip(rows, bundles):
        if names.count(row.name) > 1:
            row.name = str(bundle.path)


def notes(rows: list[Row]) -> list[str]:
    """What makes the table's figures not comparable or not trustworthy, one line each, with the fix."""
    lines = [f"{row.name}: {what}; fix: {command}" for row in rows for what, command in row.problems or []]
    measured = {row.evaluated_on for row in rows if row.evaluated_on}
    if len(measured) > 1:
        lines.append(f"accuracies were measured on different splits or image counts ({', '.join(sorted(measured))}): "
                     "not comparable; evaluate every bundle with the same --split and --limit")
    return lines


def missing_steps(rows: list[Row], bundles: list[Bundle]) -> list[str]:
    """The commands that would fill the table's "-" cells, in the order the steps must run."""
    hints = []
    for row, bundle in zip(rows, bundles):
        if row.tflite_bytes is None and not row.problems:
            hints.append(f"python -m tools quantize {bundle.path}")
            continue  # evaluate, codegen and the QEMU count all need the int8 model first
        if row.tflite_bytes is None:
            continue  # the problem notes say what to re-run
        if row.int8_acc is None:
            hints.append(f"python -m tools evaluate {bundle.path}")
        if row.engine_ram is None:
            hints.append(f"python -m tools codegen {bundle.path}")
        if row.instructions is None:
            hints.append(f"python -m tools report {bundle.path} --measure-qemu")
    return hints


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools report",
        description="Compare bundles side by side (accuracy, size, RAM, Cortex-M4 instructions, board fit): "
                    "MobileNet V1 or V2, on my data, on my board? Example: "
                    "python -m tools report runs/demo/mobilenet_v1 runs/demo/mobilenet_v2 --measure-qemu")
    parser.add_argument("bundles", nargs="+", help="bundle directories to compare")
    parser.add_argument("--measure-qemu", action="store_true",
                        help="count instructions per inference on the emulated Cortex-M4 (QEMU mps2-an386) and "
                             "record them in model.json (needs arm-none-eabi-gcc and qemu-system-arm)")
    parser.add_argument("--frames", type=int, default=4, help="test frames per QEMU measurement (default 4)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.frames < 1:
        raise UserError(f"--frames must be >= 1, got {args.frames}")
    bundles = [load_bundle(path) for path in args.bundles]
    rows = [collect(b, args.measure_qemu, args.frames) for b in bundles]
    distinguish(rows, bundles)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    print(format_rows(rows))
    for line in notes(rows):
        print(f"warning: {line}")
    hints = missing_steps(rows, bundles)
    if hints:
        print("\n'-' = not recorded yet; fill in with:\n  " + "\n  ".join(dict.fromkeys(hints)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
