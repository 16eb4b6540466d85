"""Boards that run on this machine: the firmware under QEMU (mps2-an386, Cortex-M4) or as a native Linux process.

Each board is a process plus a ``url`` that pyserial opens like a real serial port
(``serial.serial_for_url(board.url)``): ``socket://127.0.0.1:PORT`` for QEMU's UART0, the pty path for the
native build. host/stream.py uses them for ``--board qemu|native``; fault tests kill and restart them
mid-stream with :meth:`restart`. Use as a context manager so the process never outlives the caller::

    with QemuBoard(elf) as board:
        link = serial.serial_for_url(board.url, timeout=2)

A board is the host's child, not part of the user's terminal job: it runs in its own session, so a Ctrl-C that
the terminal sends to the whole foreground process group reaches the host only, which then ends the stream
cleanly and stops the board itself. It is also tied to the host's life (``PR_SET_PDEATHSIG``): a host killed with
SIGKILL takes its board with it instead of leaving it re-parented to init. A board that died under a running
host (killed, crashed) is started again by :meth:`LocalBoard.live_url`, which the stream's reconnect asks for
the port.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterable

from models.errors import UserError

if TYPE_CHECKING:
    from tinyml.protocol import Hello
    from tinyml.targets.base import Result

APT_HINT = "sudo apt-get install -y {package}  (or run `make test` as root, which installs it)"
START_TIMEOUT_S = 20.0


def require_executable(name: str, package: str) -> str:
    """Path of tool ``name``; a missing one is a UserError naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        raise UserError(f"{name} not found on PATH; install it with: {APT_HINT.format(package=package)}")
    return path


def _free_tcp_port() -> int:
    """A TCP port nobody listens on right now (QEMU binds it a moment later; start() retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _holds_socket(pid: int, inode: str) -> bool:
    """Whether process ``pid`` has socket ``inode`` (the inode column of /proc/net/tcp) open."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # it exited
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: a forked child must not load libraries


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A pre-exec hook: SIGKILL the child when ``parent`` dies (Linux), so a killed host leaves no board behind.

    The kernel ties the signal to the *thread* that forked, so only the main thread (which lives as long as
    the process) asks for it; a board started from a short-lived helper thread only gets its own session.
    """

    def hook() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return hook


class LocalBoard:
    """A firmware process with start/stop/restart; subclasses say how to launch it and where its UART is."""

    def __init__(self, image: str | os.PathLike):
        self.image = Path(image)
        if not self.image.is_file():
            raise UserError(
                f"firmware image {self.image} does not exist; build it with: python -m tools firmware BUNDLE"
            )
        self.url: str | None = None
        self.restarts = 0  # times live_url() started the board again after it died
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None  # a file, not a pipe: a chatty process must never block on a full pipe

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Launch the firmware; returns the pyserial url once the board accepts a connection."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.url = self._launch()
        return self.url

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate the process (SIGTERM, then SIGKILL); returns its exit status. Safe to call twice."""
        proc, self._proc = self._proc, None
        self.url = None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return proc.returncode

    def kill(self) -> None:
        """Kill the process abruptly (SIGKILL), as a power cut would; the url stays until restart()."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def restart(self) -> str:
        """Stop (if running) and start again; the url may change (QEMU picks a new free port)."""
        self.stop()
        return self.start()

    def live_url(self) -> str | None:
        """The url of the running board, starting it again first if its process died (killed, crashed).

        A board stopped on purpose (:meth:`stop`) stays stopped: the url is None then.
        """
        if self._proc is not None and self._proc.poll() is not None:
            self.restarts += 1
            return self.restart()
        return self.url

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the firmware to exit by itself (QEMU: semihosting exit) and return its status."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.wait(timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self.image.name})"

    def __enter__(self) -> "LocalBoard":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # a forgotten board must not keep running after the test or script
        try:
            self.stop(timeout=1.0)
        except Exception:
            pass

    def _launch(self) -> str:
        raise NotImplementedError

    def _popen(self, cmd: list[str], stdout: int) -> subprocess.Popen[bytes]:
        self._stderr = tempfile.TemporaryFile()
        hook = _die_with_parent(os.getpid()) if threading.current_thread() is threading.main_thread() else None
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=self._stderr, start_new_session=True, preexec_fn=hook
        )

    def _stderr_text(self) -> str:
        """The process's stderr so far, on one line (the last 300 characters)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return " ".join(self._stderr.read().decode(errors="replace").split())[-300:]

    def _fail(self, what: str) -> UserError:
        """Stop the process and turn its stderr into a one-line error after a failed start."""
        detail = ""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            detail = self._stderr_text()
            self.stop()
        return UserError(f"{self.name} {what}" + (f": {detail}" if detail else ""))


class QemuBoard(LocalBoard):
    """The mps2-an386 firmware ELF under qemu-system-arm, UART0 on a TCP socket.

    ``-icount shift=0`` makes one instruction take 1 ns of virtual time, so the firmware's SysTick count
    (x 40) is the exact instruction count it reports in RESULT, the same on every run. QEMU waits for the
    host to connect before the CPU starts (``wait=on``), so the boot HELLO is never lost.
    """

    def __init__(self, elf: str | os.PathLike, *, extra_args: list[str] | None = None):
        super().__init__(elf)
        self.qemu = require_executable("qemu-system-arm", "qemu-system-arm")
        self.extra_args = list(extra_args or [])
        self.port: int | None = None

    def command(self, port: int) -> list[str]:
        """The qemu-system-arm command line that boots the ELF with UART0 on 127.0.0.1:``port``."""
        return [
            self.qemu,
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-serial",
            f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
            "-kernel",
            str(self.image),
            *self.extra_args,
        ]

    def _launch(self) -> str:
        for _ in range(5):  # another process may grab the free port before QEMU binds it
            port = _free_tcp_port()
            self._proc = self._popen(self.command(port), subprocess.DEVNULL)
            if self._wait_listening(port):
                self.port = port
                return f"socket://127.0.0.1:{port}"
            if self._proc.poll() is None:
                raise self._fail(f"did not open its UART socket within {START_TIMEOUT_S:.0f} s")
            if "in use" not in self._stderr_text():
                raise self._fail("failed to start")
            self.stop()
        raise self._fail("could not find a free TCP port for its UART")

    def _wait_listening(self, port: int) -> bool:
        """True once QEMU listens on ``port`` (seen in /proc/net/tcp, without connecting), False if it exited.

        The listening socket must be one of QEMU's own open files: another process that took the port in the
        moment between _free_tcp_port and QEMU's bind (a parallel test's QEMU, say) also shows as LISTEN there,
        and connecting to it would talk to the wrong board while ours exits with "Address already in use".
        """
        needle = f"0100007F:{port:04X}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            with open("/proc/net/tcp") as table:
                for line in table:
                    fields = line.split()
                    if len(fields) > 9 and fields[1] == needle and fields[3] == "0A":  # 0A = LISTEN
                        if _holds_socket(self._proc.pid, fields[9]):
                            return True
            time.sleep(0.02)
        return False


class NativeBoard(LocalBoard):
    """The firmware built for Linux, talking over a pseudo-terminal it creates (its path is the url).

    The executable prints ``PTY <path>`` as its first stdout line; pyserial then opens that path like any
    serial port.
    """

    def _launch(self) -> str:
        try:
            self._proc = self._popen([str(self.image)], subprocess.PIPE)
        except OSError as exc:
            raise UserError(
                f"cannot run {self.image} ({exc.strerror}); build the native firmware with: "
                "python -m tools firmware BUNDLE --port native"
            ) from None
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("PTY "):
            raise self._fail(f"did not announce its pty (first line {line!r})")
        return line[4:]


def run_frames(url: str, frames: Iterable[bytes], *, timeout: float = 60.0) -> tuple[Hello, list[Result]]:
    """Handshake with the board at ``url`` and stream ``frames`` through it, keeping its credit window full.

    The stream's own protocol client (tinyml.targets.serial_board.SerialBoardTarget) without reconnecting, for
    tests, bench scripts and report's QEMU count. Returns the board's HELLO and one Result per frame, in order; a
    frame lost to an ERROR or a corrupt reply is a RuntimeError naming why, ``timeout`` seconds of silence a
    UserError.
    """
    import numpy as np

    from tinyml.targets.base import Lost, Notice
    from tinyml.targets.base import Result as Answer
    from tinyml.targets.serial_board import SerialBoardTarget

    pending = [np.frombuffer(frame, np.uint8) for frame in frames]
    target = SerialBoardTarget(
        url, name=f"board at {url}", hello_timeout=timeout, reconnect_s=0.0, frame_timeout=timeout
    )
    results: dict[int, Answer] = {}
    try:
        credits = target.open().credits
        sent = 0
        while len(results) < len(pending):
            while sent < len(pending) and sent - len(results) < credits:
                sent += 1
                target.send(sent, pending[sent - 1])
            for event in target.poll(0.05):
                if isinstance(event, Lost):
                    raise RuntimeError(f"frame {event.seq} of {len(pending)} lost: {event.reason}")
                if not isinstance(event, Notice):
                    results[event.seq] = event
    finally:
        target.close()
    return target.hello, [results[i + 1] for i in range(len(pending))]
