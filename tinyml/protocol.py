"""The wire protocol in Python: message encoders, an incremental decoder and the credit window. No I/O.

docs/protocol.md is the specification; firmware/lib/protocol/protocol.{h,c} is the C implementation. Both are
checked against tests/data/protocol/golden.json, so they cannot drift. The transport (pyserial, a pty, QEMU's
socket UART) lives in tinyml/transport.py: this module only turns messages into bytes and bytes into messages.

Frame (little endian)::

    A5 5A | type u8 | flags u8 | seq u16 | length u32 | hcrc u16 | payload[length] | pcrc u32

``hcrc`` is CRC-16/CCITT-FALSE of bytes 2..9 (so a corrupt length is rejected after 12 bytes, before waiting
for a bogus payload); ``pcrc`` is the zlib CRC-32 of the payload.

Typical use::

    dec = Decoder()
    link.write(encode(HelloRequest(), seq=0))
    for event in dec.feed(link.read()):
        if isinstance(event, Packet):
            msg = event.message()        # Hello, Result, Error, Pong ...
        else:
            ...                          # Fault: corrupt/oversized/noise, reported once
"""

from __future__ import annotations

import binascii
import collections
import enum
import struct
import zlib
from dataclasses import dataclass, field
from typing import ClassVar, Union

from models.errors import UserError

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
HEADER_LEN = 12
TRAILER_LEN = 4
OVERHEAD = HEADER_LEN + TRAILER_LEN
MODEL_ID_LEN = 32
ENGINE_MAX = 32
BUILD_MAX = 64
SEQ_MASK = 0xFFFF
DEFAULT_HOST_MAX_PAYLOAD = 1 << 20  # what the host announces in HELLO_REQ: PONG echoes of any frame size fit

_HEADER = struct.Struct("<2sBBHI")  # sync, type, flags, seq, length (CRC-16 follows)
_HELLO_FIXED = struct.Struct("<BBBBI32sHHHHfifiI")
_HELLO_REQ = struct.Struct("<IB")
_RESULT_FIXED = struct.Struct("<IQ")
_ERROR = struct.Struct("<BBI")


class MsgType(enum.IntEnum):
    """Message types (docs/protocol.md "Messages"; protocol.h enum proto_type)."""

    HELLO_REQ = 0x01  # host -> device
    HELLO = 0x02  # device -> host
    FRAME = 0x03  # host -> device
    RESULT = 0x04  # device -> host
    ERROR = 0x05  # device -> host
    PING = 0x06  # host -> device
    PONG = 0x07  # device -> host


class ErrorCode(enum.IntEnum):
    """Parser faults (1-4) and device refusals (5-10), one numbering (protocol.h enum proto_error_code)."""

    BAD_HEADER_CRC = 1
    BAD_PAYLOAD_CRC = 2
    OVERSIZED = 3
    NOISE = 4
    WRONG_FRAME_SIZE = 5
    UNKNOWN_TYPE = 6
    RUNNER = 7
    NO_CREDIT = 8
    MALFORMED = 9
    VERSION = 10


ERROR_SEQ_VALID = 0x01
DTYPES = {1: "int8", 2: "uint8"}  # runner.h enum runner_dtype
DTYPE_CODES = {name: code for code, name in DTYPES.items()}
# Both HELLO dtypes 0 (runner.h RUNNER_DTYPE_NONE, protocol.h PROTO_DTYPE_NONE): the "no model" HELLO of a board
# whose runner failed to initialise; its engine field names why (e.g. "tflm:missing-op"). Decoded as dtype NO_MODEL.
DTYPE_NONE = 0
NO_MODEL = "none"


class ProtocolError(ValueError):
    """A payload that does not decode as its message type (the device sent something malformed)."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the header CRC."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc32(data: bytes) -> int:
    """CRC-32 IEEE (zlib), the payload CRC."""
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """One frame on the wire: header, payload, trailer."""
    head = _HEADER.pack(SYNC, int(msg_type), flags, seq & SEQ_MASK, len(payload))
    return b"".join((head, struct.pack("<H", crc16(head[2:])), payload, struct.pack("<I", crc32(payload))))


def wire_len(payload_len: int) -> int:
    """Bytes on the wire for a payload of ``payload_len`` bytes."""
    return payload_len + OVERHEAD


# ---- typed messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelloRequest:
    """Host -> device: announce the host's max payload and protocol version; the device answers HELLO."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO_REQ
    max_payload: int = DEFAULT_HOST_MAX_PAYLOAD
    version: int = PROTOCOL_VERSION

    def to_payload(self) -> bytes:
        return _HELLO_REQ.pack(self.max_payload, self.version)

    @classmethod
    def from_payload(cls, payload: bytes) -> "HelloRequest":
        _need(payload, _HELLO_REQ.size, "HELLO_REQ")
        max_payload, version = _HELLO_REQ.unpack_from(payload)
        return cls(max_payload, version)


@dataclass(frozen=True)
class Hello:
    """Device -> host: what the device runs and how many frames it can hold (its credits).

    A board whose runner failed to initialise still answers, with the "no model" HELLO: both dtypes
    :data:`NO_MODEL`, every model field zero and the runner's failure tag as ``engine`` (:attr:`runner_failure`).
    """

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    model_id: bytes  # 32-byte sha256 of the int8 .tflite
    input_shape: tuple[int, int, int]
    in_dtype: str
    in_scale: float
    in_zero_point: int
    num_classes: int
    out_dtype: str
    out_scale: float
    out_zero_point: int
    engine: str
    build: str
    credits: int
    max_payload: int
    arena_bytes: int = 0
    version: int = PROTOCOL_VERSION

    @property
    def runner_failure(self) -> str | None:
        """Why the board has no model (its runner's tag, e.g. "tflm:missing-op"), or None when it has one."""
        return self.engine if self.in_dtype == NO_MODEL else None

    @property
    def frame_len(self) -> int:
        """Payload length of a FRAME for this device (one byte per int8/uint8 element)."""
        h, w, c = self.input_shape
        return h * w * c

    def to_payload(self) -> bytes:
        engine = self.engine.encode("ascii", "replace")[:ENGINE_MAX]
        build = self.build.encode("ascii", "replace")[:BUILD_MAX]
        if len(self.model_id) != MODEL_ID_LEN:
            raise ValueError(f"model_id must be {MODEL_ID_LEN} bytes, got {len(self.model_id)}")
        h, w, c = self.input_shape
        fixed = _HELLO_FIXED.pack(
            self.version,
            self.credits,
            _dtype_code(self.in_dtype),
            _dtype_code(self.out_dtype),
            self.max_payload,
            self.model_id,
            h,
            w,
            c,
            self.num_classes,
            self.in_scale,
            self.in_zero_point,
            self.out_scale,
            self.out_zero_point,
            self.arena_bytes,
        )
        return fixed + bytes([len(engine)]) + engine + bytes([len(build)]) + build

    @classmethod
    def from_payload(cls, payload: bytes) -> "Hello":
        _need(payload, _HELLO_FIXED.size + 2, "HELLO")
        (
            version,
            credits,
            in_dt,
            out_dt,
            max_payload,
            model_id,
            h,
            w,
            c,
            classes,
            in_scale,
            in_zp,
            out_scale,
            out_zp,
            arena,
        ) = _HELLO_FIXED.unpack_from(payload)
        pos = _HELLO_FIXED.size
        engine, pos = _short_string(payload, pos, ENGINE_MAX, "engine")
        if pos >= len(payload):
            raise ProtocolError("HELLO payload ends before the build string")
        build, pos = _short_string(payload, pos, BUILD_MAX, "build")
        no_model = in_dt == out_dt == DTYPE_NONE
        if not no_model and (in_dt not in DTYPES or out_dt not in DTYPES):
            raise ProtocolError(f"HELLO names unknown dtype codes {in_dt}/{out_dt}")
        if credits < 1:
            raise ProtocolError("HELLO announces 0 credits")
        in_dtype, out_dtype = (NO_MODEL, NO_MODEL) if no_model else (DTYPES[in_dt], DTYPES[out_dt])
        return cls(
            bytes(model_id),
            (h, w, c),
            in_dtype,
            in_scale,
            in_zp,
            classes,
            out_dtype,
            out_scale,
            out_zp,
            engine,
            build,
            credits,
            max_payload,
            arena,
            version,
        )


def _dtype_code(dtype: str) -> int:
    """HELLO's code for a dtype name (NO_MODEL for the no-model HELLO)."""
    return DTYPE_NONE if dtype == NO_MODEL else DTYPE_CODES[dtype]


@dataclass(frozen=True)
class Frame:
    """Host -> device: one input tensor, already in the model's input dtype (HWC, row-major)."""

    TYPE: ClassVar[MsgType] = MsgType.FRAME
    pixels: bytes

    def to_payload(self) -> bytes:
        return bytes(self.pixels)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Frame":
        return cls(bytes(payload))


@dataclass(frozen=True)
class Result:
    """Device -> host: the raw output tensor for the FRAME with the same seq."""

    TYPE: ClassVar[MsgType] = MsgType.RESULT
    inference_us: int
    cycles: int
    output: bytes

    def to_payload(self) -> bytes:
        return _RESULT_FIXED.pack(self.inference_us, self.cycles) + bytes(self.output)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Result":
        _need(payload, _RESULT_FIXED.size, "RESULT")
        us, cycles = _RESULT_FIXED.unpack_from(payload)
        return cls(us, cycles, bytes(payload[_RESULT_FIXED.size :]))


@dataclass(frozen=True)
class Error:
    """Device -> host: a refused or lost request. ``seq_valid``: the header seq names the request."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: int
    seq_valid: bool
    detail: int = 0

    def to_payload(self) -> bytes:
        return _ERROR.pack(self.code, ERROR_SEQ_VALID if self.seq_valid else 0, self.detail)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Error":
        _need(payload, _ERROR.size, "ERROR")
        code, flags, detail = _ERROR.unpack_from(payload)
        return cls(code, bool(flags & ERROR_SEQ_VALID), detail)

    @property
    def name(self) -> str:
        return error_name(self.code)


@dataclass(frozen=True)
class Ping:
    """Host -> device: any payload; the device echoes it in PONG after answering every earlier FRAME."""

    TYPE: ClassVar[MsgType] = MsgType.PING
    data: bytes = b""

    def to_payload(self) -> bytes:
        return bytes(self.data)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Ping":
        return cls(bytes(payload))


@dataclass(frozen=True)
class Pong:
    """Device -> host: the PING payload echoed."""

    TYPE: ClassVar[MsgType] = MsgType.PONG
    data: bytes = b""

    def to_payload(self) -> bytes:
        return bytes(self.data)

    @classmethod
    def from_payload(cls, payload: bytes) -> "Pong":
        return cls(bytes(payload))


Message = Union[HelloRequest, Hello, Frame, Result, Error, Ping, Pong]
MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls for cls in (HelloRequest, Hello, Frame, Result, Error, Ping, Pong)
}


def encode(msg: Message, seq: int) -> bytes:
    """The frame carrying ``msg`` with sequence number ``seq``."""
    return encode_frame(msg.TYPE, seq, msg.to_payload())


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise ProtocolError(f"{what} payload is {len(payload)} bytes, expected at least {size}")


def _short_string(payload: bytes, pos: int, limit: int, what: str) -> tuple[str, int]:
    n = payload[pos]
    if n > limit or pos + 1 + n > len(payload):
        raise ProtocolError(f"HELLO {what} string length {n} is invalid")
    return bytes(payload[pos + 1 : pos + 1 + n]).decode("ascii", "replace"), pos + 1 + n


# ---- decoder ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """A frame that passed both CRCs. ``offset``: stream offset of its sync word."""

    type: int
    seq: int
    payload: bytes
    offset: int = 0
    flags: int = 0

    def message(self) -> Message:
        """The typed message; ProtocolError for an unknown type or a malformed payload."""
        cls = MESSAGE_CLASSES.get(self.type)
        if cls is None:
            raise ProtocolError(f"unknown message type 0x{self.type:02x}")
        return cls.from_payload(self.payload)


@dataclass(frozen=True)
class Fault:
    """Bytes that formed no valid frame, reported once per fault (see docs/protocol.md "Resync").

    ``seq`` is set when the header was valid (BAD_PAYLOAD_CRC, OVERSIZED), else None. ``offset`` is the stream
    offset of the failed frame's sync word, or of the first skipped byte (NOISE).
    """

    code: ErrorCode
    seq: int | None
    detail: int = 0
    offset: int = 0

    @property
    def name(self) -> str:
        return self.code.name


DecodeEvent = Union[Packet, Fault]


@dataclass
class DecoderStats:
    frames: int = 0
    faults: int = 0
    suppressed: int = 0
    bytes_in: int = 0
    bytes_skipped: int = 0


class Decoder:
    """Incremental decoder: ``feed(bytes) -> [Packet | Fault]``; the same rules as the C parser.

    A failed frame (bad header CRC, bad payload CRC) is re-scanned from the byte after its sync word, so a
    truncated frame never hides the intact frame behind it. Faults with a valid header (seq known) are always
    reported; faults without one (bad header CRC, noise) only if no fault was reported since the last valid
    header, so one burst of damage is reported once.
    """

    def __init__(self, max_payload: int = DEFAULT_HOST_MAX_PAYLOAD):
        if max_payload < 0:
            raise UserError(f"max payload must be >= 0, got {max_payload}")
        self.max_payload = max_payload
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._quiet = False
        self._noise = 0
        self._noise_off = 0
        self._borrowed = False  # _buf[0] ended the last frame and is A5 (see feed)

    @property
    def pending(self) -> int:
        """Bytes held for a frame still in progress (0 after :meth:`flush`)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[DecodeEvent]:
        """Add received bytes; return the packets and faults they complete, in stream order."""
        self._buf += data
        self.stats.bytes_in += len(data)
        events: list[DecodeEvent] = []
        buf, i = self._buf, 0
        while True:
            if self._borrowed:
                if len(buf) - i < 2:
                    break
                self._borrowed = False
                if buf[i + 1] != SYNC[1]:
                    i += 1  # it started nothing; not noise either
            j = buf.find(SYNC, i)
            if j < 0:
                end = len(buf) - 1 if buf and buf[-1] == SYNC[0] else len(buf)
                self._skip(i, max(end, i))
                i = max(end, i)
                break
            self._skip(i, j)
            i = j
            if self._noise:
                self._report(events, Fault(ErrorCode.NOISE, None, self._noise, self._noise_off), header_valid=False)
                self._noise = 0
            if len(buf) - i < HEADER_LEN:
                break
            offset = self._base + i
            _, msg_type, flags, seq, length = _HEADER.unpack_from(buf, i)
            (hcrc,) = struct.unpack_from("<H", buf, i + 10)
            if crc16(bytes(buf[i + 2 : i + 10])) != hcrc:
                self._report(events, Fault(ErrorCode.BAD_HEADER_CRC, None, 0, offset), header_valid=False)
                i += 1
                continue
            self._quiet = False
            if length > self.max_payload:
                self._report(events, Fault(ErrorCode.OVERSIZED, seq, self.max_payload, offset), header_valid=True)
                i += HEADER_LEN  # not buffered: hunt on; its payload is noise of this reported fault
                self.stats.bytes_skipped += HEADER_LEN
                continue
            if len(buf) - i < HEADER_LEN + length + TRAILER_LEN:
                break
            start = i + HEADER_LEN
            payload = bytes(buf[start : start + length])
            (pcrc,) = struct.unpack_from("<I", buf, start + length)
            if crc32(payload) != pcrc:
                self._report(events, Fault(ErrorCode.BAD_PAYLOAD_CRC, seq, 0, offset), header_valid=True)
                i += 1
                continue
            events.append(Packet(msg_type, seq, payload, offset, flags))
            self.stats.frames += 1
            i = start + length + TRAILER_LEN
            if buf[i - 1] == SYNC[0]:
                # The CRC's last byte may have come from the next frame's sync word (this frame lost its own
                # last byte and the CRC still matched, 1 in 256): let it start a sync word too.
                i -= 1
                self._borrowed = True
        del buf[:i]
        self._base += i
        return events

    def flush(self) -> list[DecodeEvent]:
        """The link went idle: give up on the frame in progress as truncated, re-scan its bytes, report
        pending noise (the C parser's proto_parser_flush). Call it on a receive timeout."""
        events: list[DecodeEvent] = []
        while True:
            buf = self._buf
            if self._borrowed:  # the last frame's final A5 starts nothing
                self._borrowed = False
                self._drop(1)
            elif len(buf) == 1:  # a lone A5: noise after all
                self._skip(0, 1)
                self._drop(1)
            elif len(buf) >= 2:  # a frame in progress starts at buf[0]
                offset = self._base
                if len(buf) < HEADER_LEN:
                    self._report(events, Fault(ErrorCode.BAD_HEADER_CRC, None, 0, offset), header_valid=False)
                else:
                    (seq,) = struct.unpack_from("<H", buf, 4)
                    self._report(events, Fault(ErrorCode.BAD_PAYLOAD_CRC, seq, 0, offset), header_valid=True)
                self._drop(1)
                pending = bytes(self._buf)
                self._buf.clear()
                self.stats.bytes_in -= len(pending)  # re-scanned, not received again
                events += self.feed(pending)
            else:
                if self._noise:
                    self._report(events, Fault(ErrorCode.NOISE, None, self._noise, self._noise_off), header_valid=False)
                    self._noise = 0
                return events

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _skip(self, start: int, end: int) -> None:
        """Bytes buf[start:end] belong to no frame: count them into the current noise run."""
        if end > start:
            if not self._noise:
                self._noise_off = self._base + start
            self._noise += end - start
            self.stats.bytes_skipped += end - start

    def _report(self, events: list[DecodeEvent], fault: Fault, header_valid: bool) -> None:
        if header_valid or not self._quiet:
            events.append(fault)
            self.stats.faults += 1
        else:
            self.stats.suppressed += 1
        self._quiet = True


# ---- flow control -------------------------------------------------------------------------------------


@dataclass
class CreditWindow:
    """The host's view of credit-based flow control (docs/protocol.md "Flow control").

    The device answers requests in the order it received them, so an answer to seq S also tells that every
    request sent before S and still unanswered will never be answered (its bytes were lost): :meth:`answered`
    returns those, and their credits come back. A PING is a barrier: its PONG flushes everything before it.
    """

    credits: int
    _pending: collections.OrderedDict = field(default_factory=collections.OrderedDict, repr=False)
    _frames: int = 0

    def __post_init__(self) -> None:
        if self.credits < 1:
            raise UserError(f"the device announced {self.credits} credits; it must accept at least one frame")

    @property
    def in_flight(self) -> int:
        """FRAMEs sent and not yet answered or lost."""
        return self._frames

    @property
    def can_send(self) -> bool:
        return self._frames < self.credits

    def sent(self, seq: int, is_frame: bool = True) -> None:
        """Record a request: a FRAME takes a credit; other requests (PING, HELLO_REQ) only keep their place."""
        if is_frame and not self.can_send:
            raise RuntimeError(f"FRAME {seq} sent with no credit left ({self.credits} in flight)")
        seq &= SEQ_MASK
        if seq in self._pending:
            raise RuntimeError(f"seq {seq} is already in flight")
        self._pending[seq] = is_frame
        self._frames += is_frame

    def answered(self, seq: int) -> list[int]:
        """An answer (RESULT, ERROR with seq, PONG, HELLO) for ``seq`` arrived; return earlier FRAMEs now lost.

        An answer for a seq not in flight (late duplicate, unsolicited HELLO) changes nothing and returns [].
        """
        seq &= SEQ_MASK
        if seq not in self._pending:
            return []
        lost: list[int] = []
        while True:
            head, is_frame = self._pending.popitem(last=False)
            self._frames -= is_frame
            if head == seq:
                return lost
            if is_frame:
                lost.append(head)

    def forget_all(self) -> list[int]:
        """Give up on everything in flight (device reset or timeout); return the FRAME seqs lost."""
        lost = [seq for seq, is_frame in self._pending.items() if is_frame]
        self._pending.clear()
        self._frames = 0
        return lost
