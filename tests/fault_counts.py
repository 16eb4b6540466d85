"""The fault-injection tally (tests/test_faults.py, tests/test_misuse.py), printed after the run by conftest.py and
written to build/fault_injection.json: signals delivered, kills, corrupt inputs tried, records lost or duplicated
(must be 0), tracebacks (must be 0)."""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from pathlib import Path

COUNTS: collections.Counter[str] = collections.Counter()
REPORT = Path(__file__).resolve().parents[1] / "build" / "fault_injection.json"
ZERO = ("records_lost", "records_duplicated", "tracebacks", "orphans")


def check_no_traceback(text: str) -> None:
    """Count and refuse a Python traceback in a command's output."""
    if "Traceback (most recent call last)" in text:
        COUNTS["tracebacks"] += 1
        raise AssertionError(f"a traceback reached the user:\n{text[-3000:]}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie's parent has not reaped it yet: it is gone for good)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_no_orphans(pids: set[int], timeout: float = 5.0) -> None:
    """Every process in ``pids`` ends within ``timeout`` s; count and kill (SIGKILL) the ones that outlive it."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    COUNTS["orphans"] += len(left)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the host: {left}"


def report_lines() -> list[str]:
    """The tally as text (and saved to REPORT); empty when no fault test ran."""
    if not COUNTS:
        return []
    figures = {
        key: COUNTS.get(key, 0)
        for key in (
            "signals",
            "kills",
            "corrupt_inputs",
            "hostile_model_json",
            "cli_error_paths",
            "records_checked",
            *ZERO,
        )
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(figures, indent=2) + "\n")
    return [
        "fault injection: " + ", ".join(f"{key} {value}" for key, value in figures.items()),
        f"  (saved to {REPORT})",
    ]
