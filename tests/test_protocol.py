"""tinyml/protocol.py against the golden vectors, under hypothesis, and on a damaged 1,000-frame stream.

The C implementation is checked against the same vectors and the same damaged stream in test_protocol_c.py; the
helpers both use (canonical event form, stream builder, damage checks) are in tests/tooling.py.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tooling import check_damaged_decode, damaged_stream, decode_chunked, golden_vectors
from tinyml import protocol as P

# ---- golden vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", golden_vectors(), ids=lambda v: v["name"])
@pytest.mark.parametrize("chunk", [0, 1, 5])
def test_golden_vectors_decode(vector: dict, chunk: int) -> None:
    data = bytes.fromhex(vector["hex"])
    assert decode_chunked(data, vector["max_payload"], chunk, vector["flush"]) == vector["events"]


@pytest.mark.parametrize(
    "vector",
    [
        v
        for v in golden_vectors()
        if len(v["events"]) == 1 and v["events"][0]["event"] == "frame" and "message_error" not in v["events"][0]
    ],
    ids=lambda v: v["name"],
)
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
    hello = P.Hello(
        bytes(range(32)),
        (96, 96, 1),
        "int8",
        0.0078125,
        -1,
        10,
        "int8",
        0.00390625,
        -128,
        "engine",
        "native test",
        credits=2,
        max_payload=9216,
    )
    (packet,) = P.Decoder().feed(P.encode(hello, 0))
    assert packet.message() == hello
    assert hello.frame_len == 9216


def test_malformed_payloads_raise_protocol_error() -> None:
    for msg_type, payload in (
        (P.MsgType.RESULT, b"\x00" * 11),
        (P.MsgType.ERROR, b"\x01"),
        (P.MsgType.HELLO_REQ, b"\x00\x00"),
        (0x7E, b""),
    ):
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
    assert win.answered(11) == [10]  # device answers in order: 10 will never come
    assert win.in_flight == 1 and win.can_send
    assert win.answered(10) == []  # late or duplicate answer changes nothing
    win.sent(13)
    win.sent(14, is_frame=False)  # a PING barrier takes no credit
    win.sent(15)
    assert win.in_flight == 3 and not win.can_send
    assert win.answered(14) == [12, 13]  # PONG flushes every frame before it
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
        split += dec.feed(data[pos : pos + cut])
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
            assert data[event.offset : event.offset + P.wire_len(len(event.payload))] == P.encode_frame(
                event.type, event.seq, event.payload, event.flags
            )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(messages, st.binary(max_size=8).filter(lambda b: 0xA5 not in b)), max_size=12),
    st.integers(1, 97),
)
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
        events += dec.feed(bytes(data[i : i + chunk]))
    packets = [(e.message(), e.seq) for e in events if isinstance(e, P.Packet)]
    assert packets == expected
    assert all(e.code == P.ErrorCode.NOISE for e in events if isinstance(e, P.Fault))
    assert dec.stats.bytes_in == len(data)


def test_wire_len_and_overhead() -> None:
    assert P.wire_len(9216) == 9232 == len(P.encode(P.Frame(bytes(9216)), 1))
    assert struct.calcsize("<BBBBI32sHHHHfifiI") == 68
