"""On-device checks shared by the Arduino sketch on this machine (tests/test_firmware_arduino.py: the PlatformIO
firmware on the project's Arduino stand-in) and by a real flashed board (tests/test_board_real.py, run with
``--board-port``): a labelled run through host/stream.py whose every answer is compared byte for byte with
the board engine's oracle (models.reference.reference_for: LiteRT BUILTIN_REF for the project's engine, the
tflite-micro runtime for TFLM firmware), and malformed requests answered with ERRORs while service goes on.
Also the two helpers the board test modules share: ``read_events`` (decoded events off a link) and ``accounted``
(the stream log's accounting promise).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import serial

from host.results_log import check_accounted, read_log
from models.bundle import Bundle
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
    from models.reference import reference_for
    from tinyml.data import load_fashion_mnist

    run = subprocess.run(
        [
            sys.executable,
            "host/stream.py",
            str(bundle.path),
            "fashion-mnist:test",
            "--limit",
            str(frames),
            "--port",
            url,
            "--baud",
            str(baud),
            "--headless",
            "--quiet",
            "--log",
            str(log),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_log(log)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["answered"] == frames
    assert summary["compared_with_reference"] == frames and summary["agreement_top1"] == 1.0
    results = sorted((r for r in records if r["type"] == "result"), key=lambda r: r["index"])
    assert [r["index"] for r in results] == list(range(frames))
    engine = next(r for r in records if r["type"] == "start")["device"]["engine"]
    reference, runtime = reference_for(engine, bundle.artifact_path("tflite"))
    assert summary["reference"] == runtime
    images = load_fashion_mnist("test").images[:frames]
    tolerance = 0 if exact else 1
    differ = [
        r["index"]
        for r, image in zip(results, images, strict=True)
        if np.abs(np.asarray(r["output"]) - reference.invoke(prepare_frame(image, bundle)).reshape(-1)).max()
        > tolerance
    ]
    assert not differ, f"{len(differ)} of {frames} answers differ from {runtime} (frames {differ[:10]})"
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
        link.write(
            wire.encode(wire.Frame(frame[:-1]), seq=1)
            + bytes(damaged)
            + b"\x00garbage\xa5"
            + wire.encode(wire.Frame(frame), seq=3)
        )
        events = read_events(link, wire.Decoder(), 3)
    finally:
        link.close()
    answers = [(e.seq, e.message()) for e in events if isinstance(e, wire.Packet) and e.type != wire.MsgType.HELLO]
    errors = [(seq, m.code) for seq, m in answers if isinstance(m, wire.Error)]
    assert errors[:2] == [(1, wire.ErrorCode.WRONG_FRAME_SIZE), (2, wire.ErrorCode.BAD_PAYLOAD_CRC)], answers
    results = [(seq, m) for seq, m in answers if isinstance(m, wire.Result)]
    assert [seq for seq, _ in results] == [3]
    assert results[0][1].output == ReferenceModel(bundle.artifact_path("tflite")).invoke(tensor).tobytes()


def read_events(link, decoder: wire.Decoder, count: int, timeout: float = 10.0) -> list:
    """Decoded events until ``count`` answers (anything but HELLO) arrived."""
    events: list = []
    deadline = time.monotonic() + timeout
    answers = 0
    while answers < count and time.monotonic() < deadline:
        new = decoder.feed(link.read(max(1, link.in_waiting)))
        events += new
        answers += sum(not (isinstance(e, wire.Packet) and e.type == wire.MsgType.HELLO) for e in new)
    assert answers >= count, f"got {events}"
    return events


def accounted(log: Path, frames: int | None) -> tuple[list[dict], list[dict]]:
    """Check the accounting promise; return (results, losses).

    Every seq sent has exactly one record; every frame of the slice was sent, answered at most once, and each of
    its lost attempts but the last says it was sent again.
    """
    records = read_log(log)
    check_accounted(records)
    done = [r for r in records if r["type"] in ("result", "lost")]
    assert sorted(r["seq"] for r in done) == list(range(1, len(done) + 1))
    attempts: dict[str, list[dict]] = {}
    for r in done:
        attempts.setdefault(r["frame"], []).append(r)
    if frames is not None:
        assert len(attempts) == frames
    for name, recs in attempts.items():
        assert sum(r["type"] == "result" for r in recs) <= 1, f"{name} answered twice"
        assert all(r["type"] == "lost" and r["resend"] for r in recs[:-1]), f"{name}: attempt after an answer"
        assert recs[-1]["type"] == "result" or not recs[-1]["resend"]
    results = [r for r in done if r["type"] == "result"]
    losses = [r for r in done if r["type"] == "lost"]
    assert all(r["reason"] for r in losses)
    assert all(r["exact"] for r in results), "an answer differs from the CPU reference"
    assert records[-1]["type"] == "summary"
    return results, losses
