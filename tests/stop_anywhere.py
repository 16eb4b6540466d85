"""Ctrl-C at any moment of a stream: run many short real streams (LiteRT --cpu target) in this process, each with one
SIGINT from a timer at a random moment, and check every log the runs left.

Run by tests/test_faults.py as ``python -m tests.stop_anywhere BUNDLE RUNS SEED OUT``; prints one JSON line of counts.
The signal goes through the interpreter's own SIGINT handling, as a terminal's Ctrl-C does, so a moment where the
stream's stop handlers are not installed (the gap the contract forbids: a start record with no summary) raises a
KeyboardInterrupt there, as in the real host.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from host.results_log import ResultsLog, check_accounted, read_log
from host.session import StreamSession
from host.sources import ArraySource
from models.bundle import load_bundle
from tinyml.targets.cpu import CpuTarget

FRAMES = 3  # short runs, so the random moment often lands in the start-up and wrap-up the bug class lives in


def one_run(bundle, images: np.ndarray, labels: np.ndarray, log_path: Path, delay: float | None) -> tuple[str, float]:
    """One stream: ('stopped' (KeyboardInterrupt out of the run), 'signal_after_run' or 'finished' (no signal),
    how long session.run() took when it returned)."""
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)) if delay is not None else None
    outcome, seconds = "finished", 0.0
    try:
        try:
            with ResultsLog(log_path) as log:
                session = StreamSession(
                    bundle, ArraySource(images, labels, "fashion-mnist:test"), CpuTarget(bundle), log
                )
                if timer is not None:
                    timer.start()
                began = time.monotonic()
                session.run()
                seconds = time.monotonic() - began
        except KeyboardInterrupt:
            outcome = "stopped"
    except KeyboardInterrupt:  # delivered while the inner handler ran
        outcome = "stopped"
    while timer is not None:  # the signal must have come and gone before the log is read
        try:
            timer.join()
            time.sleep(0.002)
            break
        except KeyboardInterrupt:  # the signal came after the run had returned
            outcome = "signal_after_run" if outcome == "finished" else outcome
    return outcome, seconds


def main(bundle_dir: str, runs: int, seed: int, out: str) -> dict:
    # A background job of a non-interactive shell (CI) starts with SIGINT ignored, and Python then leaves it so;
    # a terminal's process (and every CLI, through models.errors.run_cli) raises KeyboardInterrupt on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bundle = load_bundle(bundle_dir)
    rng = random.Random(seed)
    images = np.random.default_rng(seed).integers(0, 256, (FRAMES, 28, 28), dtype=np.uint8)
    labels = np.zeros(FRAMES, np.int64)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    warm = sorted(one_run(bundle, images, labels, root / f"warm{i}.jsonl", None)[1] for i in range(7))
    span = warm[3]  # the median: signals land over the whole of a typical run and a little after
    counts: dict[str, Any] = {
        "runs": runs,
        "finished": 0,
        "stopped": 0,
        "signal_after_run": 0,
        "interrupted_summaries": 0,
        "no_start": 0,
        "broken": 0,
    }
    broken: list[str] = []
    for i in range(runs):
        path = root / f"r{i}.jsonl"
        outcome, _ = one_run(bundle, images, labels, path, rng.uniform(0.0, 1.2 * span))
        counts[outcome] += 1
        records = read_log(path) if path.exists() else []
        kinds = [r["type"] for r in records]
        if "start" not in kinds:
            counts["no_start"] += 1
            if records:
                broken.append(f"{path.name}: records without a start: {kinds}")
            continue
        summaries = [r for r in records if r["type"] == "summary"]
        if kinds.count("start") != 1 or len(summaries) != 1 or kinds[-1] != "summary":
            broken.append(f"{path.name} ({outcome}): start/summary not paired: {kinds}")
            continue
        try:
            check_accounted(records)
        except ValueError as exc:
            broken.append(f"{path.name}: {exc}")
        if summaries[0]["interrupted"]:
            counts["interrupted_summaries"] += 1
            if outcome != "stopped":
                broken.append(f"{path.name}: the summary says interrupted but the run returned normally")
        path.unlink()
    counts["broken"] = len(broken)
    counts["examples"] = broken[:5]
    counts["run_seconds"] = round(span, 4)
    return counts


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
