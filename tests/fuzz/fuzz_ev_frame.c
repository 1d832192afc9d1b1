/*
 * fuzz_ev_frame.c — lt_ev_decode and lt_ev_encode (src/events/frame.c) on
 * arbitrary bytes.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - decode answers LT_OK, LT_EAGAIN or LT_ECORRUPT only;
 *   - LT_OK: the record fits the input, its size is lt_ev_size of the
 *     fields, the fields pass lt_ev_check and point inside the record, and
 *     encoding them gives back exactly the input's bytes; every shorter
 *     prefix of it is LT_EAGAIN; a byte changed (at a few places picked from
 *     the input) makes it LT_ECORRUPT;
 *   - LT_EAGAIN: appending bytes never turns the verdict into a record of a
 *     different length than the header announced;
 *   - the input split into fields (lengths from its first bytes) and
 *     encoded: LT_OK exactly when lt_ev_check accepts them, and then decode
 *     of the output gives the same fields and size.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/frame.h"

#include "fuzz_check.h"

static void same_fields(const struct lt_event *a, const struct lt_event *b)
{
	CHECK(a->offset == b->offset && a->time_ms == b->time_ms && a->event_id == b->event_id);
	CHECK(a->topic_len == b->topic_len && a->type_len == b->type_len &&
	      a->key_len == b->key_len && a->payload_len == b->payload_len);
	CHECK(!memcmp(a->topic, b->topic, a->topic_len));
	CHECK(a->type_len == 0 || !memcmp(a->type, b->type, a->type_len));
	CHECK(a->key_len == 0 || !memcmp(a->key, b->key, a->key_len));
	CHECK(a->payload_len == 0 || !memcmp(a->payload, b->payload, a->payload_len));
}

static void check_decoded(const uint8_t *data, size_t size, const struct lt_event *ev, size_t len)
{
	CHECK(len >= LT_EV_HEADER + 1 && len <= size && len <= LT_EV_RECORD_MAX);
	CHECK(lt_ev_size(ev) == len);
	CHECK(lt_ev_check(ev) == LT_OK);
	const char *lo = (const char *)data + LT_EV_HEADER, *hi = (const char *)data + len;
	CHECK(ev->topic == lo && ev->payload + ev->payload_len == hi);

	uint8_t *out = malloc(len);
	size_t got = 0;
	CHECK(out);
	CHECK(lt_ev_encode(ev, out, len, &got) == LT_OK && got == len);
	CHECK(!memcmp(out, data, len));
	CHECK(lt_ev_encode(ev, out, len - 1, &got) == LT_ETOOBIG);

	struct lt_event back;
	size_t blen;
	/* Prefixes: a few, including the header boundaries, on exact-size copies. */
	const size_t cuts[] = {0, 1, 4, 7, 8, 43, 44, len / 2, len - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		size_t n = cuts[i] < len ? cuts[i] : len - 1;
		uint8_t *p = malloc(n ? n : 1);
		CHECK(p);
		memcpy(p, data, n);
		CHECK(lt_ev_decode(p, n, &back, &blen) == LT_EAGAIN);
		free(p);
	}
	/* Single-byte changes at places the input picks. */
	memcpy(out, data, len);
	for (size_t i = 0; i < 8 && i < size; i++) {
		size_t at = ((size_t)data[size - 1 - i] * 2654435761u + i * 40503u) % len;
		uint8_t x = (uint8_t)(data[i] | 1);
		out[at] ^= x;
		CHECK(lt_ev_decode(out, len, &back, &blen) == LT_ECORRUPT);
		out[at] ^= x;
	}
	free(out);
}

/* Fields cut from the input: 8 bytes of lengths, then the strings. */
static void check_encode(const uint8_t *data, size_t size)
{
	if (size < 8)
		return;
	struct lt_event ev = {0};
	size_t tl = data[0] % (LT_EV_TOPIC_MAX + 2), yl = data[1] % (LT_EV_TYPE_MAX + 2);
	size_t kl = ((size_t)data[2] | (size_t)data[3] << 8) % (LT_EV_KEY_MAX + 2);
	ev.offset = (uint64_t)data[4] << 56 | data[5];
	ev.time_ms = (int64_t)data[6] - 128;
	ev.event_id = data[7];
	const char *p = (const char *)data + 8;
	size_t rest = size - 8;
	if (tl + yl + kl > rest)
		return;
	ev.topic = p;
	ev.topic_len = tl;
	ev.type = p + tl;
	ev.type_len = yl;
	ev.key = p + tl + yl;
	ev.key_len = kl;
	ev.payload = p + tl + yl + kl;
	ev.payload_len = rest - tl - yl - kl;

	bool valid = tl >= 1 && tl <= LT_EV_TOPIC_MAX && yl <= LT_EV_TYPE_MAX &&
		     kl <= LT_EV_KEY_MAX && !memchr(p, '\0', tl + yl + kl);
	CHECK((lt_ev_check(&ev) == LT_OK) == valid);
	size_t cap = size + LT_EV_HEADER;
	uint8_t *out = malloc(cap);
	size_t len = 0;
	CHECK(out);
	enum lt_err e = lt_ev_encode(&ev, out, cap, &len);
	CHECK(e == (valid ? LT_OK : LT_EINVAL));
	if (e == LT_OK) {
		struct lt_event back;
		size_t blen;
		CHECK(len == lt_ev_size(&ev));
		CHECK(lt_ev_decode(out, len, &back, &blen) == LT_OK && blen == len);
		same_fields(&ev, &back);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_event ev;
	size_t len = 0;
	enum lt_err e = lt_ev_decode(size ? data : NULL, size, &ev, &len);
	CHECK(e == LT_OK || e == LT_EAGAIN || e == LT_ECORRUPT);
	if (e == LT_OK)
		check_decoded(data, size, &ev, len);
	if (e == LT_EAGAIN && size >= 8) {
		/* The header announced more than we have; with zeros after it, the
		 * verdict is about that same record. */
		size_t want = 8 + ((size_t)data[4] | (size_t)data[5] << 8 | (size_t)data[6] << 16 |
				   (size_t)data[7] << 24);
		CHECK(want > size && want <= LT_EV_RECORD_MAX);
		uint8_t *p = calloc(1, want);
		CHECK(p);
		memcpy(p, data, size);
		e = lt_ev_decode(p, want, &ev, &len);
		CHECK(e == LT_ECORRUPT || (e == LT_OK && len == want));
		free(p);
	}
	check_encode(data, size);
	return 0;
}
