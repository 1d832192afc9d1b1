/*
 * fuzz_sse.c — lt_sse_feed / lt_sse_finish on arbitrary bytes.  The first
 * input byte picks max_event and a split position; the rest is the stream.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - fed whole, split in two at the chosen position, split in three, and
 *     byte by byte, the splitter dispatches the same event sequence (types
 *     and data, compared by digest and count), ends with the same result
 *     and the same lt_sse_finish answer;
 *   - every event's data is at most max_event bytes and NUL-terminated,
 *     its type non-empty, at most 63 bytes and without line ends; an event
 *     holds only bytes of the input plus the '\n' joins;
 *   - errors are LT_ETOOBIG only (the callback never fails here).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/sse.h"

#include "fuzz_check.h"

struct run {
	size_t max_event;
	size_t input_len;
	uint64_t digest; /* FNV-1a over every event */
	size_t events;
	enum lt_err err;
	bool pending;
};

static void mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= UINT64_C(0x100000001b3);
	}
}

static enum lt_err on_event(void *arg, const char *event, const char *data, size_t data_len)
{
	struct run *r = arg;
	size_t tlen = strlen(event);
	CHECK(tlen > 0 && tlen < 64);
	CHECK(strpbrk(event, "\r\n") == NULL);
	CHECK(data_len <= r->max_event);
	CHECK(data_len <= r->input_len);
	CHECK(data[data_len] == '\0');
	for (size_t i = 0; i < data_len; i++)
		CHECK(data[i] != '\r');
	mix(&r->digest, event, tlen + 1);
	mix(&r->digest, &data_len, sizeof data_len);
	mix(&r->digest, data, data_len);
	r->events++;
	return LT_OK;
}

static void run(struct run *r, size_t max_event, const char *in, size_t len, const size_t *cuts,
		size_t ncuts)
{
	memset(r, 0, sizeof *r);
	r->max_event = max_event;
	r->input_len = len;
	r->digest = UINT64_C(0xcbf29ce484222325);
	struct lt_sse s;
	CHECK(lt_sse_init(&s, max_event) == LT_OK);
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		r->err = lt_sse_feed(&s, in + at, end - at, on_event, r);
		if (r->err != LT_OK)
			break;
		at = end;
	}
	CHECK(r->err == LT_OK || r->err == LT_ETOOBIG);
	CHECK(s.events == r->events);
	CHECK(s.data_len <= max_event);
	r->pending = lt_sse_finish(&s);
	CHECK(!lt_sse_finish(&s));
	lt_sse_free(&s);
}

static void same(const struct run *a, const struct run *b)
{
	CHECK(a->err == b->err);
	CHECK(a->events == b->events);
	CHECK(a->digest == b->digest);
	if (a->err == LT_OK)
		CHECK(a->pending == b->pending);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	/* small limits often, so they are hit; sometimes roomy */
	size_t max_event = (ctl & 0x80) ? 65536 : (size_t)(ctl & 0x3f);
	size_t k = len ? ((size_t)ctl * 2654435761u) % (len + 1) : 0;

	struct run whole, other;
	run(&whole, max_event, in, len, NULL, 0);
	size_t *cuts = malloc((len ? len : 1) * sizeof *cuts);
	CHECK(cuts != NULL);
	cuts[0] = k;
	run(&other, max_event, in, len, cuts, 1);
	same(&whole, &other);
	if (len >= 2) {
		cuts[0] = k / 2;
		cuts[1] = k + (len - k) / 2;
		run(&other, max_event, in, len, cuts, 2);
		same(&whole, &other);
	}
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run(&other, max_event, in, len, cuts, len ? len - 1 : 0);
	same(&whole, &other);
	free(cuts);
	return 0;
}
