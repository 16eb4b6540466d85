"""Compare bundles side by side: MobileNet V1 or V2, on my data, on my board?

Every earlier step records its figures in model.json (train: MACs and parameters; evaluate: float, LiteRT-ref and
TFLM accuracy and the TFLM arena; codegen: the engine's RAM and constants). This step reads them, checks each
model against every board in the board table (tools/boards.py, with export's arena margin), and with ``--measure-qemu`` runs a few test
frames through the model's firmware on the emulated Cortex-M4 to count instructions per inference, so the
comparison covers accuracy, flash, RAM and speed in one table. Nothing is estimated: a figure a step has not
recorded yet is shown as "-" together with the command that records it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from models.bundle import META_FILE, Bundle, load_bundle
from models.errors import UserError, exit_cli
from tools.boards import BOARDS

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
    architecture: str = ""
    path: str = ""
    input_bytes: int = 0
    engine_flash: int | None = None  # QEMU firmware text + data (report --measure-qemu)
    split: str | None = None  # what the accuracies were measured on
    images: int | None = None
    model_id: str | None = None  # sha256 of the .tflite the row describes
    engine: str | None = None  # digest of the engine its codegen and QEMU figures were measured on

    @property
    def accuracy(self) -> float:
        """int8 accuracy of a row known to be evaluated (callers pick those rows first)."""
        if self.int8_acc is None:
            raise ValueError(f"{self.name} has no int8 accuracy; run python -m tools evaluate {self.path}")
        return self.int8_acc

    stale: str = ""  # why some figures belong to another .tflite or engine than the current ones ("" = none)
    broken: str = ""  # why the bundle's .tflite itself cannot be trusted (changed after quantize recorded it)


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
    from models.preprocess import prepare_frame
    from tinyml.data import balanced_sample, bundle_splits
    from tinyml.firmware import build
    from tinyml.local_boards import QemuBoard, run_frames

    images = balanced_sample(bundle_splits(bundle).test, frames, seed=0).images[:frames]  # one per class, then cut
    elf = build(bundle, "qemu")
    board = QemuBoard(elf)
    url = board.start()
    try:
        hello, results = run_frames(url, [prepare_frame(img, bundle).tobytes() for img in images])
    finally:
        board.stop()
    if bytes(hello.model_id).hex() != bundle.model_id:
        raise UserError(
            f"the QEMU firmware reports model {bytes(hello.model_id).hex()[:12]}, the bundle is "
            f"{bundle.model_id[:12]}; rebuild with: python -m tools firmware {bundle.path} --port qemu"
        )
    instructions = sum(r.cycles for r in results) / len(results)
    record_qemu(bundle, instructions, len(results), hello.engine, elf)
    return instructions


def record_qemu(bundle: Bundle, instructions: float, frames: int, engine: str, elf: Path) -> None:
    """Record a QEMU icount figure in model.json ("metrics.qemu"): measure_qemu's, or the mean over the frames a
    ``host/stream.py --board qemu`` run answered (tools/demo records its stream's rather than boot QEMU again)."""
    from tinyml.firmware import engine_digest, image_size

    size = image_size(elf)
    bundle.update(
        "metrics",
        {
            "qemu": {
                "board": "mps2-an386 (Cortex-M4, icount)",
                "frames": frames,
                "instructions_per_inference": instructions,
                "engine": engine,
                "flash_bytes": size["text"] + size["data"],
                "tflite_sha256": bundle.model_id,
                "engine_sha256": engine_digest(),  # the engine the image was built from (build() just checked it)
            }
        },
    )
    bundle.save()


def collect(bundle: Bundle, measure: bool = False, frames: int = 4) -> Row:
    """One report row from ``bundle``'s model.json (and a QEMU measurement when ``measure``)."""
    from tinyml.firmware import engine_digest
    from tools.boards import check_fit
    from tools.export import arena_with_margin

    meta = bundle.meta
    evaluation = _get(meta, "metrics", "evaluation") or {}
    tflite = bundle.artifact_path("tflite", required=False)
    tflite_bytes, broken = None, ""
    if tflite.exists():
        try:  # a corrupt or replaced .tflite gets no size, no board fit and no model id
            tflite_bytes = bundle.verified_artifact("tflite").stat().st_size
        except UserError as exc:
            broken = str(exc)
    arena = _get(evaluation, "tflm_arena_bytes", "required")
    height, width, channels = bundle.input_shape
    fits: dict[str, bool | None] = {}
    for name, board in BOARDS.items():
        if tflite_bytes is None or arena is None:
            fits[name] = None
        else:
            fits[name] = check_fit(board, tflite_bytes, arena_with_margin(arena), height * width * channels).fits
    if measure and tflite_bytes is not None:
        measure_qemu(bundle, frames)
    qemu = _get(meta, "metrics", "qemu") or {}
    model_id = bundle.model_id if tflite_bytes is not None else None
    stale = [
        f"{step} figures were recorded for another .tflite (re-run: {cmd})"
        for step, recorded, cmd in (
            ("evaluate", evaluation.get("tflite_sha256"), f"python -m tools evaluate {bundle.path}"),
            ("codegen", _get(meta, "codegen", "tflite_sha256"), f"python -m tools codegen {bundle.path}"),
            ("QEMU", qemu.get("tflite_sha256"), f"python -m tools report {bundle.path} --measure-qemu"),
        )
        if recorded is not None and model_id is not None and recorded != model_id
    ]
    stale += engine_stale(bundle, engine_digest())
    return Row(
        name=bundle.name,
        model=f"{ARCH_NAMES.get(bundle.architecture, bundle.architecture)} {meta.get('width', '?')}",
        input=f"{height}x{width}x{channels}",
        macs=_get(meta, "metrics", "cost", "macs"),
        params=_get(meta, "metrics", "cost", "params"),
        float_acc=_get(evaluation, "float", "accuracy"),
        int8_acc=_get(evaluation, "int8_litert_ref", "accuracy"),
        tflm_acc=_get(evaluation, "int8_tflm", "accuracy"),
        tflite_bytes=tflite_bytes,
        tflm_arena=arena,
        engine_ram=_get(meta, "codegen", "arena_bytes"),
        instructions=qemu.get("instructions_per_inference"),
        fits=fits,
        architecture=bundle.architecture,
        path=str(bundle.path),
        input_bytes=height * width * channels,
        engine_flash=qemu.get("flash_bytes"),
        split=evaluation.get("split"),
        images=evaluation.get("images"),
        model_id=model_id,
        engine=qemu.get("engine_sha256") or _get(meta, "codegen", "engine_sha256"),
        stale="; ".join(stale),
        broken=broken,
    )


def engine_stale(bundle: Bundle, current: str | None) -> list[str]:
    """Why the bundle's engine figures (codegen's RAM, QEMU's instructions and flash) are not of engine ``current``.

    Each such figure records the digest of the engine it was measured on (tinyml.firmware.engine_digest); one
    recorded without a digest, or with another engine's, is stale, so a sweep resumed after an engine change never
    mixes two engines' figures silently. ``current`` None (no firmware sources here): nothing to compare with.
    """
    if current is None:
        return []
    reasons = []
    for step, section, cmd in (
        ("codegen", bundle.meta.get("codegen"), f"python -m tools codegen {bundle.path}"),
        ("QEMU", _get(bundle.meta, "metrics", "qemu"), f"python -m tools report {bundle.path} --measure-qemu"),
    ):
        if not isinstance(section, dict):
            continue
        recorded = section.get("engine_sha256")
        if recorded != current:
            engine = "an engine of unrecorded digest" if recorded is None else f"engine {recorded[:12]}"
            reasons.append(f"{step} figures were measured on {engine}, this tree's is {current[:12]} (re-run: {cmd})")
    return reasons


def mixed_engines(rows: list[Row]) -> list[str]:
    """One line when the rows' engine figures come from more than one engine (the digests, how many rows each)."""
    from collections import Counter

    engines = Counter(r.engine[:12] for r in rows if r.engine)
    if len(engines) < 2:
        return []
    counts = ", ".join(f"{digest} ({n} rows)" for digest, n in engines.most_common())
    return [f"engine figures come from {len(engines)} engines: {counts}; re-measure them on one"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _kib(value: int | None) -> str:
    return "-" if value is None else f"{value / KIB:.1f} KiB"


def format_rows(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal too), one row per bundle, boards as columns.

    Each row says what its accuracies were measured on (split and image count) and which .tflite it describes
    (the first 12 hex digits of its sha256); a row with figures of another .tflite is marked STALE.
    """
    boards = list(rows[0].fits) if rows else []
    head = [
        "bundle",
        "model",
        "input",
        "MACs",
        "params",
        "float acc",
        "int8 acc",
        "TFLM acc",
        "evaluated on",
        ".tflite",
        "TFLM arena",
        "engine RAM",
        "engine flash",
        "M4 instructions",
    ] + [f"fits {b}" for b in boards]
    head += ["model id"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.name,
            r.model,
            r.input,
            "-" if r.macs is None else f"{r.macs / 1e6:.2f} M",
            "-" if r.params is None else f"{r.params / 1e3:.0f} k",
            _pct(r.float_acc),
            _pct(r.int8_acc),
            _pct(r.tflm_acc),
            "-" if r.split is None else f"{r.split} {r.images}",
            _kib(r.tflite_bytes),
            _kib(r.tflm_arena),
            _kib(r.engine_ram),
            _kib(r.engine_flash),
            "-" if r.instructions is None else f"{r.instructions / 1e6:.2f} M",
        ]
        cells += ["-" if r.fits[b] is None else ("yes" if r.fits[b] else "no") for b in boards]
        cells += [("-" if r.model_id is None else r.model_id[:12]) + (" STALE" if r.stale else "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def expand(paths: Sequence[str]) -> list[Path]:
    """Bundle directories from the arguments: a bundle itself, or a folder of bundles (a sweep's output)."""
    out: list[Path] = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir() and not (path / META_FILE).exists():
            inner = sorted(p.parent for p in path.glob(f"*/{META_FILE}")) or sorted(
                p.parent for p in path.glob(f"*/*/{META_FILE}")
            )
            if inner:
                out.extend(inner)
                continue
        out.append(path)
    return out


def distinguish(rows: list[Row]) -> None:
    """Two bundles with the same name (a copied bundle keeps its model.json name) are told apart by their path."""
    names = [row.name for row in rows]
    for row in rows:
        if names.count(row.name) > 1:
            row.name = row.path


def warnings_for(rows: list[Row]) -> list[str]:
    """What makes figures untrustworthy or not comparable, one line each with the fix; never left to a marker."""
    lines = [f"{row.name}: {row.broken}" for row in rows if row.broken]
    lines += [f"{row.name}: {row.stale}" for row in rows if row.stale]
    lines += mixed_engines(rows)
    measured = sorted({f"{row.split} {row.images}" for row in rows if row.split is not None})
    if len(measured) > 1:
        lines.append(
            f"accuracies were measured on different splits or image counts ({', '.join(measured)}) and are "
            "not comparable; evaluate every bundle with the same --split and --limit"
        )
    return lines


def missing_steps(rows: list[Row], bundles: list[Bundle]) -> list[str]:
    """The commands that would fill the table's "-" cells, in the order the steps have to run."""
    hints = []
    for row, bundle in zip(rows, bundles):
        if row.tflite_bytes is None:  # evaluate, codegen and the QEMU count all need the int8 model first
            if not row.broken:
                hints.append(f"python -m tools quantize {bundle.path}")
            continue
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
        "MobileNet V1 or V2, on my data, on my board? Examples: "
        "python -m tools report runs/demo/mobilenet_v1 runs/demo/mobilenet_v2 --measure-qemu; "
        "python -m tools report runs/sweep --board nano33ble --out runs/sweep/report; "
        "python -m tools report --paper",
    )
    parser.add_argument("bundles", nargs="*", help="bundle directories, or folders of bundles (e.g. a sweep's output)")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="rebuild the MobileNet papers' configurations (width 1.0 at 224x224x3, V1 0.25/0.5 at "
        "128, V2 0.35/0.5 at 96) and compare their parameters and MACs with the published ones",
    )
    parser.add_argument("--board", help=f"which V1 and V2 fit this board, per backend ({', '.join(BOARDS)})")
    parser.add_argument("--ram", help="instead of --board: RAM left for the model, e.g. 176K")
    parser.add_argument("--flash", help="instead of --board: flash left for the model, e.g. 640K")
    parser.add_argument("--out", help="also write report.md, report.html (self-contained) and the PNG plots here")
    parser.add_argument(
        "--measure-qemu",
        action="store_true",
        help="count instructions per inference on the emulated Cortex-M4 (QEMU mps2-an386) and "
        "record them in model.json (needs arm-none-eabi-gcc and qemu-system-arm)",
    )
    parser.add_argument("--frames", type=int, default=4, help="test frames per QEMU measurement (default 4)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.frames < 1:
        raise UserError(f"--frames must be >= 1, got {args.frames}")
    if not args.bundles and not args.paper:
        raise UserError("name at least one bundle (or a folder of bundles), or pass --paper")
    board = None
    if args.board is not None or args.ram is not None or args.flash is not None:
        from tools.board_fit import resolve_board

        board = resolve_board(args.board, args.ram, args.flash)
    if args.paper:
        from tools.paper_table import format_paper, reproduce

        print(format_paper(reproduce()))
        if not args.bundles:
            return 0
        print()
    bundles = [load_bundle(path) for path in expand(args.bundles)]
    rows = [collect(b, args.measure_qemu, args.frames) for b in bundles]
    distinguish(rows)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    table = format_rows(rows)
    print(table)
    for line in warnings_for(rows):
        print(f"warning: {line}")
    hints = missing_steps(rows, bundles)
    if hints:
        print("\n'-' = not recorded yet; fill in with:\n  " + "\n  ".join(dict.fromkeys(hints)))
    if board is not None:
        from tools.board_fit import best_fits, format_choices
        from tools.report_page import basis

        aside = basis(rows).excluded  # stale or measured on another basis: warned about above, never chosen
        print()
        print(format_choices(best_fits([r for r in rows if r.name not in aside], board), board, aside))
    if args.out:
        from tools.report_page import write_report

        boards = dict(BOARDS) if board is None or board.name in BOARDS else {**BOARDS, board.name: board}
        written = write_report(rows, table, args.out, boards)
        print("\nwrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    exit_cli(main)
