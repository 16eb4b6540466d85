"""host/ pieces that need no model: compatibility check, log accounting, sources, frame dropping, CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from host.results_log import ResultsLog, check_accounted, read_log
from host.sources import ArraySource, LatestFrame, PacedSource, camera_capture_size, open_source
from models.bundle import Bundle, TensorQuant
from models.errors import UserError
from tinyml.protocol import Hello
from tinyml.targets.base import DeviceInfo, check_compatible
from tinyml.transport import SerialLink

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["cat", "dog", "fox"]


@pytest.fixture
def meta_bundle(tmp_path: Path) -> Bundle:
    """A bundle with model.json only (what the host-side checks read)."""
    return Bundle.create(
        tmp_path / "b",
        {
            "name": "b",
            "architecture": "mobilenet_v1",
            "input": {"height": 32, "width": 32, "channels": 1},
            "color_mode": "grayscale",
            "preprocessing": {"resize": "crop", "range": [-1.0, 1.0]},
            "labels": LABELS,
            "quantization": {
                "input": {"dtype": "int8", "scale": 0.0078125, "zero_point": -1},
                "output": {"dtype": "int8", "scale": 0.00390625, "zero_point": -128},
            },
            "artifacts": {"tflite": {"file": "model_int8.tflite", "sha256": "ab" * 32}},
        },
    )


def _info(bundle: Bundle, **changes) -> DeviceInfo:
    fields = dict(
        model_id=bundle.model_id,
        input_shape=bundle.input_shape,
        input_quant=bundle.input_quant,
        num_classes=len(bundle.labels),
        output_quant=bundle.output_quant,
        engine="engine",
        credits=2,
    )
    fields.update(changes)
    return DeviceInfo(**fields)


def test_device_info_from_hello() -> None:
    hello = Hello(
        bytes(range(32)),
        (96, 96, 1),
        "int8",
        0.0078125,
        -1,
        10,
        "int8",
        0.00390625,
        -128,
        "engine",
        "native test",
        credits=2,
        max_payload=9216,
    )
    info = DeviceInfo.from_hello(hello)
    assert info.model_id == bytes(range(32)).hex() and info.credits == 2 and info.input_shape == (96, 96, 1)
    assert info.input_quant == TensorQuant("int8", 0.0078125, -1) and info.output_quant.zero_point == -128
    assert (info.engine, info.build, info.max_payload, info.num_classes) == ("engine", "native test", 9216, 10)


def test_compatible_board_accepted(meta_bundle):
    check_compatible(meta_bundle, _info(meta_bundle))


@pytest.mark.parametrize(
    "change, theirs, ours",
    [
        (dict(model_id="cd" * 32), "cdcdcdcd", "abababab"),
        (dict(input_shape=(96, 96, 3)), "96x96x3", "32x32x1"),
        (dict(input_quant=TensorQuant("int8", 0.5, 0)), "scale=0.5 zero_point=0", "scale=0.0078125 zero_point=-1"),
        (dict(output_quant=TensorQuant("uint8", 0.00390625, 0)), "uint8", "int8 scale=0.00390625 zero_point=-128"),
        (dict(num_classes=10), "10 classes", "3 classes"),
    ],
)
def test_incompatible_board_refused_with_both_values(meta_bundle, change, theirs, ours):
    with pytest.raises(UserError) as exc:
        check_compatible(meta_bundle, _info(meta_bundle, **change), where="board")
    message = str(exc.value)
    assert theirs in message and ours in message and "\n" not in message
    assert "flash firmware built from this bundle" in message


def test_log_is_flushed_per_record_and_accounting_catches_duplicates(tmp_path):
    path = tmp_path / "run.jsonl"
    with ResultsLog(path) as log:
        log.write("result", seq=1, output=np.array([1, 2], np.int8))
        assert read_log(path)[0]["output"] == [1, 2]  # readable before close: flushed per record
        log.write("lost", seq=2, reason="device reset")
    with open(path, "a") as fh:
        fh.write('{"type": "result", "seq": 3')  # a torn last line from a killed process
    assert check_accounted(read_log(path)) == {"result": 1, "lost": 1}
    with pytest.raises(ValueError, match="seq 1 recorded twice"):
        check_accounted([{"type": "result", "seq": 1}, {"type": "lost", "seq": 1}])


def test_log_path_unwritable_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write log"):
        ResultsLog(blocker / "sub" / "run.jsonl")


def test_live_source_drops_frames_instead_of_queueing():
    images = np.zeros((200, 4, 4), np.uint8)
    live = PacedSource(ArraySource(images, None, "fast"), fps=2000.0)
    reader = LatestFrame(live)
    taken = []
    while not reader.exhausted:
        frame = reader.take(0.05)
        if frame is not None:
            taken.append(frame.index)
            time.sleep(0.01)  # a slow link: ~100 frames/s against a 2000 frames/s source
    reader.stop()
    assert reader.read == 200
    assert reader.dropped > 100 and reader.dropped + len(taken) == reader.read
    assert taken == sorted(taken) and taken[-1] == 199  # always the newest frame, the last one included


def test_labelled_folder_maps_class_names_to_bundle_labels(tmp_path):
    import cv2

    for name, value in (("dog", 50), ("CAT", 200)):
        (tmp_path / "data" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / name / "a.png"), np.full((8, 8), value, np.uint8))
    source = open_source(str(tmp_path / "data"), LABELS)
    frames = list(source)
    assert source.labelled and {(f.label, int(f.image[0, 0, 0])) for f in frames} == {(0, 200), (1, 50)}
    (tmp_path / "data" / "owl").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "owl" / "b.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(UserError, match=r"\(owl\) that are not labels of the bundle"):
        open_source(str(tmp_path / "data"), LABELS)


def test_flat_folder_is_unlabelled_and_slices(tmp_path):
    import cv2

    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    source = open_source(str(tmp_path), LABELS, start=1, count=3)
    frames = list(source)
    assert not source.labelled and [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no/such/thing", "is not a camera index, stream URL, dataset name or existing path"),
        ("fashion-mnist:validation", "unknown split"),
    ],
)
def test_bad_source_specs(spec, message):
    with pytest.raises(UserError, match=message):
        open_source(spec, LABELS)


def test_camera_mode_covers_the_model_input():
    assert camera_capture_size((96, 96, 3)) == (320, 240)
    assert camera_capture_size((224, 320, 3)) == (320, 240)
    assert camera_capture_size((300, 300, 3)) == (640, 480)


def test_missing_port_is_a_one_line_user_error():
    with pytest.raises(UserError, match=r"cannot open /dev/ttyNOPE0 .*check the cable/URL"):
        SerialLink("/dev/ttyNOPE0").open()


def _run_stream(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "host/stream.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_help_documents_every_option_with_examples():
    from host.stream import build_parser

    result = _run_stream("--help")
    assert result.returncode == 0
    for action in build_parser()._actions:
        assert action.help, f"option {action.option_strings or action.dest} has no help text"
        for flag in action.option_strings:
            assert flag in result.stdout
    assert "examples:" in result.stdout and "--board qemu" in result.stdout and "--port /dev/ttyUSB0" in result.stdout


def test_no_target_and_no_board_names_the_options(meta_bundle):
    from tinyml.transport import list_serial_ports

    if list_serial_ports():
        pytest.skip("this machine has a USB serial port; stream.py would use it")
    result = _run_stream(str(meta_bundle.path), "fashion-mnist:test", "--headless")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no target named and no serial board found" in result.stderr
    for option in ("--port", "--board qemu", "--cpu", "--coral"):
        assert option in result.stderr


def test_user_mistakes_exit_2_without_traceback(tmp_path):
    result = _run_stream(str(tmp_path / "missing"), "--cpu", "--headless")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: bundle") and len(result.stderr.strip().splitlines()) == 1


def test_overlay_draws_label_on_an_upscaled_frame():
    from host.display import Status, annotate

    image = np.full((28, 28), 90, np.uint8)
    plain = annotate(image, Status(label="", score=0.0, fps=0.0))
    drawn = annotate(image, Status(label="sneaker", score=0.93, fps=12.5, device_ms=3.87, accuracy=0.5))
    assert drawn.shape == (480, 480, 3) and drawn.dtype == np.uint8
    assert (drawn != plain).any(axis=2).sum() > 500  # the text pixels
    assert "device 3.87 ms" in Status(label="x", device_ms=3.87, lost=2).line()


def test_window_without_gui_opencv_names_headless(meta_bundle):
    import cv2

    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI; the window would open")
    except cv2.error:
        pass
    result = _run_stream(str(meta_bundle.path), "fashion-mnist:test", "--cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no GUI" in result.stderr and "--headless" in result.stderr


def test_listen_mode_records_what_a_camera_board_sends(meta_bundle, tmp_path):
    """Camera-mode firmware (ESP32-CAM) captures frames itself and sends RESULTs with its own seqs. No such
    firmware runs here, so the board's bytes are written into a real pty with the protocol's encoder."""
    import threading
    import tty

    from host.stream import stream
    from tinyml import protocol as proto
    from tinyml.targets.serial_board import SerialBoardTarget

    master, slave = os.openpty()
    tty.setraw(slave)
    q_in, q_out = meta_bundle.input_quant, meta_bundle.output_quant
    hello = proto.Hello(
        bytes.fromhex(meta_bundle.model_id),
        meta_bundle.input_shape,
        q_in.dtype,
        q_in.scale,
        q_in.zero_point,
        len(LABELS),
        q_out.dtype,
        q_out.scale,
        q_out.zero_point,
        "tflm",
        "esp32cam",
        credits=1,
        max_payload=32 * 32,
    )

    def board() -> None:
        decoder = proto.Decoder()
        while True:  # answer the host's HELLO_REQ (the boot HELLO went out before the port was opened)
            packets = [e for e in decoder.feed(os.read(master, 4096)) if isinstance(e, proto.Packet)]
            requests = [p for p in packets if p.type == proto.MsgType.HELLO_REQ]
            if requests:
                os.write(master, proto.encode(hello, requests[0].seq))
                break
        for i, seq in enumerate((100, 101, 102)):
            time.sleep(0.05)
            output = np.full(len(LABELS), -128, np.int8)
            output[i] = 100
            os.write(master, proto.encode(proto.Result(2500, 0, output.tobytes()), seq))
            if i == 0:
                os.write(master, proto.encode(proto.Error(int(proto.ErrorCode.RUNNER), True, 4), 77))

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    log = tmp_path / "cam.jsonl"
    target = SerialBoardTarget(os.ttyname(slave), name="cam", listen=True, hello_timeout=5.0)
    summary = stream(meta_bundle, None, target, log_path=log, listen_limit=3)
    thread.join()
    os.close(master)
    os.close(slave)
    records = read_log(log)
    results = [r for r in records if r["type"] == "result"]
    assert [(r["seq"], r["device_seq"], r["pred_label"]) for r in results] == [
        (1, 100, "cat"),
        (2, 101, "dog"),
        (3, 102, "fox"),
    ]
    assert all(r["device_us"] == 2500 and "round_trip_ms" not in r for r in results)
    assert any(r["type"] == "notice" and "RUNNER" in r["message"] for r in records)
    assert summary.answered == 3 and summary.sent == 0 and check_accounted(records)["result"] == 3


def test_listening_needs_a_serial_board(meta_bundle):
    result = _run_stream(str(meta_bundle.path), "board", "--cpu", "--headless")
    assert result.returncode == 2 and "listens to a camera-mode board over serial" in result.stderr


def test_handshake_timeout_says_whether_anything_arrived():
    """A board printing text (or at the wrong baud rate) is told apart from a silent one."""
    import threading
    import tty

    from tinyml.targets.serial_board import HandshakeTimeout, SerialBoardTarget

    for chatter, expected in (
        (b"Guru Meditation Error: Core 1 panic'ed\r\n", "bytes arrived but none formed a valid"),
        (b"", "nothing arrived"),
    ):
        master, slave = os.openpty()
        tty.setraw(slave)
        stop = threading.Event()

        def board(stop: threading.Event = stop, master: int = master, chatter: bytes = chatter) -> None:
            while not stop.is_set():
                if chatter:
                    os.write(master, chatter)
                time.sleep(0.05)

        thread = threading.Thread(target=board, daemon=True)
        thread.start()
        try:
            with pytest.raises(HandshakeTimeout, match=expected):
                SerialBoardTarget(os.ttyname(slave), hello_timeout=1.0).open()
        finally:
            stop.set()
            thread.join()
            os.close(master)
            os.close(slave)


def test_port_held_by_another_program_is_named():
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    first = SerialLink(os.ttyname(slave))
    first.open()
    try:
        with pytest.raises(UserError, match="is in use by another program"):
            SerialLink(os.ttyname(slave)).open()
    finally:
        first.close()
        os.close(master)
        os.close(slave)


def test_summary_text_shows_reconnects_of_a_stream_not_only_of_listen_mode():
    """#15: an operator-precedence slip attached the reconnect count to the listen-mode line only."""
    from host.summary import Summary

    streamed = Summary(["a", "b"], "qemu board", "engine", "fashion-mnist:test", sent=10, answered=10, reconnects=2)
    listened = Summary(["a", "b"], "board", "engine", "the board's camera", answered=5, reconnects=1)
    assert "2 reconnect(s)" in streamed.text().splitlines()[0]
    assert "1 reconnect(s)" in listened.text().splitlines()[0]
    assert "reconnect" not in Summary(["a"], "cpu", "ref", "x", sent=1, answered=1).text()
