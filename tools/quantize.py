"""Full-integer int8 post-training quantization of a bundle's Keras model -> model_int8.tflite.

Every tensor and every op is int8 (TFLITE_BUILTINS_INT8 only, no float fallback), because microcontroller
runtimes, the project's engine and the Edge TPU all need that. Calibration uses a class-balanced representative set
drawn from the *training* split (never the test split, which evaluation must keep unseen), preprocessed by
models.preprocess exactly as training did. The input may be int8 or uint8 (uint8 suits cameras and the Edge TPU);
the output is always int8. The input/output scale and zero point go into model.json, so the host can quantize
frames and read results without opening the .tflite.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from models.bundle import Bundle, TensorQuant, load_bundle
from models.errors import UserError, exit_cli
from models.preprocess import PreprocessSpec, preprocess_batch
from models.quiet import import_tensorflow, native_output

INPUT_DTYPES = ("int8", "uint8")
DEFAULT_SAMPLES = 300
# An activation scale below this means calibration saw (almost) nothing but zeros in that tensor: the model is
# untrained or the calibration data does not look like its input. TFLite's reference kernels (and TFLM) abort
# the whole process on such a model instead of returning an error, so it is refused here with a reason.
MIN_ACTIVATION_SCALE = 1e-6


def quantize_keras_model(model, representative: np.ndarray, input_dtype: str = "int8") -> bytes:
    """Convert a float Keras model to a full-integer int8 .tflite (returned as bytes).

    Args:
        model: a keras.Model with a batch-1 input (models.mobilenet builds those).
        representative: float32 calibration inputs (N, H, W, C), already preprocessed; a few hundred suffice.
        input_dtype: "int8" or "uint8" input tensor; the output is int8 either way.
    """
    import_tensorflow()
    import tensorflow as tf

    if input_dtype not in INPUT_DTYPES:
        raise UserError(f"input dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    samples = np.asarray(representative, np.float32)
    expected = tuple(model.input_shape[1:])
    if samples.ndim != 4 or len(samples) == 0 or tuple(samples.shape[1:]) != expected:
        raise UserError(f"representative data has shape {samples.shape}; need (N>0, {', '.join(map(str, expected))})")

    def representative_dataset():
        for sample in samples:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8 if input_dtype == "int8" else tf.uint8
    converter.inference_output_type = tf.int8
    with native_output():  # Keras' export prints a page of signatures, MLIR and the converter a page of logs
        return bytes(converter.convert())


def check_activation_ranges(tflite: bytes) -> None:
    """Refuse a model whose calibration collapsed an activation tensor to (almost) a single value."""
    from tinyml.tflite_graph import load_graph

    for tensor in load_graph(tflite).tensors:
        quant = tensor.quantization
        if tensor.is_constant or quant is None or tensor.dtype not in INPUT_DTYPES or not len(quant.scale):
            continue
        scale = float(np.min(quant.scale))
        if scale < MIN_ACTIVATION_SCALE:
            raise UserError(
                f"calibration left activation '{tensor.name.split(';')[0]}' with a near-zero range (scale {scale:.3g}): "
                "the model looks untrained or the calibration images do not match its input; train longer or "
                "calibrate with images from the training data"
            )


def representative_set(bundle: Bundle, samples: int, seed: int) -> np.ndarray:
    """``samples`` class-balanced training images of the bundle's dataset, preprocessed as in training."""
    from tinyml.data import balanced_sample, bundle_splits

    chosen = balanced_sample(bundle_splits(bundle, with_training_limit=True).train, samples, seed)
    return preprocess_batch(chosen.images, PreprocessSpec.from_bundle(bundle))


def quantize_bundle(
    bundle: Bundle | str | Path,
    samples: int = DEFAULT_SAMPLES,
    input_dtype: str = "int8",
    seed: int = 0,
    representative: np.ndarray | None = None,
) -> Path:
    """Quantize ``bundle``'s model.keras into model_int8.tflite and record its quantization in model.json.

    ``representative`` overrides the calibration set (float32, preprocessed); by default ``samples`` class-balanced
    images are drawn from the bundle's training split with ``seed``. Returns the .tflite path.
    """
    if samples < 1:
        raise UserError(f"--samples must be >= 1, got {samples}")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    import_tensorflow()
    import keras

    from models.reference import ReferenceModel

    model = keras.models.load_model(bundle.verified_artifact("keras"), compile=False)
    if representative is None:
        representative = representative_set(bundle, samples, seed)
    tflite = quantize_keras_model(model, representative, input_dtype)
    check_activation_ranges(tflite)
    ref = ReferenceModel(tflite)
    bundle.update(
        "quantization",
        {
            "input": TensorQuant.from_litert_detail(ref.input_detail).to_json(),
            "output": TensorQuant.from_litert_detail(ref.output_detail).to_json(),
            "calibration_samples": int(len(representative)),
            "seed": seed,
        },
    )
    path = bundle.write_artifact("tflite", tflite, bytes=len(tflite))
    bundle.save()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools quantize", description="Full-integer int8 post-training quantization of a trained bundle."
    )
    parser.add_argument("bundle", help="bundle directory written by `python -m tools train`")
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"size of the class-balanced calibration set from the training split (default {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--input-dtype",
        choices=INPUT_DTYPES,
        default="int8",
        help="type of the model's input tensor: int8 (default) or uint8 (cameras, Edge TPU); output is int8",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for drawing the calibration set (default 0)")
    args = parser.parse_args(argv)
    path = quantize_bundle(args.bundle, args.samples, args.input_dtype, args.seed)
    bundle = load_bundle(args.bundle)
    qi, qo = bundle.input_quant, bundle.output_quant
    print(
        f"wrote {path} ({path.stat().st_size} bytes); input {qi.dtype} scale {qi.scale:.6g} zp {qi.zero_point}, "
        f"output {qo.dtype} scale {qo.scale:.6g} zp {qo.zero_point}"
    )
    return 0


if __name__ == "__main__":
    exit_cli(main)
