"""Achieved frame rate over a throttled serial link against the ideal min(link rate, device rate).

The host keeps ``credits`` frames in flight so the link carries frame n+1 while the device computes frame n; with
that overlap the stream should reach the slower of the two rates (goal: >= 0.95 of it). Each run streams through
the real stack (StreamSession -> SerialBoardTarget -> pyserial socket://) into host.link_relay.LinkRelay, which
paces both directions to baud/10 bytes/s like an 8N1 UART, and on to a simulated board: a Python device speaking
the wire protocol (tinyml.protocol) that holds ``credits`` frames and spends a fixed inference time on each. The
simulated device is what lets the bench set the device rate; everything on the host side is the real code.

    ideal fps = min( (baud/10) / (frame bytes + 16 protocol bytes),  1 / inference time )

Steady-state fps is measured between the first and the last answer, each case run ``--repeat`` times (median
and worst reported: on a shared machine single runs vary by a few percent); "host CPU ms/frame" is the stream
process's CPU time per frame (the whole loop: preprocess, encode, write, read, decode, log), which bounds the
frame rate the host itself could sustain on one free core. Prints a markdown table; docs/benchmarks.md
"Host streaming" records it.

    python bench/throttled_link.py
"""

from __future__ import annotations

import argparse
import queue
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from host_overhead import synthetic_bundle

from host.link_relay import LinkRelay
from host.results_log import ResultsLog, read_log
from host.session import StreamSession
from host.sources import ArraySource
from models.bundle import Bundle
from tinyml import protocol as proto
from tinyml.targets.serial_board import SerialBoardTarget


class SimulatedBoard:
    """A protocol-speaking device on a TCP port: HELLO at connect and on request, ``credits`` frame buffers, a
    fixed inference time per frame, RESULT with zeros (the bench measures timing, not answers)."""

    def __init__(self, bundle: Bundle, inference_s: float, credits: int = 2):
        self.bundle, self.inference_s, self.credits = bundle, inference_s, credits
        height, width, channels = bundle.input_shape
        self.hello = proto.Hello(
            model_id=bytes.fromhex(bundle.model_id),
            input_shape=(height, width, channels),
            in_dtype=bundle.input_quant.dtype,
            in_scale=bundle.input_quant.scale,
            in_zero_point=bundle.input_quant.zero_point,
            num_classes=len(bundle.labels),
            out_dtype=bundle.output_quant.dtype,
            out_scale=bundle.output_quant.scale,
            out_zero_point=bundle.output_quant.zero_point,
            engine="simulated",
            build="bench",
            credits=credits,
            max_payload=height * width * channels,
        )
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lock = threading.Lock()
        jobs: queue.Queue = queue.Queue()

        def send(data: bytes) -> None:
            with lock:
                conn.sendall(data)

        def work() -> None:
            while not self._stop.is_set():
                seq = jobs.get()
                if seq is None:
                    return
                time.sleep(self.inference_s)
                output = bytes(len(self.bundle.labels))
                send(proto.encode(proto.Result(int(self.inference_s * 1e6), 0, output), seq))

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        send(proto.encode(self.hello, 0))
        decoder = proto.Decoder(self.hello.max_payload)
        try:
            while not self._stop.is_set():
                data = conn.recv(65536)
                if not data:
                    break
                for event in decoder.feed(data):
                    if isinstance(event, proto.Packet) and event.type == proto.MsgType.FRAME:
                        jobs.put(event.seq)
                    elif isinstance(event, proto.Packet) and event.type == proto.MsgType.HELLO_REQ:
                        send(proto.encode(self.hello, event.seq))
        except OSError:
            pass
        finally:
            jobs.put(None)
            conn.close()


def _hardware(bundle_dir: str, inference_s: float, credits: int, baud: int, pipe) -> None:
    """Child process: the simulated board behind the paced relay (separate from the host, like real hardware,
    so the host's Python threads and these never wait for each other's interpreter lock)."""
    from models.bundle import load_bundle

    board = SimulatedBoard(load_bundle(bundle_dir), inference_s, credits)
    with LinkRelay(board.url, baud=baud) as relay:
        pipe.send(relay.url)
        pipe.recv()  # until the host is done
    board.close()


def run(baud: int, shape: tuple[int, int, int], inference_s: float, frames: int, credits: int, tmp: Path) -> dict:
    import multiprocessing

    bundle = synthetic_bundle(tmp, *shape)
    frame_bytes = int(np.prod(shape))
    images = np.random.default_rng(0).integers(0, 256, (frames, shape[0], shape[1], shape[2]), dtype=np.uint8)
    log_path = tmp / "run.jsonl"
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_hardware, args=(str(bundle.path), inference_s, credits, baud, theirs), daemon=True)
    child.start()
    try:
        url = ours.recv()
        cpu0 = time.process_time()
        with ResultsLog(log_path) as log:
            target = SerialBoardTarget(url, name="sim", frame_bytes=frame_bytes, frame_timeout=10.0)
            StreamSession(bundle, ArraySource(images, None, "random"), target, log=log, compare_cpu=False).run()
        host_cpu_ms = 1e3 * (time.process_time() - cpu0) / frames
    finally:
        ours.send("stop")
        child.join(10)
    times = [r["t"] for r in read_log(log_path) if r["type"] == "result"]
    achieved = (len(times) - 1) / (times[-1] - times[0])
    link_fps = baud / 10.0 / (frame_bytes + proto.OVERHEAD)
    device_fps = 1.0 / inference_s
    ideal = min(link_fps, device_fps)
    return dict(
        answered=len(times),
        achieved=achieved,
        link=link_fps,
        device=device_fps,
        ideal=ideal,
        host_cpu_ms=host_cpu_ms,
        ratio=achieved / ideal,
        bound="link" if link_fps < device_fps else "device",
    )


CASES = [  # baud, input shape, inference seconds, frames, credits
    (115200, (28, 28, 1), 0.020, 40, 2),
    (115200, (28, 28, 1), 0.100, 30, 2),
    (921600, (32, 32, 1), 0.005, 150, 2),
    (921600, (96, 96, 1), 0.050, 30, 2),
    (921600, (96, 96, 1), 0.150, 20, 2),
    (921600, (96, 96, 3), 0.100, 12, 2),
    (921600, (96, 96, 1), 0.050, 30, 1),  # no overlap: shows what the credit window buys
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="run only the first and the fourth case")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per case; the median is reported, with the worst ratio (default 3)"
    )
    args = parser.parse_args(argv)
    cases = [CASES[0], CASES[3]] if args.quick else CASES
    print(
        "| baud | frame | device ms | credits | link fps | device fps | ideal fps | achieved fps (median) | ratio "
        "(median) | worst ratio | bound | host CPU ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for baud, shape, inference_s, frames, credits in cases:
            runs = sorted(
                (run(baud, shape, inference_s, frames, credits, Path(tmp)) for _ in range(args.repeat)),
                key=lambda r: r["ratio"],
            )
            r = runs[len(runs) // 2]
            print(
                f"| {baud} | {'x'.join(map(str, shape))} | {1e3 * inference_s:g} | {credits} | {r['link']:.2f} | "
                f"{r['device']:.2f} | {r['ideal']:.2f} | {r['achieved']:.2f} | {r['ratio']:.3f} | "
                f"{runs[0]['ratio']:.3f} | {r['bound']} | {r['host_cpu_ms']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
