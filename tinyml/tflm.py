"""The one measurement of how much TFLite-Micro tensor arena a model needs (the tflite-micro Python runtime).

Both figures come from the runtime's RecordingMicroAllocator, which reports only through ``print_allocations()`` on
the C-level stderr, so file descriptor 2 is captured around that call. ``measure_arena`` is the number evaluate
records, export sizes the firmware with and report checks board fit with: the recorded total, or more when the
memory planner's temporary buffer does not fit in it (the smallest arena that really allocates, in 16-byte
steps). It runs in a child process (``python -m tinyml.tflm MODEL ROOMY``): a model TFLM rejects makes the runtime
abort, which must not take the caller with it. ``bundle_arena`` measures a bundle's model once: evaluate records the
figure with the .tflite's sha256, and export, the firmware step and report reuse it for that same .tflite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from models.bundle import Bundle
from models.errors import UserError

ARENA_STEP = 16
_ROOT = Path(__file__).resolve().parents[1]


def capture_fd2(func: Callable[[], Any]) -> str:
    """Run ``func()`` and return what it wrote to file descriptor 2 (C/C++ stderr, invisible to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            func()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode("utf-8", "replace")


def allocations(interp: Any) -> dict[str, int]:
    """Arena bytes a loaded tflite-micro interpreter uses: total, head (activations) and tail (persistent)."""
    report = capture_fd2(interp.print_allocations)
    found = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", report)}
    if "total" not in found:
        raise RuntimeError(f"tflite-micro printed no arena report; got: {report[:200]!r}")
    return found


def measure_arena(tflite_path: str | os.PathLike, timeout: float = 300.0) -> int:
    """Smallest arena (ARENA_STEP steps) the tflite-micro runtime allocates this model in (see the module doc)."""
    size = Path(tflite_path).stat().st_size
    roomy = max(16 * 1024 * 1024, 10 * size)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tinyml.tflm", str(tflite_path), str(roomy)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"the tflite-micro runtime did not finish allocating {tflite_path} within {timeout:.0f} s; "
            "check the model with python -m tools evaluate"
        ) from None
    total = re.search(r"^total (\d+)$", proc.stdout, re.M)
    minimum = re.search(r"^minimum (\d+)$", proc.stdout, re.M)
    if proc.returncode != 0 or total is None or minimum is None:
        lines = [ln for ln in (proc.stderr + proc.stdout).strip().splitlines() if ln.strip()]
        detail = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise UserError(
            f"TFLite-Micro cannot run {tflite_path} ({detail}); the model uses an op or quantisation "
            "TFLM rejects; re-quantize it with python -m tools quantize"
        )
    return max(int(total.group(1)), int(minimum.group(1)))


def bundle_arena(bundle: Bundle) -> int:
    """measure_arena of the bundle's current .tflite, measured once per model: the figure evaluate recorded
    (``metrics.evaluation.tflm_arena_bytes.required``) when it was recorded for this .tflite's sha256, else a new
    measurement (each costs a child process and a TFLM start-up, and the demo's steps would otherwise take three)."""
    tflite = bundle.verified_artifact("tflite")
    evaluation = bundle.meta.get("metrics", {}).get("evaluation", {})
    recorded = evaluation.get("tflm_arena_bytes", {}).get("required")
    if evaluation.get("tflite_sha256") == bundle.model_id and isinstance(recorded, int):
        return recorded
    return measure_arena(tflite)


def _measure_in_child(argv: Sequence[str]) -> int:
    """The child of measure_arena: allocate with a roomy arena and read the recorded total, then search upwards
    for the smallest arena that really allocates (the total leaves out the planner's temporary buffer, which
    AllocateTensors needs as well). Arenas below the total are never probed: some make the runtime abort."""
    from tflite_micro import runtime

    path, roomy = argv[0], int(argv[1])
    total = allocations(runtime.Interpreter.from_file(path, arena_size=roomy))["total"]

    def allocates(arena: int) -> bool:
        try:
            runtime.Interpreter.from_file(path, arena_size=arena)
            return True
        except RuntimeError:
            return False

    low, high = (total + ARENA_STEP - 1) // ARENA_STEP - 1, roomy // ARENA_STEP
    while low + 1 < high:
        mid = (low + high) // 2
        if allocates(mid * ARENA_STEP):
            high = mid
        else:
            low = mid
    print("total", total)
    print("minimum", high * ARENA_STEP, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_measure_in_child(sys.argv[1:]))
