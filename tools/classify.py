"""Classify image files on a Coral Edge TPU (or the CPU): top-k labels, latency, model-load cost.

The frames go through exactly what every other target gets: models.preprocess.prepare_frame (the bundle's own
preprocessing and input quantisation), then the raw int8/uint8 output is dequantised with the output scale and
zero point and ranked. Images are read by tinyml.data's reader (the one training and stream.py use). ``--cpu`` runs
the plain int8 model through the same code on the CPU oracle (LiteRT BUILTIN_REF, as ``stream.py --cpu``), so a
Coral answer can be compared with the reference answer on the same machine.

    python -m tools classify runs/v1 shirt.png boot.jpg            # Edge TPU (first one found)
    python -m tools classify runs/v1 shirt.png --device usb:0 --top-k 5
    python -m tools classify runs/v1 shirt.png --cpu               # same pipeline on the CPU
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.bundle import Bundle, load_bundle
from models.errors import UserError, exit_cli
from models.preprocess import prepare_frame
from models.reference import RUNTIME
from tinyml.data import read_image_file
from tinyml.edgetpu.runtime import RUNTIMES, InterpreterRunner, open_runner, parse_device
from tinyml.targets.base import check_compatible
from tinyml.targets.coral import compiled_model


@dataclass
class Prediction:
    image: str
    top: list[tuple[int, str, float]]  # (class index, label, dequantised score), best first
    latency_ms: float


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[int, str, float]]:
    """The k best classes, best first; ties keep the lower class index first (stable, like argmax)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[: max(1, k)]
    return [(int(i), labels[i] if i < len(labels) else str(i), float(scores[i])) for i in order]


def check_runner(bundle: Bundle, runner: InterpreterRunner, model_id: str) -> None:
    """Refuse a model that is not the bundle's: tinyml.targets.base.check_compatible, as for every target."""
    check_compatible(
        bundle,
        runner.device_info(model_id, runner.runtime),
        where=f"the {runner.runtime} model",
        fix=f"re-run python -m tools {'quantize' if runner.runtime == RUNTIME else 'edgetpu'} {bundle.path}",
    )


def classify_images(
    bundle: Bundle, runner: InterpreterRunner, images: Sequence[tuple[str, np.ndarray]], k: int = 3
) -> list[Prediction]:
    """Preprocess, run and rank each (name, uint8 image) pair."""
    predictions = []
    for name, image in images:
        frame = prepare_frame(image, bundle)
        start = time.perf_counter()
        raw = runner.invoke(frame)
        latency = (time.perf_counter() - start) * 1e3
        predictions.append(Prediction(name, top_k(bundle.output_quant.dequantize(raw), bundle.labels, k), latency))
    return predictions


def classify(
    bundle_path: str | Path,
    image_paths: Sequence[str],
    device: str | None = None,
    runtime: str = "auto",
    cpu: bool = False,
    k: int = 3,
) -> tuple[InterpreterRunner, list[Prediction]]:
    """Open the bundle's Edge TPU model (or int8 model on the CPU) and classify the image files."""
    bundle = load_bundle(bundle_path)
    images = [(str(p), read_image_file(p)) for p in image_paths]  # all first: a bad file fails before loading
    model = bundle.verified_artifact("tflite") if cpu else compiled_model(bundle)
    runner = open_runner(model, device=device, runtime=runtime, cpu=cpu)
    check_runner(bundle, runner, bundle.model_id)
    return runner, classify_images(bundle, runner, images, k)


def report_lines(runner: InterpreterRunner, predictions: Sequence[Prediction]) -> list[str]:
    cost = runner.load_cost
    lines = (
        [
            f"runtime {runner.runtime}: model load {cost.load_ms:.1f} ms, first inference {cost.first_invoke_ms:.1f} ms"
            " (includes the parameter upload on an Edge TPU)"
        ]
        if cost
        else []
    )
    for p in predictions:
        ranked = " | ".join(f"{label} {score:.3f}" for _, label, score in p.top)
        lines.append(f"{p.image}: {ranked}  ({p.latency_ms:.2f} ms)")
    if predictions:
        lines.append(
            f"mean latency {np.mean([p.latency_ms for p in predictions]):.2f} ms over {len(predictions)} image(s)"
        )
    return lines


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools classify",
        description="Classify image files with a bundle's model on a Coral Edge TPU (pycoral if installed, else "
        "LiteRT with the libedgetpu delegate), using the bundle's own preprocessing.",
    )
    parser.add_argument("bundle", help="model bundle directory (needs model_int8_edgetpu.tflite unless --cpu)")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...); colour or grayscale")
    parser.add_argument("--device", help="Edge TPU to use: :0 (first), usb, usb:0, pci, pci:0 (default: first found)")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto: pycoral when importable, else LiteRT + libedgetpu delegate (default: auto)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="run the int8 model on the CPU reference (LiteRT BUILTIN_REF, the answer stream.py "
        "--cpu and a bit-exact board give) instead",
    )
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="how many classes to print (default: 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    if args.cpu and args.device:
        raise UserError("--device selects an Edge TPU; drop it when using --cpu")
    parse_device(args.device)
    runner, predictions = classify(args.bundle, args.images, args.device, args.runtime, args.cpu, args.top_k)
    if args.json:
        cost = runner.load_cost
        echo(
            json.dumps(
                {
                    "runtime": runner.runtime,
                    "load_cost": asdict(cost) if cost else None,
                    "predictions": [asdict(p) for p in predictions],
                },
                indent=2,
            )
        )
    else:
        for line in report_lines(runner, predictions):
            echo(line)
    return 0


if __name__ == "__main__":
    exit_cli(main)
