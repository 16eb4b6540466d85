"""The byte link to a board: any pyserial URL (/dev/tty*, COM*, socket://host:port, rfc2217://, loop://).

Separate from the protocol (host/protocol.py has no I/O) so the same codec runs over a USB-serial adapter, a pty
of the native board or QEMU's TCP UART. The link reports every failure as :class:`LinkError` (port unplugged,
remote closed, read/write error) so the serial-board target can tell "the link broke, reconnect" (:meth:`SerialLink.connect`) from
"the user named a port that does not exist" (:class:`models.errors.UserError` from :meth:`SerialLink.open`).
"""
from __future__ import annotations

import socket
import time

import serial
import serial.tools.list_ports

from models.errors import UserError

DEFAULT_BAUD = 921600
_POLL_S = 0.01  # pyserial read timeout: short, so poll() deadlines are honoured to ~10 ms


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

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD):
        self.url = url
        self.baudrate = baudrate
        self._port: serial.SerialBase | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def _open_once(self) -> None:
        # socket:// and rfc2217:// ignore the baud rate; a real UART uses it. exclusive=True keeps a second
        # stream.py (or a serial monitor) from silently stealing half the bytes on POSIX ports.
        kwargs = {"baudrate": self.baudrate, "timeout": _POLL_S, "write_timeout": 5.0}
        if "://" not in self.url:
            kwargs["exclusive"] = True
        self._port = serial.serial_for_url(self.url, **kwargs)
        set_nodelay(self._port)

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
            found = list_serial_ports()
            hint = f"ports found: {', '.join(found)}" if found else "no USB serial ports found"
            raise UserError(f"cannot open {self.url} ({_first_line(exc)}); check the cable/URL ({hint})") from None

    def read(self, timeout: float) -> bytes:
        """Return the bytes that arrive within ``timeout`` seconds (returns early once some arrived)."""
        port = self._require()
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = port.in_waiting
                data = port.read(waiting if waiting else 1)
                if data:
                    more = port.in_waiting
                    if more:
                        data += port.read(more)
                    self.bytes_in += len(data)
                    return data
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
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


def set_nodelay(port: serial.SerialBase) -> None:
    """Disable Nagle's algorithm on a socket:// port: a FRAME or RESULT must leave at once, not wait up to 40 ms
    for the previous segment's delayed ACK (pyserial's socket handler leaves Nagle on)."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
