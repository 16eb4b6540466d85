"""One class per TFLite operator the engine runs; ``lower_operator`` picks it by the operator's name."""

from __future__ import annotations

from tinyml.codegen.layer import Layer, unsupported
from tinyml.codegen.ops.conv import Conv2D, FullyConnected
from tinyml.codegen.ops.depthwise import DepthwiseConv2D
from tinyml.codegen.ops.elementwise import Add, Dequantize, Pad, Quantize, Reshape
from tinyml.codegen.ops.pooling import AveragePool2D, MaxPool2D, Mean
from tinyml.codegen.ops.softmax import Softmax
from tinyml.tflite_graph import Graph, Operator

OPS: dict[str, type[Layer]] = {
    "CONV_2D": Conv2D,
    "FULLY_CONNECTED": FullyConnected,
    "DEPTHWISE_CONV_2D": DepthwiseConv2D,
    "AVERAGE_POOL_2D": AveragePool2D,
    "MAX_POOL_2D": MaxPool2D,
    "MEAN": Mean,
    "ADD": Add,
    "PAD": Pad,
    "PADV2": Pad,
    "SOFTMAX": Softmax,
    "QUANTIZE": Quantize,
    "DEQUANTIZE": Dequantize,
    "RESHAPE": Reshape,
    "SQUEEZE": Reshape,
}
ALIAS_OPS = {name for name, cls in OPS.items() if cls.alias}


def lower_operator(graph: Graph, op: Operator) -> Layer:
    """The Layer for one operator, or the one-line error naming an op the engine has no kernel for."""
    cls = OPS.get(op.name)
    if cls is None:
        raise unsupported(op, "no engine kernel")
    return cls(graph, op)
