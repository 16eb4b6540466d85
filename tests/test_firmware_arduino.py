"""The firmware users flash (firmware/src/main.cpp, camera.cpp), unchanged, on the project's Arduino API stand-in
(firmware/ports/arduino): compiled with g++ and arm-none-eabi-g++ -Wall -Wextra -Werror for every flag combination
that needs no TFLM or ESP-IDF header, run on a pty with host/stream.py (200 labelled frames byte-equal to LiteRT
BUILTIN_REF, a link that flips bits, malformed requests), in camera mode from image files, and cross-compiled for
the Nano 33 BLE's Cortex-M4F with its flash and RAM against the board table, then booted on QEMU."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from host.link_relay import LinkRelay
from host.sources import open_source
from host.stream import stream
from tests.board_checks import accounted, check_fault_replies, stream_labelled
from tests.tooling import require_tool
from tinyml.local_boards import NativeBoard, QemuBoard, run_frames
from tinyml.targets.serial_board import SerialBoardTarget

pytestmark = pytest.mark.c

ROOT = Path(__file__).resolve().parents[1]
SKETCH_PORT = ROOT / "firmware" / "ports" / "arduino"
LABELLED_FRAMES = 200
DAMAGED_FRAMES = 48
# Every build-flag combination of main.cpp/camera.cpp that needs neither TFLM nor ESP-IDF headers (the TFLM
# runner and ESP_PLATFORM do): camera mode, each board name branch, credits and serial settings.
FLAG_COMBINATIONS = [
    (),
    ("FIRMWARE_CAMERA=1",),
    ("ARDUINO_ARCH_MBED=1",),
    ("CONFIG_IDF_TARGET_ESP32S3=1",),
    ("FIRMWARE_CREDITS=1", "FIRMWARE_BAUD=115200", "FIRMWARE_RX_BUFFER=0"),
    ("FIRMWARE_CREDITS=7", "FIRMWARE_RX_BUFFER=16384", "FIRMWARE_CAMERA=1"),
]


@pytest.fixture(scope="module")
def sketch(bundle_v1) -> Path:
    """The sketch with the engine for bundle_v1 as a Linux executable (tools/firmware.py, cached)."""
    require_tool("g++", "sudo apt-get install -y g++")
    from tools import firmware

    return firmware.build(bundle_v1, "arduino")


@pytest.fixture
def sketch_board(sketch):
    with NativeBoard(sketch) as board:
        yield board


@pytest.mark.parametrize("board", ["native", "qemu"])
def test_sketch_compiles_for_every_flag_combination(bundle_v1, sketch, board, tmp_path) -> None:
    compiler = "g++" if board == "native" else "arm-none-eabi-g++"
    require_tool(compiler)
    model_dir = sketch.parent / "model"  # model_engine.h + model_info.h generated for bundle_v1 by the build
    for flags in FLAG_COMBINATIONS:
        run = subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(SKETCH_PORT),
                f"BOARD={board}",
                f"MODEL_DIR={model_dir}",
                f"OUT={tmp_path / 'sketch'}",
                f"DEFINES={' '.join(flags)}",
                "sketch",
            ],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"{board} {flags}: {run.stderr[-1500:]}"
        assert {p.name for p in (tmp_path / "sketch.obj").iterdir()} == {"main.o", "camera.o", "camera_preprocess.o"}


def test_sketch_streams_200_labelled_frames_equal_to_the_reference(bundle_v1, sketch_board, tmp_path) -> None:
    summary = stream_labelled(bundle_v1, sketch_board.url, tmp_path / "run.jsonl", LABELLED_FRAMES)
    assert summary["accuracy"] > 0.3  # a trained model (chance is 0.1); the exact figure is the reference's
    records = (tmp_path / "run.jsonl").read_text()
    assert '"engine": "engine"' in records and '"build": "arduino engine ' in records


def test_sketch_answers_malformed_requests_and_goes_on(bundle_v1, sketch_board) -> None:
    check_fault_replies(bundle_v1, sketch_board.url)


def test_sketch_survives_a_link_that_flips_bits(bundle_v1, sketch_board, tmp_path) -> None:
    log = tmp_path / "run.jsonl"
    height, width, channels = bundle_v1.input_shape
    with LinkRelay(lambda: sketch_board.url, flip_rate=3e-4, seed=11) as relay:
        target = SerialBoardTarget(
            relay.url,
            name="arduino",
            hello_timeout=10.0,
            reconnect_s=20.0,
            frame_timeout=2.0,
            frame_bytes=height * width * channels,
        )
        summary = stream(
            bundle_v1, open_source("fashion-mnist:test", bundle_v1.labels, count=DAMAGED_FRAMES), target, log_path=log
        )
    assert relay.flipped["to_device"] > 0
    results, losses = accounted(log, DAMAGED_FRAMES)  # each frame once, every accepted answer exact
    assert losses and summary.resent > 0 and len(results) >= 0.9 * DAMAGED_FRAMES


def _camera_frames(bundle, count: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``count`` QVGA grayscale camera frames from Fashion-MNIST test images, and the tensor each must become.

    Each image, scaled to 16x16, is drawn with 15x15-pixel blocks into the 240x240 centre of the frame (random
    noise around it, which the crop removes): a box of the board's 7.5x downscale never straddles two blocks,
    so the board's integer box average and the host's OpenCV INTER_AREA agree exactly.
    """
    from models.preprocess import prepare_frame
    from tinyml.data import load_fashion_mnist

    rng = np.random.default_rng(3)
    frames, tensors = [], []
    for image in load_fashion_mnist("test").images[:count]:
        small = cv2.resize(image.reshape(28, 28), (16, 16), interpolation=cv2.INTER_AREA)
        frame = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        frame[:, 40:280] = np.kron(small, np.ones((15, 15), dtype=np.uint8))
        frames.append(frame)
        tensors.append(prepare_frame(frame[..., None], bundle))
    return np.stack(frames), tensors


def _camera_sketch(model_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    """The native camera build (FIRMWARE_CAMERA) of the sketch for model_dir, its camera stand-in pointed at
    tmp_path/frames.raw (which the caller writes)."""
    exe = tmp_path / "camera_sketch"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(SKETCH_PORT),
            "BOARD=native",
            f"MODEL_DIR={model_dir}",
            f"OUT={exe}",
            "DEFINES=FIRMWARE_CAMERA=1",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("ARDUINO_CAMERA_FRAMES", str(tmp_path / "frames.raw"))
    return exe


def test_camera_mode_classifies_its_own_frames(bundle_v1, tmp_path, monkeypatch) -> None:
    """The ESP32-CAM build (FIRMWARE_CAMERA) with the engine: frames from the camera stand-in (the file over and
    over, as a camera never stops), preprocessed on the board, a RESULT for each, numbered by the board, equal to
    the reference on the host's tensor; host/stream.py listens to it as to a real camera board (the board
    streams from power-up, so the first answers heard need not be seq 1)."""
    from models.reference import ReferenceModel
    from tools import firmware

    frames, tensors = _camera_frames(bundle_v1, 12)
    (tmp_path / "frames.raw").write_bytes(frames.tobytes())
    model_dir = firmware.build(bundle_v1, "arduino").parent / "model"
    exe = _camera_sketch(model_dir, tmp_path, monkeypatch)
    height, width, channels = bundle_v1.input_shape
    with NativeBoard(exe) as board:
        target = SerialBoardTarget(
            board.url, name="esp32cam stand-in", frame_bytes=height * width * channels, listen=True
        )
        summary = stream(bundle_v1, None, target, log_path=tmp_path / "listen.jsonl", listen_limit=2 * len(frames))
    from host.results_log import read_log

    records = read_log(tmp_path / "listen.jsonl")
    results = [r for r in records if r["type"] == "result"]
    seqs = [r["device_seq"] for r in results]
    # the listener stops after the poll that reached its limit, which may have brought a few more
    assert summary.answered >= 2 * len(frames) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert records[0]["device"]["build"].startswith("esp32cam engine ")
    reference = ReferenceModel(bundle_v1.artifact_path("tflite"))
    expected = [reference.invoke(t).reshape(-1).tolist() for t in tensors]
    assert [r["output"] for r in results] == [expected[(seq - 1) % len(frames)] for seq in seqs]


def test_camera_mode_refuses_a_model_info_of_another_model(bundle_v1, bundle_v2, tmp_path, monkeypatch) -> None:
    """An engine build whose model_info.h (export) belongs to another model must not start the camera: no
    RESULT arrives unasked, while HELLO_REQ and host FRAMEs are still answered."""
    import time

    import serial

    from tinyml import protocol as wire
    from tools import firmware

    model_dir = tmp_path / "model"
    shutil.copytree(firmware.build(bundle_v1, "arduino").parent / "model", model_dir)
    firmware.write_model_info(bundle_v2, bundle_v2.artifact_path("tflite").read_bytes(), model_dir)
    frames, tensors = _camera_frames(bundle_v1, 2)
    (tmp_path / "frames.raw").write_bytes(frames.tobytes())
    exe = _camera_sketch(model_dir, tmp_path, monkeypatch)
    with NativeBoard(exe) as board:
        link = serial.serial_for_url(board.url, timeout=0.05)
        link.write(wire.encode(wire.HelloRequest(), seq=5))
        received, deadline = b"", time.monotonic() + 1.5
        while time.monotonic() < deadline:
            received += link.read(4096)
        link.close()
        _, results = run_frames(board.url, [tensors[0].tobytes()])
    packets = [p for p in wire.Decoder().feed(received) if isinstance(p, wire.Packet)]
    assert any(p.type == wire.MsgType.HELLO and p.seq == 5 for p in packets)
    assert not any(p.type == wire.MsgType.RESULT for p in packets)
    assert len(results) == 1


@pytest.mark.qemu
def test_sketch_cross_compiles_for_the_nano_33_ble_and_boots_on_qemu(bundle_v1, capsys) -> None:
    """arm-none-eabi-g++ with the nRF52840's Cortex-M4F flags, -Os, --gc-sections: the flash and static RAM
    figures against the board table, then the same ELF serves frames on QEMU's Cortex-M4 byte-equal to the
    reference."""
    require_tool("arm-none-eabi-g++")
    require_tool("qemu-system-arm")
    from models.preprocess import prepare_frame
    from models.reference import ReferenceModel
    from tinyml.data import load_fashion_mnist
    from tools import firmware
    from tools.boards import get_board

    elf = firmware.build(bundle_v1, "arduino-m4")
    assert firmware.main([str(bundle_v1.path), "--port", "arduino-m4"]) == 0
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed.strip())
    size = firmware.image_size(elf)
    nano = get_board("nano33ble")
    assert re.search(r"nano33ble: fits: flash \d+\.\d KiB", printed)
    assert size["text"] + size["data"] <= nano.model_budget and size["data"] + size["bss"] <= nano.arena_budget
    build_log = (elf.parent / "build.log").read_text()
    for flag in (
        "-mcpu=cortex-m4",
        "-mfpu=fpv4-sp-d16",
        "-mfloat-abi=hard",
        "-Os",
        "-ffunction-sections",
        "-fdata-sections",
        "-Wl,--gc-sections",
        "-Werror",
        "arm-none-eabi-g++",
    ):
        assert flag in build_log, flag
    tensors = [prepare_frame(image, bundle_v1) for image in load_fashion_mnist("test").images[:20]]
    with QemuBoard(elf) as board:
        hello, results = run_frames(board.url, [t.tobytes() for t in tensors])
    reference = ReferenceModel(bundle_v1.artifact_path("tflite"))
    assert hello.model_id.hex() == bundle_v1.model_id and hello.build.startswith("arduino engine ")
    assert [r.output.tobytes() for r in results] == [reference.invoke(t).tobytes() for t in tensors]
