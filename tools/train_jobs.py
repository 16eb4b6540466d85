"""Model pipelines that run side by side: one ``python -m tools demo --only ARCH`` child per model, one TensorFlow
thread each, and the small progress channel between such a child and the demo that started it.

Why children: Keras keeps about one core busy training the demo's small models (docs/benchmarks.md, "make demo"),
so two pipelines side by side on a 2-core machine take the wall time of the longer one instead of the sum, and
each model's later steps (quantize ... QEMU stream) start the moment its own training ends, whatever the other
does. Each child is a command a user can type. Its output (one line per epoch) is relayed line by line, prefixed
with the model's name, to the descriptor stdout was when the console was made.

The channel: the child writes JSON lines to an inherited pipe (``--progress-fd``): a ``step`` record when a step
starts or ends (monotonic clock, the same clock in every process here), a ``progress`` record as a training epoch's
percent moves on (epoch, batch), a ``frames`` record as the stream to the QEMU board moves on, and a ``result``
record with its summary row at the end. The parent reads them into :attr:`Job.records`, draws its status line from
them (only on a terminal: :class:`Console`) and builds its summary and timeline from them; no Keras progress-bar
text is parsed.

The children stay in the caller's process group, so a Ctrl-C at the terminal reaches them (and the QEMU and
stream.py processes they run) as it reaches the caller; :meth:`Job.stop` ends one that no signal reached (SIGTERM
to the caller alone, or the other pipeline failed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, Callable, Sequence, TextIO

from models.errors import UserError

# TensorFlow's intra- and inter-op pools read these at start-up; one thread per pipeline, one pipeline per core.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 3.0  # a Ctrl-C reached the child too: let it end on its own (exit 130) before SIGTERM


class Console:
    """Whole lines from several threads to the stdout descriptor as it was when the console was made; on a
    terminal, a status line kept below them (redrawn with a carriage return, erased before each line)."""

    def __init__(self) -> None:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
        self.live = os.isatty(fd)  # a status line only on a terminal: in a log or a pipe its redraws are noise
        self._file: TextIO = os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        self._status = ""

    def _erase(self) -> str:
        return "\r" + " " * len(self._status) + "\r" if self._status else ""

    def line(self, text: str) -> None:
        with self._lock:
            if self._file.closed:  # a relay thread still running after a stop: its line has nowhere to go
                return
            self._file.write(self._erase() + text + "\n" + self._status)
            self._file.flush()

    def status(self, text: str) -> None:
        """Replace the status line (a no-op unless stdout is a terminal); cut to the terminal's width, since a
        carriage return only returns to the start of the last row of a wrapped line."""
        if not self.live:
            return
        text = text[: max(shutil.get_terminal_size().columns - 1, 10)]
        with self._lock:
            if text != self._status and not self._file.closed:
                self._file.write((self._erase() or "\r") + text)
                self._status = text
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.write(self._erase())
            self._status = ""
            self._file.close()


class Channel:
    """The child's end of the progress channel: JSON lines to ``fd`` (None: nobody listens, nothing written)."""

    def __init__(self, fd: int | None) -> None:
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._percent: tuple[int, int] | None = None
        self._frames: tuple[int, int] | None = None
        if fd is not None:
            try:
                self._file = os.fdopen(fd, "w", encoding="utf-8")
            except OSError as exc:
                raise UserError(
                    f"--progress-fd {fd} is not an open file descriptor ({exc.strerror}); leave it out "
                    "(the demo opens one for each child it starts)"
                ) from None

    @property
    def idle(self) -> bool:
        """True when nobody listens (no --progress-fd): the command was typed by a person."""
        return self._file is None

    def send(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            with self._lock:  # whole lines: Keras calls progress from its worker threads
                self._file.write(json.dumps(record, default=str) + "\n")
                self._file.flush()

    def step(self, name: str, event: str) -> None:
        """A step starts or ends (tools/demo.Steps' ``on_event``): its name and the monotonic time."""
        self.send({"type": "step", "name": name, "event": event, "t": time.monotonic()})

    def progress(self, epoch: int, epochs: int, batch: int, batches: int) -> None:
        """A training batch ended (train_bundle's ``on_batch``); sent when the epoch's whole percent moves on."""
        percent = (epoch, 100 * batch // max(batches, 1))
        with self._lock:  # only forward: two worker threads may report batches out of order
            if self._percent is not None and percent <= self._percent:
                return
            self._percent = percent
        self.send({"type": "progress", "epoch": epoch, "epochs": epochs, "batch": batch, "batches": batches})

    def frames(self, answered: int, frames: int) -> None:
        """How far the stream to the QEMU board is (run_on_qemu's ``on_frame``); sent when it moved on."""
        if (answered, frames) != self._frames:
            self._frames = (answered, frames)
            self.send({"type": "frames", "answered": answered, "frames": frames})


class Job:
    """One model's pipeline in a child: started at construction, its output relayed to ``console``, its channel
    records kept in :attr:`records` and passed to ``on_record`` as they come."""

    def __init__(
        self, label: str, argv: Sequence[str], console: Console, on_record: Callable[[dict[str, Any]], None]
    ) -> None:
        self.label = label
        self.last_error: str | None = None  # the child's own one-line error, if it printed one
        self.exit_code: int | None = None
        self.cpu_seconds: float | None = None  # from wait4 once it has ended
        self.records: list[dict[str, Any]] = []
        self.step: str | None = None  # the step running (or the last one started)
        self._console, self._on_record = console, on_record
        read_end, write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, *argv, "--progress-fd", str(write_end)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"},  # each line as it is printed
                text=True,
                errors="replace",
            )
        finally:
            os.close(write_end)
        self._threads = [
            threading.Thread(target=self._forward, name=f"relay {label}", daemon=True),
            threading.Thread(target=self._read_channel, args=(read_end,), name=f"channel {label}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def result(self) -> dict[str, Any] | None:
        return next((r["row"] for r in self.records if r["type"] == "result"), None)

    def _forward(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            if line.startswith("error: "):
                self.last_error = line[len("error: ") :]
            self._console.line(f"   [{self.label}] {line}")

    def _read_channel(self, fd: int) -> None:
        with os.fdopen(fd, encoding="utf-8", errors="replace") as channel:
            for line in channel:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a record cut short by a killed child
                    continue
                if record.get("type") == "step" and record.get("event") == "start":
                    self.step = record["name"]
                self.records.append(record)
                self._on_record(record)

    def poll(self) -> bool:
        """True once the child has ended (reaped here, with its CPU seconds, its output read); never blocks."""
        if self.exit_code is None:
            pid, status, usage = os.wait4(self._proc.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.exit_code = self._proc.returncode = os.waitstatus_to_exitcode(status)
            for thread in self._threads:
                thread.join(5)  # the last lines and records it wrote, before anyone reports on it
            self.cpu_seconds = usage.ru_utime + usage.ru_stime
        return True

    def check(self) -> None:
        """Raise the one-line error of a pipeline that ended badly, naming its model and step; one a Ctrl-C or
        SIGTERM stopped (its run_cli exits 130 or 143) raises KeyboardInterrupt, ending the caller as the
        interruption it is."""
        code = self.exit_code
        if code in (None, 0):
            return
        if code in (130, 143):
            raise KeyboardInterrupt()
        if code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        else:
            reason = f"exit {code}: {self.last_error or 'its output is above, prefixed with its name'}"
        raise UserError(f"{self.label}: {self.step or 'start-up'} failed ({reason})")

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


def wait_all(jobs: Sequence[Job]) -> None:
    """Block until every job has ended well; the first that fails ends the wait with its error at once (the
    caller stops the others)."""
    while True:
        ended = [job.poll() for job in jobs]  # every job polled, so a failure is seen whichever job it is
        for job in jobs:
            job.check()
        if all(ended):
            return
        time.sleep(POLL_SECONDS)
