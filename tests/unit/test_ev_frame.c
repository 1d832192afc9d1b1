/*
 * test_ev_frame.c — src/events/frame.c: CRC32C (known vectors, the SSE4.2
 * path against the table on every length and alignment), the record layout
 * byte by byte, round trips of every field at its minimum and maximum
 * length, field bounds (LT_EINVAL) and a short buffer (LT_ETOOBIG), every
 * truncation of a record (LT_EAGAIN), every single-byte change of a record
 * (LT_ECORRUPT, never another valid record) and records that pass the CRC
 * but break a rule (NUL in a string, lengths that do not add up).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "events/frame.h"

static uint8_t *filled(size_t n, uint8_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
	return p;
}

static void test_crc_vectors(void **state)
{
	(void)state;
	uint8_t buf[32];
	assert_int_equal(lt_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(lt_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	memset(buf, 0, sizeof buf);
	assert_int_equal(lt_crc32c(0, buf, 32), 0x8A9136AAu);
	assert_int_equal(lt_crc32c_sw(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof buf);
	assert_int_equal(lt_crc32c(0, buf, 32), 0x62A8AB43u);
	assert_int_equal(lt_crc32c_sw(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(lt_crc32c(0, buf, 32), 0x46DD794Eu);
	assert_int_equal(lt_crc32c_sw(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(lt_crc32c(0, buf, 32), 0x113FDB5Cu); /* RFC 3720 descending */
	assert_int_equal(lt_crc32c(0, NULL, 0), 0u);
	/* Continuing from a previous value equals one pass. */
	assert_int_equal(lt_crc32c(lt_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	assert_int_equal(lt_crc32c_sw(lt_crc32c_sw(0, "12345", 5), "6789", 4), 0xE3069283u);
}

static void test_crc_paths_agree(void **state)
{
	(void)state;
	uint8_t *p = filled(600, 3);
	for (size_t align = 0; align < 8; align++)
		for (size_t n = 0; n + align <= 600; n += (n < 80 ? 1 : 37)) {
			uint32_t a = lt_crc32c(0x12345678u, p + align, n);
			uint32_t b = lt_crc32c_sw(0x12345678u, p + align, n);
			assert_int_equal(a, b);
		}
	free(p);
}

static struct lt_event make(const char *topic, size_t tl, const char *type, size_t yl,
			    const char *key, size_t kl, const char *payload, size_t pl)
{
	struct lt_event ev = {0};
	ev.offset = UINT64_C(0x0102030405060708);
	ev.time_ms = INT64_C(1700000000123);
	ev.event_id = UINT64_C(0xA1B2C3D4E5F60718);
	ev.topic = topic;
	ev.topic_len = tl;
	ev.type = type;
	ev.type_len = yl;
	ev.key = key;
	ev.key_len = kl;
	ev.payload = payload;
	ev.payload_len = pl;
	return ev;
}

static void assert_same(const struct lt_event *a, const struct lt_event *b)
{
	assert_true(a->offset == b->offset);
	assert_true(a->time_ms == b->time_ms);
	assert_true(a->event_id == b->event_id);
	assert_int_equal(a->topic_len, b->topic_len);
	assert_int_equal(a->type_len, b->type_len);
	assert_int_equal(a->key_len, b->key_len);
	assert_int_equal(a->payload_len, b->payload_len);
	assert_memory_equal(a->topic, b->topic, a->topic_len);
	if (a->type_len)
		assert_memory_equal(a->type, b->type, a->type_len);
	if (a->key_len)
		assert_memory_equal(a->key, b->key, a->key_len);
	if (a->payload_len)
		assert_memory_equal(a->payload, b->payload, a->payload_len);
}

/* Encode, decode and compare; returns the encoded record (caller frees). */
static uint8_t *round_trip(const struct lt_event *ev, size_t *len)
{
	size_t size = lt_ev_size(ev);
	uint8_t *buf = malloc(size + 16);
	assert_non_null(buf);
	assert_int_equal(lt_ev_encode(ev, buf, size + 16, len), LT_OK);
	assert_int_equal(*len, size);
	struct lt_event back;
	size_t got = 0;
	assert_int_equal(lt_ev_decode(buf, size + 16, &back, &got), LT_OK);
	assert_int_equal(got, size);
	assert_same(ev, &back);
	assert_ptr_equal(back.topic, (const char *)buf + LT_EV_HEADER);
	return buf;
}

static void test_layout(void **state)
{
	(void)state;
	struct lt_event ev = make("usage", 5, "t", 1, "k1", 2, "{}", 2);
	size_t len;
	uint8_t *b = round_trip(&ev, &len);
	assert_int_equal(len, 44 + 5 + 1 + 2 + 2);
	assert_memory_equal(b, "LTE1", 4);
	assert_int_equal(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24, len - 8);
	uint32_t crc = b[8] | b[9] << 8 | b[10] << 16 | (uint32_t)b[11] << 24;
	assert_int_equal(crc, lt_crc32c(0, b + 12, len - 12));
	assert_int_equal(b[12], 0x08); /* offset, little-endian */
	assert_int_equal(b[19], 0x01);
	assert_int_equal(b[28], 0x18); /* event_id */
	assert_int_equal(b[35], 0xA1);
	assert_int_equal(b[36], 5);
	assert_int_equal(b[37], 1);
	assert_int_equal(b[38], 2);
	assert_int_equal(b[39], 0);
	assert_int_equal(b[40], 2);
	assert_memory_equal(b + 44, "usagetk1{}", 10);
	free(b);
}

static void test_round_trip_bounds(void **state)
{
	(void)state;
	char *topic = (char *)filled(LT_EV_TOPIC_MAX, 'a');
	char *type = (char *)filled(LT_EV_TYPE_MAX, 'b');
	char *key = (char *)filled(LT_EV_KEY_MAX, 'c');
	char *payload = (char *)filled(LT_EV_PAYLOAD_MAX, 0);
	for (size_t i = 0; i < LT_EV_TOPIC_MAX; i++)
		topic[i] = (char)('a' + i % 26);
	memset(type, 'T', LT_EV_TYPE_MAX);
	memset(key, 'K', LT_EV_KEY_MAX);
	const size_t tls[] = {1, LT_EV_TOPIC_MAX}, yls[] = {0, LT_EV_TYPE_MAX},
		     kls[] = {0, LT_EV_KEY_MAX}, pls[] = {0, 1, LT_EV_PAYLOAD_MAX};
	for (int a = 0; a < 2; a++)
		for (int b = 0; b < 2; b++)
			for (int c = 0; c < 2; c++)
				for (int d = 0; d < 3; d++) {
					struct lt_event ev = make(topic, tls[a], type, yls[b], key,
								  kls[c], payload, pls[d]);
					size_t len;
					free(round_trip(&ev, &len));
				}
	/* Extreme numbers, and NULL pointers for empty fields. */
	struct lt_event ev = make("t", 1, NULL, 0, NULL, 0, NULL, 0);
	ev.offset = UINT64_MAX;
	ev.time_ms = INT64_MIN;
	ev.event_id = 0;
	size_t len;
	free(round_trip(&ev, &len));
	assert_int_equal(len, LT_EV_HEADER + 1);
	ev.offset = 0;
	ev.time_ms = INT64_MAX;
	ev.event_id = UINT64_MAX;
	free(round_trip(&ev, &len));
	/* The largest record is LT_EV_RECORD_MAX. */
	ev = make(topic, LT_EV_TOPIC_MAX, type, LT_EV_TYPE_MAX, key, LT_EV_KEY_MAX, payload,
		  LT_EV_PAYLOAD_MAX);
	assert_int_equal(lt_ev_size(&ev), LT_EV_RECORD_MAX);
	free(topic);
	free(type);
	free(key);
	free(payload);
}

static void test_bounds(void **state)
{
	(void)state;
	static char big[LT_EV_PAYLOAD_MAX + 1];
	uint8_t out[1024];
	size_t len = 12345;
	struct lt_event ok = make("t", 1, "y", 1, "k", 1, "p", 1);
	assert_int_equal(lt_ev_check(&ok), LT_OK);
	struct lt_event ev;
	const struct {
		int field; /* 0 topic, 1 type, 2 key, 3 payload */
		size_t n;
	} over[] = {{0, 0},
		    {0, LT_EV_TOPIC_MAX + 1},
		    {1, LT_EV_TYPE_MAX + 1},
		    {2, LT_EV_KEY_MAX + 1},
		    {3, LT_EV_PAYLOAD_MAX + 1}};
	memset(big, 'x', sizeof big);
	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
		ev = ok;
		switch (over[i].field) {
		case 0: ev.topic = big, ev.topic_len = over[i].n; break;
		case 1: ev.type = big, ev.type_len = over[i].n; break;
		case 2: ev.key = big, ev.key_len = over[i].n; break;
		default: ev.payload = big, ev.payload_len = over[i].n; break;
		}
		assert_int_equal(lt_ev_check(&ev), LT_EINVAL);
		assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_EINVAL);
	}
	/* NUL in topic, type or key (not in the payload). */
	ev = ok;
	ev.topic = "a\0b";
	ev.topic_len = 3;
	assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_EINVAL);
	ev = ok;
	ev.type = "\0";
	assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_EINVAL);
	ev = ok;
	ev.key = "k\0";
	ev.key_len = 2;
	assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_EINVAL);
	ev = ok;
	ev.payload = "\0\0";
	ev.payload_len = 2;
	assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_OK);
	/* A non-empty field without a pointer; no event at all. */
	ev = ok;
	ev.payload = NULL;
	assert_int_equal(lt_ev_check(&ev), LT_EINVAL);
	assert_int_equal(lt_ev_check(NULL), LT_EINVAL);
	/* Lengths that overflow size_t. */
	ev = ok;
	ev.payload_len = SIZE_MAX - 10;
	assert_int_equal(lt_ev_size(&ev), SIZE_MAX);
	assert_int_equal(lt_ev_encode(&ev, out, sizeof out, &len), LT_EINVAL);
	/* Too small a buffer: LT_ETOOBIG and nothing written. */
	size_t need = lt_ev_size(&ok);
	memset(out, 0xEE, sizeof out);
	assert_int_equal(lt_ev_encode(&ok, out, need - 1, &len), LT_ETOOBIG);
	assert_int_equal(out[0], 0xEE);
	assert_int_equal(lt_ev_encode(&ok, NULL, 0, &len), LT_ETOOBIG);
	assert_int_equal(lt_ev_encode(&ok, out, need, &len), LT_OK);
	assert_int_equal(len, need);
}

static void test_truncation(void **state)
{
	(void)state;
	struct lt_event ev = make("topic.a", 7, "usage", 5, "user:1", 6, "{\"n\":1}", 7);
	size_t len;
	uint8_t *b = round_trip(&ev, &len);
	struct lt_event back;
	size_t got;
	for (size_t n = 0; n < len; n++) {
		/* Copy to an exact-size heap block so ASan sees any overread. */
		uint8_t *p = malloc(n ? n : 1);
		assert_non_null(p);
		memcpy(p, b, n);
		assert_int_equal(lt_ev_decode(n ? p : NULL, n, &back, &got), LT_EAGAIN);
		free(p);
	}
	assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_OK);
	free(b);
}

static void test_every_byte_flip(void **state)
{
	(void)state;
	struct lt_event evs[] = {
		make("t", 1, NULL, 0, NULL, 0, NULL, 0),
		make("topic.a", 7, "usage", 5, "user:1", 6, "{\"n\":1}", 7),
	};
	for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++) {
		size_t len;
		uint8_t *b = round_trip(&evs[k], &len);
		struct lt_event back;
		size_t got;
		for (size_t i = 0; i < len; i++)
			for (int x = 1; x < 256; x++) {
				b[i] ^= (uint8_t)x;
				enum lt_err e = lt_ev_decode(b, len, &back, &got);
				if (e != LT_ECORRUPT)
					fail_msg("flip 0x%02x at byte %zu: %s", x, i,
						 lt_strerror(e));
				b[i] ^= (uint8_t)x;
			}
		/* With spare bytes after it (as inside a segment), still corrupt. */
		uint8_t *wide = calloc(1, len + 64);
		assert_non_null(wide);
		memcpy(wide, b, len);
		for (size_t i = 0; i < len; i++) {
			wide[i] ^= 0x40;
			assert_int_equal(lt_ev_decode(wide, len + 64, &back, &got), LT_ECORRUPT);
			wide[i] ^= 0x40;
		}
		free(wide);
		free(b);
	}
}

/* A record with a valid CRC that breaks another rule. */
static void refresh_crc(uint8_t *b, size_t len)
{
	uint32_t c = lt_crc32c(0, b + 12, len - 12);
	for (int i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(c >> (8 * i));
}

static void test_rules_behind_crc(void **state)
{
	(void)state;
	struct lt_event ev = make("abc", 3, "ty", 2, "ke", 2, "pay", 3);
	size_t len;
	uint8_t *b = round_trip(&ev, &len);
	struct lt_event back;
	size_t got;
	for (size_t i = LT_EV_HEADER; i < LT_EV_HEADER + 7; i++) {
		uint8_t save = b[i];
		b[i] = 0;
		refresh_crc(b, len);
		assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_ECORRUPT);
		b[i] = save;
	}
	b[LT_EV_HEADER + 8] = 0; /* a NUL in the payload is fine */
	refresh_crc(b, len);
	assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_OK);
	/* Field lengths that do not add up to body_len, CRC fixed. */
	b[36] = 4;
	b[37] = 1;
	refresh_crc(b, len);
	assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_OK); /* same sum: a re-split */
	b[37] = 2;
	refresh_crc(b, len);
	assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_ECORRUPT);
	b[36] = 0;
	b[37] = 5;
	refresh_crc(b, len);
	assert_int_equal(lt_ev_decode(b, len, &back, &got), LT_ECORRUPT); /* empty topic */
	free(b);
	/* body_len out of bounds is corrupt even before 44 bytes are there. */
	uint8_t h[8] = {'L', 'T', 'E', '1', 0xff, 0xff, 0xff, 0x7f};
	assert_int_equal(lt_ev_decode(h, 8, &back, &got), LT_ECORRUPT);
	h[4] = 36, h[5] = h[6] = h[7] = 0; /* no room for a topic */
	assert_int_equal(lt_ev_decode(h, 8, &back, &got), LT_ECORRUPT);
	h[4] = 37;
	assert_int_equal(lt_ev_decode(h, 8, &back, &got), LT_EAGAIN);
	/* A wrong magic is seen on the first byte. */
	assert_int_equal(lt_ev_decode((const uint8_t *)"X", 1, &back, &got), LT_ECORRUPT);
	assert_int_equal(lt_ev_decode((const uint8_t *)"LTE", 3, &back, &got), LT_EAGAIN);
	assert_int_equal(lt_ev_decode((const uint8_t *)"LTE2", 4, &back, &got), LT_ECORRUPT);
	uint8_t zeros[64] = {0};
	assert_int_equal(lt_ev_decode(zeros, sizeof zeros, &back, &got), LT_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_vectors),	cmocka_unit_test(test_crc_paths_agree),
		cmocka_unit_test(test_layout),		cmocka_unit_test(test_round_trip_bounds),
		cmocka_unit_test(test_bounds),		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_every_byte_flip), cmocka_unit_test(test_rules_behind_crc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
