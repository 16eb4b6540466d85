"""The one preprocessing definition: image -> model input, used by training, calibration, evaluation and the host.

Keeping a single implementation is what makes "the board sees exactly what training saw" true: train, quantize
(calibration), evaluate and ``host/stream.py`` all call :func:`preprocess` / :func:`prepare_frame` with the spec
stored in the bundle's model.json.

Pipeline: colour conversion -> geometry (centre crop, letterbox or stretch to the model's HxW) -> scaling of
0..255 pixels to the model's float range (MobileNet's [-1, 1] by default) -> for the device, quantization to the
int8/uint8 input tensor recorded by ``tools.quantize``.

In model.json the spec is split across ``input`` ({height, width, channels}), ``color_mode`` and
``preprocessing`` ({resize, range, interpolation}); :meth:`PreprocessSpec.from_meta` reassembles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import UserError

if TYPE_CHECKING:
    from models.bundle import Bundle, TensorQuant

RESIZE_MODES = ("crop", "letterbox", "stretch")


@dataclass(frozen=True)
class PreprocessSpec:
    """How to turn a uint8 image into the model's float input.

    height, width, channels: the model input (channels 1 = grayscale, 3 = RGB).
    resize: "crop" (centre-crop to the model's aspect ratio, then resize; no distortion, loses the borders),
        "letterbox" (fit inside, pad with black; keeps everything, wastes pixels) or "stretch" (plain resize).
    range: (low, high) float range pixel 0 maps to low and 255 to high; MobileNet expects (-1, 1).
    """

    height: int
    width: int
    channels: int
    resize: str = "crop"
    range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise UserError(f"unknown resize mode {self.resize!r}; use one of: {', '.join(RESIZE_MODES)}")
        if self.channels not in (1, 3):
            raise UserError(f"channels must be 1 or 3, got {self.channels}")

    @property
    def color_mode(self) -> str:
        return "grayscale" if self.channels == 1 else "rgb"

    def to_meta(self) -> dict[str, Any]:
        """The model.json fields this spec occupies (merged into the bundle's top level)."""
        return {
            "input": {"height": self.height, "width": self.width, "channels": self.channels},
            "color_mode": self.color_mode,
            "preprocessing": {"resize": self.resize, "range": list(self.range), "interpolation": "area-down/linear-up"},
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "PreprocessSpec":
        try:
            inp, pre = meta["input"], meta.get("preprocessing", {})
            low, high = (float(v) for v in pre.get("range", (-1.0, 1.0)))
            return cls(
                int(inp["height"]), int(inp["width"]), int(inp["channels"]), str(pre.get("resize", "crop")), (low, high)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"model.json lacks a valid input/preprocessing section ({exc!r}); re-run python -m tools train"
            ) from None

    @classmethod
    def from_bundle(cls, bundle: "Bundle") -> "PreprocessSpec":
        return cls.from_meta(bundle.meta)


def _as_hwc(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise UserError(f"images must be uint8 (0..255), got {img.dtype}; decode the image to 8-bit first")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise UserError(f"image shape {img.shape} is not HxW, HxWx1 or HxWx3")
    return img


def _convert_color(img: np.ndarray, channels: int) -> np.ndarray:
    import cv2

    if img.shape[2] == channels:
        return img
    if channels == 1:  # RGB -> gray with ITU-R BT.601 weights (what cv2 and PIL use)
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.repeat(img, 3, axis=2)


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if img.shape[:2] == (height, width):
        return img
    shrinking = img.shape[0] * img.shape[1] > height * width
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return out.reshape(height, width, img.shape[2])


def _geometry(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    h, w = img.shape[:2]
    if spec.resize == "stretch":
        return _resize(img, spec.height, spec.width)
    target = spec.width / spec.height
    if spec.resize == "crop":
        if w / h > target:  # too wide: crop the sides
            cw = max(1, round(h * target))
            x0 = (w - cw) // 2
            img = img[:, x0 : x0 + cw]
        else:  # too tall: crop top and bottom
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            img = img[y0 : y0 + ch, :]
        return _resize(img, spec.height, spec.width)
    # letterbox: fit inside, centre on black
    scale = min(spec.height / h, spec.width / w)
    nh, nw = max(1, min(spec.height, round(h * scale))), max(1, min(spec.width, round(w * scale)))
    canvas = np.zeros((spec.height, spec.width, img.shape[2]), np.uint8)
    y0, x0 = (spec.height - nh) // 2, (spec.width - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = _resize(img, nh, nw)
    return canvas


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxW / HxWx1 / HxWx3 (RGB order) image -> float32 model input of shape (height, width, channels)."""
    img = _convert_color(_as_hwc(image), spec.channels)
    img = _geometry(img, spec)
    lo, hi = spec.range
    return (img.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(np.float32)


def preprocess_batch(images: np.ndarray | list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Preprocess many images into one float32 array (N, height, width, channels)."""
    out = np.empty((len(images), spec.height, spec.width, spec.channels), np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, spec)
    return out


def quantize_input(x: np.ndarray, quant: "TensorQuant") -> np.ndarray:
    """Float model input -> the int8/uint8 tensor the quantized model takes: q = round(x / scale) + zero_point.

    Rounds half away from zero and saturates, as TFLite's QUANTIZE kernel does.
    """
    dtype = np.dtype(quant.dtype)
    if dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise UserError(f"input quantization dtype must be int8 or uint8, got {quant.dtype}")
    scaled = np.asarray(x, np.float64) / quant.scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + quant.zero_point
    info = np.iinfo(dtype)
    return np.clip(rounded, info.min, info.max).astype(dtype)


def prepare_frame(image: np.ndarray, bundle: "Bundle") -> np.ndarray:
    """The device input tensor for one image: preprocess + quantize exactly as the bundle says.

    Returns an int8/uint8 array of shape (height, width, channels); the host streams these bytes as a FRAME.
    """
    return quantize_input(preprocess(image, PreprocessSpec.from_bundle(bundle)), bundle.input_quant)
