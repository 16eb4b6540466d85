/* Wire protocol between the host (tinyml/protocol.py) and a board: frame format, parser, encoders.
 *
 * The specification is docs/protocol.md; this header and tinyml/protocol.py implement the same thing and
 * are checked against the same golden vectors (tests/data/protocol/golden.json).
 *
 * Frame on the wire (all integers little endian):
 *
 *   off  size  field
 *   0    2     sync word A5 5A
 *   2    1     type        (enum proto_type)
 *   3    1     flags       (0 in version 1; receivers ignore it)
 *   4    2     seq         sequence number (host counts; device echoes the seq of the request it answers)
 *   6    4     length      payload length in bytes (receiver rejects length > its max payload)
 *   10   2     hcrc        CRC-16/CCITT-FALSE of bytes 2..9: a corrupt length is rejected before the
 *                          parser waits for a bogus payload
 *   12   N     payload
 *   12+N 4     pcrc        CRC-32 (IEEE 802.3, as zlib) of the payload (present even when N = 0)
 *
 * C99, no heap, no OS or Arduino calls. The parser is byte-at-a-time (fits a polling loop or a task fed
 * from an ISR ring buffer), writes each frame into one caller-owned buffer, and resynchronises after any
 * corrupt, truncated or oversized frame on the next sync word *inside the bytes it already received* (it
 * re-scans a failed frame in place), so a truncated frame never swallows the intact frame behind it.
 */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_VERSION 1u
#define PROTO_SYNC0 0xA5u
#define PROTO_SYNC1 0x5Au
#define PROTO_HEADER_LEN 12u /* sync + type + flags + seq + length + hcrc */
#define PROTO_TRAILER_LEN 4u /* payload CRC-32 */
#define PROTO_OVERHEAD (PROTO_HEADER_LEN + PROTO_TRAILER_LEN)
/* Parser buffer size needed for a given max payload (header and trailer are kept for re-scanning). */
#define PROTO_BUFFER_SIZE(max_payload) ((size_t)(max_payload) + PROTO_OVERHEAD)

#define PROTO_MODEL_ID_LEN 32u /* sha256 of the int8 .tflite */
#define PROTO_ENGINE_MAX 32u /* longest engine name in HELLO */
#define PROTO_BUILD_MAX 64u /* longest firmware build string in HELLO */
#define PROTO_HELLO_FIXED_LEN 68u
#define PROTO_HELLO_MAX_LEN (PROTO_HELLO_FIXED_LEN + 2u + PROTO_ENGINE_MAX + PROTO_BUILD_MAX)
#define PROTO_HELLO_REQ_LEN 5u
#define PROTO_RESULT_FIXED_LEN 12u /* inference_us u32 + cycles u64, then the output tensor */
#define PROTO_ERROR_LEN 6u

/* Message types. One table: docs/protocol.md "Messages"; tinyml/protocol.py MsgType. */
enum proto_type {
  PROTO_HELLO_REQ = 0x01, /* host -> device: u32 host max payload, u8 host protocol version */
  PROTO_HELLO = 0x02, /* device -> host: proto_hello_t (at boot with seq 0, and per HELLO_REQ) */
  PROTO_FRAME = 0x03, /* host -> device: in_h*in_w*in_c pixels in the model's input dtype */
  PROTO_RESULT = 0x04, /* device -> host: u32 inference_us, u64 cycles, out_len output bytes */
  PROTO_ERROR = 0x05, /* device -> host: u8 code, u8 flags, u32 detail */
  PROTO_PING = 0x06, /* host -> device: any payload up to the device's max payload */
  PROTO_PONG = 0x07 /* device -> host: the PING payload echoed */
};

/* Error codes: the parser's faults (1-4) and the application's refusals (5-10) share one numbering, so
 * the device forwards a parser fault as ERROR without translation. docs/protocol.md "Error codes". */
enum proto_error_code {
  PROTO_ERR_BAD_HEADER_CRC = 1, /* sync word found but the header CRC failed; seq unknown */
  PROTO_ERR_BAD_PAYLOAD_CRC = 2, /* header valid (seq known), payload corrupt or truncated */
  PROTO_ERR_OVERSIZED = 3, /* header valid, length > receiver max payload; detail = max payload */
  PROTO_ERR_NOISE = 4, /* bytes outside any frame were skipped; detail = how many */
  PROTO_ERR_WRONG_FRAME_SIZE = 5, /* FRAME length != in_h*in_w*in_c; detail = expected length */
  PROTO_ERR_UNKNOWN_TYPE = 6, /* valid frame of a type the device does not handle; detail = type */
  PROTO_ERR_RUNNER = 7, /* inference failed; detail = enum runner_status */
  PROTO_ERR_NO_CREDIT = 8, /* FRAME arrived with no free buffer (host exceeded its credits) */
  PROTO_ERR_MALFORMED = 9, /* payload too short or inconsistent for its type; detail = length */
  PROTO_ERR_VERSION = 10 /* HELLO_REQ from an unsupported protocol version; detail = device's */
};

/* ERROR flags. */
#define PROTO_ERROR_SEQ_VALID 0x01u /* the header seq names the request this error answers (credit back) */

/* ---- CRCs (exposed so senders can stream a payload and append its CRC without a copy) ---------- */

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection). Chain: crc = proto_crc16(crc, ...). */
#define PROTO_CRC16_INIT 0xFFFFu
uint16_t proto_crc16(uint16_t crc, const uint8_t *data, size_t len);

/* CRC-32 IEEE (zlib). Start with 0 and chain: crc = proto_crc32(crc, chunk, n) for each chunk. */
uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* ---- encoders: write into caller buffers, return bytes written (0 if `cap` is too small) -------- */

/* Header only (gather form): send header, then the payload from wherever it lives, then the trailer. */
size_t proto_encode_header(uint8_t out[PROTO_HEADER_LEN], uint8_t type, uint16_t seq, uint32_t length);
/* Trailer for a payload whose CRC-32 the caller computed (proto_crc32 over all payload chunks). */
void proto_encode_trailer(uint8_t out[PROTO_TRAILER_LEN], uint32_t payload_crc);
/* Whole frame: header + payload + trailer into `out` (payload may be NULL when length is 0). */
size_t proto_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t length);

/* HELLO's tensor dtype codes: enum runner_dtype in runner.h (1 int8, 2 uint8). The one table is DTYPES in
   tinyml/protocol.py; tests/test_constants.py checks this range and runner.h against it.
   PROTO_DTYPE_NONE in both fields is the "no model" HELLO: the runner failed to initialise, the model fields are
   zero and `engine` names the failure (e.g. "tflm:missing-op"); DTYPE_NONE in tinyml/protocol.py. */
#define PROTO_DTYPE_MIN 1u
#define PROTO_DTYPE_MAX 2u
#define PROTO_DTYPE_NONE 0u

/* HELLO contents. Strings are NUL-terminated; longer ones are cut to PROTO_ENGINE_MAX/PROTO_BUILD_MAX. */
typedef struct proto_hello {
  uint8_t version; /* PROTO_VERSION */
  uint8_t credits; /* frames the device can hold at once (>= 1): the host's in-flight window */
  uint8_t in_dtype; /* enum runner_dtype: 1 int8, 2 uint8; 0 in both: no model (see PROTO_DTYPE_NONE) */
  uint8_t out_dtype;
  uint32_t max_payload; /* largest payload the device accepts */
  uint8_t model_id[PROTO_MODEL_ID_LEN];
  uint16_t in_h, in_w, in_c;
  uint16_t out_len; /* number of output elements (classes) */
  float in_scale;
  int32_t in_zero_point;
  float out_scale;
  int32_t out_zero_point;
  uint32_t arena_bytes; /* activation memory of the backend (informational) */
  char engine[PROTO_ENGINE_MAX + 1];
  char build[PROTO_BUILD_MAX + 1];
} proto_hello_t;

/* Whole HELLO frame (at most PROTO_OVERHEAD + PROTO_HELLO_MAX_LEN bytes). */
size_t proto_encode_hello(uint8_t *out, size_t cap, uint16_t seq, const proto_hello_t *hello);
/* Whole RESULT frame; `output` holds out_len bytes of the raw output tensor. */
size_t proto_encode_result(uint8_t *out, size_t cap, uint16_t seq, uint32_t inference_us, uint64_t cycles,
                           const uint8_t *output, uint16_t out_len);
/* Whole ERROR frame; flags is PROTO_ERROR_SEQ_VALID when `seq` names the request, else 0. */
size_t proto_encode_error(uint8_t *out, size_t cap, uint16_t seq, uint8_t code, uint8_t flags, uint32_t detail);
/* Whole HELLO_REQ frame (host side; used by C tests and C hosts). */
size_t proto_encode_hello_req(uint8_t *out, size_t cap, uint16_t seq, uint32_t host_max_payload);

/* ---- payload decoders: return 0 on success, PROTO_ERR_MALFORMED if the payload is too short or
 * inconsistent. Trailing bytes beyond the known fields are ignored (later versions may append). ---- */
int proto_decode_hello(const uint8_t *payload, uint32_t length, proto_hello_t *out);
int proto_decode_hello_req(const uint8_t *payload, uint32_t length, uint32_t *host_max_payload, uint8_t *host_version);
/* `output` points into `payload` (no copy). */
int proto_decode_result(const uint8_t *payload, uint32_t length, uint32_t *inference_us, uint64_t *cycles,
                        const uint8_t **output, uint32_t *out_len);
int proto_decode_error(const uint8_t *payload, uint32_t length, uint8_t *code, uint8_t *flags, uint32_t *detail);

/* ---- parser ----------------------------------------------------------------------------------- */

enum proto_event_kind {
  PROTO_EV_NONE = 0, /* nothing complete yet */
  PROTO_EV_FRAME = 1, /* a frame with valid CRCs: type, seq, payload, length */
  PROTO_EV_FAULT = 2 /* a fault: code (1-4), seq if seq_valid, detail */
};

typedef struct proto_event {
  uint8_t kind; /* enum proto_event_kind */
  uint8_t type; /* FRAME: message type (unknown types are delivered; the app answers them) */
  uint16_t seq; /* FRAME: seq; FAULT: seq when seq_valid */
  uint8_t code; /* FAULT: enum proto_error_code (1..4) */
  uint8_t seq_valid; /* FAULT: 1 when the header was valid, so seq names the lost request */
  uint32_t detail; /* FAULT: OVERSIZED -> max payload, NOISE -> bytes skipped, else 0 */
  const uint8_t *payload; /* FRAME: points into the parser buffer; valid until the next push */
  uint32_t length; /* FRAME: payload length */
  uint64_t offset; /* stream offset of the frame's sync word or of the fault's first byte */
} proto_event_t;

/* Counters for diagnostics and benches (never reset by the parser). */
typedef struct proto_stats {
  uint32_t frames; /* frames delivered */
  uint32_t faults; /* faults reported */
  uint32_t suppressed; /* faults not reported because they belong to an already reported one */
  uint64_t bytes_in; /* live bytes pushed */
  uint64_t bytes_skipped; /* bytes that ended up in no frame */
} proto_stats_t;

typedef struct proto_parser {
  /* private: use the functions below */
  uint8_t *buf; /* caller buffer: the candidate frame from its sync word, then replay bytes */
  size_t cap; /* its size: PROTO_BUFFER_SIZE(max_payload) */
  uint32_t max_payload;
  size_t fill; /* bytes of the current candidate in buf[0..fill) */
  size_t rp, re; /* pending re-scan bytes: buf[rp..re) */
  uint64_t pos; /* stream offset of the next byte to process (pending or live) */
  uint64_t cand_off; /* stream offset of buf[0] */
  uint64_t noise_off; /* stream offset of the first skipped byte of the current noise run */
  uint32_t noise; /* skipped bytes in the current run */
  uint64_t need; /* bytes still needed in PAYLOAD (length + trailer) */
  uint32_t length; /* length field of the current candidate */
  uint8_t state;
  uint8_t quiet; /* a fault was reported and no valid header followed yet */
  uint8_t delivered; /* the last event was a FRAME: drop its bytes before the next step */
  uint8_t borrowed; /* that FRAME ended in A5, which may also start the next sync word */
  proto_stats_t stats;
} proto_parser_t;

/* Prepare a parser writing into `buf` of `cap` bytes; it accepts payloads up to
 * cap - PROTO_OVERHEAD bytes (announce that as max_payload in HELLO). Returns 0, or -1 when cap is
 * smaller than PROTO_OVERHEAD. */
int proto_parser_init(proto_parser_t *p, uint8_t *buf, size_t cap);

/* Feed received bytes. Consumes bytes until one event completes and returns how many input bytes it
 * consumed; *ev says what happened (PROTO_EV_NONE when all input was consumed without an event).
 * Re-scanned bytes from a failed frame are processed before new input, so one call can return an
 * event while consuming 0 bytes. Loop until no event:
 *
 *     size_t off = 0; proto_event_t ev;
 *     do {
 *       off += proto_parser_push(&p, rx + off, n - off, &ev);
 *       if (ev.kind != PROTO_EV_NONE) handle(&ev);   // FRAME payload valid until the next push
 *     } while (ev.kind != PROTO_EV_NONE);
 *
 * Never reads past `data + len` or writes past the parser buffer; never blocks. */
size_t proto_parser_push(proto_parser_t *p, const uint8_t *data, size_t len, proto_event_t *ev);

/* The link went idle (no byte for PROTO_IDLE_FLUSH_MS, or the host's answer timeout): give up on the
 * frame in progress as truncated (BAD_PAYLOAD_CRC with its seq, or BAD_HEADER_CRC), re-scan its bytes, and
 * report pending noise. Returns 1 with an event in *ev; call until it returns 0. Without it, a frame cut
 * short at the end of a burst would wait for bytes that only the next burst brings. */
#define PROTO_IDLE_FLUSH_MS 100u
int proto_parser_flush(proto_parser_t *p, proto_event_t *ev);

/* Double buffering: right after a FRAME event, give the parser a fresh buffer of the same size so
 * the app can keep using the event's payload (e.g. run inference) while the next frame arrives.
 * Pending re-scan bytes move to the fresh buffer. Returns the buffer holding the event's payload. */
uint8_t *proto_parser_swap_buffer(proto_parser_t *p, uint8_t *fresh);

/* Short name of a message type or error code for logs ("FRAME", "BAD_PAYLOAD_CRC", "?" if unknown). */
const char *proto_type_name(uint8_t type);
const char *proto_error_name(uint8_t code);

#ifdef __cplusplus
}
#endif
#endif /* PROTOCOL_H */
