"""The C protocol (firmware/lib/protocol) built with the host gcc under ASan/UBSan: unit checks, the golden
vectors, the damaged 1,000-frame stream (same events as host/protocol.py), and a CI-sized libFuzzer run."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from test_protocol import canonical, check_damaged_decode, damaged_stream, decode_chunked, golden_vectors
from tooling import require_tool

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "firmware" / "lib" / "protocol"
C_DIR = ROOT / "tests" / "c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
          "-fno-sanitize-recover=all", f"-I{PROTO_DIR}"]


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


def run_harness(harness: Path, data: bytes, tmp: Path, max_payload: int, chunk: int = 0,
                reencode: bool = False) -> list[dict]:
    src = tmp / "stream.bin"
    src.write_bytes(data)
    cmd = [str(harness), "--chunk", str(chunk), "--max-payload", str(max_payload), str(src)]
    if reencode:
        cmd.append("--reencode")
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
        events = run_harness(harness, data, tmp_path, vector["max_payload"], chunk)
        assert events == vector["events"], vector["name"]


def test_c_encoders_rebuild_golden_frames(harness: Path, tmp_path: Path) -> None:
    for vector in golden_vectors():
        events = vector["events"]
        if len(events) != 1 or events[0]["event"] != "frame" or "message_error" in events[0]:
            continue
        (event,) = run_harness(harness, bytes.fromhex(vector["hex"]), tmp_path, vector["max_payload"], reencode=True)
        assert event["reencoded"] == vector["hex"], vector["name"]


def test_c_damaged_stream_matches_python(harness: Path, tmp_path: Path) -> None:
    data, frames, noise_gaps = damaged_stream()
    c_events = run_harness(harness, data, tmp_path, 2048, chunk=61)
    check_damaged_decode(c_events, frames, noise_gaps)
    py_events = decode_chunked(data, 2048, 4096)
    strip = [{k: v for k, v in e.items() if k not in ("message", "message_error")} for e in c_events]
    assert strip == [{k: v for k, v in e.items() if k not in ("message", "message_error")} for e in py_events]


def test_c_firmware_build_is_warning_free(c_build: Path) -> None:
    """The library compiles for the Cortex-M4 with the strict warnings boards use."""
    gcc = require_tool("arm-none-eabi-gcc")
    cmd = [gcc, "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-Os", "-Wall", "-Wextra", "-Wconversion", "-Werror",
           "-c", str(PROTO_DIR / "protocol.c"), "-o", str(c_build / "protocol_m4.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def build_fuzzer(out: Path) -> Path:
    """The libFuzzer target (shared with bench/fuzz_protocol.py)."""
    flags = ["-std=c99", "-O1", "-g", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
             f"-I{PROTO_DIR}"]
    return _build(out, C_DIR / "protocol_fuzz.c", compiler="clang", flags=flags)


def write_seed_corpus(corpus: Path) -> None:
    """Golden vectors as raw-mode seeds (max payload 255, chunk 7)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for vector in golden_vectors():
        (corpus / vector["name"]).write_bytes(bytes([255, 6]) + bytes.fromhex(vector["hex"]))


def test_c_parser_fuzz_ci_sized(c_build: Path) -> None:
    fuzzer = build_fuzzer(c_build / "protocol_fuzz")
    corpus = c_build / "corpus"
    write_seed_corpus(corpus)
    proc = subprocess.run([str(fuzzer), "-runs=20000", "-max_len=4096", "-timeout=10", "-seed=1", str(corpus)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done and int(done.group(1)) >= 20000
