"""The byte link to a board: any pyserial URL (/dev/tty*, COM*, socket://host:port, rfc2217://, loop://).

Separate from the protocol (tinyml/protocol.py has no I/O) so the same codec runs over a USB-serial adapter, a pty
of the native board or QEMU's TCP UART. The link reports every failure as :class:`LinkError` (port unplugged,
remote closed, read/write error) so the serial-board target can tell "the link broke, reconnect" (:meth:`SerialLink.connect`) from
"the user named a port that does not exist" (:class:`models.errors.UserError` from :meth:`SerialLink.open`).
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import serial
import serial.tools.list_ports

from models.errors import UserError

DEFAULT_BAUD = 921600
_READ_CHUNK = 1 << 16
_FALLBACK_POLL_S = 0.002  # ports without a selectable handle (Windows COM, rfc2217) are polled this often


class LinkError(Exception):
    """The link failed after it was open (unplugged, device closed the socket, I/O error)."""


def list_serial_ports() -> list[str]:
    """Serial ports the OS sees that look like boards (USB/ACM adapters), for 'no target named' hints."""
    ports = []
    for port in serial.tools.list_ports.comports():
        if port.vid is not None or "USB" in port.device or "ACM" in port.device:
            ports.append(port.device)
    return sorted(ports)


class SerialLink:
    """One pyserial URL: open/connect, reads that return what arrived within a timeout, whole writes."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD, write_timeout: float = 5.0):
        self.url = url
        self.baudrate = baudrate
        self.write_timeout = write_timeout  # a write that cannot finish in this time is a LinkError
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def _open_once(self) -> None:
        # socket:// and rfc2217:// ignore the baud rate; a real UART uses it. exclusive=True keeps a second
        # stream.py (or a serial monitor) from silently stealing half the bytes on POSIX ports.
        # timeout=0: reads return what has arrived (pyserial's socket:// in_waiting says only 0/1, so asking for
        # "in_waiting" bytes would fetch answers two bytes at a time); waiting is done with select() on the handle.
        kwargs: dict[str, Any] = {"baudrate": self.baudrate, "timeout": 0, "write_timeout": self.write_timeout}
        if "://" not in self.url:
            kwargs["exclusive"] = True
        self._port = serial.serial_for_url(self.url, **kwargs)
        set_nodelay(self._port)
        self._fd = selectable_handle(self._port)

    def connect(self) -> None:
        """Open the port; LinkError if it is not there (yet). Used when reconnecting."""
        try:
            self._open_once()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            raise LinkError(f"cannot open {self.url} ({_first_line(exc)})") from None

    def open(self) -> None:
        """Open the link the first time; a bad URL or busy/missing port is a UserError naming the fix."""
        try:
            self._open_once()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            detail = _first_line(exc)
            if "exclusively lock" in detail or "busy" in detail.lower():
                raise UserError(
                    f"{self.url} is in use by another program (a serial monitor, a second "
                    "stream.py); close it and retry"
                ) from None
            found = list_serial_ports()
            hint = f"ports found: {', '.join(found)}" if found else "no USB serial ports found"
            raise UserError(f"cannot open {self.url} ({detail}); check the cable/URL ({hint})") from None

    def read(self, timeout: float) -> bytes:
        """Return the bytes that arrive within ``timeout`` seconds (returns as soon as some arrived)."""
        port = self._require()
        deadline = time.monotonic() + timeout
        try:
            while True:
                data = port.read(_READ_CHUNK)
                if data:
                    self.bytes_in += len(data)
                    return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                if self._fd is not None:
                    select.select([self._fd], [], [], remaining)
                else:
                    time.sleep(min(_FALLBACK_POLL_S, remaining))
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"{self.url}: read failed ({_first_line(exc)})") from None

    def write(self, data: bytes) -> None:
        """Write all of ``data``; a failed or timed-out write is a LinkError."""
        port = self._require()
        try:
            written = port.write(data)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.url}: write failed ({_first_line(exc)})") from None
        if written is not None and written != len(data):
            raise LinkError(f"{self.url}: short write ({written} of {len(data)} bytes)")
        self.bytes_out += len(data)

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise LinkError(f"{self.url} is not open")
        return self._port


def selectable_handle(port: serial.SerialBase) -> int | None:
    """The OS handle select() can wait on (POSIX ports and socket://), or None (Windows COM, rfc2217://)."""
    try:
        return int(port.fileno())
    except (AttributeError, NotImplementedError, OSError, ValueError, serial.SerialException):
        return None


def set_nodelay(port: serial.SerialBase) -> None:
    """Disable Nagle's algorithm on a socket:// port: a FRAME or RESULT must leave at once, not wait up to 40 ms
    for the previous segment's delayed ACK (pyserial's socket handler leaves Nagle on)."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
