"""Write golden.json: byte sequences with their decoded meaning, checked by the C and the Python tests.

Run from the repository root after a deliberate protocol change, review the diff, commit both files:

    .venv/bin/python tests/data/protocol/make_golden.py

The good frames' bytes are built here by hand (struct, zlib, binascii: no code from tinyml/protocol.py), and
every expected event list is written out explicitly, so the vectors test both implementations instead of
recording what one of them does.
"""

from __future__ import annotations

import binascii
import json
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).with_name("golden.json")
MODEL_ID = bytes(range(0xA0, 0xC0))


def frame(msg_type: int, seq: int, payload: bytes, length: int | None = None) -> bytes:
    head = b"\xa5\x5a" + struct.pack("<BBHI", msg_type, 0, seq, len(payload) if length is None else length)
    return (
        head + struct.pack("<H", binascii.crc_hqx(head[2:], 0xFFFF)) + payload + struct.pack("<I", zlib.crc32(payload))
    )


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def good(msg_type: int, seq: int, payload: bytes, offset: int, message: dict) -> dict:
    return {
        "event": "frame",
        "type": msg_type,
        "seq": seq,
        "offset": offset,
        "payload": payload.hex(),
        "message": message,
    }


def fault(code: int, name: str, seq: int | None, offset: int, detail: int = 0) -> dict:
    return {"event": "fault", "code": code, "name": name, "seq": seq, "detail": detail, "offset": offset}


HELLO_FIELDS = {
    "version": 1,
    "credits": 2,
    "in_dtype": 1,
    "out_dtype": 1,
    "max_payload": 9216,
    "model_id": MODEL_ID.hex(),
    "in_h": 96,
    "in_w": 96,
    "in_c": 1,
    "out_len": 10,
    "in_scale": 0.0078125,
    "in_zero_point": -1,
    "out_scale": 0.00390625,
    "out_zero_point": -128,
    "arena_bytes": 55296,
    "engine": "engine",
    "build": "native 2026-11-25 golden",
}


def hello_payload(f: dict) -> bytes:
    engine, build = f["engine"].encode(), f["build"].encode()
    return (
        struct.pack(
            "<BBBBI32sHHHHfifiI",
            f["version"],
            f["credits"],
            f["in_dtype"],
            f["out_dtype"],
            f["max_payload"],
            bytes.fromhex(f["model_id"]),
            f["in_h"],
            f["in_w"],
            f["in_c"],
            f["out_len"],
            f["in_scale"],
            f["in_zero_point"],
            f["out_scale"],
            f["out_zero_point"],
            f["arena_bytes"],
        )
        + bytes([len(engine)])
        + engine
        + bytes([len(build)])
        + build
    )


def vectors() -> list[dict]:
    vs: list[dict] = []

    def add(name: str, data: bytes, events: list[dict], why: str, max_payload: int = 1024, flush: bool = False) -> None:
        vs.append(
            {"name": name, "why": why, "max_payload": max_payload, "flush": flush, "hex": data.hex(), "events": events}
        )

    # ---- good frames, one per type ----
    p = struct.pack("<IB", 1 << 20, 1)
    add(
        "hello_req",
        frame(0x01, 1, p),
        [good(1, 1, p, 0, {"max_payload": 1 << 20, "version": 1})],
        "host asks for HELLO, announcing a 1 MiB max payload",
    )
    p = hello_payload(HELLO_FIELDS)
    add("hello", frame(0x02, 0, p), [good(2, 0, p, 0, HELLO_FIELDS)], "boot HELLO of a 96x96x1 int8 10-class model")
    p = bytes((i * 37) & 0xFF for i in range(48))
    add("frame", frame(0x03, 2, p), [good(3, 2, p, 0, {})], "FRAME of 4x4x3 int8 pixels")
    out = bytes([0x80, 0x81, 0x7F, 0x00, 0x10, 0xF0, 0x01, 0xFE, 0x55, 0xAA])
    p = struct.pack("<IQ", 1234, 567890123456) + out
    add(
        "result",
        frame(0x04, 2, p),
        [good(4, 2, p, 0, {"inference_us": 1234, "cycles": 567890123456, "output": out.hex()})],
        "RESULT for frame 2: 10 int8 scores, 1234 us, an instruction count above 2^32",
    )
    p = struct.pack("<BBI", 5, 1, 9216)
    add(
        "error",
        frame(0x05, 3, p),
        [good(5, 3, p, 0, {"code": 5, "flags": 1, "detail": 9216})],
        "ERROR WRONG_FRAME_SIZE for frame 3, expected 9216 bytes",
    )
    p = struct.pack("<BBI", 4, 0, 12)
    add(
        "error_no_seq",
        frame(0x05, 0, p),
        [good(5, 0, p, 0, {"code": 4, "flags": 0, "detail": 12})],
        "ERROR NOISE not tied to a request (flags 0)",
    )
    add("ping", frame(0x06, 65535, b"ping"), [good(6, 65535, b"ping", 0, {})], "PING with payload, seq at wrap")
    add("pong", frame(0x07, 65535, b"ping"), [good(7, 65535, b"ping", 0, {})], "PONG echoing it")
    add("ping_empty", frame(0x06, 5, b""), [good(6, 5, b"", 0, {})], "empty payload: the CRC-32 trailer is 0")
    add(
        "unknown_type",
        frame(0x7E, 9, b"\x01\x02"),
        [good(0x7E, 9, b"\x01\x02", 0, {})],
        "a type this version does not know is still delivered (the device answers UNKNOWN_TYPE)",
    )
    sync_inside = b"\xa5\x5a" + frame(0x06, 1, b"x")[2:12] + b"tail"
    add(
        "sync_in_payload",
        frame(0x03, 7, sync_inside),
        [good(3, 7, sync_inside, 0, {})],
        "a payload holding a sync word and even a valid header is not mistaken for a frame",
    )
    # A board whose runner failed to initialise (firmware/lib/app/app.c): dtypes 0/0, every model field zero, the
    # runner's failure tag as engine. It decodes; the host names the tag instead of calling the HELLO malformed.
    no_model = {
        **HELLO_FIELDS,
        "in_dtype": 0,
        "out_dtype": 0,
        "model_id": bytes(32).hex(),
        "in_h": 0,
        "in_w": 0,
        "in_c": 0,
        "out_len": 0,
        "in_scale": 0.0,
        "in_zero_point": 0,
        "out_scale": 0.0,
        "out_zero_point": 0,
        "arena_bytes": 0,
        "engine": "tflm:missing-op",
        "build": "nano33ble golden",
    }
    p = hello_payload(no_model)
    add(
        "hello_no_model",
        frame(0x02, 0, p),
        [good(2, 0, p, 0, no_model)],
        "boot HELLO of a board whose TFLM runner failed (an op missing from the resolver)",
    )
    p = hello_payload({**HELLO_FIELDS, "out_dtype": 0})
    add(
        "hello_half_dtype",
        frame(0x02, 0, p),
        [{"event": "frame", "type": 2, "seq": 0, "offset": 0, "payload": p.hex(), "message_error": "MALFORMED"}],
        "only one dtype 0: neither a model nor the no-model HELLO",
    )
    p = b"\x00" * 10
    add(
        "hello_malformed",
        frame(0x02, 0, p),
        [{"event": "frame", "type": 2, "seq": 0, "offset": 0, "payload": p.hex(), "message_error": "MALFORMED"}],
        "valid CRCs around a HELLO payload too short to decode",
    )

    # ---- faults and resync ----
    ping = frame(0x06, 8, b"ok")
    pa = frame(0x03, 4, bytes(range(40)))
    bad = flip(pa, 7)  # a bit of the length field: header CRC fails
    add(
        "bad_header_crc",
        bad + ping,
        [fault(1, "BAD_HEADER_CRC", None, 0), good(6, 8, b"ok", len(bad), {})],
        "corrupt length rejected after 12 bytes; the frame's other bytes are skipped quietly; next frame decoded",
    )
    bad = flip(pa, 12 + 20, 0x80)
    add(
        "bad_payload_crc",
        bad + ping,
        [fault(2, "BAD_PAYLOAD_CRC", 4, 0), good(6, 8, b"ok", len(bad), {})],
        "payload bit flip: reported with the frame's seq",
    )
    bad = flip(pa, len(pa) - 1)
    add(
        "bad_trailer",
        bad + ping,
        [fault(2, "BAD_PAYLOAD_CRC", 4, 0), good(6, 8, b"ok", len(bad), {})],
        "corrupt CRC-32 trailer",
    )
    trunc = pa[:45]
    add(
        "truncated_then_good",
        trunc + ping,
        [fault(2, "BAD_PAYLOAD_CRC", 4, 0), good(6, 8, b"ok", len(trunc), {})],
        "a truncated frame swallows the next frame's bytes; the re-scan still finds that frame",
    )
    add(
        "truncated_header",
        pa[:7] + ping,
        [fault(1, "BAD_HEADER_CRC", None, 0), good(6, 8, b"ok", 7, {})],
        "a frame cut inside its header",
    )
    big = frame(0x03, 6, bytes(100))
    add(
        "oversized",
        big + ping,
        [fault(3, "OVERSIZED", 6, 0, 64), good(6, 8, b"ok", len(big), {})],
        "length above the receiver's max payload: reported with seq and the max; its payload is skipped",
        64,
    )
    huge = frame(0x03, 7, b"", length=0xFFFFFFFF)[:12]
    add(
        "oversized_4g",
        huge + b"\x00" * 20,
        [fault(3, "OVERSIZED", 7, 0, 64)],
        "a 4 GiB length: never buffered, no overflow, no wait for 4 GiB",
        64,
    )
    add(
        "noise",
        b"hello" + ping,
        [fault(4, "NOISE", None, 0, 5), good(6, 8, b"ok", 5, {})],
        "bytes outside any frame are reported once, with their count",
    )
    junk = b"\xa5\xa5\x00\xa5"
    add(
        "noise_partial_sync",
        junk + ping,
        [fault(4, "NOISE", None, 0, 4), good(6, 8, b"ok", 4, {})],
        "sync-like bytes before the real sync word",
    )
    add(
        "noise_after_frame",
        ping + b"\xff\xff" + ping,
        [good(6, 8, b"ok", 0, {}), fault(4, "NOISE", None, len(ping), 2), good(6, 8, b"ok", len(ping) + 2, {})],
        "noise between two frames",
    )
    bad = flip(pa, 5)
    add(
        "one_report_per_burst",
        bad + b"zz" + flip(ping, 0) + ping,
        [fault(1, "BAD_HEADER_CRC", None, 0), good(6, 8, b"ok", len(bad) + 2 + len(ping), {})],
        "bad header, noise and a frame with a broken sync word in one burst: one fault",
    )
    bad1, bad2 = flip(pa, 12 + 3), flip(frame(0x03, 5, bytes(40)), 12 + 3)
    add(
        "two_bad_frames",
        bad1 + bad2 + ping,
        [
            fault(2, "BAD_PAYLOAD_CRC", 4, 0),
            fault(2, "BAD_PAYLOAD_CRC", 5, len(bad1)),
            good(6, 8, b"ok", len(bad1) + len(bad2), {}),
        ],
        "frames with valid headers are reported one by one (each returns its credit)",
    )
    cut = big[:60]
    add(
        "oversized_truncated",
        cut + ping,
        [fault(3, "OVERSIZED", 6, 0, 64), good(6, 8, b"ok", len(cut), {})],
        "an oversized frame cut short does not hide the frame behind it",
        64,
    )
    # A frame that lost its last byte, whose CRC ends in A5: it takes the next frame's sync byte and is
    # whole again; that byte must still start the next frame.
    p = next(bytes([k]) for k in range(256) if zlib.crc32(bytes([k])) >> 24 == 0xA5)
    lost_tail = frame(0x06, 3, p)[:-1]
    add(
        "crc_ends_in_sync_byte",
        lost_tail + ping,
        [good(6, 3, p, 0, {}), good(6, 8, b"ok", len(lost_tail), {})],
        "the last byte of a CRC may double as the next sync byte: both frames decode",
    )
    add(
        "frame_ending_in_a5_then_noise",
        lost_tail + b"\xa5" + b"zz" + ping,
        [
            good(6, 3, p, 0, {}),
            fault(4, "NOISE", None, len(lost_tail) + 1, 2),
            good(6, 8, b"ok", len(lost_tail) + 3, {}),
        ],
        "a frame whose CRC ends in A5 followed by noise: that A5 is not counted as noise",
    )
    add("incomplete", pa[:20], [], "a frame still arriving: no event, no fault yet")
    add("lone_sync_byte", b"\xa5", [], "a possible sync byte at the end is kept, not reported")
    add("empty", b"", [], "nothing")

    # ---- idle flush (proto_parser_flush / Decoder.flush) after the bytes ----
    add(
        "flush_truncated",
        pa[:30],
        [fault(2, "BAD_PAYLOAD_CRC", 4, 0)],
        "the link goes idle inside a payload: the frame is reported as truncated",
        flush=True,
    )
    add(
        "flush_recovers_swallowed_frame",
        pa[:20] + ping,
        [fault(2, "BAD_PAYLOAD_CRC", 4, 0), good(6, 8, b"ok", 20, {})],
        "a truncated frame holds a complete frame in its unfinished payload: idle flush re-scans and delivers it",
        flush=True,
    )
    add("flush_partial_header", pa[:7], [fault(1, "BAD_HEADER_CRC", None, 0)], "idle inside a header", flush=True)
    add(
        "flush_noise",
        ping + b"junk",
        [good(6, 8, b"ok", 0, {}), fault(4, "NOISE", None, len(ping), 4)],
        "idle after noise with no sync word yet: the noise is reported",
        flush=True,
    )
    add("flush_lone_sync_byte", b"\xa5", [fault(4, "NOISE", None, 0, 1)], "a lone A5 at idle is noise", flush=True)
    add(
        "flush_after_a5_ending",
        frame(0x06, 3, p),
        [good(6, 3, p, 0, {})],
        "a frame whose CRC ends in A5, then idle: no noise reported",
        flush=True,
    )
    add("flush_idle_clean", ping, [good(6, 8, b"ok", 0, {})], "nothing pending: flush reports nothing", flush=True)
    return vs


def main() -> None:
    doc = {
        "about": "Wire protocol golden vectors (docs/protocol.md). Each vector: bytes as hex, the receiver's "
        "max payload, and the events a decoder must report in order. Written by make_golden.py.",
        "vectors": vectors(),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(doc['vectors'])} vectors)")


if __name__ == "__main__":
    main()
