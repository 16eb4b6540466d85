"""The native Linux port: the real firmware (app loop + protocol + engine + generated model) as a process on a
pty or stdin/stdout, driven with tinyml/protocol.py; plus tinyml/firmware.py's build cache and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import serial

from models.errors import UserError
from tests.board_checks import read_events
from tests.tooling import require_tool
from tinyml import protocol as wire
from tinyml.local_boards import NativeBoard, QemuBoard, require_executable, run_frames

pytestmark = pytest.mark.c

ROOT = Path(__file__).resolve().parents[1]
NATIVE_FRAMES = 300


@pytest.fixture(scope="module", params=["bundle_v1", "bundle_v2"])
def native(request: pytest.FixtureRequest):
    """(bundle, firmware executable) for each fixture bundle, built once through the cache."""
    require_tool("gcc", "sudo apt-get install -y gcc")
    from tinyml import firmware

    bundle = request.getfixturevalue(request.param)
    return bundle, firmware.build(bundle, "native")


@pytest.fixture(scope="module")
def test_frames(bundle_v1):
    from models.preprocess import prepare_frame
    from tinyml.data import load_fashion_mnist

    images = load_fashion_mnist("test").images[:NATIVE_FRAMES]
    return lambda bundle: [prepare_frame(image, bundle) for image in images]


def test_native_results_equal_litert_reference(native, test_frames) -> None:
    from models.reference import ReferenceModel

    bundle, exe = native
    frames = test_frames(bundle)
    with NativeBoard(exe) as board:
        hello, results = run_frames(board.url, [f.tobytes() for f in frames])
    reference = ReferenceModel(bundle.artifact_path("tflite"))
    mismatched = [
        i for i, (f, r) in enumerate(zip(frames, results)) if r.output.tobytes() != reference.invoke(f).tobytes()
    ]
    assert not mismatched, f"{len(mismatched)} of {len(frames)} RESULTs differ from LiteRT BUILTIN_REF"
    assert hello.model_id.hex() == bundle.model_id and hello.input_shape == bundle.input_shape
    assert hello.build == f"native-linux {bundle.model_id[:12]}" and hello.engine == "engine"
    assert all(r.cycles == 0 for r in results)  # no instruction counter on Linux: "not measured"
    assert all(r.latency_us < 1_000_000 for r in results)


def test_corrupt_and_wrong_frames_get_errors_then_service_continues(native, test_frames) -> None:
    bundle, exe = native
    frame = test_frames(bundle)[0].tobytes()
    good = wire.encode(wire.Frame(frame), seq=3)
    damaged = bytearray(wire.encode(wire.Frame(frame), seq=2))
    damaged[wire.HEADER_LEN + 5] ^= 0x10
    with NativeBoard(exe) as board:
        link = serial.serial_for_url(board.url, timeout=0.05)
        decoder = wire.Decoder()
        link.write(wire.encode(wire.Frame(frame[:-1]), seq=1) + bytes(damaged) + b"\x00garbage\xa5" + good)
        events = read_events(link, decoder, 3)
        link.close()
    # the boot HELLO may or may not still be in the pty when it is opened: only the answers count here
    messages = [(e.seq, e.message()) for e in events if isinstance(e, wire.Packet) and e.type != wire.MsgType.HELLO]
    assert isinstance(messages[0][1], wire.Error) and messages[0][0] == 1
    assert messages[0][1].code == wire.ErrorCode.WRONG_FRAME_SIZE and messages[0][1].detail == len(frame)
    assert isinstance(messages[1][1], wire.Error) and messages[1][0] == 2
    assert messages[1][1].code == wire.ErrorCode.BAD_PAYLOAD_CRC
    results = [(seq, m) for seq, m in messages if isinstance(m, wire.Result)]
    assert [seq for seq, _ in results] == [3]


def test_stdio_transport(native, test_frames) -> None:
    from models.reference import ReferenceModel

    bundle, exe = native
    frames = test_frames(bundle)[:5]
    request = wire.encode(wire.HelloRequest(), seq=9) + b"".join(
        wire.encode(wire.Frame(f.tobytes()), seq=10 + i) for i, f in enumerate(frames)
    )
    run = subprocess.run([str(exe), "--stdio"], input=request, capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr  # end of input = the host hung up: a clean exit
    packets = [e for e in wire.Decoder().feed(run.stdout) if isinstance(e, wire.Packet)]
    assert [p.seq for p in packets] == [0, 9, 10, 11, 12, 13, 14]  # boot HELLO, HELLO, five RESULTs
    reference = ReferenceModel(bundle.artifact_path("tflite"))
    for packet, frame in zip(packets[2:], frames):
        assert packet.message().output == reference.invoke(frame).tobytes()


def test_bad_command_line_is_one_line(native) -> None:
    _, exe = native
    run = subprocess.run([str(exe), "--bogus"], capture_output=True, text=True, timeout=10)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "usage" in run.stderr


def test_killed_board_restarts_on_a_new_pty(native, test_frames) -> None:
    bundle, exe = native
    frame = test_frames(bundle)[0].tobytes()
    board = NativeBoard(exe)
    try:
        first_url = board.start()
        _, first = run_frames(first_url, [frame])
        board.kill()
        assert not board.running
        _, again = run_frames(board.restart(), [frame])
        assert again[0].output.tobytes() == first[0].output.tobytes()
    finally:
        board.stop()
    assert board.url is None and not board.running


# ---- tinyml/firmware.py ----------------------------------------------------------------------------------
def test_build_is_cached(native) -> None:
    from tinyml import firmware

    bundle, exe = native
    stamp = exe.stat().st_mtime_ns
    assert firmware.build(bundle, "native") == exe
    assert exe.stat().st_mtime_ns == stamp  # not rebuilt
    key = (exe.parent / "stamp").read_text()
    assert key == firmware.source_digest(firmware.PORTS["native"], bundle.model_id)


def test_build_errors_are_one_line(bundle_v1, tmp_path) -> None:
    from tinyml import firmware

    with pytest.raises(UserError, match="unknown firmware port 'esp32'; choose one of: qemu, native"):
        firmware.build(bundle_v1, "esp32")
    run = subprocess.run(
        [sys.executable, "-m", "tools", "firmware", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 2 and run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr


def test_missing_tools_name_the_apt_package(tmp_path) -> None:
    with pytest.raises(
        UserError, match=r"no-such-qemu not found on PATH; install it with: sudo apt-get install -y pkg"
    ):
        require_executable("no-such-qemu", "pkg")
    with pytest.raises(UserError, match="does not exist; build it with"):
        QemuBoard(tmp_path / "absent.elf")
    not_a_program = tmp_path / "firmware"
    not_a_program.write_text("not an executable")
    with pytest.raises(UserError, match=r"cannot run .*Permission denied.*--port native"):
        NativeBoard(not_a_program).start()


def test_sanitized_firmware_survives_a_random_damaged_stream(bundle_v1, test_frames, tmp_path) -> None:
    """The whole native firmware (port + app + protocol + engine + generated model) under AddressSanitizer and
    UBSan, fed intact frames interleaved with noise, truncations and bit flips: no sanitizer report, a clean
    exit, and every intact frame answered with the reference's bytes."""
    from models.reference import ReferenceModel
    from tinyml import firmware

    firmware.build(bundle_v1, "native")  # generates (or reuses) the model C next to the cached image
    model_dir = firmware.build_dir(bundle_v1, "native") / "model"
    exe = tmp_path / "firmware_asan"
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "firmware" / "ports" / "native"),
            f"MODEL_DIR={model_dir}",
            f"OUT={exe}",
            "SANITIZE=1",
        ],
        check=True,
        capture_output=True,
    )
    rng = np.random.default_rng(7)
    frames = test_frames(bundle_v1)[:40]
    stream, intact_seqs = bytearray(), []
    for i, frame in enumerate(frames):
        damaged = bytearray(wire.encode(wire.Frame(frame.tobytes()), seq=1000 + i))
        kind = i % 4
        if kind == 0:
            stream += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 1:
            stream += damaged[: int(rng.integers(1, len(damaged)))]
        elif kind == 2:
            damaged[int(rng.integers(0, len(damaged)))] ^= 1 << int(rng.integers(0, 8))
            stream += damaged
        stream += wire.encode(wire.Frame(frame.tobytes()), seq=i + 1)
        intact_seqs.append(i + 1)
    run = subprocess.run([str(exe), "--stdio"], input=bytes(stream), capture_output=True, timeout=120)
    assert run.returncode == 0 and b"Sanitizer" not in run.stderr and b"runtime error" not in run.stderr, run.stderr[
        -2000:
    ]
    reference = ReferenceModel(bundle_v1.artifact_path("tflite"))
    results = {
        p.seq: p.message()
        for p in wire.Decoder().feed(run.stdout)
        if isinstance(p, wire.Packet) and p.type == wire.MsgType.RESULT
    }
    assert sorted(s for s in results if s < 1000) == intact_seqs
    for i, frame in enumerate(frames):
        assert results[i + 1].output == reference.invoke(frame).tobytes()
