"""Hand-built int8 .tflite models of one or a few operators, for exactness checks at chosen parameters.

The converter picks scales and betas from calibration data; to test the engine at scales it never picks
(tiny or huge softmax input scales, biases that push accumulators past 2^30, depth multipliers > 1), these
models are written directly with the TFLite flatbuffer schema that ships with LiteRT. LiteRT itself runs
them (models.reference.ReferenceModel), so they are real models, not stand-ins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = {"int8": ("INT8", np.int8), "int32": ("INT32", np.int32), "uint8": ("UINT8", np.uint8)}


@dataclass
class T:
    """A tensor: shape, dtype, quantisation, and constant data (None for activations)."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    data: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class Op:
    name: str  # builtin name, e.g. "SOFTMAX"
    inputs: list[int]
    outputs: list[int]
    options: object | None = None  # a schema *OptionsT instance
    options_type: str = ""  # e.g. "SoftmaxOptions"


@dataclass
class ModelSpec:
    tensors: list[T]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    version: dict[str, int] = field(default_factory=dict)


def schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def build(spec: ModelSpec) -> bytes:
    """Pack the spec into .tflite bytes (schema version 3, one subgraph)."""
    import flatbuffers

    s = schema()
    buffers = [s.BufferT()]
    tensors = []
    for i, t in enumerate(spec.tensors):
        tt = s.TensorT()
        tt.shape = list(t.shape)
        tt.type = getattr(s.TensorType, DTYPES[t.dtype][0])
        tt.name = f"t{i}"
        tt.buffer = 0
        if t.data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(np.asarray(t.data, DTYPES[t.dtype][1])).tobytes()
            buffers.append(b)
            tt.buffer = len(buffers) - 1
        if t.scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in t.scale]
            q.zeroPoint = [int(v) for v in (t.zero_point or [0] * len(t.scale))]
            q.quantizedDimension = t.quantized_dimension
            tt.quantization = q
        tensors.append(tt)
    codes: list[str] = []
    ops = []
    for op in spec.ops:
        if op.name not in codes:
            codes.append(op.name)
        ot = s.OperatorT()
        ot.opcodeIndex = codes.index(op.name)
        ot.inputs, ot.outputs = list(op.inputs), list(op.outputs)
        if op.options is not None:
            ot.builtinOptionsType = getattr(s.BuiltinOptions, op.options_type)
            ot.builtinOptions = op.options
        ops.append(ot)
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = tensors, ops, list(spec.inputs), list(spec.outputs)
    model = s.ModelT()
    model.version = 3
    model.subgraphs = [sub]
    model.buffers = buffers
    model.operatorCodes = []
    for name in codes:
        oc = s.OperatorCodeT()
        code = getattr(s.BuiltinOperator, name)
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = spec.version.get(name, 1)
        model.operatorCodes.append(oc)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def softmax_model(rows: int, depth: int, input_scale: float, beta: float, input_zp: int = 0) -> bytes:
    """int8 [1, 1, rows, depth] -> SOFTMAX(beta) -> int8 with TFLite's required 1/256, -128 output."""
    s = schema()
    opts = s.SoftmaxOptionsT()
    opts.beta = beta
    spec = ModelSpec(
        tensors=[
            T((1, 1, rows, depth), scale=[input_scale], zero_point=[input_zp]),
            T((1, 1, rows, depth), scale=[1 / 256], zero_point=[-128]),
        ],
        ops=[Op("SOFTMAX", [0], [1], opts, "SoftmaxOptions")],
        inputs=[0],
        outputs=[1],
        version={"SOFTMAX": 2},
    )
    return build(spec)


ACTIVATIONS = ("NONE", "RELU", "RELU6")


def _options(name: str, **fields) -> object:
    s = schema()
    opts = getattr(s, f"{name}T")()
    for key, value in fields.items():
        setattr(opts, key, value)
    return opts


def conv_model(rng: np.random.Generator, depthwise: bool = False, huge_bias: bool = False) -> bytes:
    """A random CONV_2D or DEPTHWISE_CONV_2D: shapes, stride, dilation, padding, activation, per-channel
    scales (some effective scales above 1/2, which turn the fast requantisation off), zero points; with
    ``huge_bias`` some live channels get biases near +-2^30, so only the exact wide kernel may run them."""
    s = schema()
    h, w = int(rng.integers(3, 13)), int(rng.integers(3, 13))
    c = int(rng.integers(1, 10))
    dm = int(rng.choice([1, 1, 2, 3])) if depthwise else 1
    oc = c * dm if depthwise else int(rng.integers(1, 10))
    k_h, k_w = int(rng.choice([1, 2, 3, 5, 7])), int(rng.choice([1, 2, 3, 5, 7]))
    stride = int(rng.choice([1, 2]))
    dil = int(rng.choice([1, 2])) if stride == 1 else 1
    same = bool(rng.integers(2))
    eff_h, eff_w = (k_h - 1) * dil + 1, (k_w - 1) * dil + 1
    if not same and (eff_h > h or eff_w > w):
        same = True
    out_h = -(-h // stride) if same else (h - eff_h) // stride + 1
    out_w = -(-w // stride) if same else (w - eff_w) // stride + 1
    in_scale = float(10 ** rng.uniform(-2.5, -0.5))
    taps = k_h * k_w * (1 if depthwise else c)
    w_scale = (10 ** rng.uniform(-3, -1, oc)).astype(np.float32)
    # output scale near the accumulator's spread, sometimes much smaller (effective scale > 1/2)
    out_scale = float(in_scale * float(np.median(w_scale)) * 100 * np.sqrt(taps) * 10 ** rng.uniform(-2.5, 0.5))
    weights = rng.integers(-127, 128, (1, k_h, k_w, oc) if depthwise else (oc, k_h, k_w, c)).astype(np.int8)
    bias = rng.integers(-2000, 2000, oc).astype(np.int64) * int(rng.choice([1, 30]))
    if huge_bias:
        live = rng.integers(0, oc, max(1, oc // 3))
        bias[live] = rng.choice([-1, 1], live.size) * ((1 << 30) - rng.integers(0, 1 << 16, live.size))
    act = str(rng.choice(ACTIVATIONS))
    act_code = getattr(s.ActivationFunctionType, act)
    padding = s.Padding.SAME if same else s.Padding.VALID
    if depthwise:
        name, version, opts_type = "DEPTHWISE_CONV_2D", 3, "DepthwiseConv2DOptions"
        opts = _options(
            opts_type,
            padding=padding,
            strideW=stride,
            strideH=stride,
            depthMultiplier=dm,
            fusedActivationFunction=act_code,
            dilationWFactor=dil,
            dilationHFactor=dil,
        )
        qdim = 3
    else:
        name, version, opts_type = "CONV_2D", 3, "Conv2DOptions"
        opts = _options(
            opts_type,
            padding=padding,
            strideW=stride,
            strideH=stride,
            fusedActivationFunction=act_code,
            dilationWFactor=dil,
            dilationHFactor=dil,
        )
        qdim = 0
    spec = ModelSpec(
        tensors=[
            T((1, h, w, c), scale=[in_scale], zero_point=[int(rng.integers(-128, 128))]),
            T(weights.shape, scale=list(w_scale), zero_point=[0] * oc, data=weights, quantized_dimension=qdim),
            T((oc,), "int32", scale=list(in_scale * w_scale.astype(np.float64)), zero_point=[0] * oc, data=bias),
            T((1, out_h, out_w, oc), scale=[out_scale], zero_point=[int(rng.integers(-100, 100))]),
        ],
        ops=[Op(name, [0, 1, 2], [3], opts, opts_type)],
        inputs=[0],
        outputs=[3],
        version={name: version},
    )
    return build(spec)


def fully_connected_model(rng: np.random.Generator, huge_bias: bool = False) -> bytes:
    """A random FULLY_CONNECTED over a [1, 1, 1, K] input (per-tensor weight scale, as converters emit)."""
    s = schema()
    k, oc = int(rng.integers(1, 80)), int(rng.integers(1, 20))
    in_scale = float(10 ** rng.uniform(-2.5, -0.5))
    w_scale = float(10 ** rng.uniform(-3, -1))
    out_scale = float(in_scale * w_scale * 100 * np.sqrt(k) * 10 ** rng.uniform(-2.5, 0.5))
    weights = rng.integers(-127, 128, (oc, k)).astype(np.int8)
    bias = rng.integers(-20000, 20000, oc).astype(np.int64)
    if huge_bias:
        live = rng.integers(0, oc, max(1, oc // 3))
        bias[live] = rng.choice([-1, 1], live.size) * ((1 << 30) - rng.integers(0, 1 << 16, live.size))
    act = getattr(s.ActivationFunctionType, str(rng.choice(ACTIVATIONS)))
    opts = _options("FullyConnectedOptions", fusedActivationFunction=act)
    spec = ModelSpec(
        tensors=[
            T((1, 1, 1, k), scale=[in_scale], zero_point=[int(rng.integers(-128, 128))]),
            T((oc, k), scale=[w_scale], zero_point=[0], data=weights),
            T((oc,), "int32", scale=[in_scale * w_scale], zero_point=[0], data=bias),
            T((1, oc), scale=[out_scale], zero_point=[int(rng.integers(-100, 100))]),
        ],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3], opts, "FullyConnectedOptions")],
        inputs=[0],
        outputs=[3],
        version={"FULLY_CONNECTED": 4},
    )
    return build(spec)
