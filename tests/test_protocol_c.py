"""The C protocol (firmware/lib/protocol) built with the host gcc under ASan/UBSan: unit checks, the golden
vectors, the damaged 1,000-frame stream (same events as tinyml/protocol.py), and a CI-sized libFuzzer run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.tooling import check_damaged_decode, damaged_stream, decode_chunked, golden_vectors, require_tool

pytestmark = pytest.mark.c

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "firmware" / "lib" / "protocol"
C_DIR = ROOT / "tests" / "c"
CFLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    f"-I{PROTO_DIR}",
]


def _build(out: Path, *sources: Path, compiler: str = "gcc", flags: list[str] = CFLAGS) -> Path:
    cmd = [require_tool(compiler), *flags, str(PROTO_DIR / "protocol.c"), *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def c_build(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("protocol_c")


@pytest.fixture(scope="session")
def harness(c_build: Path) -> Path:
    return _build(c_build / "protocol_harness", C_DIR / "protocol_harness.c")


def run_harness(
    harness: Path, data: bytes, tmp: Path, max_payload: int, chunk: int = 0, reencode: bool = False, flush: bool = False
) -> list[dict]:
    src = tmp / "stream.bin"
    src.write_bytes(data)
    cmd = [str(harness), "--chunk", str(chunk), "--max-payload", str(max_payload), str(src)]
    if reencode:
        cmd.append("--reencode")
    if flush:
        cmd.append("--flush")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"harness exited {proc.returncode}: {proc.stderr[-2000:]}"
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["event"] == "stats" and events[-1]["bytes_in"] == len(data)
    return events[:-1]


def test_c_unit_checks(c_build: Path) -> None:
    unit = _build(c_build / "protocol_unit", C_DIR / "protocol_unit.c")
    proc = subprocess.run([str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_c_golden_vectors(harness: Path, tmp_path: Path, chunk: int) -> None:
    for vector in golden_vectors():
        data = bytes.fromhex(vector["hex"])
        events = run_harness(harness, data, tmp_path, vector["max_payload"], chunk, flush=vector["flush"])
        assert events == vector["events"], vector["name"]


def test_c_encoders_rebuild_golden_frames(harness: Path, tmp_path: Path) -> None:
    for vector in golden_vectors():
        events = vector["events"]
        if len(events) != 1 or events[0]["event"] != "frame" or "message_error" in events[0]:
            continue
        (event,) = run_harness(harness, bytes.fromhex(vector["hex"]), tmp_path, vector["max_payload"], reencode=True)
        assert event["reencoded"] == vector["hex"], vector["name"]


def _without_message(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("message", "message_error")} for e in events]


def test_c_damaged_stream_matches_python(harness: Path, tmp_path: Path) -> None:
    data, frames, noise_gaps = damaged_stream()
    c_events = run_harness(harness, data, tmp_path, 2048, chunk=61)
    check_damaged_decode(c_events, frames, noise_gaps)
    assert _without_message(c_events) == _without_message(decode_chunked(data, 2048, 4096))


def test_c_and_python_agree_on_oversized_and_flush(harness: Path, tmp_path: Path) -> None:
    """A receiver whose max payload is below many frames' (OVERSIZED among the damage), flushed at the end."""
    data, _, _ = damaged_stream(400, seed=11)
    c_events = run_harness(harness, data[:-7], tmp_path, 700, chunk=1, flush=True)
    assert any(e.get("name") == "OVERSIZED" for e in c_events)
    assert _without_message(c_events) == _without_message(decode_chunked(data[:-7], 700, 333, flush=True))


def test_c_firmware_build_is_warning_free(c_build: Path) -> None:
    """The library compiles for the Cortex-M4 with the strict warnings boards use."""
    gcc = require_tool("arm-none-eabi-gcc")
    cmd = [
        gcc,
        "-std=c99",
        "-mcpu=cortex-m4",
        "-mthumb",
        "-Os",
        "-Wall",
        "-Wextra",
        "-Wconversion",
        "-Werror",
        "-c",
        str(PROTO_DIR / "protocol.c"),
        "-o",
        str(c_build / "protocol_m4.o"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_c_parser_fuzz_ci_sized(c_build: Path) -> None:
    """A CI-sized libFuzzer run (bench/fuzz_protocol.py runs a million)."""
    from bench import fuzz_protocol as fuzz

    binary = fuzz.build_fuzzer(c_build / "protocol_fuzz", clang=require_tool("clang"))
    corpus = fuzz.seed_corpus(c_build / "corpus")
    result = fuzz.run_fuzzer(binary, corpus, runs=20000, artifacts=c_build)
    assert result["ok"], result["log_tail"]
    assert result["runs"] >= 20000


def test_wire_efficiency_meets_target() -> None:
    """The bench's own accounting (real encoder, decoded back) stays at or above 0.97 for 96x96x1 / 10 classes."""
    from bench.wire_efficiency import wire_efficiency

    rows = wire_efficiency(frames=20)
    ours, mlperf = rows[0], rows[1]
    assert ours["efficiency_payload"] >= 0.97 and ours["efficiency_useful"] >= 0.97
    assert mlperf["efficiency_useful"] < 0.5
