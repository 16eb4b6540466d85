"""TFLite-Micro export: the C array is the .tflite byte for byte, the generated sources compile warning-free, the
op resolver registers exactly the flatbuffer's ops, the arena figure is what tflite-micro needs, and a model too
large for a board is refused with the numbers (API and CLI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.bundle import Bundle, TensorQuant, load_bundle
from models.errors import UserError
from tests.tooling import require_tool
from tinyml.tflite_graph import load_graph
from tools import export
from tools.boards import BOARDS, KIB, check_fit, get_board

# One pytest-xdist worker runs the module, so `exported` and `large_bundle` are made once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_export")

REPO = Path(__file__).resolve().parent.parent
RUNNER_H_DIR = REPO / "firmware" / "lib" / "app"
CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _bundle_dir(fixture) -> Path:
    return Path(getattr(fixture, "path", fixture))


def _export_copy(fixture, tmp_path_factory, name: str, **kwargs) -> tuple[Bundle, export.ExportResult]:
    """Export a copy of a shared fixture bundle, so this test never rewrites the session's model.json."""
    copy = tmp_path_factory.mktemp(name) / "bundle"
    shutil.copytree(_bundle_dir(fixture), copy)
    result = export.export_bundle(copy, **kwargs)
    return load_bundle(copy), result


@pytest.fixture(scope="module", params=["bundle_v1", "bundle_v2"])
def exported(request, tmp_path_factory):
    """(bundle, ExportResult) for the conftest's V1 and V2 bundles."""
    fixture = request.getfixturevalue(request.param)
    return _export_copy(fixture, tmp_path_factory, f"export_{request.param}")


def _c_array_bytes(source: str) -> bytes:
    match = re.search(r"alignas\(16\) const unsigned char g_model_data\[\] = \{(.*?)\};", source, re.S)
    assert match, "model_data.cc must define an alignas(16) const unsigned char array"
    return bytes(int(tok, 16) for tok in re.findall(r"0x[0-9a-fA-F]{2}", match.group(1)))


def test_c_array_parses_back_to_the_tflite(exported):
    bundle, result = exported
    tflite = bundle.artifact_path("tflite").read_bytes()
    assert _c_array_bytes(result.files["model_data.cc"].read_text()) == tflite
    header = result.files["model_data.h"].read_text()
    assert f"constexpr unsigned int g_model_data_size = {len(tflite)};" in header
    assert "extern const unsigned char g_model_data[];" in header


def _op_from_method(method: str) -> str:
    """AddDepthwiseConv2D -> DEPTHWISE_CONV_2D: TFLM's resolver naming, inverted independently of export.py."""
    name = method.removeprefix("Add").replace("2D", "@")
    return re.sub(r"(?<!^)(?=[A-Z@])", "_", name).upper().replace("@", "2D")


def test_resolver_registers_exactly_the_flatbuffer_ops(exported):
    bundle, result = exported
    text = result.files["model_ops.h"].read_text()
    calls = re.findall(r"resolver\.(Add\w+)\((.*?)\) != kTfLiteOk\) return kTfLiteError;  /\* (\w+) v(\d+) \*/", text)
    graph_ops = load_graph(bundle.artifact_path("tflite")).op_set()
    assert {(_op_from_method(m), int(v)) for m, _, _, v in calls} == graph_ops
    assert {(name, int(v)) for _, _, name, v in calls} == graph_ops
    count = int(re.search(r"#define MODEL_OP_COUNT (\d+)", text).group(1))
    assert count == len(calls) == len({name for name, _ in graph_ops})
    assert "tflite::MicroMutableOpResolver<MODEL_OP_COUNT>" in text
    args = {_op_from_method(m): arg for m, arg, _, _ in calls}
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"):
        assert args[op] == f"MODEL_INT8_KERNEL(tflite::Register_{op}_INT8())"
    assert args["MEAN"] == ""  # TFLM has no INT8-specialised MEAN registration


_PRINT_INFO = r"""
#include <cstdio>
#include <cstdint>
#include "model_data.h"
#include "model_info.h"
#include "runner.h"

static_assert(MODEL_INPUT_DTYPE == RUNNER_DTYPE_INT8 || MODEL_INPUT_DTYPE == RUNNER_DTYPE_UINT8, "dtype code");
static const uint8_t model_id[RUNNER_MODEL_ID_LEN] = MODEL_ID_BYTES;
static const char *const labels[MODEL_NUM_CLASSES] = MODEL_LABELS;
static const int lut[256] = MODEL_PIXEL_LUT;

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  FILE *blob = std::fopen(argv[1], "wb");
  if (!blob || std::fwrite(g_model_data, 1, g_model_data_size, blob) != g_model_data_size) return 3;
  std::fclose(blob);
  std::printf("shape %d %d %d %u\n", MODEL_INPUT_HEIGHT, MODEL_INPUT_WIDTH, MODEL_INPUT_CHANNELS, MODEL_INPUT_BYTES);
  std::printf("input %d %.9g %d\n", MODEL_INPUT_DTYPE, (double)MODEL_INPUT_SCALE, MODEL_INPUT_ZERO_POINT);
  std::printf("output %d %.9g %d\n", MODEL_OUTPUT_DTYPE, (double)MODEL_OUTPUT_SCALE, MODEL_OUTPUT_ZERO_POINT);
  std::printf("arena %u %u\n", MODEL_ARENA_MEASURED_BYTES, MODEL_ARENA_BYTES);
  std::printf("id ");
  for (int i = 0; i < RUNNER_MODEL_ID_LEN; ++i) std::printf("%02x", model_id[i]);
  std::printf(" %s\n", MODEL_ID_HEX);
  for (int i = 0; i < MODEL_NUM_CLASSES; ++i) std::printf("label %s\n", labels[i]);
  std::printf("lut");
  for (int i = 0; i < 256; ++i) std::printf(" %d", lut[i]);
  std::printf("\n");
  return 0;
}
"""

_C99_CHECK = r"""
#include <stdint.h>
#include "model_info.h"
#include "runner.h"
static const uint8_t model_id[RUNNER_MODEL_ID_LEN] = MODEL_ID_BYTES;
static const char *const labels[MODEL_NUM_CLASSES] = MODEL_LABELS;
static const int16_t lut[256] = MODEL_PIXEL_LUT;
int main(void) { return model_id[0] + (labels[0][0] != 0) + lut[0] - lut[0] + MODEL_INPUT_BYTES * 0; }
"""


def test_generated_sources_compile_and_carry_the_bundle(exported, tmp_path):
    bundle, result = exported
    gxx, gcc = require_tool("g++"), require_tool("gcc")
    out = result.out_dir
    (tmp_path / "print_info.cc").write_text(_PRINT_INFO)
    exe = tmp_path / "print_info"
    subprocess.run(
        [
            gxx,
            *CXXFLAGS,
            f"-I{out}",
            f"-I{RUNNER_H_DIR}",
            str(out / "model_data.cc"),
            str(tmp_path / "print_info.cc"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp_path / "c99.c").write_text(_C99_CHECK)
    subprocess.run(
        [
            gcc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            f"-I{out}",
            f"-I{RUNNER_H_DIR}",
            "-fsyntax-only",
            str(tmp_path / "c99.c"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )

    blob = tmp_path / "model.bin"
    lines = subprocess.run([str(exe), str(blob)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert blob.read_bytes() == bundle.artifact_path("tflite").read_bytes()  # the compiled array is the model
    fields = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines if not line.startswith("label ")}
    h, w, c = bundle.input_shape
    assert fields["shape"].split() == [str(h), str(w), str(c), str(h * w * c)]
    codes = {"int8": 1, "uint8": 2}
    for key, quant in (("input", bundle.input_quant), ("output", bundle.output_quant)):
        code, scale, zero_point = fields[key].split()
        assert int(code) == codes[quant.dtype] and int(zero_point) == quant.zero_point
        assert float(scale) == pytest.approx(np.float32(quant.scale), rel=1e-7)
    measured, arena = map(int, fields["arena"].split())
    assert (measured, arena) == (result.arena_measured, result.arena_bytes) and arena > measured
    id_bytes, id_hex = fields["id"].split()
    assert id_bytes == id_hex == bundle.model_id
    assert [line.removeprefix("label ") for line in lines if line.startswith("label ")] == bundle.labels
    assert [int(v) for v in fields["lut"].split()] == export.pixel_lut(bundle).astype(int).tolist()


def test_pixel_lut_matches_host_preprocessing(exported):
    """The camera path's lookup table gives the same tensor as models.preprocess.prepare_frame for a flat image."""
    from models.preprocess import prepare_frame

    bundle, _ = exported
    h, w, c = bundle.input_shape
    lut = export.pixel_lut(bundle)
    for value in (0, 37, 128, 200, 255):
        frame = prepare_frame(np.full((h, w, 3), value, np.uint8), bundle)
        assert np.all(frame == lut[value])


def test_measured_arena_is_what_tflite_micro_needs(exported):
    """TFLM allocates with exactly the measured arena and fails with 1 KiB less (checked in a child process)."""
    bundle, result = exported
    check = (
        "import sys\nfrom tflite_micro import runtime\n"
        "try:\n    runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))\n"
        "except RuntimeError:\n    sys.exit(1)\n"
    )
    path = str(bundle.artifact_path("tflite"))
    for arena, expected in ((result.arena_measured, 0), (result.arena_measured - 1024, 1)):
        assert (
            subprocess.run([sys.executable, "-c", check, path, str(arena)], capture_output=True).returncode == expected
        )
    assert result.arena_bytes == export.arena_with_margin(result.arena_measured)
    assert result.arena_bytes >= result.arena_measured * 1.25 + export.ARENA_MARGIN_BYTES
    assert result.arena_bytes % 16 == 0


def test_export_records_itself_and_installs(bundle_v1, tmp_path_factory, tmp_path):
    install = tmp_path / "firmware_model"
    bundle, result = _export_copy(bundle_v1, tmp_path_factory, "install", install=True, install_dir=install)
    meta = bundle.meta["export"]
    assert meta["installed"] == str(install) and meta["arena_bytes"] == result.arena_bytes
    assert meta["op_count"] == len(result.ops) and meta["boards"]["esp32s3"]["fits"] is True
    for name, path in result.files.items():
        assert (install / name).read_bytes() == path.read_bytes()
        assert meta["files"][name] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()


# ---- board fit -------------------------------------------------------------------------------------------------
def test_fit_verdicts_name_the_numbers():
    nano = get_board("nano33ble")
    assert check_fit(nano, 100 * KIB, 50 * KIB).fits
    flash = check_fit(nano, nano.model_budget + 1, 50 * KIB)
    assert not flash.fits and "flash" in flash.problems[0] and f"{nano.model_budget / KIB:.0f} KiB" in flash.problems[0]
    ram = check_fit(nano, 100 * KIB, nano.arena_budget + 16)
    assert not ram.fits and "need more RAM" in ram.problems[0]
    buffers = check_fit(nano, 100 * KIB, nano.arena_budget - 10 * KIB, 4 * KIB)  # 3 x 4 KiB frames tip it over
    assert not buffers.fits and "frame buffers 12.0 KiB" in buffers.problems[0]
    cam = get_board("esp32cam")
    spill = check_fit(cam, 100 * KIB, cam.arena_budget + 16, 1024)
    assert spill.fits and spill.arena_in_psram and "PSRAM" in spill.summary()
    assert get_board("esp32-s3-devkitc-1") is BOARDS["esp32s3"]
    with pytest.raises(UserError, match="unknown board"):
        get_board("uno")


@pytest.fixture(scope="module")
def large_bundle(tmp_path_factory):
    """An untrained V1 width 0.5 (about 0.9 MB int8): fits the ESP32-S3's flash, not the Nano 33 BLE's.

    The classifier bias gets a spread so the logits (softmax input) have a usable quantisation scale; an untrained
    net's near-zero logits give a scale so small that TFLM's and LiteRT's softmax abort on it.
    """
    import keras

    from models.mobilenet import build_model
    from tools.quantize import quantize_keras_model

    rng = np.random.default_rng(0)
    model = build_model("mobilenet_v1", width=0.5, height=32, channels=1, classes=10)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, rng.normal(0, 2, bias.shape).astype(np.float32)])
    tflite = quantize_keras_model(model, rng.uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32))
    graph = load_graph(tflite)

    def quant(tensor) -> dict:
        q = tensor.quantization
        return TensorQuant(tensor.dtype, float(q.scale[0]), int(q.zero_point[0])).to_json()

    path = tmp_path_factory.mktemp("large") / "v1_05"
    bundle = Bundle.create(
        path,
        {
            "name": "v1_05_untrained",
            "architecture": "mobilenet_v1",
            "width": 0.5,
            "input": {"height": 32, "width": 32, "channels": 1},
            "color_mode": "grayscale",
            "preprocessing": {"resize": "crop", "range": [-1.0, 1.0]},
            "labels": [f"class{i}" for i in range(10)],
            "quantization": {"input": quant(graph.input_tensors()[0]), "output": quant(graph.output_tensors()[0])},
        },
    )
    bundle.artifact_path("tflite", required=False).write_bytes(tflite)
    bundle.record_artifact("tflite")
    bundle.save()
    return path


@pytest.mark.slow  # large_bundle converts an untrained V1 0.5
def test_too_large_for_nano_is_refused_with_numbers(large_bundle):
    size = (large_bundle / "model_int8.tflite").stat().st_size
    nano = get_board("nano33ble")
    assert size > nano.model_budget
    with pytest.raises(UserError) as err:
        export.export_bundle(large_bundle, board="nano33ble")
    message = str(err.value)
    assert "does not fit nano33ble" in message and f"{size / KIB:.1f} KiB" in message
    assert f"{nano.model_budget / KIB:.0f} KiB" in message and "--force" in message
    assert not (large_bundle / "export").exists()  # nothing written for a refused board

    forced = export.export_bundle(large_bundle, board="nano33ble", force=True)
    assert not next(f for f in forced.fits if f.board is nano).fits
    assert next(f for f in forced.fits if f.board.name == "esp32s3").fits
    assert load_bundle(large_bundle).meta["export"]["forced"] is True


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tools", "export", *args], capture_output=True, text=True, cwd=REPO, env=env
    )


@pytest.mark.slow  # large_bundle converts an untrained V1 0.5
def test_cli_refusal_is_one_line(large_bundle):
    proc = _cli(str(large_bundle), "--board", "nano33ble")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model") and "KiB" in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_reports_every_board(bundle_v1, tmp_path):
    proc = _cli(str(_bundle_dir(bundle_v1)), "--out", str(tmp_path / "out"), "--board", "esp32s3")
    assert proc.returncode == 0, proc.stderr
    for board in BOARDS:
        assert re.search(rf"^  {board}: (fits|does NOT fit)", proc.stdout, re.M)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(export.GENERATED_FILES)


@pytest.mark.parametrize("case", ["missing", "corrupt", "no-model", "changed"])
def test_cli_bad_input_is_one_line(case, tmp_path, bundle_v1):
    target = tmp_path / "bundle"
    if case != "missing":
        shutil.copytree(_bundle_dir(bundle_v1), target)
        tflite = target / "model_int8.tflite"
        if case == "corrupt":
            tflite.write_bytes(tflite.read_bytes()[:200])
        elif case == "changed":  # a valid flatbuffer, but not the one model.json recorded (HELLO would lie)
            tflite.write_bytes(tflite.read_bytes() + b"\0" * 16)
        else:
            tflite.unlink()
    proc = _cli(str(target))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")
    changed = "changed after it was recorded"  # Bundle.verified_artifact: one hash check for every step
    expected = {"missing": "does not exist", "corrupt": changed, "no-model": "quantize", "changed": changed}
    assert expected[case] in proc.stderr


# ---- camera mode preprocessing (firmware/src/camera_preprocess.cpp, built natively) -----------------------------
_CAMERA_MAIN = r"""
#include <cstdio>
#include <vector>
#include "camera_preprocess.h"
#include "model_info.h"
static const int16_t lut[256] = MODEL_PIXEL_LUT;
int main(int argc, char **argv) {
  int w = 0, h = 0, format = 0;
  if (argc != 4 || std::sscanf(argv[1], "%d", &w) != 1 || std::sscanf(argv[2], "%d", &h) != 1 ||
      std::sscanf(argv[3], "%d", &format) != 1) return 2;
  std::vector<uint8_t> src((size_t)w * h * (format == CAMERA_RGB565_BE ? 2 : 1));
  if (std::fread(src.data(), 1, src.size(), stdin) != src.size()) return 3;
  const camera_model_input model = {MODEL_INPUT_HEIGHT, MODEL_INPUT_WIDTH, MODEL_INPUT_CHANNELS, MODEL_RESIZE_MODE, lut};
  std::vector<uint8_t> out(MODEL_INPUT_BYTES);
  if (camera_preprocess(src.data(), w, h, format, &model, out.data()) != 0) return 4;
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
"""


def test_camera_preprocessing_follows_the_host(exported, tmp_path):
    """Board-side camera preprocessing gives the host's prepare_frame tensor (within one quantisation step)."""
    from models.preprocess import prepare_frame

    bundle, result = exported
    gxx = require_tool("g++")
    src_dir = REPO / "firmware" / "src"
    (tmp_path / "camera_main.cc").write_text(_CAMERA_MAIN)
    exe = tmp_path / "camera"
    subprocess.run(
        [
            gxx,
            *CXXFLAGS,
            f"-I{result.out_dir}",
            f"-I{src_dir}",
            str(src_dir / "camera_preprocess.cpp"),
            str(tmp_path / "camera_main.cc"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    h, w, c = bundle.input_shape
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (h * 2, w * 3), dtype=np.uint8)  # crop to 2h x 2w, then halve
    rgb = rng.integers(0, 256, (h * 2, w * 2, 3), dtype=np.uint8) & np.array([0xF8, 0xFC, 0xF8], np.uint8)
    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    rgb565 = ((r >> 3) << 11 | (g >> 2) << 5 | (b >> 3)).astype(">u2").tobytes()
    rgb565_full = rgb | (rgb >> np.array([5, 6, 5], np.uint8))  # what the RGB565 -> RGB888 expansion yields
    dtype = np.dtype(bundle.input_quant.dtype)
    for image, raw, fmt in ((gray, gray.tobytes(), 0), (rgb565_full, rgb565, 1)):
        proc = subprocess.run(
            [str(exe), str(image.shape[1]), str(image.shape[0]), str(fmt)], input=raw, capture_output=True, check=True
        )
        board = np.frombuffer(proc.stdout, dtype).reshape(h, w, c).astype(int)
        host = prepare_frame(image, bundle).astype(int)
        assert np.abs(board - host).max() <= 1
        assert np.mean(board == host) > 0.9
