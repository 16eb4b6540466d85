"""Evaluate a bundle three ways and compare the int8 runtimes: float Keras, int8 LiteRT-ref, int8 TFLite-Micro.

* float: model.keras on the preprocessed float images;
* int8 under LiteRT ``BUILTIN_REF`` (models.reference, the oracle of the project's own engine);
* int8 under the tflite-micro Python runtime (the kernels a TFLM board runs; its oracle).

For every evaluated image the int8 output vectors of LiteRT-ref and TFLM are compared byte for byte; the result
(identical on all N images, or how many differ, by how much, and on how many the top-1 class changes) is printed
and stored. The two are not always identical: FULLY_CONNECTED's requantisation rounds differently in the two
(models/reference.py), so a few images in 10,000 differ. The TFLM tensor
arena is measured by tinyml.tflm (the runtime's RecordingMicroAllocator, and the smallest arena that allocates); the
recorded figure is the one export, the firmware step and report reuse for this .tflite. Everything lands in model.json under
``metrics.evaluation``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.bundle import Bundle, TensorQuant, load_bundle, sha256_file
from models.errors import UserError, exit_cli
from models.preprocess import PreprocessSpec, preprocess_batch, quantize_input
from models.quiet import import_tensorflow
from models.reference import MicroModel
from models.scoring import scores
from tinyml.tflm import allocations, measure_arena

SPLITS = ("test", "val", "train")


class TflmModel(MicroModel):
    """The int8 .tflite under the tflite-micro Python runtime (models.reference.MicroModel), with its arena report."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        super().__init__(model, arena_size)
        self._invoked = False

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        out = super().invoke(tensor)
        self._invoked = True
        return out

    def arena(self) -> dict[str, int]:
        """Arena bytes used: total, head (activations, reused between ops) and tail (persistent); after invoke()."""
        if not self._invoked:
            raise RuntimeError("TflmModel.arena() needs one invoke() first")
        return allocations(self._interp)


def runtime_difference(ref_out: np.ndarray, tflm_out: np.ndarray) -> dict[str, Any]:
    """How the two int8 runtimes' outputs (images x classes) differ: images with any byte different, the largest
    byte difference, and images whose top-1 class differs (the known cause: docs/tools.md, evaluate)."""
    mismatched = np.flatnonzero(np.any(ref_out != tflm_out, axis=1))
    return {
        "ref_tflm_identical": bool(len(mismatched) == 0),
        "ref_tflm_mismatches": int(len(mismatched)),
        "ref_tflm_max_byte_diff": int(np.abs(ref_out.astype(np.int32) - tflm_out.astype(np.int32)).max(initial=0)),
        "ref_tflm_argmax_changes": int(np.sum(np.argmax(ref_out, axis=1) != np.argmax(tflm_out, axis=1))),
        **({"first_mismatch_index": int(mismatched[0])} if len(mismatched) else {}),
    }


def _check_integer(tflite: bytes, path: Path) -> TensorQuant:
    """Input quantization of an int8 model; a float model is a UserError (evaluate compares int8 runtimes)."""
    from models.reference import ReferenceModel

    ref = ReferenceModel(tflite)
    if ref.input_dtype not in (np.int8, np.uint8) or ref.output_dtype not in (np.int8, np.uint8):
        raise UserError(
            f"{path} is a float model ({ref.input_dtype} input); evaluate needs the full-integer int8 "
            "model: run python -m tools quantize BUNDLE"
        )
    return TensorQuant.from_litert_detail(ref.input_detail)


def evaluate_bundle(
    bundle: Bundle | str | Path,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    tflite: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate the bundle's float and int8 models on ``split`` (``limit`` class-balanced images; all by default).

    ``tflite`` evaluates another int8 .tflite of the same model instead of the bundle's model_int8.tflite.
    Returns the ``metrics.evaluation`` dict that is also saved into model.json.
    """
    from tinyml.data import balanced_sample, bundle_splits

    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    tflite_path = Path(tflite) if tflite is not None else bundle.verified_artifact("tflite")
    if not tflite_path.is_file():
        raise UserError(f"{tflite_path} does not exist; run python -m tools quantize {bundle.path}")
    model_bytes = tflite_path.read_bytes()
    input_quant = _check_integer(model_bytes, tflite_path)

    import_tensorflow()
    import keras

    from models.reference import ReferenceModel

    data = getattr(bundle_splits(bundle), split)
    if limit is not None:
        data = balanced_sample(data, limit, seed)
    if len(data) == 0:
        raise UserError(f"the {split} split of {bundle.meta['dataset']['source']} is empty; evaluate another --split")
    classes = len(bundle.labels)
    x = preprocess_batch(data.images, PreprocessSpec.from_bundle(bundle))
    q = quantize_input(x, input_quant)

    float_model = keras.models.load_model(bundle.verified_artifact("keras"), compile=False)
    float_pred = np.argmax(float_model.predict(x, batch_size=256, verbose=0), axis=1)
    ref, tflm = ReferenceModel(model_bytes), TflmModel(model_bytes)
    ref_out = np.stack([ref.invoke(frame) for frame in q])
    tflm_out = np.stack([tflm.invoke(frame) for frame in q])
    result: dict[str, Any] = {
        "split": split,
        "images": int(len(data)),
        "tflite": tflite_path.name,
        "tflite_sha256": sha256_file(tflite_path),
        "float": scores(data.labels, float_pred, classes),
        "int8_litert_ref": scores(data.labels, np.argmax(ref_out, axis=1), classes),
        "int8_tflm": scores(data.labels, np.argmax(tflm_out, axis=1), classes),
        **runtime_difference(ref_out, tflm_out),
        "tflm_arena_bytes": {**tflm.arena(), "required": measure_arena(tflite_path)},
    }
    result["int8_drop_points"] = round(100 * (result["float"]["accuracy"] - result["int8_litert_ref"]["accuracy"]), 3)
    bundle.update("metrics", {"evaluation": result})
    bundle.save()
    return result


def format_report(result: dict[str, Any], labels: list[str]) -> str:
    """Human summary: accuracies, the byte-for-byte verdict, the arena, and the int8 confusion matrix."""
    n = result["images"]
    lines = [
        f"{result['split']} split, {n} images ({result['tflite']})",
        f"  float Keras        accuracy {100 * result['float']['accuracy']:.2f}%",
        f"  int8 LiteRT-ref    accuracy {100 * result['int8_litert_ref']['accuracy']:.2f}%  "
        f"(drop {result['int8_drop_points']:.2f} points)",
        f"  int8 TFLite-Micro  accuracy {100 * result['int8_tflm']['accuracy']:.2f}%",
    ]
    if result["ref_tflm_identical"]:
        lines.append(f"  LiteRT-ref and TFLM outputs are identical byte for byte on all {n} images")
    else:
        lines.append(
            f"  LiteRT-ref and TFLM outputs differ on {result['ref_tflm_mismatches']} of {n} images "
            f"(first at index {result['first_mismatch_index']}; largest byte difference "
            f"{result['ref_tflm_max_byte_diff']}, top-1 class changed on "
            f"{result['ref_tflm_argmax_changes']})"
        )
        lines.append(
            "    known: FULLY_CONNECTED requantisation rounds differently in the two runtimes (docs/tools.md, "
            "evaluate); a TFLM board gives the TFLM figures, the engine the LiteRT-ref ones"
        )
    arena = result["tflm_arena_bytes"]
    lines.append(
        f"  TFLM arena {arena['total']} bytes (activations {arena.get('head', '?')}, "
        f"persistent {arena.get('tail', '?')})"
    )
    lines.append("  int8 confusion matrix (rows: true, columns: predicted):")
    width = max(5, max(len(str(v)) for row in result["int8_litert_ref"]["confusion"] for v in row) + 1)
    for name, row in zip(labels, result["int8_litert_ref"]["confusion"]):
        lines.append(f"    {name[:14]:14s}" + "".join(f"{v:{width}d}" for v in row))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools evaluate",
        description="Accuracy and confusion matrix of the float and int8 models (LiteRT "
        "BUILTIN_REF and TFLite-Micro), byte-for-byte agreement of the two int8 "
        "runtimes, and the TFLM arena; all written into model.json.",
    )
    parser.add_argument("bundle", help="bundle directory (trained and quantized)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split to evaluate on (default test)")
    parser.add_argument("--limit", type=int, help="evaluate a class-balanced subset of this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the --limit subset (default 0)")
    parser.add_argument("--tflite", help="evaluate this int8 .tflite instead of the bundle's model_int8.tflite")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when LiteRT-ref and TFLM outputs differ on any image (default: report it only)",
    )
    args = parser.parse_args(argv)
    bundle_path = Path(args.bundle)
    if bundle_path.is_file() and bundle_path.suffix == ".tflite":  # a model file: evaluate it within its bundle
        _check_integer(bundle_path.read_bytes(), bundle_path)
        args.tflite, bundle_path = str(bundle_path), bundle_path.parent
    bundle = load_bundle(bundle_path)
    result = evaluate_bundle(bundle, args.split, args.limit, args.seed, args.tflite)
    print(format_report(result, bundle.labels))
    return 1 if args.strict and not result["ref_tflm_identical"] else 0


if __name__ == "__main__":
    exit_cli(main)
