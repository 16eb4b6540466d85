"""tinyml/edgetpu/runtime.py, tinyml/targets/coral.py and tools/classify.py: runtime selection, the missing-runtime
paths, and the shared pre/post-processing run through the very same runner on LiteRT's CPU interpreter.

No Edge TPU and no libedgetpu exist here; the tests that need their absence skip where they are installed.
"""

from __future__ import annotations

import ctypes
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.bundle import load_bundle
from models.errors import UserError
from models.preprocess import prepare_frame
from tinyml.data import read_image_file
from tinyml.edgetpu.runtime import (
    InterpreterRunner,
    cpu_interpreter,
    delegate_library,
    edgetpu_interpreter,
    open_runner,
    parse_device,
)
from tinyml.targets.base import check_compatible
from tinyml.targets.coral import CoralTarget, compiled_model
from tools import classify


def _libedgetpu_installed() -> bool:
    try:
        ctypes.CDLL(delegate_library())
        return True
    except OSError:
        return False


def _real_pycoral_installed() -> bool:
    try:
        import pycoral.utils.edgetpu  # noqa: F401

        return True
    except ImportError:
        return False


@pytest.fixture
def v1(bundle_v1, tmp_path):
    """A private copy of the session's V1 bundle (tests below add files to it)."""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_v1.path, copy)
    return load_bundle(copy)


@pytest.fixture(scope="module")
def images(fmnist_test_samples, tmp_path_factory) -> list[Path]:
    """Real Fashion-MNIST test images as files: grayscale PNGs and one colour JPEG of another size."""
    root = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(6):
        path = root / f"img{i}.png"
        cv2.imwrite(str(path), fmnist_test_samples.images[i].reshape(28, 28))
        paths.append(path)
    big = cv2.resize(cv2.cvtColor(fmnist_test_samples.images[6].reshape(28, 28), cv2.COLOR_GRAY2BGR), (45, 60))
    cv2.imwrite(str(root / "colour.jpg"), big)
    return paths + [root / "colour.jpg"]


# ---- pure parts ----------------------------------------------------------------------------------------------------
def test_delegate_library_by_platform():
    assert delegate_library("Linux") == "libedgetpu.so.1"
    assert delegate_library("Darwin") == "libedgetpu.1.dylib"
    assert delegate_library("Windows") == "edgetpu.dll"
    with pytest.raises(UserError, match="no build for Plan9"):
        delegate_library("Plan9")


@pytest.mark.parametrize(
    "spec,expected",
    [
        (None, None),
        ("", None),
        (":0", ":0"),
        ("usb", "usb"),
        ("usb:1", "usb:1"),
        (":usb:0", "usb:0"),
        ("PCI:0", "pci:0"),
    ],
)
def test_device_selectors(spec, expected):
    assert parse_device(spec) == expected


@pytest.mark.parametrize("spec", ["usb0", "tpu", ":x", "pci:-1", "usb:0:1"])
def test_bad_device_selector_is_one_clear_line(spec):
    with pytest.raises(UserError, match="not an Edge TPU selector; use :0"):
        parse_device(spec)


def test_dequantize_and_top_k():
    from models.bundle import TensorQuant

    scores = TensorQuant("int8", 1 / 256, -128).dequantize(np.array([-128, 0, 127, 0], np.int8))
    np.testing.assert_allclose(scores, [0.0, 0.5, 255 / 256, 0.5])
    assert classify.top_k(scores, ["a", "b", "c", "d"], 3) == [(2, "c", 255 / 256), (1, "b", 0.5), (3, "d", 0.5)]


# ---- missing runtime -----------------------------------------------------------------------------------------------
def test_missing_libedgetpu_names_the_install(v1):
    if _libedgetpu_installed():
        pytest.skip("libedgetpu is installed here; the missing-delegate path cannot be observed")
    with pytest.raises(UserError) as err:
        edgetpu_interpreter(v1.artifact_path("tflite"), device="usb:0", runtime="litert")
    message = str(err.value)
    assert "cannot load the Edge TPU delegate libedgetpu.so.1" in message
    assert "libedgetpu1-std" in message and "docs/coral.md" in message and "\n" not in message


def test_pycoral_requested_but_absent(v1):
    if _real_pycoral_installed():
        pytest.skip("Google's pycoral is installed here")
    with pytest.raises(UserError, match="pycoral is not importable .*different project"):
        edgetpu_interpreter(v1.artifact_path("tflite"), runtime="pycoral")


def test_target_without_compiled_model_says_which_step(v1):
    with pytest.raises(UserError, match="no model_int8_edgetpu.tflite; run: python -m tools edgetpu"):
        CoralTarget(v1).open()


def _stand_in_compiled_model(bundle, source_sha256: str):
    """Record the int8 model under the Edge TPU name (the compiler cannot run here). Only the bookkeeping is
    exercised with it: the tests below stop before any runtime would load it."""
    shutil.copy(bundle.artifact_path("tflite"), bundle.artifact_path("edgetpu", required=False))
    bundle.record_artifact("edgetpu", compiler_version="16.0.384591198", source_sha256=source_sha256)
    bundle.save()


def test_stale_compiled_model_is_refused(v1):
    _stand_in_compiled_model(v1, source_sha256="0" * 64)
    with pytest.raises(UserError, match="compiled from an older model_int8.tflite; run: python -m tools edgetpu"):
        compiled_model(v1)


def test_target_open_without_runtime_fails_cleanly(v1):
    if _libedgetpu_installed() or _real_pycoral_installed():
        pytest.skip("an Edge TPU runtime is installed here")
    _stand_in_compiled_model(v1, source_sha256=v1.model_id)
    assert compiled_model(v1) == v1.artifact_path("edgetpu")
    target = CoralTarget(v1, device=":usb:0")
    assert target.device == "usb:0"
    with pytest.raises(UserError, match="cannot load the Edge TPU delegate"):
        target.open()
    target.close()


def test_classify_cli_without_runtime_exits_2_with_one_line(v1, images, capsys):
    if _libedgetpu_installed() or _real_pycoral_installed():
        pytest.skip("an Edge TPU runtime is installed here")
    from tools.__main__ import main as tools_main

    _stand_in_compiled_model(v1, source_sha256=v1.model_id)
    assert tools_main(["classify", str(v1.path), str(images[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot load the Edge TPU delegate")


# ---- the shared pipeline, on the CPU interpreter --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cpu_runner(bundle_v1) -> InterpreterRunner:
    return open_runner(bundle_v1.artifact_path("tflite"), cpu=True)


def test_runner_reports_load_cost_and_bundle_quantisation(cpu_runner, bundle_v1):
    assert cpu_runner.runtime == "litert-builtin-ref"
    assert cpu_runner.load_cost.load_ms > 0 and cpu_runner.load_cost.first_invoke_ms > 0
    assert cpu_runner.input_quant == bundle_v1.input_quant and cpu_runner.output_quant == bundle_v1.output_quant
    classify.check_runner(bundle_v1, cpu_runner, bundle_v1.model_id)
    with pytest.raises(UserError, match="input dtype uint8 does not match"):
        cpu_runner.invoke(np.zeros(bundle_v1.input_shape, np.uint8))


def test_classify_uses_the_bundle_preprocessing_and_output_quantisation(cpu_runner, bundle_v1, images):
    pairs = [(str(p), read_image_file(p)) for p in images]
    predictions = classify.classify_images(bundle_v1, cpu_runner, pairs, k=3)
    quant = bundle_v1.output_quant
    for (_name, image), pred in zip(pairs, predictions):
        # The runner was fed exactly prepare_frame's tensor: running it directly gives the same answer.
        raw = cpu_runner.invoke(prepare_frame(image, bundle_v1))
        scores = (raw.astype(np.float64) - quant.zero_point) * quant.scale
        assert [i for i, _, _ in pred.top] == list(np.argsort(-scores, kind="stable")[:3])
        assert [label for _, label, _ in pred.top] == [bundle_v1.labels[i] for i, _, _ in pred.top]
        np.testing.assert_allclose([s for _, _, s in pred.top], np.sort(scores)[::-1][:3], rtol=1e-6)
        # The output is a softmax: with the right zero point the dequantised scores sum to 1 (within rounding).
        assert abs(scores.sum() - 1.0) <= len(scores) * quant.scale
        assert pred.latency_ms > 0


def test_classify_agrees_with_the_float_model(bundle_v1, fmnist_test_samples):
    """Same preprocessing as training: the int8 model on the CPU agrees with the Keras model on real test images."""
    import keras

    from models.preprocess import PreprocessSpec, preprocess_batch

    runner = open_runner(bundle_v1.artifact_path("tflite"), cpu=True)
    raw_images = [img.reshape(28, 28) for img in fmnist_test_samples.images[:50]]
    pairs = [(str(i), img) for i, img in enumerate(raw_images)]
    int8_top1 = [p.top[0][0] for p in classify.classify_images(bundle_v1, runner, pairs, k=1)]
    model = keras.models.load_model(bundle_v1.artifact_path("keras"), compile=False)
    batch = preprocess_batch(raw_images, PreprocessSpec.from_bundle(bundle_v1))
    float_top1 = np.argmax(model.predict(batch, batch_size=1, verbose=0), axis=1).tolist()  # the graph is batch-1
    agreement = np.mean(np.array(int8_top1) == np.array(float_top1))
    assert agreement >= 0.9, agreement


def test_classify_cli_on_cpu(bundle_v1, images, capsys):
    assert classify.main([str(bundle_v1.path), *map(str, images), "--cpu", "--top-k", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"] == "litert-builtin-ref" and doc["load_cost"]["load_ms"] > 0
    assert [p["image"] for p in doc["predictions"]] == [str(p) for p in images]
    assert all(len(p["top"]) == 2 and p["top"][0][2] >= p["top"][1][2] for p in doc["predictions"])
    assert classify.main([str(bundle_v1.path), str(images[0]), "--cpu"]) == 0
    text = capsys.readouterr().out
    assert "runtime litert-builtin-ref: model load" in text and "mean latency" in text


def test_classify_cli_bad_inputs(bundle_v1, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="cannot decode .*notes.png as an image"):
        classify.main([str(bundle_v1.path), str(bad), "--cpu"])
    with pytest.raises(UserError, match="does not exist"):
        classify.main([str(bundle_v1.path), str(tmp_path / "missing.png"), "--cpu"])
    with pytest.raises(UserError, match="--top-k must be at least 1"):
        classify.main([str(bundle_v1.path), str(bad), "--top-k", "0"])
    with pytest.raises(UserError, match="drop it when using --cpu"):
        classify.main([str(bundle_v1.path), str(bad), "--cpu", "--device", "usb"])


def test_cpu_interpreter_info_passes_the_stream_compatibility_check(bundle_v1, cpu_runner):
    """What CoralTarget announces is built from the runner exactly like this; the host's check accepts it."""
    from tinyml.targets.base import DeviceInfo

    shape = cpu_runner.input_shape
    info = DeviceInfo(
        bundle_v1.model_id,
        (shape[1], shape[2], shape[3]),
        cpu_runner.input_quant,
        cpu_runner.num_classes,
        cpu_runner.output_quant,
        "edgetpu",
        1,
    )
    check_compatible(bundle_v1, info, "the Coral")
    interpreter, name = cpu_interpreter(bundle_v1.artifact_path("tflite"))
    assert name == "litert-builtin-ref" and interpreter.get_input_details()[0]["shape"].tolist() == [
        1,
        *bundle_v1.input_shape,
    ]


# ---- the stream target -----------------------------------------------------------------------------------------------
class _CoralTargetOnCpu(CoralTarget):
    """CoralTarget with only the hardware step swapped: the int8 model opened on LiteRT's CPU interpreter.
    DeviceInfo, warm-up timing, inference and the stream loop are the target's own code."""

    def open_runner(self) -> InterpreterRunner:
        return open_runner(self.bundle.artifact_path("tflite"), cpu=True)


def test_coral_target_in_a_stream_session(bundle_v1):
    from host.sources import open_source
    from host.stream import stream

    target = _CoralTargetOnCpu(bundle_v1, device="usb:0")
    source = open_source("fashion-mnist:test", bundle_v1.labels, start=0, count=20)
    summary = stream(bundle_v1, source, target, compare_cpu=True).to_json()
    assert target.info.engine == "edgetpu" and "device=usb:0" in target.info.build
    assert "first-inference=" in target.info.build and target.runner is None  # closed after the session
    assert summary["engine"] == "edgetpu" and summary["answered"] == 20 and summary["unanswered_frames"] == 0
    assert summary["compared_with_reference"] == 20 and summary["agreement_top1"] >= 0.95
    assert summary["accuracy"] > 0.4 and summary["error"] is None


def test_stream_cli_coral_without_compiled_model(bundle_v1):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "host/stream.py",
            str(bundle_v1.path),
            "fashion-mnist:test",
            "--limit",
            "2",
            "--coral",
            "usb:0",
            "--headless",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: bundle {bundle_v1.path} has no model_int8_edgetpu.tflite; run: python -m tools edgetpu {bundle_v1.path}"
    )
