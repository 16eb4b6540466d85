"""QEMU mps2-an386 UART link: bytes per second each way and round-trip latency, with and without TCP_NODELAY.

Boots the port's self-test program (firmware/ports/qemu_mps2/smoke.c) under the same command line as
tinyml/local_boards.QemuBoard and measures, over pyserial ``socket://``:

* host -> device: one long line the device reads byte by byte and answers with two bytes;
* host -> device -> host: lines echoed back (the output direction dominates without nodelay);
* round trip of a 3-byte echo.

Each configuration runs --repeat times, alternating; the best figure is printed (the machine is shared).

These bound how fast frames reach the emulated board: a 96x96x1 FRAME is 9,232 bytes on the wire.

    python bench/qemu_link.py            # prints the figures (about 40 s)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.errors import exit_cli  # noqa: E402
from tinyml.local_boards import QemuBoard  # noqa: E402

PORT_DIR = ROOT / "firmware" / "ports" / "qemu_mps2"


class _NagleBoard(QemuBoard):
    """QemuBoard without nodelay=on: QEMU's default socket chardev, to show what TCP_NODELAY buys."""

    def command(self, port: int) -> list[str]:
        return [arg.replace(",nodelay=on", "") for arg in super().command(port)]


def build_smoke(out_dir: Path) -> Path:
    elf = out_dir / "smoke.elf"
    subprocess.run(
        ["make", "-s", "-C", str(PORT_DIR), f"SRCS={PORT_DIR / 'smoke.c'}", "INCLUDES=", f"OUT={elf}"],
        check=True,
        capture_output=True,
    )
    return elf


def measure(board: QemuBoard, in_bytes: int, echo_lines: int, line_len: int, pings: int) -> dict[str, float]:
    with board:
        link = serial.serial_for_url(board.url, timeout=60)
        link.readline()
        started = time.perf_counter()
        link.write(b"z" + b"x" * in_bytes + b"\n")  # unknown command: the device answers "?\n"
        assert link.readline() == b"?\n"
        rx_rate = in_bytes / (time.perf_counter() - started)
        line = b"e" + b"y" * line_len + b"\n"
        started = time.perf_counter()
        for _ in range(echo_lines):
            link.write(line)
            assert len(link.readline()) == line_len + 1
        echo_rate = echo_lines * line_len / (time.perf_counter() - started)
        rtts = []
        for _ in range(pings):
            started = time.perf_counter()
            link.write(b"eab\n")
            link.readline()
            rtts.append(time.perf_counter() - started)
        link.write(b"x0\n")
        board.wait(timeout=10)
        link.close()
    return {"in_kBps": rx_rate / 1000, "echo_kBps": echo_rate / 1000, "rtt_ms": statistics.median(rtts) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/qemu_link.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-bytes", type=int, default=20_000, help="bytes sent in the one-way test (default 20000)")
    parser.add_argument("--echo-lines", type=int, default=40, help="lines in the echo test (default 40)")
    parser.add_argument("--line-len", type=int, default=100, help="bytes per echoed line (default 100, max 126)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the best is printed (default 3)")
    parser.add_argument("--pings", type=int, default=50, help="round trips for the latency median (default 50)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        elf = build_smoke(Path(tmp))
        print("| QEMU UART socket | host->device kB/s | echo kB/s (each way) | round trip ms (median) |")
        print("|---|---:|---:|---:|")
        configs = (("nodelay=on (QemuBoard)", QemuBoard), ("QEMU default (Nagle)", _NagleBoard))
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in configs}
        for _ in range(args.repeat):  # alternate, so a burst of load on the machine hits both alike
            for label, cls in configs:
                runs[label].append(
                    measure(cls(elf), args.in_bytes, args.echo_lines, min(args.line_len, 126), args.pings)
                )
        for label, figs in runs.items():
            best = {key: (min if key == "rtt_ms" else max)(f[key] for f in figs) for key in figs[0]}
            print(f"| {label} | {best['in_kBps']:.1f} | {best['echo_kBps']:.1f} | {best['rtt_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    exit_cli(main)
