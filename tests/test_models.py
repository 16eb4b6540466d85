"""MobileNet builders, the MAC/parameter counter and the one preprocessing definition."""

from __future__ import annotations

import numpy as np
import pytest

from models.bundle import TensorQuant
from models.errors import UserError
from models.mobilenet import BN_MOMENTUM, build_mobilenet_v1, build_mobilenet_v2, build_model, count_cost
from models.preprocess import PreprocessSpec, prepare_frame, preprocess, quantize_input


# ---- the seed's table -----------------------------------------------------------------------------
def test_mobilenet_v1_full_size_matches_paper():
    cost = count_cost(build_mobilenet_v1(width=1.0, height=224, channels=3, classes=1000))
    assert abs(cost.trainable - 4.2e6) / 4.2e6 < 0.02
    assert abs(cost.macs - 569e6) / 569e6 < 0.02


def test_mobilenet_v2_full_size_matches_paper():
    cost = count_cost(build_mobilenet_v2(width=1.0, height=224, channels=3, classes=1000))
    assert 3.4e6 <= cost.trainable < 3.55e6  # "3.4-3.5 M"
    assert abs(cost.macs - 300e6) / 300e6 < 0.02


def test_macs_scale_with_width_and_input():
    small = count_cost(build_model("mobilenet_v1", 0.25, 32, channels=1))
    wide = count_cost(build_model("mobilenet_v1", 0.5, 32, channels=1))
    big = count_cost(build_model("mobilenet_v1", 0.25, 64, channels=1))
    assert wide.macs > 3 * small.macs  # pointwise convs dominate: ~width^2
    assert 3.5 * small.macs < big.macs < 4.5 * small.macs  # ~pixels (the classifier does not grow)


# ---- builder arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "architecture,width", [("mobilenet_v1", 0.1), ("mobilenet_v1", 0.35), ("mobilenet_v2", 0.1), ("mobilenet_v2", 1.3)]
)
def test_any_positive_width_non_square_grayscale(architecture, width):
    model = build_model(architecture, width, height=48, width_px=32, channels=1, classes=4)
    assert model.input_shape == (1, 48, 32, 1)
    assert model.output_shape == (1, 4)
    out = model(np.zeros((1, 48, 32, 1), np.float32)).numpy()
    assert np.isclose(out.sum(), 1.0, atol=1e-5)  # softmax head


def test_batch_norm_momentum_lowered():
    import keras

    model = build_mobilenet_v2(width=0.35, height=32, channels=3)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == BN_MOMENTUM == 0.9 for layer in norms)


def test_training_copy_has_dynamic_batch():
    model = build_model("mobilenet_v1", 0.25, 32, channels=1, batch_size=None)
    assert model.input_shape == (None, 32, 32, 1)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(width=0), "width multiplier must be > 0"),
        (dict(width=-0.5), "width multiplier must be > 0"),
        (dict(height=31), "too small"),
        (dict(height=64, width_px=16), "too small"),
        (dict(channels=2), "channels must be 1"),
        (dict(classes=1), "at least 2 classes"),
        (dict(dropout=1.0), "dropout"),
        (dict(weights="imagenet", channels=1), "3-channel"),
    ],
)
def test_bad_builder_arguments_are_user_errors(kwargs, fragment):
    args = dict(architecture="mobilenet_v1", width=0.25, height=32, channels=1, classes=10) | kwargs
    with pytest.raises(UserError, match=fragment):
        build_model(**args)


def test_unknown_architecture():
    with pytest.raises(UserError, match="mobilenet_v1, mobilenet_v2"):
        build_model("resnet50")


# ---- preprocessing -------------------------------------------------------------------------------
def test_preprocess_scales_to_model_range():
    spec = PreprocessSpec(32, 32, 1)
    image = np.zeros((32, 32), np.uint8)
    image[:, 16:] = 255
    x = preprocess(image, spec)
    assert x.shape == (32, 32, 1) and x.dtype == np.float32
    assert x[0, 0, 0] == -1.0 and x[0, 31, 0] == 1.0


def test_crop_keeps_centre_letterbox_pads_black():
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, 40:80] = 255  # white centre third
    crop = preprocess(wide, PreprocessSpec(32, 32, 3, "crop"))
    assert np.all(crop == 1.0)  # the crop sees only the white centre
    box = preprocess(wide, PreprocessSpec(32, 32, 3, "letterbox"))
    assert np.all(box[0] == -1.0) and np.all(box[-1] == -1.0)  # black bars top and bottom
    assert np.isclose(box[16, 16, 0], 1.0)


def test_color_conversion_both_ways():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 1] = 255  # pure green: BT.601 luma 0.587
    gray = preprocess(rgb, PreprocessSpec(32, 32, 1))
    assert gray.shape == (32, 32, 1)
    assert np.allclose((gray + 1) / 2 * 255, 150, atol=1)
    back = preprocess(np.full((28, 28), 200, np.uint8), PreprocessSpec(32, 32, 3))
    assert back.shape == (32, 32, 3) and np.allclose(back, 200 / 255 * 2 - 1, atol=1e-6)


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8)])
def test_preprocess_rejects_bad_images(image):
    with pytest.raises(UserError):
        preprocess(image, PreprocessSpec(32, 32, 1))


def test_quantize_input_rounds_half_away_and_saturates():
    quant = TensorQuant("int8", 0.5, -1)
    q = quantize_input(np.array([0.25, -0.25, 1.0, 100.0, -100.0]), quant)
    assert q.dtype == np.int8
    assert q.tolist() == [0, -2, 1, 127, -128]
    assert quantize_input(np.array([-1.0, 1.0]), TensorQuant("uint8", 2 / 255, 128)).tolist() == [0, 255]


def test_prepare_frame_matches_the_model_input(bundle_v1, fmnist_test_samples):
    from models.reference import ReferenceModel

    ref = ReferenceModel(bundle_v1.artifact_path("tflite"))
    frame = prepare_frame(fmnist_test_samples.images[0], bundle_v1)
    assert frame.shape == bundle_v1.input_shape and frame.dtype == ref.input_dtype
    expected = quantize_input(
        preprocess(fmnist_test_samples.images[0], PreprocessSpec.from_bundle(bundle_v1)), bundle_v1.input_quant
    )
    assert np.array_equal(frame, expected)
    assert ref.invoke(frame).shape == (10,)
