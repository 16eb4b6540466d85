"""Trainings that run beside the caller: ``python -m tools train`` in a child process, one TensorFlow thread each.

Why: Keras keeps about one core busy training the demo's small models (docs/benchmarks.md, "make demo"), so two
trainings side by side on a 2-core machine take the wall time of the longer one instead of the sum. Each child is
the command a user would type. Its output (one line per epoch: ``--quiet``) is relayed line by line, prefixed with
the model's name, to the descriptor stdout was when the jobs started: the caller's own redirection of fds 1 and 2
around TensorFlow calls (models.quiet.native_output) must not swallow the other training's lines.

The children stay in the caller's process group, so a Ctrl-C at the terminal reaches them as it reaches the
caller; :meth:`TrainingJob.stop` ends one that no signal reached (SIGTERM to the caller alone, or the other
training failed). Their CPU seconds come from ``wait4``, so a caller can report them per training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence, TextIO

from models.errors import UserError

# TensorFlow's intra- and inter-op pools read these at start-up; one thread per training, one training per core.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 3.0  # a Ctrl-C reached the child too: let it end on its own (exit 130) before SIGTERM


class Console:
    """Whole lines from several threads to the stdout descriptor as it was when the console was made."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._file: TextIO = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            self._file.write(text + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class TrainingJob:
    """One ``python -m tools train`` child: started at construction, its output relayed to ``console``."""

    def __init__(self, label: str, train_args: Sequence[str], console: Console) -> None:
        self.label = label
        self.last_error: str | None = None  # the child's own one-line error, if it printed one
        self.seconds: tuple[float, float] | None = None  # (wall, CPU) once it has ended
        self.exit_code: int | None = None
        self._console = console
        self._started = time.monotonic()
        self._ended: float | None = None  # when its output closed: its end, even if reaped later
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tools", "train", *train_args, "--restart", "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"},  # each line as it is printed
            text=True,
            errors="replace",
        )
        self._relay = threading.Thread(target=self._forward, name=f"relay {label}", daemon=True)
        self._relay.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _forward(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            if line.startswith("error: "):
                self.last_error = line[len("error: ") :]
            self._console.line(f"   [{self.label}] {line}")
        self._ended = time.monotonic()

    def poll(self) -> bool:
        """True once the child has ended (reaped here, with its CPU seconds); never blocks."""
        if self.exit_code is None:
            pid, status, usage = os.wait4(self._proc.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.exit_code = self._proc.returncode = os.waitstatus_to_exitcode(status)
            self._relay.join(5)  # the last lines it printed, before anyone reports on it
            wall = (self._ended or time.monotonic()) - self._started
            self.seconds = (wall, usage.ru_utime + usage.ru_stime)
        return True

    def check(self) -> None:
        """Raise the one-line error of a training that ended badly; one a Ctrl-C or SIGTERM stopped (its run_cli
        exits 130 or 143) raises KeyboardInterrupt, ending the caller as the interruption it is."""
        code = self.exit_code
        if code in (None, 0):
            return
        if code in (130, 143):
            raise KeyboardInterrupt()
        if code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        else:
            reason = f"exit {code}: {self.last_error or 'its output is above, prefixed with its name'}"
        raise UserError(f"training {self.label} failed ({reason})")

    def stop(self, interrupted: bool) -> None:
        """End the child if it still runs: SIGTERM (after a grace period if ``interrupted``: the Ctrl-C reached it
        too, and it ends on its own), then SIGKILL."""
        if self.poll():
            return
        steps = ((None, STOP_GRACE_SECONDS),) if interrupted else ()
        for send, grace in (*steps, (self._proc.terminate, 10.0), (self._proc.kill, 10.0)):
            if send is not None:
                send()
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if self.poll():
                    return
                time.sleep(POLL_SECONDS)


def wait_for(job: TrainingJob, others: Sequence[TrainingJob]) -> tuple[float, float]:
    """Block until ``job`` ends; a failure of any of ``others`` meanwhile ends the wait with its error at once.

    Returns the job's (wall, CPU) seconds."""
    while not job.poll():
        check_all(others)
        time.sleep(POLL_SECONDS)
    job.check()
    assert job.seconds is not None
    return job.seconds


def check_all(jobs: Sequence[TrainingJob]) -> None:
    """Raise the error of the first job that has ended badly (the demo checks between its steps)."""
    for job in jobs:
        job.poll()
        job.check()


def train_args(
    architecture: str, width: float, epochs: int, batch_size: int, lr: float, seed: int, limit: int | None, out: Path
) -> list[str]:
    """The ``python -m tools train`` options of one demo training."""
    args = ["--arch", architecture, "--width", f"{width:g}", "--epochs", str(epochs), "--batch-size", str(batch_size)]
    args += ["--lr", f"{lr:g}", "--seed", str(seed), "--out", str(out)]
    return args + (["--limit", str(limit)] if limit is not None else [])
