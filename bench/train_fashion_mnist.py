"""Fashion-MNIST benchmark: MobileNet V1 0.25 and V2 0.35 at 32x32x1, full training split, float vs int8.

Budget (stated, not tuned per run): all 54,000 training images (6,000 held out for validation), input 28x28
upscaled to 32x32 (MobileNet's minimum), batch 128, Adam with cosine decay from 4e-3 after half an epoch of warm-up,
random horizontal flips; V1 for 8 epochs, V2 for 6. Calibration: 500 class-balanced training images.
Evaluation: the full 10,000-image test set under Keras (float), LiteRT BUILTIN_REF and TFLite-Micro (int8).

Prints a Markdown table (float and int8 accuracy, drop, .tflite size, TFLM arena, ref-vs-TFLM agreement, times)
for docs/benchmarks.md. The bundles stay under --out (default runs/bench_fmnist/, gitignored). A killed run
resumes where it stopped when restarted with the same options.

    nice python bench/train_fashion_mnist.py            # the recorded run
    python bench/train_fashion_mnist.py --quick         # a smoke run in a couple of minutes
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from models.bundle import load_bundle
from models.errors import exit_cli
from tools.demo import build_and_evaluate, format_runs
from tools.report import collect, format_rows
from tools.train import Augment, TrainConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_fmnist", help="bundle root (default runs/bench_fmnist)")
    parser.add_argument("--epochs-v1", type=int, default=8, help="MobileNet V1 epochs (default 8)")
    parser.add_argument("--epochs-v2", type=int, default=6, help="MobileNet V2 epochs (default 6)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2000 images, 1 epoch, 500 test images")
    args = parser.parse_args(argv)
    limit, eval_limit = (2000, 500) if args.quick else (None, None)
    runs = (
        ("mobilenet_v1", 0.25, 1 if args.quick else args.epochs_v1),
        ("mobilenet_v2", 0.35, 1 if args.quick else args.epochs_v2),
    )
    rows = []
    started = time.monotonic()
    for architecture, width, epochs in runs:
        config = TrainConfig(
            architecture=architecture,
            width=width,
            height=32,
            epochs=epochs,
            batch_size=128,
            lr=4e-3,
            schedule="cosine",
            limit=limit,
            augment=Augment(flip=True),
        )
        out = Path(args.out) / f"{architecture}_{width:g}_32"
        print(f"== {architecture} {width}: {epochs} epochs", flush=True)
        rows.append(build_and_evaluate(out, config, samples=500, eval_limit=eval_limit, restart=False))
        print(format_runs(rows[-1:]), flush=True)
    print(f"\nFashion-MNIST, 32x32x1, total {time.monotonic() - started:.0f} s\n")
    bundles = [load_bundle(row["bundle"]) for row in rows]
    print(format_rows([collect(bundle) for bundle in bundles]))
    print(format_runs(rows))
    for bundle in bundles:
        print(f"bundle {bundle.path}: model id {bundle.model_id}")
    return 0


if __name__ == "__main__":
    exit_cli(main)
