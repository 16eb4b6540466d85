"""Wire efficiency of the protocol for a frame stream, compared with the MLPerf Tiny runner and base64 text.

Efficiency = payload bytes / bytes on the wire, both directions together, everything a session sends counted:
the HELLO_REQ/HELLO handshake, every FRAME and every RESULT. Credit-based flow control adds no messages (each
RESULT returns its frame's credit), so nothing else crosses the wire. Two payload definitions are printed:

- payload:  all message payloads (pixels, RESULT's timing fields and scores, HELLO contents)
- useful:   only the pixels and the output tensor (the same numerator for every encoding compared)

Our byte counts come from encoding the stream with tinyml/protocol.py and decoding it back (the C encoders
produce the same bytes: tests/data/protocol/golden.json). The other encodings are modelled from their
documented formats, counting every byte they put on the wire:

- MLPerf Tiny runner (benchmark/runner/device_under_test.py): ``db load N%``, then ``db <62 hex digits>%`` per
  31 bytes, each answered by ``m-ready\\r\\n`` before the next is sent; then ``infer 1 0%`` answered by
  ``m-results-[s0,...,s9]\\r\\n`` (``%0.3f`` scores) and ``m-ready\\r\\n``.
- base64 text (how Edge Impulse's serial tools move samples): the frame base64-encoded on one line, the
  scores as a JSON line.

Seconds per frame at a baud rate (10 bits per byte on a UART) add, for encodings that wait for an
acknowledgement, one turnaround per round trip (``--turnaround-ms``: USB-serial adapters answer in about 1 ms).
Our stream keeps ``credits`` frames in flight, so with credits >= 2 it pays no turnaround.

With ``--m4`` it also measures what the protocol costs the device: instructions to parse a 96x96x1 FRAME and to
encode a RESULT and a HELLO on a Cortex-M4 (QEMU mps2-an386, exact instruction counts).

    python bench/wire_efficiency.py [--frames 1000] [--shape 96x96x1] [--classes 10] [--baud 115200] [--m4]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.errors import UserError, exit_cli  # noqa: E402
from tinyml import protocol as P  # noqa: E402

MLPERF_CHUNK = 31  # bytes per "db" command in the MLPerf Tiny runner (26 with an energy monitor)
MLPERF_ACK = b"m-ready\r\n"
READ_CHUNK = 4096  # bytes per Decoder.feed in the decode-speed figure


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--shape {text!r} is not HxWxC (e.g. 96x96x1)") from None
    if min(h, w, c) < 1:
        raise UserError(f"--shape {text!r} must have positive sizes")
    return h, w, c


def ours(frames: int, shape: tuple[int, int, int], classes: int, seed: int = 0) -> dict:
    """Encode a real session with tinyml/protocol.py, decode it back, count bytes in both directions."""
    rng = random.Random(seed)
    h, w, c = shape
    n = h * w * c
    hello = P.Hello(
        bytes(32),
        shape,
        "int8",
        0.0078125,
        -1,
        classes,
        "int8",
        1 / 256,
        -128,
        "engine",
        "bench",
        credits=2,
        max_payload=n,
    )
    to_dev = [P.encode(P.HelloRequest(), 0)]
    to_host = [P.encode(hello, 0)]
    payload = len(P.HelloRequest().to_payload()) + len(hello.to_payload())
    for seq in range(1, frames + 1):
        pixels = rng.randbytes(n)
        result = P.Result(1000, 0, rng.randbytes(classes))
        to_dev.append(P.encode(P.Frame(pixels), seq))
        to_host.append(P.encode(result, seq))
        payload += n + len(result.to_payload())
    start = time.perf_counter()
    decoded = []
    for blob in (b"".join(to_dev), b"".join(to_host)):
        dec = P.Decoder(max(n, 1 << 16))
        for i in range(0, len(blob), READ_CHUNK):  # as a serial link delivers it
            decoded += dec.feed(blob[i : i + READ_CHUNK])
    seconds = time.perf_counter() - start
    if len(decoded) != 2 * (frames + 1) or not all(isinstance(e, P.Packet) for e in decoded):
        raise RuntimeError("the encoded stream did not decode back cleanly")
    wire_dev, wire_host = sum(map(len, to_dev)), sum(map(len, to_host))
    return {
        "wire_to_device": wire_dev,
        "wire_to_host": wire_host,
        "payload": payload,
        "round_trips": 1,
        "decode_MB_s": (wire_dev + wire_host) / seconds / 1e6,
    }


def mlperf(frames: int, shape: tuple[int, int, int], classes: int) -> dict:
    n = shape[0] * shape[1] * shape[2]
    chunks = math.ceil(n / MLPERF_CHUNK)
    to_dev = len(f"db load {n}%") + chunks * len("db %") + 2 * n + len("infer 1 0%")
    scores = "m-results-[" + ",".join("0.000" for _ in range(classes)) + "]\r\n"
    to_host = (chunks + 2) * len(MLPERF_ACK) + len(scores)
    return {"wire_to_device": frames * to_dev, "wire_to_host": frames * to_host, "round_trips": chunks + 2}


def base64_text(frames: int, shape: tuple[int, int, int], classes: int) -> dict:
    n = shape[0] * shape[1] * shape[2]
    to_dev = len(base64.b64encode(bytes(n))) + 1
    to_host = len(json.dumps({"results": [0.0] * classes})) + 1
    return {"wire_to_device": frames * to_dev, "wire_to_host": frames * to_host, "round_trips": 1}


def m4_cost(workdir: Path) -> dict[str, int]:
    """Instructions the device spends on the protocol, measured on QEMU mps2-an386 (Cortex-M4) with
    ``-icount shift=0``: tests/c/protocol_m4_cost.c built with the QEMU port's Makefile."""
    for tool in ("make", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise UserError(
                f"{tool} not found; install it: sudo apt-get install -y make gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm"
            )
    elf = workdir / "protocol_m4_cost.elf"
    build = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "firmware" / "ports" / "qemu_mps2"),
            f"OUT={elf}",
            f"SRCS={ROOT / 'tests' / 'c' / 'protocol_m4_cost.c'} {ROOT / 'firmware' / 'lib' / 'protocol' / 'protocol.c'}",
            f"INCLUDES={ROOT / 'firmware' / 'lib' / 'protocol'}",
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        raise UserError(f"building the Cortex-M4 cost program failed: {build.stderr.strip()[-300:]}")
    run = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-kernel",
            str(elf),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    figures = {
        name: int(value) for name, value in (line.split() for line in run.stdout.splitlines() if len(line.split()) == 2)
    }
    if run.returncode != 0 or "frame_parse" not in figures:
        raise UserError(f"the Cortex-M4 cost program failed under QEMU (exit {run.returncode}): {run.stdout[-300:]}")
    return figures


def wire_efficiency(
    frames: int = 1000,
    shape: tuple[int, int, int] = (96, 96, 1),
    classes: int = 10,
    baud: int = 115200,
    turnaround_ms: float = 1.0,
) -> list[dict]:
    """One row per encoding: bytes each way, efficiencies, seconds per frame and payload rate at ``baud``."""
    useful = frames * (shape[0] * shape[1] * shape[2] + classes)
    rows = []
    for name, row in (
        ("this protocol", ours(frames, shape, classes)),
        ("MLPerf Tiny runner (hex)", mlperf(frames, shape, classes)),
        ("base64 text", base64_text(frames, shape, classes)),
    ):
        wire = row["wire_to_device"] + row["wire_to_host"]
        # Our stream overlaps transfer and inference (credits >= 2): no turnaround per frame.
        waits = 0 if name == "this protocol" else row["round_trips"]
        seconds = wire * 10 / baud / frames + waits * turnaround_ms / 1000
        rows.append(
            {
                "encoding": name,
                **row,
                "wire": wire,
                "useful": useful,
                "efficiency_payload": row.get("payload", useful) / wire,
                "efficiency_useful": useful / wire,
                "s_per_frame": seconds,
                "pixel_kB_s": shape[0] * shape[1] * shape[2] / seconds / 1000,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1000, help="frames in the stream (default 1000)")
    parser.add_argument("--shape", default="96x96x1", help="model input HxWxC, one byte per element (default 96x96x1)")
    parser.add_argument("--classes", type=int, default=10, help="output elements per RESULT (default 10)")
    parser.add_argument("--baud", type=int, default=115200, help="UART baud rate for the time figures (default 115200)")
    parser.add_argument(
        "--turnaround-ms",
        type=float,
        default=1.0,
        help="wait per acknowledged round trip for the encodings that need one (default 1.0)",
    )
    parser.add_argument(
        "--m4",
        action="store_true",
        help="also measure the device's instructions per FRAME/RESULT on QEMU Cortex-M4 (96x96x1)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.classes < 1 or args.baud < 1 or args.turnaround_ms < 0:
        raise UserError("--frames, --classes and --baud must be positive and --turnaround-ms >= 0")
    shape = parse_shape(args.shape)
    rows = wire_efficiency(args.frames, shape, args.classes, args.baud, args.turnaround_ms)
    print(
        f"{args.frames} frames of {args.shape} int8, {args.classes}-class results, both directions, "
        f"{args.baud} baud, {args.turnaround_ms} ms turnaround per acknowledged round trip"
    )
    print(
        f"{'encoding':26} {'to device':>11} {'to host':>10} {'payload eff':>11} {'useful eff':>10} "
        f"{'s/frame':>8} {'pixel kB/s':>10}"
    )
    for r in rows:
        payload_eff = f"{r['efficiency_payload']:.4f}" if "payload" in r else "-"
        print(
            f"{r['encoding']:26} {r['wire_to_device']:11d} {r['wire_to_host']:10d} {payload_eff:>11} "
            f"{r['efficiency_useful']:10.4f} {r['s_per_frame']:8.3f} {r['pixel_kB_s']:10.2f}"
        )
    ours_row = rows[0]
    print(
        f"tinyml/protocol.py Decoder: {ours_row['decode_MB_s']:.0f} MB/s on this machine, fed {READ_CHUNK}-byte reads"
    )
    if args.m4:
        with tempfile.TemporaryDirectory() as tmp:
            cost = m4_cost(Path(tmp))
        frame_bytes = P.wire_len(96 * 96)
        print(
            f"Cortex-M4 (QEMU icount, -O2): parse one 96x96x1 FRAME {cost['frame_parse']} instructions "
            f"({cost['frame_parse'] / frame_bytes:.1f}/byte, of which CRC-32 {cost['crc32_9216']}), "
            f"encode RESULT {cost['result_encode']}, encode HELLO {cost['hello_encode']}"
        )
    if ours_row["efficiency_payload"] < 0.97:
        print(f"BELOW TARGET: efficiency {ours_row['efficiency_payload']:.4f} < 0.97")
        return 1
    return 0


if __name__ == "__main__":
    exit_cli(main)
