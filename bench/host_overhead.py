"""Host overhead per frame: capture/read -> preprocess -> encode -> written, for 96x96x1 and 96x96x3 models.

The host must never be the bottleneck of a stream (goal: <= 1 ms per frame). Each stage is timed separately on
the code host/stream.py runs:

- read:       decode a camera JPEG (what a USB webcam delivers as MJPEG) to RGB, at 320x240 (the capture mode
              stream.py asks a camera for when the model input fits, host.sources.camera_capture_size) and at
              640x480 (a camera without that mode)
- preprocess: the bundle's preprocessing + input quantisation (models.preprocess.prepare_frame, as the stream loop)
- encode:     the FRAME message (tinyml.protocol.encode)
- write:      SerialLink.write into a real pty whose other end a separate `cat` process drains

Wall-clock medians depend on how busy the machine is; the "CPU" column (process CPU time per frame over the whole
run) does not, and is the figure to compare across runs.

The bundles are synthetic (model.json only: input shape, preprocessing, quantisation): no model is needed for the
host side. Prints a table; docs/benchmarks.md "Host streaming" records it.

    python bench/host_overhead.py [--frames 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.bundle import Bundle
from models.preprocess import prepare_frame
from tinyml import protocol as proto
from tinyml.transport import SerialLink


def synthetic_bundle(root: Path, height: int, width: int, channels: int, classes: int = 10) -> Bundle:
    """A bundle holding only model.json (input, preprocessing, quantisation, a stand-in model id)."""
    meta = {
        "name": f"synthetic_{height}x{width}x{channels}",
        "architecture": "mobilenet_v1",
        "input": {"height": height, "width": width, "channels": channels},
        "color_mode": "grayscale" if channels == 1 else "rgb",
        "preprocessing": {"resize": "crop", "range": [-1.0, 1.0]},
        "labels": [f"class{i}" for i in range(classes)],
        "quantization": {
            "input": {"dtype": "int8", "scale": 2.0 / 255.0, "zero_point": -1},
            "output": {"dtype": "int8", "scale": 1.0 / 256.0, "zero_point": -128},
        },
        "artifacts": {"tflite": {"file": "model_int8.tflite", "sha256": "ab" * 32}},
    }
    return Bundle.create(root / meta["name"], meta)


def camera_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A JPEG with some structure (a webcam's MJPEG frame)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (9, 9), 3)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def measure(bundle: Bundle, frames: int, capture: tuple[int, int]) -> dict[str, np.ndarray]:
    import cv2

    jpeg = np.frombuffer(camera_jpeg(*capture), np.uint8)
    master, slave = os.openpty()
    tty.setraw(slave)
    drainer = subprocess.Popen(["cat"], stdin=master, stdout=subprocess.DEVNULL)
    link = SerialLink(os.ttyname(slave))
    link.open()
    times = {k: np.empty(frames) for k in ("read", "preprocess", "encode", "write", "total")}
    try:
        for i in range(frames + 20):  # 20 warm-up frames
            if i == 20:
                cpu0 = time.process_time()
            t0 = time.perf_counter()
            rgb = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            tensor = prepare_frame(rgb, bundle)  # what StreamSession._send does per frame
            t2 = time.perf_counter()
            data = proto.encode(proto.Frame(tensor.tobytes()), i & 0xFFFF or 1)
            t3 = time.perf_counter()
            link.write(data)
            t4 = time.perf_counter()
            if i >= 20:
                j = i - 20
                times["read"][j], times["preprocess"][j] = t1 - t0, t2 - t1
                times["encode"][j], times["write"][j], times["total"][j] = t3 - t2, t4 - t3, t4 - t0
        times["cpu"] = np.full(frames, (time.process_time() - cpu0) / frames)
    finally:
        link.close()
        drainer.terminate()
        drainer.wait()
        os.close(master)
        os.close(slave)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=500, help="frames per configuration (default 500)")
    args = parser.parse_args(argv)
    print(f"host overhead per frame (ms), {args.frames} frames each, {os.cpu_count()} CPUs ({os.uname().machine})")
    stages = ("read", "preprocess", "encode", "write", "total")
    print(f"| model input | camera JPEG | {' | '.join(stages)} (median) | total p95 | CPU | goal <= 1 ms |")
    print("|---|---|" + "---|" * (len(stages) + 3))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ((96, 96, 1), (96, 96, 3)):
            bundle = synthetic_bundle(Path(tmp), *shape)
            for capture in ((320, 240), (640, 480)):
                times = measure(bundle, args.frames, capture)
                medians = " | ".join(f"{1e3 * np.median(times[s]):.3f}" for s in stages)
                total = np.median(times["total"])
                cpu = times["cpu"][0]
                print(
                    f"| {'x'.join(map(str, shape))} | {capture[0]}x{capture[1]} | {medians} | "
                    f"{1e3 * np.percentile(times['total'], 95):.3f} | {1e3 * cpu:.3f} | "
                    f"{'yes' if total <= 1e-3 else 'no'} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
