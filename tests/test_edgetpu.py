"""tinyml/edgetpu and the edgetpu step: the compiler-log parser on real published logs, the pre-check on real
int8 models.

edgetpu_compiler cannot be installed here (x86-64 Debian package from Google's own apt repository), so the
compile step itself is not run; its output format is covered by real logs kept in tests/data/edgetpu/.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.bundle import load_bundle
from models.errors import UserError
from tinyml.edgetpu.compiler import compiler_command, failure_message, fallback_problem, find_compiler
from tinyml.edgetpu.compiler_log import CompilerLogError, merge_operation_log, parse_compiler_output, parse_size
from tinyml.edgetpu.precheck import COMPILER16_MAX_VERSION, precheck_graph, precheck_model
from tinyml.tflite_graph import load_graph
from tools import edgetpu

DATA = Path(__file__).parent / "data" / "edgetpu"


def _log(name: str) -> str:
    return (DATA / name).read_text()


# ---- the parser on real compiler output --------------------------------------------------------------------------
def test_full_mapping_operation_log():
    report = parse_compiler_output(_log("full_operation_log_v15.log"))
    assert report.compiler_version == "15.0.340273435"
    assert report.succeeded and report.error is None
    assert (report.input_model, report.output_model) == ("mnist7.tflite", "mnist7_edgetpu.tflite")
    assert [(r.op, r.count) for r in report.operators] == [
        ("SOFTMAX", 1),
        ("FULLY_CONNECTED", 2),
        ("RESHAPE", 1),
        ("CONV_2D", 2),
        ("MAX_POOL_2D", 2),
    ]
    assert all(r.mapped for r in report.operators)
    assert (report.total_ops, report.ops_on_edgetpu, report.ops_on_cpu) == (8, 8, 0)


def test_full_mapping_stdout_reads_memory_and_subgraphs():
    report = parse_compiler_output(_log("full_stdout_v16_summary.txt"))
    assert report.compiler_version == "16.0.384591198" and report.succeeded
    assert report.edgetpu_subgraphs == 1 and report.total_ops == 246
    # No "will run on CPU" lines is how the compiler says everything mapped.
    assert (report.ops_on_edgetpu, report.ops_on_cpu) == (246, 0)
    assert report.input_size_bytes == round(6.00 * 2**20)
    assert report.on_chip_used_bytes == round(5.90 * 2**20)
    assert report.on_chip_remaining_bytes == round(1.16 * 2**20)
    assert report.off_chip_bytes == round(41.75 * 1024)


def test_partial_mapping_operation_log_names_the_cpu_ops():
    report = parse_compiler_output(_log("partial_operation_log_v15.log"))
    assert report.succeeded
    assert (report.total_ops, report.ops_on_edgetpu, report.ops_on_cpu) == (10, 8, 2)
    assert [(r.op, r.status) for r in report.cpu_rows] == [
        ("QUANTIZE", "Operation is otherwise supported, but not mapped due to some unspecified limitation"),
        ("DEQUANTIZE", "Operation is working on an unsupported data type"),
    ]


def test_partial_mapping_stdout_and_its_log_agree():
    stdout = parse_compiler_output(_log("partial_stdout_v16.txt"))
    log = parse_compiler_output(_log("partial_operation_log_v16.log"))
    assert stdout.succeeded and stdout.operators == []
    assert (stdout.total_ops, stdout.ops_on_edgetpu, stdout.ops_on_cpu) == (267, 264, 3)
    assert (log.total_ops, log.ops_on_edgetpu, log.ops_on_cpu) == (267, 264, 3)
    assert {r.op for r in log.cpu_rows} == {"CUSTOM", "DEQUANTIZE"}
    assert stdout.off_chip_bytes == 0 and stdout.on_chip_used_bytes == round(4.21 * 2**20)
    assert json.loads(json.dumps(log.to_json()))["operators"][1] == {
        "op": "CUSTOM",
        "count": 1,
        "status": "Operation is working on an unsupported data type",
        "mapped": False,
    }


def test_model_the_compiler_cannot_parse():
    report = parse_compiler_output(_log("failure_op_version_v16.txt"))
    assert not report.succeeded
    assert report.unknown_op_version == ("QUANTIZE", 3)
    assert "Model could not be parsed" in report.error and report.total_ops is None


def test_failure_messages_name_the_fix():
    message = failure_message(parse_compiler_output(_log("failure_op_version_v16.txt")))
    assert message.startswith("edgetpu_compiler 16.0.384591198 cannot parse the model: QUANTIZE version 3 is newer")
    assert "post-training int8 quantization" in message and "\n" not in message
    message = failure_message(parse_compiler_output(_log("failure_large_activations_v16.txt")))
    assert message == (
        "edgetpu_compiler failed: Compilation failed due to large activation tensors in model.; "
        "its full output is in edgetpu_compiler.txt in the bundle"
    )


def test_compilation_failure_after_parsing():
    report = parse_compiler_output(_log("failure_large_activations_v16.txt"))
    assert not report.succeeded and report.unknown_op_version is None
    assert "large activation tensors" in report.error


def test_stdout_without_table_takes_the_operator_table_from_the_log():
    report = merge_operation_log(
        parse_compiler_output(_log("partial_stdout_v16.txt")), _log("partial_operation_log_v16.log")
    )
    assert sum(r.count for r in report.operators) == report.total_ops == 267
    assert report.on_chip_used_bytes == round(4.21 * 2**20)  # stdout's memory figures are kept
    problem = fallback_problem(report)
    assert problem.startswith(
        "3 of 267 ops fall back to the CPU: CUSTOM x1 (Operation is working on an unsupported data type), DEQUANTIZE x2"
    )
    assert fallback_problem(parse_compiler_output(_log("full_operation_log_v15.log"))) is None


def test_compiler_command_prints_the_table_and_writes_into_the_bundle(tmp_path):
    cmd = compiler_command("/usr/bin/edgetpu_compiler", tmp_path / "model_int8.tflite", tmp_path, 90)
    assert cmd == [
        "/usr/bin/edgetpu_compiler",
        "-s",
        "-o",
        str(tmp_path),
        "-t",
        "90",
        str(tmp_path / "model_int8.tflite"),
    ]


@pytest.mark.parametrize(
    "text", ["", "Traceback (most recent call last):\n  File x\nValueError: y\n", "Operator Count\nCONV_2D 3 mapped\n"]
)
def test_text_that_is_not_compiler_output_is_refused(text):
    with pytest.raises(CompilerLogError, match="not edgetpu_compiler output"):
        parse_compiler_output(text)


def test_sizes():
    assert parse_size("0.00B") == 0 and parse_size("512.00B") == 512
    assert parse_size("7.75KiB") == 7936 and parse_size("3.29MiB") == round(3.29 * 2**20)
    with pytest.raises(UserError, match="unreadable size"):
        parse_size("lots")


# ---- the pre-check on the project's models ------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["bundle_v1", "bundle_v2"])
def test_project_models_map_fully(fixture, request):
    bundle = request.getfixturevalue(fixture)
    bundle = load_bundle(getattr(bundle, "path", bundle))
    check = precheck_model(bundle.artifact_path("tflite"))
    assert check.version_blockers == []
    assert check.fully_mapped, check.table()
    assert check.cut_index is None and check.segment == (0, len(check.ops) - 1)
    assert check.verdict() == f"all {len(check.ops)} ops can map to the Edge TPU (one subgraph)"
    # The op versions TF 2.21 writes for our models, all old enough for compiler 16.0.
    versions = {(v.op, v.version) for v in check.ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= {op for op, _ in versions}
    assert all(v <= COMPILER16_MAX_VERSION[op] for op, v in versions)


def _quantized(model, shape) -> bytes:
    from tools.quantize import quantize_keras_model

    rng = np.random.default_rng(0)
    return quantize_keras_model(model, rng.uniform(-1, 1, (8, *shape)).astype(np.float32))


def test_uint8_input_adds_a_quantize_the_edge_tpu_maps(tmp_path):
    """A uint8 camera input makes the converter put QUANTIZE (uint8 -> int8) first; it stays on the Edge TPU."""
    import keras

    from tools.quantize import quantize_keras_model

    inp = keras.Input((16, 16, 1), batch_size=1)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(keras.layers.Conv2D(4, 3)(inp))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "uint8.tflite"
    rng = np.random.default_rng(0)
    path.write_bytes(
        quantize_keras_model(
            keras.Model(inp, out), rng.uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32), input_dtype="uint8"
        )
    )
    check = precheck_model(path)
    assert (check.ops[0].op, check.ops[0].version) == ("QUANTIZE", 1)
    assert load_graph(path).input_tensors()[0].dtype == "uint8"
    assert check.fully_mapped, check.table()


@pytest.fixture(scope="module")
def early_unsupported_model(tmp_path_factory) -> Path:
    """A real int8 model whose second op (LEAKY_RELU) is not on Coral's supported-op list."""
    import keras

    inp = keras.Input((16, 16, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, activation="softmax")(x)
    path = tmp_path_factory.mktemp("leaky") / "model_int8.tflite"
    path.write_bytes(_quantized(keras.Model(inp, x), (16, 16, 1)))
    return path


def test_unsupported_op_early_names_the_cut_point(early_unsupported_model):
    check = precheck_model(early_unsupported_model)
    names = [v.op for v in check.ops]
    assert names[:2] == ["CONV_2D", "LEAKY_RELU"]
    assert check.cut_index == 1 and check.segment == (0, 0)
    assert [v.placement for v in check.ops] == ["edgetpu"] + ["cpu"] * (len(names) - 1)
    assert check.ops[1].problems == ["not in Coral's supported-op list"]
    # Supported ops after the cut still run on the CPU, and say why.
    assert all(v.problems == [] and "after the cut at op #1" in v.note for v in check.ops[2:])
    verdict = check.verdict()
    assert "cut at op #1 LEAKY_RELU" in verdict and f"#1..#{len(names) - 1} run on the CPU" in verdict
    assert not check.fully_mapped and check.edgetpu_ops == 1


def test_dynamic_batch_is_reported(tmp_path):
    import keras

    inp = keras.Input((16, 16, 1))  # no batch_size: the converter keeps a -1 batch in the shape signature
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp)))
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(_quantized(keras.Model(inp, out), (16, 16, 1)))
    check = precheck_model(path)
    assert any("has a dynamic shape" in p for p in check.ops[0].problems)
    assert not check.fully_mapped


def test_float_model_maps_nothing(tmp_path):
    import keras
    import tensorflow as tf

    inp = keras.Input((8, 8, 1), batch_size=1)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp)))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert())
    check = precheck_model(path)
    assert check.segment is None and check.edgetpu_ops == 0
    assert any("float32, not 8-bit quantized" in p for p in check.ops[0].problems)
    assert check.verdict().startswith("no op can map to the Edge TPU")


def test_op_version_too_new_for_compiler_16_blocks(bundle_v1):
    graph = load_graph(load_bundle(getattr(bundle_v1, "path", bundle_v1)).artifact_path("tflite"))
    first_conv = next(op for op in graph.operators if op.name == "CONV_2D")
    graph.operators[first_conv.index] = dataclasses.replace(first_conv, version=6)  # what a grouped conv gets
    check = precheck_graph(graph)
    assert check.version_blockers == ["CONV_2D v6"]
    assert check.ops[first_conv.index].version_ok is False and not check.fully_mapped
    assert "cannot parse this model: CONV_2D v6" in check.verdict()
    assert "unknown to compiler 16.0" in check.table()


# ---- the step ------------------------------------------------------------------------------------------------------
@pytest.fixture
def v1_copy(bundle_v1, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(getattr(bundle_v1, "path", bundle_v1), copy)
    return copy


def test_without_compiler_prints_precheck_and_install_steps(v1_copy, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(v1_copy))  # a PATH with no edgetpu_compiler on it
    with pytest.raises(UserError) as err:
        edgetpu.main([str(v1_copy)])
    message = str(err.value)
    assert "edgetpu_compiler is not on PATH" in message and "apt-get install -y edgetpu-compiler" in message
    assert "\n" not in message
    out = capsys.readouterr().out
    assert "verdict: all" in out and "DEPTHWISE_CONV_2D" in out
    recorded = load_bundle(v1_copy).meta["edgetpu"]["precheck"]
    assert recorded["fully_mapped"] is True and recorded["total_ops"] == len(recorded["ops"])


def test_precheck_only_succeeds_for_a_mappable_model(v1_copy, capsys):
    assert edgetpu.main([str(v1_copy), "--precheck-only"]) == 0
    assert "verdict: all" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path):
    from tools.__main__ import main as tools_main

    assert tools_main(["edgetpu", str(tmp_path / "missing")]) == 2
    with pytest.raises(UserError, match="--timeout must be a positive"):
        edgetpu.main([str(tmp_path), "--timeout", "0"])
    with pytest.raises(UserError, match="not an executable file"):
        find_compiler(str(tmp_path / "nope"))
