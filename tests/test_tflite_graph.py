"""tinyml/tflite_graph.py: the one .tflite reader decodes real converter output and rejects broken files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from models.errors import UserError
from tinyml.tflite_graph import load_graph

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def tiny_tflite() -> bytes:
    """A real int8 model from the TFLite converter: strided SAME conv + per-channel depthwise + dense + softmax."""
    import tensorflow as tf
    from tensorflow import keras

    layers = keras.layers
    inp = keras.Input((12, 10, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu6")(inp)
    x = layers.DepthwiseConv2D(3, padding="valid", depth_multiplier=2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(1)

    def representative():
        for _ in range(8):
            yield [rng.random((1, 12, 10, 3), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_reads_ops_tensors_options_and_quantisation(tiny_tflite: bytes, tmp_path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_tflite)
    graph = load_graph(path)
    assert [op.name for op in load_graph(tiny_tflite).operators] == [op.name for op in graph.operators]
    names = [op.name for op in graph.operators]
    assert names[0] == "CONV_2D" and "DEPTHWISE_CONV_2D" in names and names[-1] == "SOFTMAX"
    assert {name for name, _ in graph.op_set()} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"}
    assert all(version >= 1 for _, version in graph.op_set())

    conv = graph.operators[0]
    assert conv.options["stride_h"] == 2 and conv.options["stride_w"] == 2
    assert conv.options["padding"] == "SAME" and conv.options["fused_activation_function"] == "RELU6"
    weights = graph.tensors[conv.inputs[1]]
    assert weights.shape == (4, 3, 3, 3) and weights.dtype == "int8" and weights.data.dtype == np.int8
    assert weights.quantization.per_channel and weights.quantization.scale.size == 4
    assert weights.quantization.quantized_dimension == 0
    bias = graph.tensors[conv.inputs[2]]
    assert bias.dtype == "int32" and bias.data.shape == (4,)

    dw = next(op for op in graph.operators if op.name == "DEPTHWISE_CONV_2D")
    assert dw.options["depth_multiplier"] == 2 and dw.options["padding"] == "VALID"
    assert graph.tensors[dw.inputs[1]].quantization.quantized_dimension == 3

    (inp,) = graph.input_tensors()
    (out,) = graph.output_tensors()
    assert inp.shape == (1, 12, 10, 3) and inp.dtype == "int8" and inp.data is None
    assert not inp.quantization.per_channel and -128 <= int(inp.quantization.zero_point[0]) <= 127
    assert out.shape == (1, 5) and out.quantization.scale[0] == pytest.approx(1 / 256)


def test_not_a_tflite_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(UserError, match="not a TFLite model"):
        load_graph(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_graph(tmp_path / "missing.tflite")


def test_corrupted_tflite_is_a_one_line_error(tiny_tflite: bytes) -> None:
    truncated = tiny_tflite[: len(tiny_tflite) // 3]
    corrupt = bytearray(tiny_tflite)
    corrupt[8:40] = b"\xff" * 32  # break the root table's offsets, keep the identifier
    for blob in (truncated, bytes(corrupt)):
        with pytest.raises(UserError) as info:
            load_graph(blob)
        assert "\n" not in str(info.value) and "corrupted" in str(info.value)
