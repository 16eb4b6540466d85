"""The helpers test modules share (tests import them from here, never from one another).

- require_tool: an external tool, or a failure under CI=true and a skip elsewhere;
- run_tool, assert_one_line_error: the build steps as a user runs them, and the one-line error contract;
- the protocol's canonical event form, golden vectors and damaged stream (test_protocol.py, test_protocol_c.py);
- the native engine harness and the bit-exactness check (test_engine_native.py, test_engine_ops.py);
- PtyRun: a command on a pseudo-terminal, as a person runs it (test_faults.py, test_demo.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import shutil
import signal
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.reference import ReferenceModel
from tests.fault_counts import COUNTS
from tinyml import protocol as P
from tinyml.codegen import generate
from tinyml.codegen.schedule import LAYER_BY_LAYER

ROOT = Path(__file__).resolve().parents[1]


def require_tool(name: str, hint: str = "run `make test` as root, or install it with apt-get") -> str:
    """Return the path of executable ``name``; when it is missing, fail under CI and skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# ---- the build steps' command lines -------------------------------------------------------------


def run_tool(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m tools ...` as a user would."""
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr


# ---- a command on a pseudo-terminal -------------------------------------------------------------


def _take_terminal() -> None:
    """In the child: make the pty on stdin the controlling terminal of its new session (as a shell's job is)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyRun:
    """A command running in a fresh session whose controlling terminal is a pseudo-terminal we hold the master of."""

    def __init__(self, *argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None):
        master, slave = pty.openpty()
        env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self._master = master
        self._output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.children: set[int] = set()  # every process the command started that we saw (boards)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the last process holding the slave exited
                return
            if not data:
                return
            self._output += data

    @property
    def text(self) -> str:
        return self._output.decode(errors="replace")

    def ctrl_c(self) -> None:
        """Type Ctrl-C: the terminal sends SIGINT to its foreground process group."""
        self.watch_children()
        os.write(self._master, b"\x03")
        COUNTS["signals"] += 1

    def signal(self, signum: int, group: bool) -> None:
        self.watch_children()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        COUNTS["signals" if signum != signal.SIGKILL else "kills"] += 1

    def watch_children(self) -> set[int]:
        self.children |= children_of(self.proc.pid)
        return self.children

    def wait(self, timeout: float = 120.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"{self.proc.args} did not end within {timeout} s; output:\n{self.text[-3000:]}")
        self._reader.join(5)
        os.close(self._master)
        return code


def children_of(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Every process below ``pid``: children, theirs (a Ray raylet's workers), and so on."""
    found, frontier = set(), {pid}
    while frontier:
        below = children_of(frontier.pop()) - found
        found |= below
        frontier |= below
    return found


# ---- protocol: golden vectors, canonical events, damaged stream ---------------------------------

GOLDEN = ROOT / "tests" / "data" / "protocol" / "golden.json"


def golden_vectors() -> list[dict]:
    return json.loads(GOLDEN.read_text())["vectors"]


# ---- canonical event form shared with the C harness (tests/c/protocol_harness.c) ------------------


def message_fields(msg: P.Message) -> dict:
    if isinstance(msg, P.HelloRequest):
        return {"max_payload": msg.max_payload, "version": msg.version}
    if isinstance(msg, P.Hello):
        h, w, c = msg.input_shape
        codes = {**P.DTYPE_CODES, P.NO_MODEL: P.DTYPE_NONE}
        return {
            "version": msg.version,
            "credits": msg.credits,
            "in_dtype": codes[msg.in_dtype],
            "out_dtype": codes[msg.out_dtype],
            "max_payload": msg.max_payload,
            "model_id": msg.model_id.hex(),
            "in_h": h,
            "in_w": w,
            "in_c": c,
            "out_len": msg.num_classes,
            "in_scale": msg.in_scale,
            "in_zero_point": msg.in_zero_point,
            "out_scale": msg.out_scale,
            "out_zero_point": msg.out_zero_point,
            "arena_bytes": msg.arena_bytes,
            "engine": msg.engine,
            "build": msg.build,
        }
    if isinstance(msg, P.Result):
        return {"inference_us": msg.inference_us, "cycles": msg.cycles, "output": msg.output.hex()}
    if isinstance(msg, P.Error):
        return {"code": msg.code, "flags": P.ERROR_SEQ_VALID if msg.seq_valid else 0, "detail": msg.detail}
    return {}  # FRAME, PING, PONG: the payload is the message


def canonical(event: P.DecodeEvent) -> dict:
    if isinstance(event, P.Fault):
        return {
            "event": "fault",
            "code": int(event.code),
            "name": event.code.name,
            "seq": event.seq,
            "detail": event.detail,
            "offset": event.offset,
        }
    out = {
        "event": "frame",
        "type": event.type,
        "seq": event.seq,
        "offset": event.offset,
        "payload": event.payload.hex(),
    }
    if event.type not in P.MESSAGE_CLASSES:
        out["message"] = {}
        return out
    try:
        out["message"] = message_fields(event.message())
    except P.ProtocolError:
        out["message_error"] = "MALFORMED"
    return out


def decode_chunked(data: bytes, max_payload: int, chunk: int, flush: bool = False) -> list[dict]:
    dec = P.Decoder(max_payload)
    step = chunk or max(len(data), 1)
    events = []
    for i in range(0, len(data), step):
        events += dec.feed(data[i : i + step])
    if flush:
        events += dec.flush()
        assert dec.stats.bytes_in == len(data)
    return [canonical(e) for e in events]


# ---- damaged stream shared with the C test ---------------------------------------------------------


@dataclass
class StreamFrame:
    type: int
    seq: int
    payload: bytes
    start: int  # offset in the damaged stream
    end: int
    damaged: bool


def damaged_stream(n_frames: int = 1000, seed: int = 7) -> tuple[bytes, list[StreamFrame], int]:
    """A stream of FRAME/RESULT/PING frames where ~15% are damaged (bit flip, dropped or inserted byte, or
    a mix) and ~3% of the gaps between frames get noise. Returns (bytes, frames, number of noise gaps)."""
    rng = random.Random(seed)
    out = bytearray()
    frames: list[StreamFrame] = []
    noise_gaps = 0
    for seq in range(n_frames):
        if rng.random() < 0.03:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            noise_gaps += 1
        kind = rng.choice((P.MsgType.FRAME, P.MsgType.FRAME, P.MsgType.RESULT, P.MsgType.PING))
        payload = rng.randbytes(rng.randint(0, 1500) if kind == P.MsgType.FRAME else rng.randint(0, 40))
        wire = bytearray(P.encode_frame(kind, seq, payload))
        damaged = rng.random() < 0.15
        if damaged:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                how, at = rng.choice(("flip", "drop", "insert")), rng.randrange(1, len(wire))
                if how == "flip":
                    wire[at] ^= 1 << rng.randrange(8)
                elif how == "drop":
                    del wire[at]
                else:
                    wire.insert(at, rng.randrange(256))
        frames.append(StreamFrame(int(kind), seq, payload, len(out), len(out) + len(wire), damaged))
        out += wire
    return bytes(out), frames, noise_gaps


def check_damaged_decode(events: list[dict], frames: list[StreamFrame], noise_gaps: int) -> None:
    """Every intact frame decoded, none decoded wrong, every damaged one decoded intact or covered by a fault.

    A damaged frame can still decode correctly: a frame that lost its last byte takes the next frame's sync
    byte in its place, and when the CRC's last byte was A5 the frame is whole again (1 in 256).
    """
    by_offset = {f.start: f for f in frames}
    decoded = {e["offset"]: e for e in events if e["event"] == "frame"}
    missing = [f.seq for f in frames if not f.damaged and f.start not in decoded]
    assert not missing, f"intact frames not decoded: {missing[:10]}"
    wrong = [
        e
        for off, e in decoded.items()
        if off not in by_offset
        or (e["type"], e["seq"], e["payload"])
        != (by_offset[off].type, by_offset[off].seq, by_offset[off].payload.hex())
    ]
    assert not wrong, f"frames decoded wrong: {wrong[:3]}"
    offsets = [e["offset"] for e in events]
    assert offsets == sorted(offsets), "events must come in stream order"
    unreported = []
    for f in frames:
        if f.damaged and f.start not in decoded:
            before = [e for e in events if e["offset"] < f.end]
            if not before or before[-1]["event"] != "fault":
                unreported.append(f.seq)
    assert not unreported, f"damaged frames without a fault: {unreported[:10]}"
    n_faults = sum(e["event"] == "fault" for e in events)
    n_damaged = sum(f.damaged for f in frames)
    assert 0 < n_faults <= n_damaged + noise_gaps, (n_faults, n_damaged, noise_gaps)


# ---- the native engine harness (tests/c/engine_harness.c) -------------------------------------------


def build_harness(model_dir: Path, exe: Path, emulate_dsp: bool = False) -> Path:
    """Compile the native harness against a generated model directory (bench/engine_exactness.py's build)."""
    from bench import engine_exactness

    return engine_exactness.build_native(model_dir, exe, emulate_dsp, gcc=require_tool("gcc"))


def run_harness(exe: Path, frames: np.ndarray, out_dtype: np.dtype, work: Path) -> np.ndarray:
    from bench import engine_exactness

    return engine_exactness.run_native(exe, frames, out_dtype, work)


def schedule_budgets(tflite: Path) -> list[int | None]:
    """RAM budgets that give the three kinds of schedule (tinyml/codegen/schedule.py): the smallest arena (None,
    fused wherever that helps), one halfway between it and layer by layer (some runs fused), and layer by layer."""
    from tinyml.codegen import lower_graph
    from tinyml.codegen.schedule import choose_schedule
    from tinyml.tflite_graph import load_graph

    graph = load_graph(tflite.read_bytes())
    smallest = choose_schedule(graph, lower_graph(graph)).arena_bytes
    fastest = choose_schedule(graph, lower_graph(graph), LAYER_BY_LAYER).arena_bytes
    return [None, (smallest + fastest) // 2, LAYER_BY_LAYER]


def check_bit_exact(
    tflite: Path, frames: np.ndarray, tmp_path: Path, distinct: bool = True, budgets: list[int | None] | None = None
) -> None:
    """Every output byte of the engine (portable and emulated-DSP builds, each schedule in ``budgets``;
    default: the generator's default schedule) equals LiteRT-ref's, on frames that give varied outputs."""
    reference = ReferenceModel(tflite)
    assert frames.dtype == reference.input_dtype
    expected = np.stack([reference.invoke(frame) for frame in frames])
    # Non-degenerate: the images must not all give the same answer, or equality would prove little.
    assert len({row.tobytes() for row in expected}) > (len(frames) // 2 if distinct else 10)
    assert len(set(expected.argmax(axis=1).tolist())) >= min(3, expected.shape[1])
    built: dict[bytes, int | None] = {}  # generated C -> the budget that gave it
    for budget in budgets or [None]:
        out_dir = tmp_path / f"codegen_{budget or 'default'}"
        generate(tflite, out_dir, budget)
        # Two budgets can give one schedule (a small model fuses nothing): the same C, already checked.
        code = b"".join((out_dir / name).read_bytes() for name in ("model_engine.h", "model_engine.c"))
        if code in built:
            continue
        built[code] = budget
        for emulate_dsp in (False, True):
            exe = build_harness(out_dir, tmp_path / f"harness{'_dsp' if emulate_dsp else ''}", emulate_dsp)
            got = run_harness(exe, frames, reference.output_dtype, tmp_path)
            mismatched = np.flatnonzero((got != expected).any(axis=1))
            assert mismatched.size == 0, (
                f"{'DSP' if emulate_dsp else 'portable'} path, RAM budget {budget}, differs from LiteRT-ref on "
                f"{mismatched.size} of {len(frames)} images, first #{mismatched[:1]}: {got[mismatched[:1]]} vs "
                f"{expected[mismatched[:1]]}"
            )


SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def require_shared_model(name: str) -> Path:
    """A public reference model from ../shared/models (read in place, never copied into the tree); when it is
    missing, fail under CI and skip elsewhere."""
    path = SHARED_MODELS / name
    if path.is_file():
        return path
    message = f"{path} not found (the public reference models live in ../shared/models, see its README)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
