"""The `make demo` walk-through: train -> quantize -> evaluate MobileNet V1 and V2 on Fashion-MNIST, then a table.

It is a plain sequence of the build-flow API calls a user would make, on a small subset so it finishes in a few
minutes on a laptop CPU. Each row shows float and int8 accuracy, the int8 drop, the .tflite size, the TFLM arena
and whether LiteRT-ref and TFLM agreed byte for byte. bench/train_fashion_mnist.py runs the same steps at full size.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from models.errors import run_cli
from tools.evaluate import evaluate_bundle
from tools.quantize import quantize_bundle
from tools.train import TrainConfig, train_bundle

MODELS = (("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35))


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
    args = parser.parse_args(argv)
    rows = run_demo(Path(args.out), args.limit, args.epochs, args.eval_limit)
    print()
    print(format_table(rows))
    print(f"\nbundles: {', '.join(r['bundle'] for r in rows)}  (inspect with: cat {rows[0]['bundle']}/model.json)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
