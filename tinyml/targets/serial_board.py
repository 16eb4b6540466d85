"""A board that speaks the wire protocol over a byte link: USB serial, a pty, QEMU's TCP UART.

Handshake: on connect the target waits briefly for the boot HELLO and otherwise requests one (HELLO_REQ, repeated
each second because a board that resets when the port opens misses the first request; the second request is
preceded by zeros that complete a FRAME the device may still be waiting for, because the last host or the cable
died mid-frame), then the stream loop checks it against the bundle (tinyml.targets.base.check_compatible).

Flow control: at most ``credits`` FRAMEs in flight (tinyml.protocol.CreditWindow). The device answers in order, so an
answer to a later request proves that an earlier, unanswered frame was lost in transit; a PING is a barrier that
flushes such frames when the stream stalls.

Faults, and what each becomes (every frame sent ends as exactly one Result or Lost):
- corrupt bytes: the decoder resyncs on the next sync word; a frame whose answer or request was destroyed is
  recorded Lost with the reason, a damaged stretch without a frame is a ``resync`` Notice;
- device ERROR for a frame: Lost with the device's error name;
- unsolicited HELLO (device reset): frames in flight Lost ("device reset"), the new HELLO re-checked;
- link failure (port unplugged, board process killed, socket closed): frames in flight Lost, the port reopened for
  up to ``reconnect_s`` seconds (the URL is asked again each time: a restarted QEMU listens on a new port), then
  handshake again and continue; if it never comes back, a UserError saying so;
- stall (frames in flight, nothing arrives for ``frame_timeout`` plus the frames' transfer time at the baud rate):
  PING; still nothing for as long again: treated as a link failure.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from models.errors import UserError
from tinyml import protocol as proto
from tinyml.targets.base import FLASH_FIX, DeviceInfo, Event, Lost, Notice, Result, Target
from tinyml.transport import DEFAULT_BAUD, LinkError, SerialLink


class HandshakeTimeout(UserError):
    """No HELLO arrived in time (retried while reconnecting; fatal on the first connect)."""


# What to do about each failure tag a runner puts in the "no model" HELLO (firmware/lib/runner_tflm/runner_tflm.h).
RUNNER_FAILURE_FIXES = {
    "tflm:schema-mismatch": "the .tflite's schema differs from the board's TFLM library; update the library or "
    "re-export with this checkout (python -m tools export BUNDLE --install), then upload",
    "tflm:missing-op": "the firmware's op resolver lacks an op the model uses; re-run python -m tools export BUNDLE "
    "--install, then upload",
    "tflm:no-arena": "the board could not allocate the tensor arena; choose a board with more RAM or a smaller model",
    "tflm:allocate-failed": "the tensor arena is too small for this TFLM build; re-export with a larger "
    "--arena-margin (python -m tools export BUNDLE --install --arena-margin 50), then upload",
    "tflm:bad-io": "the model's input or output is not one int8/uint8 tensor; re-quantize it (python -m tools "
    "quantize BUNDLE) and export again",
}
BOOT_HELLO_WAIT_S = 0.3  # a board that just booted (QEMU, native) sends HELLO at once; do not ask over it
HELLO_RETRY_S = 1.0
IDLE_FLUSH_S = 0.2  # no byte for this long: a frame in progress was truncated (docs/protocol.md "Idle flush")


class SerialBoardTarget(Target):
    """The protocol over a :class:`tinyml.transport.SerialLink` (see module docstring)."""

    def __init__(
        self,
        url: str | Callable[[], str | None],
        baudrate: int = DEFAULT_BAUD,
        name: str | None = None,
        hello_timeout: float = 10.0,
        reconnect_s: float = 20.0,
        frame_timeout: float = 5.0,
        frame_bytes: int = 0,
        listen: bool = False,
    ):
        self._url = url if callable(url) else (lambda: url)
        self.baudrate = baudrate
        self.name = name or (url if isinstance(url, str) else "serial board")
        self.hello_timeout = hello_timeout
        self.reconnect_s = reconnect_s
        self.frame_timeout = frame_timeout
        # Listen mode: a camera-mode board (ESP32-CAM firmware) captures frames itself and sends RESULTs with its
        # own seqs; each becomes a Result numbered by the host (1, 2, ...), the board's seq kept as device_seq.
        self.listen = listen
        self._listened = 0
        # Filler that completes a FRAME the device may be half-way through receiving (the host died or the cable
        # was pulled mid-frame): without it the device would swallow our HELLO_REQs as pixel bytes.
        self._filler_len = frame_bytes + proto.OVERHEAD if frame_bytes else 0
        # A write may wait for the frames ahead of it to cross a slow UART (a 224x224x3 frame takes 13 s at
        # 115200 baud): allow three frame times beyond 5 s before calling the link dead.
        self._write_timeout = 5.0 + 3 * (frame_bytes + proto.OVERHEAD) * 10.0 / max(baudrate, 1)
        self._link: SerialLink | None = None
        self._decoder = proto.Decoder()
        self._window: proto.CreditWindow | None = None
        self._hello: proto.Hello | None = None
        self._expected_hello: proto.Hello | None = (
            None  # the HELLO the first handshake accepted; a reset must bring the same model
        )
        self._frames: dict[int, int] = {}  # wire seq -> stream seq, frames in flight
        self._requests: set[int] = set()  # wire seqs of HELLO_REQ/PING in flight
        self._next_wire = 0
        self._last_rx = time.monotonic()
        self._ping_sent_at: float | None = None
        self._flushed = True
        self._events: list[Event] = []

    # ---- Target API ---------------------------------------------------------------------------------
    def open(self) -> DeviceInfo:
        url = self._url()
        if not url:
            raise UserError(f"{self.name} has no port to open (the board did not start?)")
        self._link = SerialLink(url, self.baudrate, self._write_timeout)
        self._link.open()
        try:
            self._handshake(first=True)
        except LinkError as exc:
            self.close()
            raise UserError(f"{self.name}: the link failed during the handshake ({exc}); check the port") from None
        except BaseException:
            self.close()
            raise
        return self.info

    @property
    def hello(self) -> proto.Hello:
        """The HELLO of the current connection, as the board sent it."""
        if self._hello is None:
            raise RuntimeError(f"{self.name} used before open()")
        return self._hello

    @property
    def info(self) -> DeviceInfo:
        if self._hello is None:
            raise RuntimeError(f"{self.name} used before open()")
        return DeviceInfo.from_hello(self._hello)

    def send(self, seq: int, tensor: np.ndarray) -> None:
        assert self._window is not None and self._hello is not None, "open() first"
        data = np.ascontiguousarray(tensor).tobytes()
        if len(data) != self._hello.frame_len:
            raise UserError(
                f"frame of {len(data)} bytes for a device expecting {self._hello.frame_len}; "
                "the bundle and the board disagree on the input shape"
            )
        wire = self._wire_seq()
        self._window.sent(wire, is_frame=True)
        self._frames[wire] = seq
        try:
            self._link_write(proto.encode(proto.Frame(data), wire))
        except LinkError as exc:
            self._recover(f"link lost while sending ({exc})")

    def poll(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not self._events:
            remaining = deadline - time.monotonic()
            try:
                data = self._link_read(max(0.0, remaining))
            except LinkError as exc:
                self._recover(f"link lost ({exc})")
                break
            if data:
                self._feed(data)
                self._flushed = False
            else:
                if not self._flushed and time.monotonic() - self._last_rx > IDLE_FLUSH_S:
                    self._flushed = True
                    self._handle_decoded(self._decoder.flush())
                if self._frames:
                    self._check_stall()
            if time.monotonic() >= deadline:
                break
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    # ---- link helpers -------------------------------------------------------------------------------
    def _link_read(self, timeout: float) -> bytes:
        if self._link is None:
            raise LinkError("not connected")
        data = self._link.read(timeout)
        if data:
            self._last_rx = time.monotonic()
        return data

    def _link_write(self, data: bytes) -> None:
        if self._link is None:
            raise LinkError("not connected")
        self._link.write(data)

    def _wire_seq(self) -> int:
        """Next wire sequence number, 1..65535 (0 is the boot HELLO's seq, so it never names a request)."""
        self._next_wire = self._next_wire % proto.SEQ_MASK + 1
        return self._next_wire

    # ---- handshake ----------------------------------------------------------------------------------
    def _handshake(self, first: bool) -> None:
        """Obtain a HELLO (boot HELLO or the answer to HELLO_REQ) and reset the flow-control state."""
        self._decoder = proto.Decoder()
        self._requests.clear()
        deadline = time.monotonic() + self.hello_timeout
        next_request = time.monotonic() + BOOT_HELLO_WAIT_S
        attempt = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                received = self._decoder.stats.bytes_in
                heard = (
                    f"{received} bytes arrived but none formed a valid frame: a wrong baud rate (--baud, now "
                    f"{self.baudrate}) or firmware that prints text instead of speaking the protocol"
                    if received
                    else "nothing arrived: is the firmware running, and is this its port?"
                )
                raise HandshakeTimeout(
                    f"no HELLO from {self.name} within {self.hello_timeout:g} s; {heard} "
                    "(raise --hello-timeout for slow boots)"
                )
            if now >= next_request:
                wire = self._wire_seq()
                self._requests.add(wire)
                # Second try: the device may be inside a truncated FRAME; zeros (never a sync word) complete it,
                # its CRC fails and the device's parser resyncs on our HELLO_REQ.
                filler = bytes(self._filler_len) if attempt == 1 else b""
                self._link_write(filler + proto.encode(proto.HelloRequest(), wire))
                attempt += 1
                next_request = now + HELLO_RETRY_S
            for event in self._decoder.feed(self._link_read(min(0.05, max(0.0, deadline - now)))):
                if isinstance(event, proto.Packet) and event.type == proto.MsgType.HELLO:
                    hello = self._parse_hello(event)
                    if hello is not None:
                        self._accept_hello(hello, first)
                        return

    def _parse_hello(self, packet: proto.Packet) -> proto.Hello | None:
        try:
            hello = proto.Hello.from_payload(packet.payload)
        except proto.ProtocolError as exc:
            self._events.append(Notice("malformed", f"{self.name} sent a malformed HELLO ({exc})"))
            return None
        if hello.version != proto.PROTOCOL_VERSION:
            raise UserError(
                f"{self.name} speaks protocol version {hello.version}, this host speaks "
                f"{proto.PROTOCOL_VERSION}; flash firmware from this checkout"
            )
        return hello

    def _accept_hello(self, hello: proto.Hello, first: bool) -> None:
        if hello.runner_failure is not None:
            raise UserError(runner_failure_message(self.name, hello.runner_failure))
        if hello.max_payload and hello.max_payload < hello.frame_len:
            raise UserError(
                f"{self.name} accepts payloads up to {hello.max_payload} bytes but a "
                f"{'x'.join(map(str, hello.input_shape))} frame is {hello.frame_len}; rebuild the firmware "
                "with a larger receive buffer"
            )
        if not first and self._expected_hello is not None and _model_of(hello) != _model_of(self._expected_hello):
            # Same checks as at the start, done by the caller's check_compatible on the new info; here we only
            # refuse to continue silently with a different model than the one the stream began with.
            raise UserError(
                f"{self.name} came back running a different model or configuration "
                f"({hello.model_id.hex()[:16]}…, engine {hello.engine}); restart the stream"
            )
        self._hello = hello
        self._filler_len = hello.frame_len + proto.OVERHEAD
        if first:
            self._expected_hello = hello
        self._window = proto.CreditWindow(hello.credits)
        self._frames.clear()
        self._ping_sent_at = None
        self._last_rx = time.monotonic()

    # ---- receive path -------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._handle_decoded(self._decoder.feed(data))

    def _handle_decoded(self, events: list) -> None:
        for event in events:
            if isinstance(event, proto.Fault):
                self._on_fault(event)
            else:
                self._on_packet(event)

    def _on_fault(self, fault: proto.Fault) -> None:
        if fault.seq is not None and fault.seq in self._frames:
            self._settle(fault.seq, f"answer corrupted in transit ({fault.name})")
            return
        self._events.append(
            Notice(
                "resync",
                f"corrupt bytes from {self.name} skipped ({fault.name})",
                {"code": fault.name, "detail": fault.detail},
            )
        )

    def _on_packet(self, packet: proto.Packet) -> None:
        try:
            msg = packet.message()
        except proto.ProtocolError as exc:
            if packet.seq in self._frames:
                self._settle(packet.seq, f"malformed answer ({exc})")
            else:
                self._events.append(Notice("malformed", f"{self.name}: {exc}"))
            return
        if isinstance(msg, proto.Result):
            frame_seq = self._frames.get(packet.seq)
            if frame_seq is None and self.listen:
                self._listened += 1
                output = np.frombuffer(msg.output, dtype=np.dtype(self.hello.out_dtype)).copy()
                self._events.append(
                    Result(self._listened, output, int(msg.inference_us), int(msg.cycles), device_seq=packet.seq)
                )
                return
            if frame_seq is None:
                self._events.append(Notice("unexpected", f"RESULT for seq {packet.seq} that is not in flight"))
                return
            self._settle(packet.seq, None)
            output = np.frombuffer(msg.output, dtype=np.dtype(self.hello.out_dtype)).copy()
            self._events.append(Result(frame_seq, output, int(msg.inference_us), int(msg.cycles)))
        elif isinstance(msg, proto.Error):
            if msg.seq_valid and packet.seq in self._frames:
                self._settle(packet.seq, f"device error {msg.name} (detail {msg.detail})")
            elif msg.code == proto.ErrorCode.VERSION:
                raise UserError(
                    f"{self.name} refuses protocol version {proto.PROTOCOL_VERSION} (it speaks "
                    f"{msg.detail}); flash firmware from this checkout"
                )
            else:
                self._events.append(
                    Notice(
                        "device-resync",
                        f"{self.name} skipped corrupt bytes ({msg.name})",
                        {"code": msg.name, "detail": msg.detail},
                    )
                )
        elif isinstance(msg, proto.Pong):
            self._settle(packet.seq, None)
            self._ping_sent_at = None
        elif isinstance(msg, proto.Hello):
            if packet.seq in self._requests:  # a late answer to one of our HELLO_REQs
                self._settle(packet.seq, None)
                return
            self._device_reset(msg)

    def _settle(self, wire: int, reason: str | None) -> None:
        """The request ``wire`` is answered (reason None) or lost (reason); earlier unanswered frames are lost."""
        assert self._window is not None
        for lost_wire in self._window.answered(wire):
            self._lose(lost_wire, "no answer: request or answer lost in transit")
        self._requests.discard(wire)
        if reason is not None:
            self._lose(wire, reason)
        elif wire in self._frames:
            del self._frames[wire]

    def _lose(self, wire: int, reason: str) -> None:
        seq = self._frames.pop(wire, None)
        if seq is not None:
            self._events.append(Lost(seq, reason))

    def _lose_all(self, reason: str) -> None:
        if self._window is not None:
            self._window.forget_all()
        for wire in sorted(self._frames, key=lambda wire: self._frames[wire]):
            self._lose(wire, reason)
        self._requests.clear()
        self._ping_sent_at = None

    def _device_reset(self, hello: proto.Hello) -> None:
        self._lose_all("device reset")
        self._accept_hello(hello, first=False)
        self._events.append(Notice("device-reset", f"{self.name} restarted (unsolicited HELLO); continuing"))

    # ---- faults -------------------------------------------------------------------------------------
    def _stall_limit(self) -> float:
        """Silence that counts as a stall: ``frame_timeout`` plus the time the frames in flight (and the PING
        behind them) need to cross the link at its baud rate, so a big frame over a slow UART is not a fault."""
        credits = self._hello.credits if self._hello is not None else 1
        return self.frame_timeout + (credits + 1) * self._filler_len * 10.0 / max(self.baudrate, 1)

    def _check_stall(self) -> None:
        now = time.monotonic()
        limit = self._stall_limit()
        if now - self._last_rx < limit:
            return
        if self._ping_sent_at is None:
            wire = self._wire_seq()
            assert self._window is not None
            self._window.sent(wire, is_frame=False)
            self._requests.add(wire)
            self._ping_sent_at = now
            self._last_rx = now  # give the barrier a full stall limit
            try:
                self._link_write(proto.encode(proto.Ping(b"stall"), wire))
            except LinkError as exc:
                self._recover(f"link lost ({exc})")
            return
        self._recover(f"no answer for {2 * limit:.3g} s (PING unanswered)")

    def _recover(self, why: str) -> None:
        """Record frames in flight as lost, reopen the link and handshake again (or raise UserError)."""
        self._lose_all(why)
        if self._link is not None:
            self._link.close()
            self._link = None
        if self.reconnect_s <= 0:
            raise UserError(f"{self.name}: {why}; not reconnecting (--reconnect 0)")
        self._events.append(Notice("link-lost", f"{self.name}: {why}; reconnecting for up to {self.reconnect_s:g} s"))
        deadline = time.monotonic() + self.reconnect_s
        last = why
        while True:
            url = self._url()
            if url:
                link = SerialLink(url, self.baudrate, self._write_timeout)
                try:
                    link.connect()
                    self._link = link
                    self._handshake(first=False)
                    break
                except (LinkError, HandshakeTimeout) as exc:
                    last = str(exc)
                    link.close()
                    self._link = None
            if time.monotonic() >= deadline:
                raise UserError(
                    f"{self.name}: {why}, and it did not come back within {self.reconnect_s:g} s "
                    f"(last: {last}); check the cable/board, or raise --reconnect"
                )
            time.sleep(0.2)
        self._events.append(
            Notice("reconnected", f"{self.name} is back ({self._link.url}); handshake done", {"url": self._link.url})
        )


def runner_failure_message(name: str, tag: str) -> str:
    """One line for a board whose runner failed to initialise: its tag and what to do about it."""
    fix = RUNNER_FAILURE_FIXES.get(tag, FLASH_FIX)
    return f"{name} has no model running: its runner failed to initialise ({tag}); {fix}"


def _model_of(hello: proto.Hello) -> tuple:
    """The fields that define which model a board runs (credits and build strings may differ)."""
    return (
        hello.model_id,
        hello.input_shape,
        hello.in_dtype,
        hello.in_scale,
        hello.in_zero_point,
        hello.num_classes,
        hello.out_dtype,
        hello.out_scale,
        hello.out_zero_point,
    )
