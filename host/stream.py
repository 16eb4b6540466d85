"""Stream frames to a model target and show, log and score what comes back: the user's daily tool.

    python host/stream.py BUNDLE [SOURCE] (--port URL | --board qemu|native | --cpu | --coral [DEV]) [options]

See ``--help`` for every option and docs/streaming.md for the common uses. The Python API is :func:`stream`
(takes a bundle, a source and an opened-or-not target) plus :func:`make_target` / :func:`make_display`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python host/stream.py`: Python put host/ first on sys.path, where our module names (protocol,
    # session, display...) would shadow top-level modules; put the repository root there instead.
    _repo_root = str(Path(__file__).resolve().parent.parent)
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path[0] = _repo_root
    elif _repo_root not in sys.path:
        sys.path.insert(0, _repo_root)

import argparse
import contextlib
import os
from typing import Sequence

from models.bundle import Bundle, load_bundle
from models.errors import UserError, exit_cli

TARGET_HELP = "--port URL, --board qemu, --board native, --cpu or --coral"

EXAMPLES = """\
examples:
  # webcam 0 -> ESP32 on USB serial, live window
  python host/stream.py runs/v1 0 --port /dev/ttyUSB0
  # on-device accuracy: 500 Fashion-MNIST test images -> QEMU Cortex-M4 board, checked against the CPU reference
  python host/stream.py runs/v1 fashion-mnist:test --limit 500 --board qemu --headless --log runs/v1/qemu.jsonl
  # the reference answer on this machine (LiteRT BUILTIN_REF), a folder of images
  python host/stream.py runs/v1 photos/ --cpu --headless
  # a board behind a network serial bridge, a video played in real time (frames dropped when the link is slow)
  python host/stream.py runs/v1 clip.mp4 --realtime --port socket://192.168.1.20:3333
  # an ESP32-CAM running camera-mode firmware: the board captures, the host listens, logs and shows the answers
  python host/stream.py runs/v1 board --port /dev/ttyUSB0 --headless --log cam.jsonl

sources: camera index (0), stream URL (rtsp://...), fashion-mnist:test|train, image folder (class subfolders =
labelled), video file, image file, board (listen to a camera-mode board).
exit codes: 0 done, 1 nothing streamed, 2 usage/setup error (one line), 130 interrupted (Ctrl-C; the summary and
the log are written first).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python host/stream.py",
        description="Stream frames (camera, video, images, labelled dataset) to a model target (serial board,\n"
        "QEMU/native board, CPU reference, Coral) and show, log and score the answers. Frames are\n"
        "preprocessed exactly as training did, from the bundle.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="model bundle directory (holds model.json and model_int8.tflite)")
    (
        parser.add_argument(
            "source",
            nargs="?",
            default="0",
            help="what to stream: camera index (default 0), stream URL, fashion-mnist:test, image "
            "folder (class subfolders make it labelled), video file or image file; 'board' = "
            "listen to a camera-mode board (e.g. ESP32-CAM firmware) that captures frames itself",
        ),
    )

    tgt = parser.add_argument_group("target (choose one; with none, a single USB serial board found is used)")
    excl = tgt.add_mutually_exclusive_group()
    excl.add_argument(
        "--port",
        metavar="URL",
        help="serial board at any pyserial URL: /dev/ttyUSB0, /dev/ttyACM0, COM5, "
        "socket://HOST:PORT, rfc2217://HOST:PORT",
    )
    excl.add_argument(
        "--board",
        choices=("qemu", "native"),
        help="build the firmware for this bundle (tinyml/firmware.py) and run it locally: qemu = "
        "Cortex-M4 mps2-an386 under qemu-system-arm, native = Linux process on a pty",
    )
    excl.add_argument(
        "--cpu",
        action="store_true",
        help="run the int8 model in this process with LiteRT's reference kernels (the answer a "
        "bit-exact board must give)",
    )
    excl.add_argument(
        "--coral",
        nargs="?",
        const="",
        metavar="DEVICE",
        help="Coral Edge TPU (needs the bundle's *_edgetpu.tflite and libedgetpu); optional DEVICE "
        "such as usb:0 or pci:0",
    )
    tgt.add_argument(
        "--baud",
        type=int,
        default=921600,
        help="serial baud rate for --port on a real UART (default 921600; ignored by socket://)",
    )

    src = parser.add_argument_group("source options")
    src.add_argument("--limit", type=int, metavar="N", help="stream at most N frames (e.g. a quick labelled slice)")
    src.add_argument("--start", type=int, default=0, metavar="N", help="skip the first N frames (default 0)")
    src.add_argument(
        "--split",
        choices=("all", "train", "val", "test"),
        default="all",
        help="for a labelled image folder: stream this split, made exactly as tinyml.data splits it "
        "for training (default all)",
    )
    src.add_argument("--seed", type=int, help="split seed for --split (default: the seed the bundle was trained with)")
    src.add_argument(
        "--camera-size",
        metavar="WxH",
        help="capture mode to request from a camera (default: the smallest of 320x240, 640x480, "
        "1280x720, 1920x1080 covering the model input; small modes decode faster)",
    )
    src.add_argument(
        "--realtime",
        nargs="?",
        type=float,
        const=0.0,
        metavar="FPS",
        help="play a video/folder/dataset in real time (at FPS, default the video's rate or 30) as "
        "a live source: frames the link cannot carry are dropped and counted",
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--headless",
        action="store_true",
        help="no window: a one-line live status on stderr (needed with opencv-python-headless, over SSH and in CI)",
    )
    out.add_argument("--quiet", action="store_true", help="with --headless, no live status line (summary only)")
    out.add_argument(
        "--record",
        metavar="FILE",
        help="also write every answered frame with its overlay (label, score, fps, latency) to a "
        "video, .avi or .mp4: the overlay on a headless machine, or a demo clip",
    )
    out.add_argument(
        "--log",
        metavar="FILE",
        help="write every result (and every lost frame with its reason) as JSON lines, flushed "
        "per record, plus a summary record at the end",
    )
    cmp_ = out.add_mutually_exclusive_group()
    cmp_.add_argument(
        "--compare-cpu",
        dest="compare_cpu",
        action="store_true",
        default=None,
        help="check every answer against the CPU reference (always on for labelled sources)",
    )
    cmp_.add_argument(
        "--no-compare-cpu",
        dest="compare_cpu",
        action="store_false",
        help="skip the CPU reference check in labelled mode",
    )

    link = parser.add_argument_group("timeouts and faults")
    link.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up when frames are in flight and nothing arrives for S seconds (default 30)",
    )
    link.add_argument(
        "--hello-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="wait this long for the board's HELLO when connecting (default 10)",
    )
    link.add_argument(
        "--reconnect",
        type=float,
        default=20.0,
        metavar="S",
        help="after the port vanishes or the device resets, retry reopening it for S seconds, "
        "then re-handshake and continue (default 20; 0 = stop at the first fault)",
    )
    link.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="send a frame of a dataset/folder/video again (as a new seq) when it was lost to a link "
        "fault, up to N times, so accuracy covers every frame (default 2; live frames never)",
    )
    link.add_argument(
        "--frame-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="frames in flight and no byte for S seconds (plus their transfer time at --baud): "
        "send a PING; frames its PONG overtakes are recorded lost (and sent again); no PONG "
        "either: the link counts as lost and is reopened (default 5)",
    )
    return parser


def make_target(bundle: Bundle, args: argparse.Namespace, stack: contextlib.ExitStack, listen: bool = False):
    """The Target the options name; local boards are built, started and registered on ``stack`` for cleanup."""
    if args.cpu:
        from tinyml.targets.cpu import CpuTarget

        return CpuTarget(bundle)
    if args.coral is not None:
        try:
            from tinyml.targets.coral import CoralTarget
        except ImportError as exc:
            raise UserError(f"Coral support is not available ({exc}); see docs/coral.md") from None
        return CoralTarget(bundle, device=args.coral or None)
    from tinyml.targets.serial_board import SerialBoardTarget

    height, width, channels = bundle.input_shape
    serial_kwargs = dict(
        hello_timeout=args.hello_timeout,
        reconnect_s=args.reconnect,
        frame_timeout=args.frame_timeout,
        frame_bytes=height * width * channels,
        listen=listen,
    )
    if args.board:
        from tinyml import firmware, local_boards

        image = firmware.build(bundle, args.board)
        board_cls = local_boards.QemuBoard if args.board == "qemu" else local_boards.NativeBoard
        board = board_cls(image)
        board.start()
        stack.callback(board.stop)
        # The host started this board, so it can start it again: a reconnect asks live_url(), which restarts a
        # board process that died (killed, crashed) instead of waiting for a port that will never come back.
        return SerialBoardTarget(board.live_url, name=f"{args.board} board", **serial_kwargs)
    if not args.port:
        raise UserError(f"no target named; use one of {TARGET_HELP}")
    return SerialBoardTarget(args.port, baudrate=args.baud, name=args.port, **serial_kwargs)


def choose_port(args: argparse.Namespace) -> None:
    """With no target named, use the one USB serial board found; none or several is an error naming the options."""
    if args.port or args.board or args.cpu or args.coral is not None:
        return
    from tinyml.transport import list_serial_ports

    found = list_serial_ports()
    if len(found) == 1:
        print(f"no target named; using the one serial board found: {found[0]}", file=sys.stderr)
        args.port = found[0]
        return
    if found:
        raise UserError(
            f"no target named and several serial ports found ({', '.join(found)}); "
            f"pick one with --port, or use {TARGET_HELP}"
        )
    raise UserError(
        f"no target named and no serial board found; use one of {TARGET_HELP} "
        "(e.g. --cpu to run on this machine, --board qemu for the emulated Cortex-M4)"
    )


def make_display(args: argparse.Namespace):
    from host.display import Displays, LiveWindow, StatusLine, VideoRecorder

    screen = StatusLine(quiet=args.quiet) if args.headless else LiveWindow(f"{Path(args.bundle).name} - {args.source}")
    if args.record:
        return Displays(screen, VideoRecorder(args.record))
    return screen


def stream(
    bundle: Bundle,
    source,
    target,
    log_path: str | os.PathLike | None = None,
    display=None,
    compare_cpu: bool | None = None,
    answer_timeout: float = 30.0,
    retries: int = 2,
    listen_limit: int | None = None,
):
    """Stream ``source`` to ``target`` and return the Summary (Python API; see host/session.py).

    ``source=None`` listens to a camera-mode board (the target needs ``listen=True``), up to ``listen_limit``
    results or Ctrl-C."""
    from host.results_log import ResultsLog
    from host.session import StreamSession

    with ResultsLog(log_path) as log:
        session = StreamSession(
            bundle,
            source,
            target,
            log=log,
            display=display,
            compare_cpu=compare_cpu,
            answer_timeout=answer_timeout,
            retries=retries,
        )
        session.listen_limit = listen_limit
        try:
            return session.run()
        finally:
            if session.started:
                print(session.summary.text(), flush=True)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--camera-size {text!r} is not WIDTHxHEIGHT, e.g. 320x240") from None
    if width <= 0 or height <= 0:
        raise UserError(f"--camera-size {text!r} must be positive")
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("limit", "start", "retries"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UserError(f"--{name} must be >= 0 (got {value})")
    if args.timeout <= 0 or args.hello_timeout <= 0 or args.frame_timeout <= 0 or args.reconnect < 0:
        raise UserError("--timeout, --hello-timeout and --frame-timeout must be > 0 and --reconnect >= 0")
    import models.quiet  # noqa: F401  (quiet TensorFlow/OpenCV log levels, before either loads)

    bundle = load_bundle(args.bundle)
    choose_port(args)
    from host.sources import camera_capture_size, open_source, training_split_args

    capture_size = _parse_size(args.camera_size) if args.camera_size else camera_capture_size(bundle.input_shape)

    if args.split != "all" and args.source.lower().startswith(("fashion-mnist", "fashion_mnist")):
        raise UserError(
            f"--split {args.split} picks a split of an image folder; Fashion-MNIST names its split in the "
            "source: fashion-mnist:test or fashion-mnist:train"
        )
    listen = args.source.lower() == "board"
    if listen and (args.cpu or args.coral is not None):
        raise UserError("source 'board' listens to a camera-mode board over serial; use it with --port URL")
    with contextlib.ExitStack() as stack:
        display = make_display(args)
        source = None
        if not listen:
            source = open_source(
                args.source,
                bundle.labels,
                start=args.start,
                count=args.limit,
                realtime_fps=args.realtime,
                split=args.split,
                split_args=training_split_args(bundle.meta, args.seed),
                capture_size=capture_size,
            )
            stack.callback(source.close)
        bundle.verified_artifact("tflite")  # a changed .tflite needs quantize (or its own bundle), not new firmware
        target = make_target(bundle, args, stack, listen=listen)
        summary = stream(
            bundle,
            source,
            target,
            log_path=args.log,
            display=display,
            compare_cpu=args.compare_cpu,
            answer_timeout=args.timeout,
            retries=args.retries,
            listen_limit=args.limit if listen else None,
        )
    return 0 if summary.sent or summary.answered else 1


def _main_piped(argv: Sequence[str] | None = None) -> int:
    try:
        return main(argv)
    except BrokenPipeError:  # `stream.py ... | head`: the reader left; not an error worth a traceback
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    exit_cli(_main_piped)
