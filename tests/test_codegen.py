"""tinyml/codegen and its CLI (tools/codegen.py): TFLite's quantisation arithmetic, the static memory plan, the
scratch sizes tied to the kernel headers, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest

from models.errors import UserError, run_cli
from tinyml.codegen import (
    activation_range,
    generate,
    generate_from_tflite,
    lower_graph,
    plan_memory,
    quantize_multiplier,
)
from tinyml.codegen.layer import nbytes
from tinyml.tflite_graph import load_graph
from tools import codegen as codegen_cli


def tiny_tflite(activation: str | None = None, add: bool = True) -> bytes:
    """A small real int8 model from the converter: conv, depthwise, residual ADD, pooling, dense, softmax."""
    import keras

    from tools.quantize import quantize_keras_model

    layers = keras.layers
    inp = keras.Input((12, 10, 1), batch_size=1)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 1)(y)
    x = layers.Add()([x, y]) if add else y
    if activation:
        x = layers.Activation(activation)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    return quantize_keras_model(model, rng.uniform(-1, 1, (16, 12, 10, 1)).astype(np.float32), "int8")


@pytest.fixture(scope="module")
def tiny() -> bytes:
    return tiny_tflite()


def test_quantize_multiplier_matches_tflite_rounding() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    # A mantissa that rounds up to 2^31 renormalises instead of overflowing int32.
    assert quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shifts below -31 flush to zero, as TFLite does
    rng = np.random.default_rng(0)
    for real in rng.uniform(1e-6, 4.0, 200):
        m, s = quantize_multiplier(float(real))
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-30


def test_activation_range_in_the_quantised_domain() -> None:
    assert activation_range("NONE", 0.1, 3, "int8") == (-128, 127)
    assert activation_range("RELU", 0.1, -20, "int8") == (-20, 127)
    assert activation_range("RELU6", 6 / 255, -128, "int8") == (-128, 127)
    assert activation_range("RELU6", 0.05, -10, "int8") == (-10, 110)
    assert activation_range("RELU_N1_TO_1", 0.01, 0, "uint8") == (0, 100)
    with pytest.raises(UserError, match="TANH"):
        activation_range("TANH", 0.1, 0, "int8")


def test_memory_plan_never_overlaps_live_tensors(tiny) -> None:
    graph = load_graph(tiny)
    layers = lower_graph(graph)
    plan = plan_memory(graph, layers)
    size = {t: nbytes(graph.tensors[t]) for t in plan.offsets}
    last_use = {t: i for i, layer in enumerate(layers) for t in layer.inputs}
    produced = {t: i for i, layer in enumerate(layers) for t in layer.outputs}
    # Tensors deliberately sharing a buffer (alias or in-place output with any of its inputs), closed transitively.
    group = {t: {t} for t in plan.offsets}
    for layer in layers:
        dst = layer.outputs[0]
        if (layer.in_place or layer.kernel == "alias") and dst in group:
            # The shared input starts where the output starts, or (a widening 1x1 conv) ends where it ends.
            shared = [
                src
                for src in layer.inputs
                if src in group
                and (
                    plan.offsets[src] == plan.offsets[dst]
                    or (plan.offsets[src] + size[src] == plan.offsets[dst] + size[dst] and size[dst] > size[src])
                )
            ]
            assert shared, f"layer {layer.op.index} runs in place but shares no input's buffer safely"
            merged = group[shared[0]] | group[dst]
            for t in merged:
                group[t] = merged
    for i in range(len(layers)):
        live = [t for t in plan.offsets if produced.get(t, -1) <= i <= last_use.get(t, len(layers))]
        for a in live:
            for b in live:
                if a < b and b not in group[a]:
                    overlap = (
                        plan.offsets[a] < plan.offsets[b] + size[b] and plan.offsets[b] < plan.offsets[a] + size[a]
                    )
                    assert not overlap, f"tensors {a} and {b} overlap while both live at layer {i}"
    # Reuse: the arena is smaller than giving every intermediate tensor its own buffer.
    assert plan.arena_bytes < sum(size.values())
    assert any(layer.in_place for layer in layers)


def test_generated_api_and_constants(tiny, tmp_path) -> None:
    result = generate_from_tflite(tiny, tmp_path)
    header = (tmp_path / "model_engine.h").read_text()
    source = (tmp_path / "model_engine.c").read_text()
    assert f"#define MODEL_ENGINE_ARENA_BYTES {result.arena_bytes}u" in header
    assert "int model_engine_invoke(const uint8_t *input, uint8_t *output);" in header
    assert "extern const runner_info_t model_engine_info;" in header
    assert '.engine = "engine"' in source
    assert ", ".join(f"0x{b:02x}" for b in hashlib.sha256(tiny).digest()) in source
    for kernel in ("eng_conv2d_s8", "eng_dwconv2d_s8", "eng_add_s8", "eng_maxpool_s8", "eng_mean_s8", "eng_softmax_s8"):
        assert kernel in source
    assert "ENG_ALIGNED(4)" in source  # weights are word-aligned for the DSP loads
    assert result.weights_bytes > 0 and result.arena_bytes == result.activation_bytes + result.scratch_bytes


def test_unsupported_op_is_one_line_naming_the_op_and_tflm(tmp_path) -> None:
    model = tiny_tflite(activation="tanh", add=False)
    with pytest.raises(UserError) as info:
        generate_from_tflite(model, tmp_path)
    message = str(info.value)
    assert "TANH" in message and "python -m tools export" in message and "\n" not in message


def test_cli_rejects_a_corrupted_tflite_in_one_line(tiny, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(tiny[: len(tiny) // 2])
    assert run_cli(codegen_cli.main, [str(bad), "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "corrupted" in err and "\n" not in err
    assert not (tmp_path / "gen" / "model_engine.c").exists()
    assert run_cli(codegen_cli.main, [str(tmp_path / "missing")]) == 2


def test_cli_on_a_bundle_records_what_it_generated(bundle_v1, tmp_path, capsys) -> None:
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(bundle_v1.path, bundle_dir)
    assert run_cli(codegen_cli.main, [str(bundle_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(bundle_dir / "codegen" / "model_engine.h"), str(bundle_dir / "codegen" / "model_engine.c")]
    meta = json.loads((bundle_dir / "model.json").read_text())["codegen"]
    assert meta["dir"] == "codegen" and meta["arena_bytes"] > 0 and meta["weights_bytes"] > 0
    assert meta["tflite_sha256"] == bundle_v1.model_id
    for name, digest in meta["files"].items():
        assert hashlib.sha256((bundle_dir / "codegen" / name).read_bytes()).hexdigest() == digest


def test_generate_paths_default_next_to_a_bare_tflite(tiny, tmp_path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny)
    paths = generate(model)
    assert paths == [tmp_path / "m_codegen" / "model_engine.h", tmp_path / "m_codegen" / "model_engine.c"]


def test_scratch_sizes_come_from_the_kernel_headers(tmp_path) -> None:
    """kernel_abi evaluates the headers' own ENG_*_SCRATCH_BYTES macros: compiled C gives the same numbers."""
    from tests.tooling import require_tool
    from tinyml.codegen.kernel_abi import ENGINE_DIR, c_call, scratch_bytes, scratch_macros

    gcc = require_tool("gcc")
    macros = scratch_macros()
    assert {"ENG_CONV_SCRATCH_BYTES", "ENG_DWCONV_SCRATCH_BYTES"} <= set(macros)
    rng = np.random.default_rng(1)
    cases = [
        (name, tuple(int(v) for v in rng.integers(1, 300, len(params))))
        for name, (params, _) in macros.items()
        for _ in range(20)
    ]
    lines = "\n".join(f'  printf("%lu\\n", (unsigned long)({c_call(name, args)}));' for name, args in cases)
    src = tmp_path / "abi.c"
    headers = "".join(
        f'#include "{h.name}"\n' for h in sorted(ENGINE_DIR.glob("*.h")) if "_SCRATCH_BYTES(" in h.read_text()
    )
    src.write_text(f"#include <stdio.h>\n{headers}int main(void) {{\n{lines}\n  return 0;\n}}\n")
    exe = tmp_path / "abi"
    subprocess.run([gcc, "-std=c99", f"-I{ENGINE_DIR}", str(src), "-o", str(exe)], check=True)
    printed = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert printed == [scratch_bytes(name, args) for name, args in cases]


def test_generated_c_refuses_to_compile_with_too_little_scratch(tiny, tmp_path) -> None:
    """The _Static_assert in model_engine.c ties the scratch region to each kernel header's macro."""
    from tests.tooling import require_tool
    from tinyml.codegen.kernel_abi import ENGINE_DIR

    gcc = require_tool("gcc")
    result = generate_from_tflite(tiny, tmp_path)
    source = tmp_path / "model_engine.c"
    text = source.read_text()
    assert text.count("_Static_assert(MODEL_ENGINE_SCRATCH_BYTES >= ENG_") >= 2
    app = ENGINE_DIR.parents[1] / "lib" / "app"
    cmd = [
        gcc,
        "-std=c99",
        "-Wall",
        "-Werror",
        "-c",
        f"-I{ENGINE_DIR}",
        f"-I{app}",
        f"-I{tmp_path}",
        str(source),
        "-o",
        str(tmp_path / "m.o"),
    ]
    subprocess.run(cmd, check=True)
    source.write_text(
        text.replace(
            f"#define MODEL_ENGINE_SCRATCH_BYTES {result.scratch_bytes}u",
            f"#define MODEL_ENGINE_SCRATCH_BYTES {result.scratch_bytes - 8}u",
        )
    )
    failed = subprocess.run(cmd, capture_output=True, text=True)
    assert failed.returncode != 0 and "scratch region smaller than its kernel needs" in failed.stderr


@pytest.mark.parametrize("in_c, taps", [(1, "first"), (3, "first"), (8, "pointwise"), (16, "pointwise")])
def test_pair_word_layout_gives_twice_every_dot_product(in_c, taps) -> None:
    """The pair-word kernels' constants (engine.h): summing lane products over a pixel's pair words must give twice
    bias + w . x for every output channel, including the int8 extremes (whose doubling overflows int8)."""
    from tinyml.codegen.ops.conv import FIRST_LAYER_TAPS, pair_word_constants, pointwise_taps

    rng = np.random.default_rng(in_c)
    k = 9 * in_c if taps == "first" else in_c
    tap_list = FIRST_LAYER_TAPS[in_c] if taps == "first" else pointwise_taps(in_c)
    w = rng.integers(-128, 128, (6, k)).astype(np.int8)
    w[0, :] = -128
    w[1, :] = 127
    bias = rng.integers(-50000, 50000, 6)
    words, bias2, records = pair_word_constants(w, tap_list, bias, [1 << 30] * 6, [-3] * 6, 5)
    lanes = words.view("<i2").reshape(3, len(tap_list), 2, 2)  # [pair][word][channel][lane]
    x = rng.integers(-128, 128, (50, k))
    assert records[:3] == [1 << 30, (1 << 2) + 5 * (1 << 3), 3] and len(records) == 18
    for oc in range(6):
        got = bias2[oc] + sum(
            int(lanes[oc // 2, j, oc % 2, lane]) * x[:, tap]
            for j, pair in enumerate(tap_list)
            for lane, tap in enumerate(pair)
            if tap is not None
        )
        np.testing.assert_array_equal(got, 2 * (bias[oc] + x @ w[oc].astype(np.int64)))
        unused = [lanes[oc // 2, j, oc % 2, 1] for j, pair in enumerate(tap_list) if pair[1] is None]
        assert all(v == 0 for v in unused)


def test_pair_word_pointwise_only_where_its_wider_weights_pay() -> None:
    """The int16 pair words cost a byte per weight more flash: a pointwise layer gets them only with at least
    ENG_PW_PAIRS_MIN_PIXELS output pixels and at most ENG_PW_PAIRS_MAX_WEIGHTS weights (the weights + 24 KB bar)."""
    from tinyml.codegen.kernel_abi import constant
    from tinyml.codegen.ops.conv import pw_pairs_applies

    few, many = constant("ENG_PW_PAIRS_MIN_PIXELS") - 1, constant("ENG_PW_PAIRS_MIN_PIXELS")
    shift = [-3] * 16
    assert pw_pairs_applies(8, 16, many, shift)
    assert not pw_pairs_applies(8, 16, few, shift)
    assert not pw_pairs_applies(48, constant("ENG_PW_PAIRS_MAX_WEIGHTS") // 48 + 2, many, shift)
