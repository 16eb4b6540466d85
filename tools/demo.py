"""The `make demo` walk-through: MobileNet V1 vs V2 on Fashion-MNIST, from training to firmware on a Cortex-M4.

For each architecture: train -> quantize -> evaluate (float, LiteRT-ref and TFLM), then the int8 model is compiled
to C by the project's engine, built into the QEMU mps2-an386 firmware, and `python host/stream.py` streams a
labelled test slice to that emulated board over its UART, exactly as it would to a real board. Two tables answer
the question users start from: which architecture, on my data, on my board (accuracy, size, RAM, instructions).
It is a plain sequence of the calls and commands a user would make, on a small subset so it finishes in minutes on
a laptop CPU. bench/train_fashion_mnist.py runs the same build steps at full size.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from models.bundle import load_bundle
from models.errors import UserError, run_cli
from tools.evaluate import evaluate_bundle
from tools.quantize import quantize_bundle
from tools.train import TrainConfig, train_bundle

MODELS = (("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35))
STREAM_SCRIPT = Path(__file__).resolve().parents[1] / "host" / "stream.py"


def build_and_evaluate(out: Path, config: TrainConfig, samples: int = 300, eval_limit: int | None = None,
                       restart: bool = True, verbose: int | str = 2) -> dict[str, Any]:
    """Train, quantize and evaluate one bundle at ``out``; return one row of figures for :func:`format_table`.

    ``restart`` discards what is at ``out``; without it an interrupted training there resumes.
    """
    started = time.monotonic()
    bundle = train_bundle(out, config, restart=restart, verbose=verbose)
    trained = time.monotonic()
    quantize_bundle(bundle, samples=samples)
    result = evaluate_bundle(bundle, limit=eval_limit)
    return {
        "model": f"{config.architecture} {config.width:g}", "bundle": str(out),
        "input": "x".join(map(str, bundle.input_shape)), "macs": bundle.meta["metrics"]["cost"]["macs"],
        "float": 100 * result["float"]["accuracy"], "int8": 100 * result["int8_litert_ref"]["accuracy"],
        "tflm": 100 * result["int8_tflm"]["accuracy"], "drop": result["int8_drop_points"],
        "tflite_bytes": bundle.artifact_path("tflite").stat().st_size,
        "arena_bytes": result["tflm_arena_bytes"]["total"], "images": result["images"],
        "ref_tflm": "identical" if result["ref_tflm_identical"] else f"{result['ref_tflm_mismatches']} differ",
        "train_s": round(trained - started), "total_s": round(time.monotonic() - started),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`build_and_evaluate` rows (also readable in a terminal)."""
    head = ("| model | input | MACs | float acc | int8 acc | drop (pts) | TFLM acc | .tflite | TFLM arena "
            "| LiteRT-ref vs TFLM | test images | train s | total s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['input']} | {r['macs'] / 1e6:.2f} M | {r['float']:.2f}% | {r['int8']:.2f}% "
                     f"| {r['drop']:.2f} | {r['tflm']:.2f}% | {r['tflite_bytes'] / 1024:.1f} KiB "
                     f"| {r['arena_bytes'] / 1024:.1f} KiB | {r['ref_tflm']} | {r['images']} | {r['train_s']} "
                     f"| {r['total_s']} |")
    return "\n".join(lines)


def run_on_qemu(bundle_dir: Path, frames: int) -> dict[str, Any]:
    """Stream ``frames`` labelled test images to the bundle's firmware on QEMU with host/stream.py; return figures.

    stream.py builds the firmware (engine code generator + arm-none-eabi-gcc), boots QEMU, checks the board's HELLO
    against the bundle and compares every answer with the CPU reference; its JSON-lines log gives the figures.
    """
    from tinyml.codegen import generate
    from tinyml.firmware import build, image_size

    generate(bundle_dir)  # BUNDLE/codegen/: the C the firmware links; records arena and weight bytes in model.json
    log = bundle_dir / "qemu.jsonl"
    cmd = [sys.executable, str(STREAM_SCRIPT), str(bundle_dir), "fashion-mnist:test", "--limit", str(frames),
           "--board", "qemu", "--headless", "--quiet", "--log", str(log)]
    print("$ python host/stream.py " + " ".join(cmd[2:]), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise UserError(f"streaming to the QEMU board failed (see above); the log is {log}")
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    summary = next(r for r in reversed(records) if r["type"] == "summary")
    cycles = [r["cycles"] for r in records if r["type"] == "result"]
    bundle = load_bundle(bundle_dir)
    size = image_size(build(bundle, "qemu"))
    return {"frames": summary["answered"], "accuracy": summary["accuracy"], "agreement": summary["agreement_exact"],
            "instructions": sum(cycles) / len(cycles) if cycles else 0.0,
            "arena_bytes": bundle.meta.get("codegen", {}).get("arena_bytes"), "flash_bytes": size["text"] + size["data"],
            "weights_bytes": bundle.meta.get("codegen", {}).get("weights_bytes")}


def format_board_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the QEMU Cortex-M4 runs (run_on_qemu figures, keyed by model name)."""
    head = ("| model | frames | on-device acc | identical to CPU reference | instructions / inference "
            "| activation RAM | firmware flash |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        q = r["qemu"]
        arena = f"{q['arena_bytes'] / 1024:.1f} KiB" if q["arena_bytes"] else "?"
        flash = f"{q['flash_bytes'] / 1024:.1f} KiB" if q["flash_bytes"] else "?"
        lines.append(f"| {r['model']} | {q['frames']} | {100 * (q['accuracy'] or 0):.2f}% "
                     f"| {100 * (q['agreement'] or 0):.2f}% | {q['instructions'] / 1e6:.2f} M | {arena} | {flash} |")
    return "\n".join(lines)


def run_demo(out: Path, limit: int = 6000, epochs: int = 4, eval_limit: int = 1000) -> list[dict[str, Any]]:
    """V1 and V2 on a ``limit``-image Fashion-MNIST subset for ``epochs`` epochs; evaluated on ``eval_limit`` test images."""
    rows = []
    for architecture, width in MODELS:
        print(f"== {architecture} width {width}: train -> quantize -> evaluate", flush=True)
        config = TrainConfig(architecture=architecture, width=width, limit=limit, epochs=epochs, batch_size=32, lr=4e-3)
        rows.append(build_and_evaluate(out / architecture, config, eval_limit=eval_limit))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools demo",
                                     description="Train, quantize and evaluate MobileNet V1 and V2 on a Fashion-MNIST "
                                                 "subset and print a table (what `make demo` runs).")
    parser.add_argument("--out", default="runs/demo", help="where the two bundles go (default runs/demo)")
    parser.add_argument("--limit", type=int, default=6000, help="training images, class-balanced (default 6000)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per model (default 4)")
    parser.add_argument("--eval-limit", type=int, default=1000, help="test images to evaluate on (default 1000)")
    parser.add_argument("--board-frames", type=int, default=200,
                        help="labelled test images streamed to each model's firmware on QEMU (default 200; 0 skips)")
    args = parser.parse_args(argv)
    rows = run_demo(Path(args.out), args.limit, args.epochs, args.eval_limit)
    if args.board_frames > 0:
        for row in rows:
            print(f"== {row['model']}: firmware on QEMU Cortex-M4 (mps2-an386)", flush=True)
            row["qemu"] = run_on_qemu(Path(row["bundle"]), args.board_frames)
    print()
    print(format_table(rows))
    if args.board_frames > 0:
        print()
        print(format_board_table(rows))
    print(f"\nbundles: {', '.join(r['bundle'] for r in rows)}  (inspect with: cat {rows[0]['bundle']}/model.json)")
    print(f"compare them any time with: python -m tools report {' '.join(r['bundle'] for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
