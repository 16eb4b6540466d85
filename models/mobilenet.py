"""MobileNet V1 and V2 builders for microcontroller-sized image classifiers, and a MAC/parameter counter.

The feature extractors come from ``keras.applications`` (the reference layer structure, and ImageNet weights for
transfer learning when the user has network and a supported configuration); the classifier head is our own
(global average pool -> dropout -> dense -> softmax) so it converts to plain MEAN/FULLY_CONNECTED/SOFTMAX ops.

Two deliberate deviations from the stock models:

* The graph is built with batch size 1 (``keras.Input(..., batch_size=1)``). With a dynamic batch dimension the
  TFLite converter emits SHAPE/STRIDED_SLICE/PACK ops around reshapes, which microcontroller runtimes and the
  project's own engine do not want.
* BatchNormalization momentum is lowered to 0.9 (Keras uses 0.99 for V1 and 0.999 for V2). With the stock values
  the moving statistics barely move during a short training of a few hundred steps, so the inference-mode model
  (and therefore the int8 model calibrated from it) is much worse than the training-mode one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import UserError

ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2")
BN_MOMENTUM = 0.9
MIN_INPUT = 32  # keras.applications' minimum, and below it V1/V2 downsample (x32) to nothing useful
MAX_INPUT = 1024  # pixels; far beyond any microcontroller (a 1024x1024x3 int8 frame alone is 3 MB)
MAX_WIDTH = 2.0  # alpha; published MobileNets stop at 1.4, and V1 at alpha 2 already has 13 M parameters


def check_args(
    architecture: str,
    width: float,
    height: int,
    width_px: int,
    channels: int,
    classes: int,
    dropout: float,
    weights: str | None,
) -> None:
    """Validate builder arguments up front so users get one clear line instead of a Keras stack trace."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"unknown architecture {architecture!r}; use one of: {', '.join(ARCHITECTURES)}")
    if not width > 0:
        raise UserError(f"width multiplier must be > 0 (got {width}); try 0.25, 0.35, 0.5 or 1.0")
    if width > MAX_WIDTH:
        raise UserError(
            f"width multiplier {width:g} is too large: --width is alpha, the channel scale "
            f"(0.25, 0.35, 0.5, 1.0; at most {MAX_WIDTH:g}), not pixels; the input size is --height/--width-px"
        )
    if architecture == "mobilenet_v1" and int(32 * width) < 1:
        raise UserError(f"width {width} leaves MobileNet V1's first layer with no filters; use a width >= {1 / 32}")
    if height < MIN_INPUT or width_px < MIN_INPUT:
        raise UserError(f"input {height}x{width_px} is too small; height and width must be >= {MIN_INPUT} pixels")
    if height > MAX_INPUT or width_px > MAX_INPUT:
        raise UserError(
            f"input {height}x{width_px} is too large; --height and --width-px are pixels, at most "
            f"{MAX_INPUT} (microcontroller models use 32..224)"
        )
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {classes}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")
    if weights not in (None, "imagenet"):
        raise UserError(f"weights must be None or 'imagenet', got {weights!r}")
    if weights == "imagenet" and channels != 3:
        raise UserError("ImageNet weights need 3-channel (RGB) input; use --channels 3 or drop the ImageNet weights")


def build_model(
    architecture: str,
    width: float = 0.25,
    height: int = 96,
    width_px: int | None = None,
    channels: int = 3,
    classes: int = 10,
    dropout: float = 0.1,
    weights: str | None = None,
    name: str | None = None,
    batch_size: int | None = 1,
) -> Any:
    """Build a MobileNet classifier (a ``keras.Model`` with a batch-1 input and softmax output).

    Args:
        architecture: "mobilenet_v1" or "mobilenet_v2".
        width: width multiplier (alpha), any value > 0; channel counts scale with it (V2 rounds to multiples of 8).
        height: input height in pixels, >= 32.
        width_px: input width in pixels, >= 32; defaults to ``height`` (square). Need not equal height.
        channels: 1 (grayscale) or 3 (RGB).
        classes: number of output classes, >= 2.
        dropout: dropout rate before the classifier, in [0, 1).
        weights: None (random init) or "imagenet" (feature extractor from Keras' pretrained weights; needs network,
            3 channels and a configuration Keras publishes weights for: square input, V1 width in
            {0.25, 0.5, 0.75, 1.0}, V2 width in {0.35, 0.5, 0.75, 1.0, 1.3, 1.4}).
        name: Keras model name; defaults to e.g. "mobilenet_v1_0.25_96x96x3".
        batch_size: 1 (default) for the graph that gets converted; None for the training copy, whose weights are
            then copied into a batch-1 model (tools.train does this).
    """
    import keras

    width_px = height if width_px is None else width_px
    check_args(architecture, width, height, width_px, channels, classes, dropout, weights)
    inputs = keras.Input(shape=(height, width_px, channels), batch_size=batch_size, name="image")
    app = keras.applications.MobileNet if architecture == "mobilenet_v1" else keras.applications.MobileNetV2
    try:
        base = app(input_tensor=inputs, include_top=False, weights=weights, alpha=width)
    except ValueError as exc:  # Keras rejects unsupported ImageNet configurations
        raise UserError(
            f"keras.applications cannot build this configuration ({str(exc).splitlines()[0]}); "
            "change width/input size or train without ImageNet weights"
        ) from None
    except Exception as exc:  # the weight download failed: Keras' get_file raises a bare Exception (or OSError)
        if not isinstance(exc, OSError) and not str(exc).startswith("URL fetch failure"):
            raise
        reason = str(exc).split(" -- ")[-1]
        raise UserError(
            f"cannot download the ImageNet weights ({reason}); connect to the network (or put the "
            "file in ~/.keras/models), or train without --weights imagenet"
        ) from None
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base.output)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(classes, name="logits")(x)
    outputs = keras.layers.Softmax(name="probs")(x)
    default_name = f"{architecture}_{width:g}_{height}x{width_px}x{channels}"
    return keras.Model(inputs, outputs, name=name or default_name)


def build_mobilenet_v1(
    width: float = 0.25,
    height: int = 96,
    width_px: int | None = None,
    channels: int = 3,
    classes: int = 10,
    dropout: float = 0.1,
    weights: str | None = None,
) -> Any:
    """MobileNet V1 (Howard et al. 2017) classifier; arguments as in :func:`build_model`."""
    return build_model("mobilenet_v1", width, height, width_px, channels, classes, dropout, weights)


def build_mobilenet_v2(
    width: float = 0.35,
    height: int = 96,
    width_px: int | None = None,
    channels: int = 3,
    classes: int = 10,
    dropout: float = 0.1,
    weights: str | None = None,
) -> Any:
    """MobileNet V2 (Sandler et al. 2018) classifier; arguments as in :func:`build_model`."""
    return build_model("mobilenet_v2", width, height, width_px, channels, classes, dropout, weights)


@dataclass(frozen=True)
class ModelCost:
    """Size and compute of a model.

    params counts every weight incl. BatchNorm moving statistics (what Keras' summary shows); trainable excludes the
    statistics, which is the figure the MobileNet papers quote (V1 4.2 M, V2 3.4-3.5 M at width 1.0, 224x224).
    """

    params: int
    trainable: int
    macs: int

    def to_json(self) -> dict[str, int]:
        return {"params": self.params, "trainable_params": self.trainable, "macs": self.macs}


def layer_macs(kind: str, outputs: int, kernel_h: int = 1, kernel_w: int = 1, in_channels: int = 1) -> int:
    """Multiply-accumulates of one layer with ``outputs`` output elements: the one MAC formula, for Keras layers
    (:func:`count_cost`) and .tflite ops (bench/engine_qemu.py) alike.

    ``kind`` "conv": each output takes kernel_h * kernel_w * in_channels (per group); "depthwise": kernel_h * kernel_w;
    "dense": in_channels (kernel 1x1). Anything else (BatchNorm, activations, pooling, additions) counts 0: those fold
    away or are negligible, and the papers' figures leave them out.
    """
    if kind == "depthwise":
        return outputs * kernel_h * kernel_w
    if kind in ("conv", "dense"):
        return outputs * kernel_h * kernel_w * in_channels
    return 0


def count_cost(model: Any) -> ModelCost:
    """Count parameters and MACs of a Keras model (one inference, batch 1).

    MACs count the multiply-accumulates of Conv2D, DepthwiseConv2D and Dense layers (the figure papers report);
    BatchNorm, activations, pooling and additions are not counted (they fold away or are negligible).
    """
    import keras

    macs = 0
    for layer in model.layers:
        outputs = int(np.prod(layer.output.shape[1:])) if hasattr(layer, "kernel_size") else 0
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += layer_macs("depthwise", outputs, kh, kw)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            macs += layer_macs("conv", outputs, kh, kw, int(layer.input.shape[-1]) // layer.groups)
        elif isinstance(layer, keras.layers.Dense):
            macs += layer_macs("dense", layer.units, in_channels=int(layer.input.shape[-1]))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return ModelCost(params=int(model.count_params()), trainable=trainable, macs=int(macs))
