"""Evaluation: three accuracies, byte-for-byte LiteRT-ref vs TFLM verdict, TFLM arena, float-model rejection."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from models.bundle import load_bundle
from models.errors import UserError
from models.preprocess import prepare_frame
from models.reference import ReferenceModel
from tests.tooling import assert_one_line_error, run_tool
from tools.evaluate import TflmModel, evaluate_bundle, runtime_difference

# One pytest-xdist worker runs the module, so `evaluated_v1` is evaluated once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_evaluate")


@pytest.fixture(scope="module")
def evaluated_v1(bundle_v1, tmp_path_factory):
    """A copy of bundle_v1 evaluated on 200 test images (the fixture bundle itself stays untouched)."""
    path = tmp_path_factory.mktemp("eval") / "v1"
    shutil.copytree(bundle_v1.path, path)
    return path, evaluate_bundle(path, limit=200)


def test_three_accuracies_and_confusion(evaluated_v1):
    path, result = evaluated_v1
    assert result["images"] == 200 and result["split"] == "test"
    for key in ("float", "int8_litert_ref", "int8_tflm"):
        confusion = np.array(result[key]["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == 200
        assert np.all(confusion.sum(axis=1) == 20)  # class-balanced subset
        assert result[key]["accuracy"] == pytest.approx(np.trace(confusion) / 200)
        assert result[key]["accuracy"] > 0.4
    assert result["int8_drop_points"] == pytest.approx(
        100 * (result["float"]["accuracy"] - result["int8_litert_ref"]["accuracy"]), abs=1e-3
    )
    assert load_bundle(path).meta["metrics"]["evaluation"] == result  # persisted in model.json


def test_ref_and_tflm_verdict_is_real(evaluated_v1, fmnist_test_samples, bundle_v1):
    _, result = evaluated_v1
    assert result["ref_tflm_identical"] == (result["ref_tflm_mismatches"] == 0)
    assert result["ref_tflm_identical"] == (result["ref_tflm_max_byte_diff"] == 0)
    assert result["ref_tflm_argmax_changes"] <= result["ref_tflm_mismatches"]
    # FULLY_CONNECTED's rounding differs on a few logits in 10,000 (tests/test_oracle.py); never most images.
    assert result["ref_tflm_mismatches"] <= result["images"] // 20
    tflite = bundle_v1.artifact_path("tflite").read_bytes()
    ref, tflm = ReferenceModel(tflite), TflmModel(tflite)
    frames = [prepare_frame(img, bundle_v1) for img in fmnist_test_samples.images[:20]]
    outputs = [(ref.invoke(f).astype(np.int32), tflm.invoke(f).astype(np.int32)) for f in frames]
    # A clear winner (8 steps ahead) keeps its class: the runtimes' differences are a few output steps.
    assert all(np.argmax(r) == np.argmax(t) for r, t in outputs if np.max(r) > np.partition(r, -2)[-2] + 8)


def test_runtime_difference_counts_images_bytes_and_top1():
    ref = np.array([[-128, 100, -120], [-128, -128, 127], [10, 12, -128], [0, 0, 0]], np.int8)
    tflm = ref.copy()
    assert runtime_difference(ref, tflm) == {
        "ref_tflm_identical": True,
        "ref_tflm_mismatches": 0,
        "ref_tflm_max_byte_diff": 0,
        "ref_tflm_argmax_changes": 0,
    }
    tflm[1, 2] = 121  # six steps, the same top-1
    tflm[2] = [13, 11, -128]  # top-1 moves from class 1 to class 0
    assert runtime_difference(ref, tflm) == {
        "ref_tflm_identical": False,
        "ref_tflm_mismatches": 2,
        "ref_tflm_max_byte_diff": 6,
        "ref_tflm_argmax_changes": 1,
        "first_mismatch_index": 1,
    }


def test_tflm_arena_is_the_real_requirement(evaluated_v1, bundle_v1, fmnist_test_samples):
    _, result = evaluated_v1
    arena = result["tflm_arena_bytes"]
    assert arena["total"] == arena["head"] + arena["tail"] and 0 < arena["head"] < arena["total"]
    assert arena["required"] >= arena["total"]  # measure_arena: what allocation needs, planner buffer included
    tflite = bundle_v1.artifact_path("tflite").read_bytes()
    frame = prepare_frame(fmnist_test_samples.images[0], bundle_v1)
    fitting = TflmModel(tflite, arena_size=arena["total"] + 256)
    assert fitting.invoke(frame).shape == (10,)
    with pytest.raises(UserError, match="larger arena"):
        TflmModel(tflite, arena_size=arena["total"] // 2)


def test_float_tflite_is_rejected(bundle_v1, tmp_path):
    import keras
    import tensorflow as tf

    bundle = tmp_path / "b"
    shutil.copytree(bundle_v1.path, bundle)
    model = keras.models.load_model(bundle / "model.keras")
    float_path = bundle / "model_float.tflite"
    float_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(UserError, match="float model"):
        evaluate_bundle(bundle, tflite=float_path)
    assert_one_line_error(run_tool("evaluate", str(float_path)), "is a float model")
    assert_one_line_error(run_tool("evaluate", str(bundle), "--tflite", str(float_path)), "is a float model")


def test_evaluate_cli(bundle_v2, tmp_path):
    bundle = tmp_path / "v2"
    shutil.copytree(bundle_v2.path, bundle)
    proc = run_tool("evaluate", str(bundle), "--limit", "30")
    assert proc.returncode == 0, proc.stderr
    assert "int8 TFLite-Micro  accuracy" in proc.stdout and "TFLM arena" in proc.stdout
    result = load_bundle(bundle).meta["metrics"]["evaluation"]
    verdict = "identical byte for byte on all 30 images" if result["ref_tflm_identical"] else "MISMATCH"
    assert verdict in proc.stdout


def test_evaluate_cli_errors(tmp_path):
    assert_one_line_error(run_tool("evaluate", str(tmp_path / "missing")), "does not exist")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    assert_one_line_error(run_tool("evaluate", str(tmp_path / "junk.tflite")), "cannot load")
