"""int8 post-training quantization: integer-only graphs without batch plumbing, recorded quantization, fidelity."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import UserError
from models.preprocess import PreprocessSpec, prepare_frame, preprocess_batch
from models.reference import ReferenceModel
from tests.tooling import assert_one_line_error, run_tool
from tinyml.tflite_graph import load_graph

BATCH_PLUMBING = {"SHAPE", "STRIDED_SLICE", "PACK"}


@pytest.mark.parametrize("fixture", ["bundle_v1", "bundle_v2"])
def test_full_integer_graph_without_batch_plumbing(request, fixture):
    bundle = request.getfixturevalue(fixture)
    graph = load_graph(bundle.artifact_path("tflite"))
    ops = {op.name for op in graph.operators}
    assert not ops & BATCH_PLUMBING, ops
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert all(t.dtype in ("int8", "int32") for t in graph.tensors), {t.dtype for t in graph.tensors}
    (inp,), (out,) = graph.input_tensors(), graph.output_tensors()
    assert inp.shape == (1, 32, 32, 1) and inp.dtype == "int8" and out.dtype == "int8"


def test_recorded_quantization_matches_the_model(bundle_v1):
    ref = ReferenceModel(bundle_v1.artifact_path("tflite"))
    scale, zero_point = ref.input_detail["quantization"]
    assert bundle_v1.input_quant.dtype == "int8"
    assert bundle_v1.input_quant.scale == pytest.approx(scale) and bundle_v1.input_quant.zero_point == zero_point
    # MobileNet's [-1, 1] input range spans the int8 range
    assert bundle_v1.input_quant.scale == pytest.approx(2 / 255, rel=0.02)
    out = bundle_v1.output_quant
    assert (out.dtype, out.scale, out.zero_point) == ("int8", 1 / 256, -128)  # softmax output convention
    assert bundle_v1.meta["quantization"]["calibration_samples"] == 200
    assert bundle_v1.meta["artifacts"]["tflite"]["sha256"] == bundle_v1.model_id


def test_int8_agrees_with_float(bundle_v1, fmnist_test_samples):
    import keras

    model = keras.models.load_model(bundle_v1.artifact_path("keras"))
    x = preprocess_batch(fmnist_test_samples.images, PreprocessSpec.from_bundle(bundle_v1))
    float_pred = np.argmax(model.predict(x, verbose=0), axis=1)
    ref = ReferenceModel(bundle_v1.artifact_path("tflite"))
    int8_pred = np.array([np.argmax(ref.invoke(prepare_frame(img, bundle_v1))) for img in fmnist_test_samples.images])
    assert np.mean(int8_pred == float_pred) >= 0.9


def test_uint8_input(make_bundle, fmnist_test_samples):
    bundle = make_bundle("mobilenet_v1", 0.25, 32, 40, channels=3, input_dtype="uint8")
    graph = load_graph(bundle.artifact_path("tflite"))
    (inp,), (out,) = graph.input_tensors(), graph.output_tensors()
    assert inp.dtype == "uint8" and inp.shape == (1, 32, 40, 3) and out.dtype == "int8"
    assert bundle.input_quant.dtype == "uint8" and 120 <= bundle.input_quant.zero_point <= 136
    frame = prepare_frame(fmnist_test_samples.images[0], bundle)
    assert frame.dtype == np.uint8 and frame.shape == (32, 40, 3)
    assert ReferenceModel(bundle.artifact_path("tflite")).invoke(frame).dtype == np.int8


def test_bad_representative_data(bundle_v1):
    import keras

    from tools.quantize import quantize_keras_model

    model = keras.models.load_model(bundle_v1.artifact_path("keras"))
    with pytest.raises(UserError, match="representative data has shape"):
        quantize_keras_model(model, np.zeros((4, 28, 28, 1), np.float32))
    with pytest.raises(UserError, match="input dtype"):
        quantize_keras_model(model, np.zeros((4, 32, 32, 1), np.float32), input_dtype="int16")


def test_quantize_cli_errors(tmp_path):
    assert_one_line_error(run_tool("quantize", str(tmp_path / "nope")), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_tool("quantize", str(tmp_path / "empty")), "no model.json")
    assert_one_line_error(run_tool("quantize", str(tmp_path / "empty"), "--samples", "0"), "--samples must be >= 1")


@pytest.mark.slow  # converts a Keras model
def test_collapsed_calibration_is_refused_not_a_crash():
    """An untrained V1 calibrated on noise has dead activations; LiteRT's reference kernels would abort the
    process on it, so quantization refuses it with a reason instead."""
    import keras

    from models.mobilenet import build_model
    from tools.quantize import check_activation_ranges, quantize_keras_model

    keras.utils.set_random_seed(0)
    model = build_model("mobilenet_v1", 0.25, 32, channels=1, classes=10)
    noise = np.random.default_rng(0).uniform(-1, 1, (32, 32, 32, 1)).astype(np.float32)
    tflite = quantize_keras_model(model, noise)
    with pytest.raises(UserError, match="near-zero range"):
        check_activation_ranges(tflite)


def test_trained_models_pass_the_range_check(bundle_v1, bundle_v2):
    from tools.quantize import check_activation_ranges

    for bundle in (bundle_v1, bundle_v2):
        check_activation_ranges(bundle.artifact_path("tflite").read_bytes())
