"""A byte-level relay between the host and a board, for fault tests and link benchmarks.

Real links misbehave in three ways the stream must survive or be measured against, and this relay reproduces
each one on real bytes (the host still talks pyserial, the board still runs its firmware):

- a slow link: ``baud`` paces each direction to baud/10 bytes per second, as an 8N1 UART carries them;
- a noisy link: ``flip_rate`` flips one random bit in that fraction of the bytes (seeded, so runs repeat);
- a vanishing port (USB unplugged): with ``host_side="pty"`` the host opens a pseudo-terminal through a stable
  symlink; :meth:`vanish` closes it and removes the symlink, then brings a fresh one back after a pause;
- a blackout (loose contact, EMI burst): :meth:`blackout` silently drops every byte in both directions for a
  while, with the port staying open, so requests and answers vanish without any error.

The host-facing end is a TCP listener (url ``socket://127.0.0.1:PORT``, one connection at a time, each opening a
fresh connection to the board) or a pty symlink. The board-facing end is any pyserial URL, asked again each time
(a restarted QEMU listens on a new port).
"""

from __future__ import annotations

import functools
import os
import random
import select
import socket
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Callable

import serial

from tinyml.transport import selectable_handle, set_nodelay

_CHUNK = 4096


def _socket_read(client: socket.socket) -> bytes | None:
    """Up to _CHUNK bytes the host sent, or None after 50 ms of silence (so the pump can check for a stop)."""
    return client.recv(_CHUNK) if select.select([client], [], [], 0.05)[0] else None


class _Pacer:
    """Hold a byte stream to ``rate`` bytes/s: each chunk is delivered when its last byte would have arrived.

    The schedule is cumulative: the wire counts as idle only when data arrived after it had finished the previous
    bytes, so a late wake-up on a loaded machine is caught up on the next chunks instead of slowing the wire.
    """

    def __init__(self, rate: float | None):
        self.rate = rate
        self._free_at = time.monotonic()  # when the wire finishes the bytes already sent

    def wait(self, nbytes: int, arrived: float) -> None:
        """Sleep until ``nbytes`` (read from the sender at time ``arrived``) have crossed the wire."""
        if not self.rate:
            return
        self._free_at = max(self._free_at, arrived) + nbytes / self.rate
        delay = self._free_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class LinkRelay:
    """Relay between a host-facing endpoint and a board (see module docstring). Use as a context manager."""

    def __init__(
        self,
        device_url: str | Callable[[], str | None],
        *,
        host_side: str = "tcp",
        baud: int | None = None,
        flip_rate: float = 0.0,
        flip_direction: str = "both",
        seed: int = 0,
    ):
        if host_side not in ("tcp", "pty"):
            raise ValueError("host_side must be 'tcp' or 'pty'")
        if flip_direction not in ("both", "to_device", "to_host"):
            raise ValueError("flip_direction must be both, to_device or to_host")
        self._device_url = device_url if callable(device_url) else (lambda: device_url)
        self.host_side = host_side
        self.byte_rate = baud / 10.0 if baud else None
        self.flip_rate = flip_rate
        self.flip_direction = flip_direction
        self._rng = random.Random(seed)
        self.flipped = {"to_device": 0, "to_host": 0}
        self.relayed = {"to_device": 0, "to_host": 0}
        self.connections = 0
        self.dropped = 0
        self._drop_until = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._pty_link: Path | None = None
        self._pty_session: _PtySession | None = None
        self.url = ""

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> str:
        if self.host_side == "tcp":
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(1)
            self._listener.settimeout(0.1)
            self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
            self._spawn(self._accept_loop)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="relay-")
            self._pty_link = Path(self._tmpdir.name) / "ttyRELAY"
            self.url = str(self._pty_link)
            self._pty_session = self._open_pty()
        return self.url

    def stop(self) -> None:
        self._stop.set()
        if self._pty_session is not None:
            self._pty_session.close()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._listener is not None:
            self._listener.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> "LinkRelay":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def vanish(self, gone_s: float) -> None:
        """Pull the plug: the host's pty hangs up and its path disappears for ``gone_s`` seconds, then a new
        pty appears at the same path (connected to a fresh board connection). pty host side only."""
        if self.host_side != "pty" or self._pty_session is None or self._pty_link is None:
            raise RuntimeError("vanish() needs host_side='pty' and a started relay")
        self._pty_session.close()
        self._pty_link.unlink(missing_ok=True)
        time.sleep(gone_s)
        self._pty_session = self._open_pty()

    def blackout(self, seconds: float) -> None:
        """Drop all bytes in both directions for ``seconds`` from now (the connection stays up)."""
        self._drop_until = time.monotonic() + seconds

    # ---- plumbing -----------------------------------------------------------------------------------
    def _spawn(self, fn: Callable, *args: object) -> threading.Thread:
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _connect_device(self) -> serial.SerialBase | None:
        url = self._device_url()
        if not url:
            return None
        try:
            port = serial.serial_for_url(url, timeout=0)
        except (serial.SerialException, OSError, ValueError):
            return None
        set_nodelay(port)
        return port

    def _corrupt(self, data: bytes, direction: str) -> bytes:
        if not self.flip_rate or self.flip_direction not in ("both", direction):
            return data
        out = bytearray(data)
        with self._lock:
            for i in range(len(out)):
                if self._rng.random() < self.flip_rate:
                    out[i] ^= 1 << self._rng.randrange(8)
                    self.flipped[direction] += 1
        return bytes(out)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            device = self._connect_device()
            if device is None:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            ends = _Ends(self._stop)
            self._pump_pair(ends, functools.partial(_socket_read, client), client.sendall, device, on_end=client.close)

    def _pump_pair(
        self,
        ends: "_Ends",
        host_read: Callable[[], bytes | None],
        host_write: Callable[[bytes], object],
        device: serial.SerialBase,
        on_end: Callable[[], None],
    ) -> None:
        """Run both directions until either side fails or the relay stops; then close both ends."""
        handle = selectable_handle(device)

        def device_read() -> bytes | None:
            data = device.read(_CHUNK)
            if not data:
                if handle is not None:
                    select.select([handle], [], [], 0.05)
                else:
                    time.sleep(0.002)
                data = device.read(_CHUNK)
            return data or None

        def device_write(data: bytes) -> None:
            device.write(data)

        t1 = self._spawn(self._pump, ends, host_read, device_write, "to_device")
        t2 = self._spawn(self._pump, ends, device_read, host_write, "to_host")
        t1.join()
        t2.join()
        for close in (device.close, on_end):
            try:
                close()
            except OSError:
                pass

    def _pump(
        self, ends: "_Ends", read: Callable[[], bytes | None], write: Callable[[bytes], object], direction: str
    ) -> None:
        pacer = _Pacer(self.byte_rate)
        try:
            while not ends.done():
                data = read()
                if data is None:
                    continue
                if data == b"":
                    break
                arrived = time.monotonic()
                if arrived < self._drop_until:
                    with self._lock:
                        self.dropped += len(data)
                    continue
                step = max(16, int(self.byte_rate / 500)) if self.byte_rate else _CHUNK  # ~2 ms pieces when paced
                for i in range(0, len(data), step):
                    piece = self._corrupt(data[i : i + step], direction)
                    pacer.wait(len(piece), arrived)
                    write(piece)
                    self.relayed[direction] += len(piece)
        except (OSError, serial.SerialException):
            pass
        finally:
            ends.end()

    def _open_pty(self) -> "_PtySession":
        assert self._pty_link is not None
        master, slave = os.openpty()
        tty.setraw(slave)
        self._pty_link.unlink(missing_ok=True)
        self._pty_link.symlink_to(os.ttyname(slave))
        session = _PtySession(master, slave)
        self._spawn(self._pty_loop, session)
        return session

    def _pty_loop(self, session: "_PtySession") -> None:
        """Relay one pty's lifetime; the board connection is reopened whenever it drops."""

        def host_read() -> bytes | None:
            if session.closed.is_set():
                return b""
            ready = select.select([session.master], [], [], 0.05)[0]
            if not ready:
                return None
            try:
                return os.read(session.master, _CHUNK) or None
            except OSError:
                return b""

        def host_write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(session.master, view)
                view = view[n:]

        while not self._stop.is_set() and not session.closed.is_set():
            device = self._connect_device()
            if device is None:
                time.sleep(0.1)
                continue
            self.connections += 1
            ends = _Ends(self._stop, session.closed)
            self._pump_pair(ends, host_read, host_write, device, on_end=lambda: None)


class _Ends:
    """Shared stop flag of one relayed connection (either direction ending ends both)."""

    def __init__(self, *stops: threading.Event):
        self._stops = stops
        self._ended = threading.Event()

    def end(self) -> None:
        self._ended.set()

    def done(self) -> bool:
        return self._ended.is_set() or any(s.is_set() for s in self._stops)


class _PtySession:
    def __init__(self, master: int, slave: int):
        self.master, self.slave = master, slave
        self.closed = threading.Event()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            time.sleep(0.1)  # let the pumps notice before the fds go
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
