"""The two CPU oracles at scale: where LiteRT BUILTIN_REF and the tflite-micro runtime agree, and where not.

On the project's trained models the two runtimes give different output bytes on a few images in 10,000, and every
such difference starts in FULLY_CONNECTED (docs/benchmarks.md, "LiteRT-ref vs TFLite-Micro"). These one-op
models pin why, over thousands of random inputs at the quantisation a MobileNet head gets from the converter
(256 int8 features at zero point -128, per-channel weight scales, 10 logits):

* LiteRT's FULLY_CONNECTED is round-half-away-from-zero of ``acc * (double)(s_in * s_w[c] / s_out)``;
* TFLM's is TFLite's ``MultiplyByQuantizedMultiplier`` (gemmlowp's two roundings), as both runtimes' CONV_2D is;
* so the two differ, by one step and only where those two roundings differ, and a 1x1 CONV_2D over the same
  accumulators and the SOFTMAX that follows the head agree on every input.

And a stream scores a board against the oracle of the engine its HELLO names (models.reference.reference_for).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from host.session import StreamSession
from host.sources import ArraySource
from models.bundle import load_bundle
from models.preprocess import prepare_frame
from models.reference import MICRO_RUNTIME, RUNTIME, MicroModel, ReferenceModel, reference_for
from tests.tflite_builder import ModelSpec, Op, T, _options, build, softmax_model
from tinyml.codegen.arithmetic import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away
from tinyml.data import load_fashion_mnist
from tinyml.targets.cpu import CpuTarget

ROOT = Path(__file__).resolve().parents[1]

INPUTS = 20_000
FEATURES, CLASSES = 256, 10
IN_SCALE, IN_ZP = 0.018239, -128  # the firmware bundle's pooled features
OUT_SCALE, OUT_ZP = 0.12525, -27  # its logits


@pytest.fixture(scope="module")
def head():
    """Random head weights and biases, and INPUTS random feature vectors with their exact int32 accumulators."""
    rng = np.random.default_rng(3)
    w_scale = (10 ** rng.uniform(-3, -2.5, CLASSES)).astype(np.float32)
    weights = rng.integers(-127, 128, (CLASSES, FEATURES)).astype(np.int8)
    bias = rng.integers(-20000, 20000, CLASSES).astype(np.int64)
    x = rng.integers(-128, 128, (INPUTS, FEATURES)).astype(np.int8)
    acc = (x.astype(np.int64) - IN_ZP) @ weights.T.astype(np.int64) + bias
    return w_scale, weights, bias, x, acc


def _head_model(w_scale, weights, bias, conv: bool) -> bytes:
    """The head as FULLY_CONNECTED over [1, 256], or as a 1x1 CONV_2D over [1, 1, 1, 256] (same accumulators)."""
    bias_t = T((CLASSES,), "int32", scale=list(IN_SCALE * w_scale.astype(np.float64)), zero_point=[0] * CLASSES)
    bias_t.data = bias
    if conv:
        shape_in, shape_w, shape_out = (1, 1, 1, FEATURES), (CLASSES, 1, 1, FEATURES), (1, 1, 1, CLASSES)
        op = Op("CONV_2D", [0, 1, 2], [3], _options("Conv2DOptions", strideW=1, strideH=1), "Conv2DOptions")
    else:
        shape_in, shape_w, shape_out = (1, FEATURES), (CLASSES, FEATURES), (1, CLASSES)
        op = Op("FULLY_CONNECTED", [0, 1, 2], [3], _options("FullyConnectedOptions"), "FullyConnectedOptions")
    spec = ModelSpec(
        tensors=[
            T(shape_in, scale=[IN_SCALE], zero_point=[IN_ZP]),
            T(shape_w, scale=list(w_scale), zero_point=[0] * CLASSES, data=weights.reshape(shape_w)),
            bias_t,
            T(shape_out, scale=[OUT_SCALE], zero_point=[OUT_ZP]),
        ],
        ops=[op],
        inputs=[0],
        outputs=[3],
        version={op.name: 3 if conv else 4},
    )
    return build(spec)


def _run(oracle, x: np.ndarray) -> np.ndarray:
    return np.stack([oracle.invoke(row) for row in x]).astype(np.int64)


def _requantised(acc: np.ndarray, w_scale: np.ndarray, exact: bool) -> np.ndarray:
    """Each accumulator requantised per channel: exact (double product, rounded half away from zero) or TFLite's
    fixed-point multiplier (two roundings), then the output zero point and the int8 clamp."""
    out = np.empty_like(acc)
    for c in range(CLASSES):
        real = float(np.float32(IN_SCALE)) * float(w_scale[c]) / float(np.float32(OUT_SCALE))
        multiplier, shift = quantize_multiplier(real)
        for i, a in enumerate(acc[:, c].tolist()):
            out[i, c] = round_half_away(a * real) if exact else multiply_by_quantized_multiplier(a, multiplier, shift)
    return np.clip(out + OUT_ZP, -128, 127)


def test_fully_connected_rounds_differently_in_the_two_runtimes(head):
    w_scale, weights, bias, x, acc = head
    model = _head_model(w_scale, weights, bias, conv=False)
    litert, micro = _run(ReferenceModel(model), x), _run(MicroModel(model), x)
    exact, fixed_point = _requantised(acc, w_scale, exact=True), _requantised(acc, w_scale, exact=False)
    assert np.array_equal(litert, exact), "LiteRT BUILTIN_REF's FULLY_CONNECTED is no longer the exact rounding"
    assert np.array_equal(micro, fixed_point), "TFLM's FULLY_CONNECTED is no longer MultiplyByQuantizedMultiplier"
    differ = litert != micro
    # The difference is real at this scale (a few values in 10,000), one step, and exactly where the roundings part.
    assert 0 < differ.sum() < differ.size // 1000
    assert np.abs(litert - micro).max() == 1
    assert np.array_equal(differ, exact != fixed_point)


def test_conv_over_the_same_accumulators_agrees(head):
    w_scale, weights, bias, x, acc = head
    model = _head_model(w_scale, weights, bias, conv=True)
    litert, micro = _run(ReferenceModel(model), x), _run(MicroModel(model), x)
    assert np.array_equal(litert, micro)
    assert np.array_equal(litert, _requantised(acc, w_scale, exact=False))


def test_softmax_after_the_head_agrees():
    """The head's SOFTMAX (10 classes at the logits' quantisation) is bit-identical in the two runtimes."""
    rng = np.random.default_rng(4)
    rows = rng.integers(-128, 128, (INPUTS // 4, CLASSES)).astype(np.int8)
    rows[: len(rows) // 2] = np.clip(rng.integers(-3, 4, (len(rows) // 2, CLASSES)) + 40, -128, 127)
    model = softmax_model(1, CLASSES, OUT_SCALE, 1.0, input_zp=OUT_ZP)
    litert, micro = ReferenceModel(model), MicroModel(model)
    assert np.array_equal(
        _run(litert, rows.reshape(-1, 1, 1, 1, CLASSES)), _run(micro, rows.reshape(-1, 1, 1, 1, CLASSES))
    )


def test_a_tflm_board_is_checked_against_the_tflite_micro_runtime(head):
    w_scale, weights, bias, _, _ = head
    model = _head_model(w_scale, weights, bias, conv=False)
    for engine, kind, name in (
        ("tflm", MicroModel, MICRO_RUNTIME),
        ("engine", ReferenceModel, RUNTIME),
        ("litert-builtin-ref", ReferenceModel, RUNTIME),
    ):
        oracle, runtime = reference_for(engine, model)
        assert isinstance(oracle, kind) and runtime == name


class _MicroTarget(CpuTarget):
    """The bundle's model under the tflite-micro runtime in this process, announcing ``engine`` in its HELLO:
    the bytes a TFLM board with reference kernels sends (docs/boards.md: TFLM's C++ build matched this runtime)."""

    name = "tflite-micro"

    def __init__(self, bundle, engine: str):
        super().__init__(bundle)
        self.engine = engine

    def open_device(self):
        info = super().open_device()
        self._micro = MicroModel(self.bundle.verified_artifact("tflite"))
        return dataclasses.replace(info, engine=self.engine)

    def infer(self, tensor):
        return self._micro.invoke(tensor), None


def test_a_stream_scores_tflm_answers_against_the_tflite_micro_runtime():
    """Images of the firmware bundle where the two runtimes differ (bench/oracle_diff.py finds them), plus two where
    they agree: a board announcing "tflm" is identical to its oracle on all, one announcing the engine is not."""
    bundle = load_bundle(ROOT / "firmware" / "src" / "model" / "bundle")
    test = load_fashion_mnist("test")
    frames = {i: prepare_frame(test.images[i], bundle) for i in (2722, 2746, 6039, 8775)}
    litert, micro = ReferenceModel(bundle.verified_artifact("tflite")), MicroModel(bundle.verified_artifact("tflite"))
    differ = [
        i for i in (2722, 2746, 6039, 8775) if not np.array_equal(litert.invoke(frames[i]), micro.invoke(frames[i]))
    ]
    assert differ, "the firmware model's runtimes no longer differ on these images: re-run bench/oracle_diff.py"
    chosen = np.array([0, 1, *differ])
    source = ArraySource(test.images[chosen], test.labels[chosen], "fashion-mnist:test")
    for engine, runtime, identical in (("tflm", MICRO_RUNTIME, 1.0), ("engine", RUNTIME, 2 / len(chosen))):
        summary = StreamSession(bundle, source, _MicroTarget(bundle, engine), compare_cpu=True).run().to_json()
        assert summary["reference"] == runtime
        assert summary["compared_with_reference"] == len(chosen)
        assert summary["agreement_exact"] == pytest.approx(identical)
