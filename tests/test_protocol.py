"""tinyml/protocol.py against the golden vectors, under hypothesis, and on a damaged 1,000-frame stream.

The C implementation is checked against the same vectors and the same damaged stream in test_protocol_c.py,
which imports the helpers defined here (canonical event form, stream builder, damage checks).
"""
from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml import protocol as P

GOLDEN = Path(__file__).parent / "data" / "protocol" / "golden.json"


def golden_vectors() -> list[dict]:
    return json.loads(GOLDEN.read_text())["vectors"]


# ---- canonical event form shared with the C harness (tests/c/protocol_harness.c) ------------------

def message_fields(msg: P.Message) -> dict:
    if isinstance(msg, P.HelloRequest):
        return {"max_payload": msg.max_payload, "version": msg.version}
    if isinstance(msg, P.Hello):
        h, w, c = msg.input_shape
        return {"version": msg.version, "credits": msg.credits, "in_dtype": P.DTYPE_CODES[msg.in_dtype],
                "out_dtype": P.DTYPE_CODES[msg.out_dtype], "max_payload": msg.max_payload,
                "model_id": msg.model_id.hex(), "in_h": h, "in_w": w, "in_c": c, "out_len": msg.num_classes,
                "in_scale": msg.in_scale, "in_zero_point": msg.in_zero_point, "out_scale": msg.out_scale,
                "out_zero_point": msg.out_zero_point, "arena_bytes": msg.arena_bytes, "engine": msg.engine,
                "build": msg.build}
    if isinstance(msg, P.Result):
        return {"inference_us": msg.inference_us, "cycles": msg.cycles, "output": msg.output.hex()}
    if isinstance(msg, P.Error):
        return {"code": msg.code, "flags": P.ERROR_SEQ_VALID if msg.seq_valid else 0, "detail": msg.detail}
    return {}  # FRAME, PING, PONG: the payload is the message


def canonical(event: P.DecodeEvent) -> dict:
    if isinstance(event, P.Fault):
        return {"event": "fault", "code": int(event.code), "name": event.code.name, "seq": event.seq,
                "detail": event.detail, "offset": event.offset}
    out = {"event": "frame", "type": event.type, "seq": event.seq, "offset": event.offset,
           "payload": event.payload.hex()}
    if event.type not in P.MESSAGE_CLASSES:
        out["message"] = {}
        return out
    try:
        out["message"] = message_fields(event.message())
    except P.ProtocolError:
        out["message_error"] = "MALFORMED"
    return out


def decode_chunked(data: bytes, max_payload: int, chunk: int, flush: bool = False) -> list[dict]:
    dec = P.Decoder(max_payload)
    step = chunk or max(len(data), 1)
    events = []
    for i in range(0, len(data), step):
        events += dec.feed(data[i:i + step])
    if flush:
        events += dec.flush()
        assert dec.stats.bytes_in == len(data)
    return [canonical(e) for e in events]


# ---- damaged stream shared with the C test ---------------------------------------------------------

@dataclass
class StreamFrame:
    type: int
    seq: int
    payload: bytes
    start: int          # offset in the damaged stream
    end: int
    damaged: bool


def damaged_stream(n_frames: int = 1000, seed: int = 7) -> tuple[bytes, list[StreamFrame], int]:
    """A stream of FRAME/RESULT/PING frames where ~15% are damaged (bit flip, dropped or inserted byte, or
    a mix) and ~3% of the gaps between frames get noise. Returns (bytes, frames, number of noise gaps)."""
    rng = random.Random(seed)
    out = bytearray()
    frames: list[StreamFrame] = []
    noise_gaps = 0
    for seq in range(n_frames):
        if rng.random() < 0.03:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            noise_gaps += 1
        kind = rng.choice((P.MsgType.FRAME, P.MsgType.FRAME, P.MsgType.RESULT, P.MsgType.PING))
        payload = rng.randbytes(rng.randint(0, 1500) if kind == P.MsgType.FRAME else rng.randint(0, 40))
        wire = bytearray(P.encode_frame(kind, seq, payload))
        damaged = rng.random() < 0.15
        if damaged:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                how, at = rng.choice(("flip", "drop", "insert")), rng.randrange(1, len(wire))
                if how == "flip":
                    wire[at] ^= 1 << rng.randrange(8)
                elif how == "drop":
                    del wire[at]
                else:
                    wire.insert(at, rng.randrange(256))
        frames.append(StreamFrame(int(kind), seq, payload, len(out), len(out) + len(wire), damaged))
        out += wire
    return bytes(out), frames, noise_gaps


def check_damaged_decode(events: list[dict], frames: list[StreamFrame], noise_gaps: int) -> None:
    """Every intact frame decoded, none decoded wrong, every damaged one decoded intact or covered by a fault.

    A damaged frame can still decode correctly: a frame that lost its last byte takes the next frame's sync
    byte in its place, and when the CRC's last byte was A5 the frame is whole again (1 in 256).
    """
    by_offset = {f.start: f for f in frames}
    decoded = {e["offset"]: e for e in events if e["event"] == "frame"}
    missing = [f.seq for f in frames if not f.damaged and f.start not in decoded]
    assert not missing, f"intact frames not decoded: {missing[:10]}"
    wrong = [e for off, e in decoded.items()
             if off not in by_offset or (e["type"], e["seq"], e["payload"]) !=
             (by_offset[off].type, by_offset[off].seq, by_offset[off].payload.hex())]
    assert not wrong, f"frames decoded wrong: {wrong[:3]}"
    offsets = [e["offset"] for e in events]
    assert offsets == sorted(offsets), "events must come in stream order"
    unreported = []
    for f in frames:
        if f.damaged and f.start not in decoded:
            before = [e for e in events if e["offset"] < f.end]
            if not before or before[-1]["event"] != "fault":
                unreported.append(f.seq)
    assert not unreported, f"damaged frames without a fault: {unreported[:10]}"
    n_faults = sum(e["event"] == "fault" for e in events)
    n_damaged = sum(f.damaged for f in frames)
    assert 0 < n_faults <= n_damaged + noise_gaps, (n_faults, n_damaged, noise_gaps)


# ---- golden vectors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", golden_vectors(), ids=lambda v: v["name"])
@pytest.mark.parametrize("chunk", [0, 1, 5])
def test_golden_vectors_decode(vector: dict, chunk: int) -> None:
    data = bytes.fromhex(vector["hex"])
    assert decode_chunked(data, vector["max_payload"], chunk, vector["flush"]) == vector["events"]


@pytest.mark.parametrize("vector", [v for v in golden_vectors() if len(v["events"]) == 1 and v["events"][0][
    "event"] == "frame" and "message_error" not in v["events"][0]], ids=lambda v: v["name"])
def test_golden_vectors_encode(vector: dict) -> None:
    """The encoders rebuild every good frame byte for byte from its decoded message."""
    data = bytes.fromhex(vector["hex"])
    (packet,) = P.Decoder(vector["max_payload"]).feed(data)
    if packet.type in P.MESSAGE_CLASSES:
        assert P.encode(packet.message(), packet.seq) == data
    assert P.encode_frame(packet.type, packet.seq, packet.payload) == data


def test_golden_covers_every_type_and_parser_fault() -> None:
    vectors = golden_vectors()
    types = {e["type"] for v in vectors for e in v["events"] if e["event"] == "frame"}
    codes = {e["code"] for v in vectors for e in v["events"] if e["event"] == "fault"}
    assert {int(t) for t in P.MsgType} <= types
    assert {1, 2, 3, 4} <= codes
    flushed = {e["code"] for v in vectors if v["flush"] for e in v["events"] if e["event"] == "fault"}
    assert {1, 2, 4} <= flushed


def test_crc_check_values() -> None:
    assert P.crc16(b"123456789") == 0x29B1
    assert P.crc32(b"123456789") == 0xCBF43926


def test_hello_roundtrip() -> None:
    hello = P.Hello(bytes(range(32)), (96, 96, 1), "int8", 0.0078125, -1, 10, "int8", 0.00390625, -128,
                    "engine", "native test", credits=2, max_payload=9216)
    (packet,) = P.Decoder().feed(P.encode(hello, 0))
    assert packet.message() == hello
    assert hello.frame_len == 9216


def test_malformed_payloads_raise_protocol_error() -> None:
    for msg_type, payload in ((P.MsgType.RESULT, b"\x00" * 11), (P.MsgType.ERROR, b"\x01"),
                              (P.MsgType.HELLO_REQ, b"\x00\x00"), (0x7E, b"")):
        packet = P.Packet(int(msg_type), 0, payload)
        with pytest.raises(P.ProtocolError):
            packet.message()
    hello = bytearray(P.Hello(bytes(32), (1, 1, 1), "int8", 1.0, 0, 2, "int8", 1.0, 0, "e", "b", 1, 1).to_payload())
    hello[1] = 0  # 0 credits
    with pytest.raises(P.ProtocolError, match="0 credits"):
        P.Hello.from_payload(bytes(hello))


# ---- credit window ----------------------------------------------------------------------------------

def test_credit_window_keeps_in_flight_at_credits_and_reclaims_lost() -> None:
    win = P.CreditWindow(3)
    for seq in (10, 11, 12):
        assert win.can_send
        win.sent(seq)
    assert not win.can_send and win.in_flight == 3
    with pytest.raises(RuntimeError):
        win.sent(13)
    assert win.answered(11) == [10]          # device answers in order: 10 will never come
    assert win.in_flight == 1 and win.can_send
    assert win.answered(10) == []            # late or duplicate answer changes nothing
    win.sent(13)
    win.sent(14, is_frame=False)             # a PING barrier takes no credit
    win.sent(15)
    assert win.in_flight == 3 and not win.can_send
    assert win.answered(14) == [12, 13]      # PONG flushes every frame before it
    assert win.in_flight == 1 and win.forget_all() == [15] and win.in_flight == 0


def test_credit_window_wraps_seq() -> None:
    win = P.CreditWindow(2)
    win.sent(0xFFFF)
    win.sent(0x10000)  # wraps to 0
    assert win.answered(0) == [0xFFFF]


def test_credit_window_refuses_zero_credits() -> None:
    with pytest.raises(P.UserError, match="at least one frame"):
        P.CreditWindow(0)


# ---- resync on a damaged stream ----------------------------------------------------------------------

def test_damaged_stream_python() -> None:
    data, frames, noise_gaps = damaged_stream()
    events = decode_chunked(data, 2048, 4096)
    check_damaged_decode(events, frames, noise_gaps)
    assert decode_chunked(data, 2048, 1)[:200] == events[:200]  # byte-at-a-time agrees with block feed


# ---- hypothesis ---------------------------------------------------------------------------------------

messages = st.one_of(
    st.builds(P.Frame, st.binary(max_size=300)),
    st.builds(P.Ping, st.binary(max_size=40)),
    st.builds(P.Result, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=20)),
    st.builds(P.Error, st.integers(0, 255), st.booleans(), st.integers(0, 2**32 - 1)),
    st.builds(P.HelloRequest, st.integers(0, 2**32 - 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), min_size=1, max_size=20), st.integers(0, 400))
def test_any_bytes_any_split_same_events(data: bytes, cuts: list[int], max_payload: int) -> None:
    """Arbitrary bytes never raise; the events do not depend on how the bytes are split; every packet
    delivered is exactly the bytes at its offset."""
    whole = P.Decoder(max_payload).feed(data)
    dec, pos, split = P.Decoder(max_payload), 0, []
    for cut in cuts * (len(data) // max(sum(cuts), 1) + 1):
        split += dec.feed(data[pos:pos + cut])
        pos += cut
    split += dec.feed(data[pos:])
    assert split == whole
    whole_dec = P.Decoder(max_payload)
    whole = whole_dec.feed(data) + whole_dec.flush()
    assert split + dec.flush() == whole
    assert whole_dec.pending == 0 and whole_dec.stats.bytes_in == len(data)
    for event in whole:
        if isinstance(event, P.Packet):
            assert len(event.payload) <= max_payload
            assert data[event.offset:event.offset + P.wire_len(len(event.payload))] == \
                P.encode_frame(event.type, event.seq, event.payload, event.flags)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(messages, st.binary(max_size=8).filter(lambda b: 0xA5 not in b)), max_size=12),
       st.integers(1, 97))
def test_messages_between_noise_all_decoded(items: list, chunk: int) -> None:
    """Messages separated by noise (without sync bytes) all decode, in order; noise is reported as NOISE."""
    data, expected = bytearray(), []
    for seq, (msg, noise) in enumerate(items):
        data += noise
        data += P.encode(msg, seq)
        expected.append((msg, seq))
    dec = P.Decoder(1024)
    events = []
    for i in range(0, len(data), chunk):
        events += dec.feed(bytes(data[i:i + chunk]))
    packets = [(e.message(), e.seq) for e in events if isinstance(e, P.Packet)]
    assert packets == expected
    assert all(e.code == P.ErrorCode.NOISE for e in events if isinstance(e, P.Fault))
    assert dec.stats.bytes_in == len(data)


def test_wire_len_and_overhead() -> None:
    assert P.wire_len(9216) == 9232 == len(P.encode(P.Frame(bytes(9216)), 1))
    assert struct.calcsize("<BBBBI32sHHHHfifiI") == 68
