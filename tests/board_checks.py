"""On-device checks shared by the Arduino sketch on this machine (tests/test_firmware_arduino.py: the PlatformIO
firmware on the project's Arduino stand-in) and by a real flashed board (tests/test_board_real.py, run with
``--board-port``): a labelled run through host/stream.py whose every answer is compared byte for byte with
LiteRT BUILTIN_REF (models/reference.py), and malformed requests answered with ERRORs while service goes on.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import serial

from host.results_log import read_log
from models.bundle import Bundle
from tests.test_firmware_native import _read_events
from tinyml import protocol as wire

ROOT = Path(__file__).resolve().parents[1]


def stream_labelled(bundle: Bundle, url: str, log: Path, frames: int, baud: int = 921600, exact: bool = True) -> dict:
    """``python host/stream.py BUNDLE fashion-mnist:test --limit FRAMES --port URL``, checked frame by frame.

    The CLI compares every answer with the CPU reference itself (the fidelity check); this also recomputes the
    reference for each logged frame, so a session that compared nothing cannot pass. ``exact``: every byte equal
    (the engine); else every top-1 equal and every byte within one quantisation step (TFLM's optimised kernels).
    Returns the summary.
    """
    from models.preprocess import prepare_frame
    from models.reference import ReferenceModel
    from tinyml.data import load_fashion_mnist

    run = subprocess.run([sys.executable, "host/stream.py", str(bundle.path), "fashion-mnist:test", "--limit",
                          str(frames), "--port", url, "--baud", str(baud), "--headless", "--quiet", "--log", str(log)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_log(log)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["answered"] == frames
    assert summary["compared_with_reference"] == frames and summary["agreement_top1"] == 1.0
    results = sorted((r for r in records if r["type"] == "result"), key=lambda r: r["index"])
    assert [r["index"] for r in results] == list(range(frames))
    reference = ReferenceModel(bundle.artifact_path("tflite"))
    images = load_fashion_mnist("test").images[:frames]
    tolerance = 0 if exact else 1
    differ = [r["index"] for r, image in zip(results, images, strict=True)
              if np.abs(np.asarray(r["output"]) - reference.invoke(prepare_frame(image, bundle)).reshape(-1)).max()
              > tolerance]
    assert not differ, f"{len(differ)} of {frames} answers differ from LiteRT BUILTIN_REF (frames {differ[:10]})"
    if exact:
        assert summary["agreement_exact"] == 1.0
    return summary


def check_fault_replies(bundle: Bundle, url: str, baud: int = 921600) -> None:
    """A FRAME one byte short, one with a corrupted payload and line noise each get their ERROR (in request
    order), and the intact FRAME after them gets the reference's RESULT."""
    from models.preprocess import prepare_frame
    from models.reference import ReferenceModel
    from tinyml.data import load_fashion_mnist

    tensor = prepare_frame(load_fashion_mnist("test").images[0], bundle)
    frame = tensor.tobytes()
    damaged = bytearray(wire.encode(wire.Frame(frame), seq=2))
    damaged[wire.HEADER_LEN + 5] ^= 0x10
    link = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
    try:
        link.reset_input_buffer()
        link.write(wire.encode(wire.Frame(frame[:-1]), seq=1) + bytes(damaged) + b"\x00garbage\xa5"
                   + wire.encode(wire.Frame(frame), seq=3))
        events = _read_events(link, wire.Decoder(), 3)
    finally:
        link.close()
    answers = [(e.seq, e.message()) for e in events if isinstance(e, wire.Packet) and e.type != wire.MsgType.HELLO]
    errors = [(seq, m.code) for seq, m in answers if isinstance(m, wire.Error)]
    assert errors[:2] == [(1, wire.ErrorCode.WRONG_FRAME_SIZE), (2, wire.ErrorCode.BAD_PAYLOAD_CRC)], answers
    results = [(seq, m) for seq, m in answers if isinstance(m, wire.Result)]
    assert [seq for seq, _ in results] == [3]
    assert results[0][1].output == ReferenceModel(bundle.artifact_path("tflite")).invoke(tensor).tobytes()
