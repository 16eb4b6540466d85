"""The QEMU mps2-an386 port: startup, UART0, SysTick timing and semihosting exit (smoke firmware), then the
inference firmware end to end against the LiteRT reference."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from tests.tooling import require_tool
from tinyml.local_boards import QemuBoard

pytestmark = pytest.mark.qemu

PORT_DIR = Path(__file__).resolve().parents[1] / "firmware" / "ports" / "qemu_mps2"


@pytest.fixture(scope="session")
def smoke_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The port self-test program (firmware/ports/qemu_mps2/smoke.c), built once per session."""
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    out = tmp_path_factory.mktemp("qemu_smoke") / "smoke.elf"
    subprocess.run(
        ["make", "-s", "-C", str(PORT_DIR), f"SRCS={PORT_DIR / 'smoke.c'}", "INCLUDES=", f"OUT={out}"],
        check=True,
        capture_output=True,
    )
    return out


def _command(link: serial.Serial, line: str) -> str:
    link.write(line.encode() + b"\n")
    reply = link.readline()
    assert reply.endswith(b"\n"), f"no reply to {line!r} (got {reply!r})"
    return reply.decode().strip()


def test_smoke_boots_echoes_and_exits_with_status(smoke_elf: Path) -> None:
    with QemuBoard(smoke_elf) as board:
        link = serial.serial_for_url(board.url, timeout=10)
        assert link.readline() == b"smoke qemu-mps2-an386\n"
        payload = "x" * 120  # longer than any buffer in the UART path: proves no byte is dropped
        assert _command(link, "e" + payload) == payload
        link.write(b"x42\n")
        assert board.wait(timeout=10) == 42
        link.close()


def test_smoke_instruction_count_is_exact_and_survives_systick_wrap(smoke_elf: Path) -> None:
    """The spin loop runs 2 instructions per iteration; SysTick x 40 must count them to within one tick plus
    the fixed measurement overhead, also past the 24-bit SysTick wrap (2^24 ticks = 671 M instructions)."""
    with QemuBoard(smoke_elf) as board:
        link = serial.serial_for_url(board.url, timeout=30)
        link.readline()
        counts = {}
        for n in (1_000, 1_000_000, 360_000_000):
            words = _command(link, f"c{n}").split()
            assert words[0] == "cycles" and words[2] == "us"
            counts[n] = int(words[1])
            assert 2 * n <= counts[n] <= 2 * n + 200, (n, counts[n])
            assert abs(int(words[3]) - counts[n] / 1000) < 2  # 1 instruction = 1 ns; two truncated readings
        link.write(b"x0\n")
        assert board.wait(timeout=10) == 0


def test_smoke_fault_ends_emulation_with_fault_status(smoke_elf: Path) -> None:
    with QemuBoard(smoke_elf) as board:
        link = serial.serial_for_url(board.url, timeout=10)
        link.readline()
        link.write(b"f\n")
        assert board.wait(timeout=10) == 3  # startup.c FAULT_EXIT_STATUS
        link.close()


def test_board_restart_gives_a_fresh_boot(smoke_elf: Path) -> None:
    board = QemuBoard(smoke_elf)
    try:
        first = serial.serial_for_url(board.start(), timeout=10)
        assert first.readline().startswith(b"smoke")
        board.kill()
        first.close()
        second = serial.serial_for_url(board.restart(), timeout=10)
        assert second.readline().startswith(b"smoke")
        assert _command(second, "eagain") == "again"
        second.close()
    finally:
        board.stop()
    assert not board.running


def test_board_never_takes_a_port_another_process_grabbed_first(smoke_elf: Path, monkeypatch) -> None:
    """The race parallel tests run into: the free port QEMU is given is taken by someone else before QEMU binds
    it. The squatter's socket is LISTEN on that port too, so the board must see that the listener is not QEMU's,
    let QEMU fail on it, and start again on another port rather than hand out the squatter's address."""
    import socket

    from tinyml import local_boards

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    free = local_boards._free_tcp_port
    monkeypatch.setattr(local_boards, "_free_tcp_port", lambda: next(ports, None) or free())
    try:
        with QemuBoard(smoke_elf) as board:
            assert board.port != taken and board.url == f"socket://127.0.0.1:{board.port}"
            link = serial.serial_for_url(board.url, timeout=10)
            assert link.readline() == b"smoke qemu-mps2-an386\n"
            link.write(b"x0\n")
            assert board.wait(timeout=10) == 0
            link.close()
    finally:
        squatter.close()


# ---- the inference firmware end to end ----------------------------------------------------------------
QEMU_FRAMES = 200  # Fashion-MNIST test images per model (about 60 ms each through the emulated UART)


@pytest.fixture(scope="module", params=["bundle_v1", "bundle_v2"])
def qemu_run(request: pytest.FixtureRequest):
    """Build the QEMU firmware for the bundle, stream test images through it; (bundle, frames, hello, results)."""
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    from models.preprocess import prepare_frame
    from tinyml import firmware
    from tinyml.data import load_fashion_mnist
    from tinyml.local_boards import run_frames

    bundle = request.getfixturevalue(request.param)
    elf = firmware.build(bundle, "qemu")
    test_split = load_fashion_mnist("test")
    frames = [prepare_frame(image, bundle) for image in test_split.images[:QEMU_FRAMES]]
    with QemuBoard(elf) as board:
        hello, results = run_frames(board.url, [f.tobytes() for f in frames])
    return bundle, frames, hello, results


def test_qemu_results_equal_litert_reference(qemu_run) -> None:
    from models.reference import ReferenceModel

    bundle, frames, _, results = qemu_run
    reference = ReferenceModel(bundle.artifact_path("tflite"))
    mismatched = [
        i
        for i, (frame, result) in enumerate(zip(frames, results))
        if result.output.tobytes() != reference.invoke(frame).tobytes()
    ]
    assert len(results) == QEMU_FRAMES
    assert not mismatched, (
        f"{len(mismatched)} of {QEMU_FRAMES} RESULTs differ from LiteRT BUILTIN_REF, first {mismatched[:5]}"
    )


def test_qemu_hello_describes_the_bundle(qemu_run) -> None:
    bundle, _, hello, _ = qemu_run
    assert hello.model_id.hex() == bundle.model_id
    assert hello.input_shape == bundle.input_shape
    assert hello.num_classes == len(bundle.labels)
    quant = bundle.input_quant
    assert (hello.in_dtype, hello.in_zero_point) == (quant.dtype, quant.zero_point)
    assert hello.in_scale == pytest.approx(quant.scale, rel=1e-6)
    assert hello.engine == "engine" and hello.build.startswith("qemu-mps2-an386 " + bundle.model_id[:12])
    assert hello.credits >= 1 and hello.max_payload >= np.prod(bundle.input_shape)


def test_qemu_reports_instruction_count_and_virtual_time(qemu_run) -> None:
    """RESULT carries SysTick ticks x 40 (exact instructions under -icount shift=0) and microseconds of virtual
    time (1 instruction = 1 ns). Loop trip counts depend only on shapes, so the count may vary only through the
    few data-dependent paths (clamps, saturation): a few per cent at most."""
    _, _, _, results = qemu_run
    cycles = [r.cycles for r in results]
    assert min(cycles) > 100_000 and all(c % 40 == 0 for c in cycles), (min(cycles), max(cycles))
    assert max(cycles) - min(cycles) < 0.05 * min(cycles), (min(cycles), max(cycles))
    # each is a difference of two truncated readings taken a few instructions apart: within 2 us of each other
    off = [(r.latency_us, r.cycles) for r in results if abs(r.latency_us - r.cycles / 1000) >= 2]
    assert not off, f"inference_us disagrees with cycles / 1000: {off[:5]}"


def test_qemu_damaged_input_gets_errors_and_service_continues(bundle_v1) -> None:
    """On the Cortex-M4 itself: wrong-size and corrupt frames and noise are answered with ERRORs in request order,
    the intact frame after them gets the reference's RESULT, and PONG comes last."""
    require_tool("arm-none-eabi-gcc", "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi")
    require_tool("qemu-system-arm", "sudo apt-get install -y qemu-system-arm")
    from models.preprocess import prepare_frame
    from models.reference import ReferenceModel
    from tinyml import firmware
    from tinyml import protocol as wire
    from tinyml.data import load_fashion_mnist

    frame = prepare_frame(load_fashion_mnist("test").images[0], bundle_v1)
    pixels = frame.tobytes()
    damaged = bytearray(wire.encode(wire.Frame(pixels), seq=2))
    damaged[wire.HEADER_LEN + 7] ^= 0x04
    stream = (
        wire.encode(wire.Frame(pixels[:-3]), seq=1)
        + bytes(damaged)
        + b"\x11noise\xa5\x5a\x00"
        + wire.encode(wire.Frame(pixels), seq=3)
        + wire.encode(wire.Ping(b"end"), seq=4)
    )
    with QemuBoard(firmware.build(bundle_v1, "qemu")) as board:
        link = serial.serial_for_url(board.url, timeout=0.05)
        decoder, answers = wire.Decoder(), []
        deadline = time.monotonic() + 30
        link.write(stream)
        while not any(isinstance(m, wire.Pong) for _, m in answers) and time.monotonic() < deadline:
            answers += [
                (e.seq, e.message())
                for e in decoder.feed(link.read(max(1, link.in_waiting)))
                if isinstance(e, wire.Packet) and e.type != wire.MsgType.HELLO
            ]
        link.close()
    with_seq = [(seq, m) for seq, m in answers if not (isinstance(m, wire.Error) and not m.seq_valid)]
    assert [seq for seq, _ in with_seq] == [1, 2, 3, 4], answers
    assert with_seq[0][1].code == wire.ErrorCode.WRONG_FRAME_SIZE and with_seq[0][1].detail == len(pixels)
    assert with_seq[1][1].code == wire.ErrorCode.BAD_PAYLOAD_CRC
    assert with_seq[2][1].output == ReferenceModel(bundle_v1.artifact_path("tflite")).invoke(frame).tobytes()
    assert with_seq[3][1].data == b"end"


def test_qemu_that_cannot_start_is_a_one_line_error(smoke_elf: Path) -> None:
    from models.errors import UserError

    board = QemuBoard(smoke_elf, extra_args=["-no-such-option"])
    with pytest.raises(UserError, match=r"failed to start: .*no-such-option") as raised:
        board.start()
    assert "\n" not in str(raised.value) and not board.running
