/*
 * frame.h — the on-disk record of the event log (pure: no I/O).
 *
 * One record, little-endian, no padding:
 *
 *   offset  size  field
 *        0     4  magic        "LTE1"
 *        4     4  body_len     bytes from `crc` (inclusive) to the end of the payload
 *        8     4  crc          CRC32C (Castagnoli) of every byte after this field
 *       12     8  offset       the record's offset in its topic (0, 1, 2, ...)
 *       20     8  time_ms      Unix milliseconds when it was appended
 *       28     8  event_id     the outbox row id it came from (0: none)
 *       36     1  topic_len    1..LT_EV_TOPIC_MAX
 *       37     1  type_len     0..LT_EV_TYPE_MAX
 *       38     2  key_len      0..LT_EV_KEY_MAX
 *       40     4  payload_len  0..LT_EV_PAYLOAD_MAX
 *       44     -  topic, type, key, payload bytes, in that order
 *
 * so body_len = 4 + 32 + topic_len + type_len + key_len + payload_len, and
 * the whole record is 8 + body_len bytes.  The payload is the event's own
 * JSON (not checked here); topic, type and key are UTF-8 without NUL.
 *
 * lt_ev_decode tells a complete valid record from a torn tail (LT_EAGAIN:
 * fewer bytes than the record needs — the append was cut) and from
 * garbage (LT_ECORRUPT: bad magic, lengths out of bounds or inconsistent,
 * CRC mismatch).  Recovery truncates at the first record that is not
 * LT_OK.
 */
#ifndef LT_EVENTS_FRAME_H
#define LT_EVENTS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_EV_MAGIC "LTE1"
#define LT_EV_HEADER 44 /* bytes before the variable fields */
#define LT_EV_TOPIC_MAX 64
#define LT_EV_TYPE_MAX 64
#define LT_EV_KEY_MAX 256
#define LT_EV_PAYLOAD_MAX (1u << 20)
#define LT_EV_RECORD_MAX                                                                           \
	(LT_EV_HEADER + LT_EV_TOPIC_MAX + LT_EV_TYPE_MAX + LT_EV_KEY_MAX + LT_EV_PAYLOAD_MAX)

/* One event.  The strings point into the caller's memory (encode) or into
 * the decoded buffer (decode); they are not NUL-terminated. */
struct lt_event {
	uint64_t offset;
	int64_t time_ms;
	uint64_t event_id;
	const char *topic;
	size_t topic_len;
	const char *type;
	size_t type_len;
	const char *key;
	size_t key_len;
	const char *payload;
	size_t payload_len;
};

/* CRC32C (Castagnoli, reflected, init and xorout 0xFFFFFFFF) of n bytes,
 * continuing from crc (start with 0).  lt_crc32c(0, "123456789", 9) ==
 * 0xE3069283.  Uses the SSE4.2 crc32 instruction when the CPU has it (x86-64,
 * checked at run time), else lt_crc32c_sw; both give the same result. */
uint32_t lt_crc32c(uint32_t crc, const void *data, size_t n);

/* The portable table-driven CRC32C, always in software (for the tests that
 * compare it with lt_crc32c, and for CPUs without SSE4.2). */
uint32_t lt_crc32c_sw(uint32_t crc, const void *data, size_t n);

/* LT_OK when ev can be encoded: topic 1..LT_EV_TOPIC_MAX bytes, type, key
 * and payload within their maxima, no NUL in topic, type or key, and a
 * non-NULL pointer for every non-empty field; else LT_EINVAL.  Neither
 * UTF-8 nor the topic's character set is checked here (evlog.h checks the
 * topic name). */
enum lt_err lt_ev_check(const struct lt_event *ev);

/* Bytes the record of ev takes (8 + body_len); SIZE_MAX when the lengths
 * overflow (an event lt_ev_check refuses). */
size_t lt_ev_size(const struct lt_event *ev);

/* Encode ev into out (cap bytes).  LT_EINVAL when lt_ev_check refuses ev;
 * LT_ETOOBIG when cap is too small (nothing written).  *len = bytes
 * written. */
enum lt_err lt_ev_encode(const struct lt_event *ev, uint8_t *out, size_t cap, size_t *len);

/* Decode the record at the start of buf (n bytes available; buf may be NULL
 * when n is 0).  LT_OK: *ev points into buf and *len is the record's size;
 * LT_EAGAIN: incomplete (n too short for the record its header announces,
 * or for a header), and nothing seen so far is invalid; LT_ECORRUPT: not a
 * valid record (bad magic, body_len or field lengths out of bounds or not
 * adding up, CRC mismatch, a NUL in topic, type or key).  The checks that
 * need only the first 44 bytes are made before completeness, so a record
 * whose length field was damaged is LT_ECORRUPT, not LT_EAGAIN.  Every
 * record lt_ev_decode accepts re-encodes to the same bytes. */
enum lt_err lt_ev_decode(const uint8_t *buf, size_t n, struct lt_event *ev, size_t *len);

#endif
