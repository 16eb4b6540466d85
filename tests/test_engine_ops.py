"""Engine kernels that MobileNet V1/V2 do not use, checked byte for byte against LiteRT BUILTIN_REF too.

A small converter-made model exercises PAD (explicit ZeroPadding2D), MAX_POOL_2D with SAME padding,
AVERAGE_POOL_2D with VALID padding, a residual ADD, RESHAPE (Flatten), FULLY_CONNECTED and SOFTMAX, on real
Fashion-MNIST images through the same native harness as tests/test_engine_native.py (portable and emulated-DSP
builds).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tooling import check_bit_exact

pytestmark = [pytest.mark.c, pytest.mark.slow]


def op_coverage_tflite(images: np.ndarray, input_dtype: str) -> bytes:
    import keras

    from tools.quantize import quantize_keras_model

    keras.utils.set_random_seed(1)
    layers = keras.layers
    inp = keras.Input((28, 28, 1), batch_size=1)
    x = layers.ZeroPadding2D(((1, 2), (2, 1)))(inp)
    x = layers.Conv2D(12, 3, strides=2, padding="valid", activation="relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.AveragePooling2D(2, padding="valid")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, x)
    calibration = images.astype(np.float32) / 127.5 - 1.0
    return quantize_keras_model(model, calibration, input_dtype)


@pytest.mark.parametrize("input_dtype", ["int8", "uint8"])
def test_pad_pool_add_reshape_dense_softmax_bit_exact(input_dtype, tmp_path) -> None:
    from models.bundle import TensorQuant
    from models.preprocess import quantize_input
    from tinyml.data import balanced_sample, load_fashion_mnist
    from tinyml.tflite_graph import load_graph

    images = balanced_sample(load_fashion_mnist("test"), 200, seed=5).images.reshape(-1, 28, 28, 1)
    tflite = tmp_path / "ops.tflite"
    tflite.write_bytes(op_coverage_tflite(images[:64], input_dtype))
    graph = load_graph(tflite)
    ops = {op.name for op in graph.operators}
    assert {"PAD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"} <= ops, ops
    x = graph.input_tensors()[0]
    quant = TensorQuant(x.dtype, float(x.quantization.scale[0]), int(x.quantization.zero_point[0]))
    frames = quantize_input(images[64:].astype(np.float32) / 127.5 - 1.0, quant)
    check_bit_exact(tflite, frames, tmp_path)
