/*
 * test_apikey.c — src/auth/apikey.c: generation, strict parsing, base 62 and
 * the keyed digest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/apikey.h"

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Base 62 by a different road than the encoder: keep the number as base-62
 * digits (least significant first) and feed it the bytes with
 * digits = digits * 256 + byte. */
static void slow_base62(const unsigned char in[32], char out[43])
{
	unsigned digits[44] = {0};
	for (int i = 0; i < 32; i++) {
		unsigned carry = in[i];
		for (int d = 0; d < 44; d++) {
			unsigned t = digits[d] * 256 + carry;
			digits[d] = t % 62;
			carry = t / 62;
		}
		assert_int_equal(carry, 0);
	}
	assert_int_equal(digits[43], 0); /* fits 43 digits */
	for (int d = 0; d < 43; d++)
		out[42 - d] = B62[digits[d]];
}

static void valid_key(char key[LT_APIKEY_LEN + 1])
{
	memcpy(key, "lt_abc123def456_", 16);
	memset(key + 16, 'A', 43);
	key[LT_APIKEY_LEN] = '\0';
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(LT_APIKEY_LEN, 59);
	assert_int_equal(LT_APIKEY_PREFIX_LEN, 15);
	assert_int_equal(LT_APIKEY_SECRET_LEN, 43);
}

static void test_generate_parse_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		char key[LT_APIKEY_LEN + 1], id[LT_APIKEY_ID_LEN + 1];
		memset(key, 'x', sizeof key);
		lt_apikey_generate(key, id);
		assert_int_equal(strlen(key), LT_APIKEY_LEN);
		assert_int_equal(strlen(id), LT_APIKEY_ID_LEN);
		assert_memory_equal(key, "lt_", 3);
		assert_memory_equal(key + 3, id, LT_APIKEY_ID_LEN);
		assert_int_equal(key[15], '_');

		struct lt_apikey_parts p;
		assert_int_equal(lt_apikey_parse(key, strlen(key), &p), LT_OK);
		assert_string_equal(p.id, id);
		assert_int_equal(strlen(p.secret), LT_APIKEY_SECRET_LEN);
		assert_memory_equal(p.secret, key + 16, LT_APIKEY_SECRET_LEN);
		/* the secret is the canonical encoding of some 32 bytes */
		unsigned char raw[32];
		char again[43];
		assert_int_equal(lt_apikey_base62_decode(p.secret, 43, raw), LT_OK);
		lt_apikey_base62_encode(raw, again);
		assert_memory_equal(again, p.secret, 43);

		char prefix[LT_APIKEY_PREFIX_LEN + 1];
		lt_apikey_prefix(p.id, prefix);
		assert_int_equal(strlen(prefix), 15);
		assert_memory_equal(prefix, key, 15);
		lt_apikey_parts_wipe(&p);
		assert_int_equal(p.secret[0], 0);
	}
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, LT_APIKEY_LEN + 1);
}

static void test_unique(void **state)
{
	(void)state;
	enum { N = 1000 };
	char(*keys)[LT_APIKEY_LEN + 1] = calloc(N, sizeof *keys);
	char(*ids)[LT_APIKEY_LEN + 1] = calloc(N, sizeof *ids);
	assert_non_null(keys);
	assert_non_null(ids);
	for (int i = 0; i < N; i++)
		lt_apikey_generate(keys[i], ids[i]);
	qsort(keys, N, sizeof *keys, cmp_key);
	qsort(ids, N, sizeof *ids, cmp_key);
	for (int i = 1; i < N; i++) {
		assert_true(memcmp(keys[i - 1], keys[i], sizeof *keys) != 0);
		assert_true(memcmp(ids[i - 1], ids[i], sizeof *ids) != 0);
		/* secrets alone are unique too */
		assert_true(memcmp(keys[i - 1] + 16, keys[i] + 16, 43) != 0);
	}
	/* every id character is used somewhere, none outside the alphabet */
	bool seen[256] = {false};
	for (int i = 0; i < N; i++)
		for (int j = 0; j < LT_APIKEY_ID_LEN; j++)
			seen[(unsigned char)ids[i][j]] = true;
	for (int c = 0; c < 256; c++)
		assert_int_equal(seen[c], (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
	free(keys);
	free(ids);
}

/* Parse a malformed key from an exact-size heap copy (so ASan sees any read
 * past n) and expect LT_EINVAL with the output zeroed. */
static void expect_reject(const char *s, size_t n, const char *what)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, s, n);
	struct lt_apikey_parts p;
	memset(&p, 0x55, sizeof p);
	enum lt_err e = lt_apikey_parse(copy, n, &p);
	if (e != LT_EINVAL)
		fail_msg("accepted malformed key (%s)", what);
	struct lt_apikey_parts zero;
	memset(&zero, 0, sizeof zero);
	assert_memory_equal(&p, &zero, sizeof p);
	free(copy);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	char base[LT_APIKEY_LEN + 1], k[LT_APIKEY_LEN + 8];
	valid_key(base);
	struct lt_apikey_parts p;
	assert_int_equal(lt_apikey_parse(base, LT_APIKEY_LEN, &p), LT_OK);

	int cases = 0;
#define MUT(what, pos, ch)                                                                         \
	do {                                                                                       \
		memcpy(k, base, LT_APIKEY_LEN + 1);                                                \
		k[pos] = (ch);                                                                     \
		expect_reject(k, LT_APIKEY_LEN, what);                                             \
		cases++;                                                                           \
	} while (0)

	expect_reject("", 0, "empty"), cases++;
	expect_reject(base, LT_APIKEY_LEN - 1, "one short"), cases++;
	memcpy(k, base, LT_APIKEY_LEN);
	k[LT_APIKEY_LEN] = 'A';
	expect_reject(k, LT_APIKEY_LEN + 1, "one long"), cases++;
	expect_reject(base, 3, "tag only"), cases++;
	expect_reject(base, 15, "prefix only"), cases++;
	expect_reject(base, 16, "prefix and separator"), cases++;
	MUT("wrong tag LT_", 0, 'L');
	MUT("wrong tag lx_", 1, 'x');
	MUT("tag separator", 2, '-');
	MUT("uppercase id", 5, 'B');
	MUT("id punctuation", 3, '-');
	MUT("id underscore", 8, '_');
	MUT("id NUL", 4, '\0');
	MUT("id high byte", 14, (char)0xe9);
	MUT("missing separator", 15, 'a');
	MUT("separator dash", 15, '-');
	MUT("secret underscore", 16, '_');
	MUT("secret dash", 40, '-');
	MUT("secret NUL", 30, '\0');
	MUT("secret space", 58, ' ');
	MUT("secret plus", 20, '+');
	MUT("secret slash", 21, '/');
	MUT("secret equals", 58, '=');
	MUT("secret high byte", 17, (char)0xff);
	MUT("secret 0x80", 50, (char)0x80);
	/* separator moved: "lt_<11>_<44>" and "lt_<13>_<42>" */
	memcpy(k, base, LT_APIKEY_LEN + 1);
	k[14] = '_', k[15] = 'A';
	expect_reject(k, LT_APIKEY_LEN, "short id"), cases++;
	memcpy(k, base, LT_APIKEY_LEN + 1);
	k[15] = 'a', k[16] = '_';
	expect_reject(k, LT_APIKEY_LEN, "long id"), cases++;
	/* extra separator / leading and trailing noise at the right length */
	memcpy(k, "lt__abc123def45_", 16);
	memset(k + 16, 'A', 43);
	expect_reject(k, LT_APIKEY_LEN, "double separator"), cases++;
	memcpy(k, " lt_abc123def456_", 17);
	memset(k + 17, 'A', 42);
	expect_reject(k, LT_APIKEY_LEN, "leading space"), cases++;
	memcpy(k, base, LT_APIKEY_LEN);
	k[LT_APIKEY_LEN - 1] = '\n';
	expect_reject(k, LT_APIKEY_LEN, "trailing newline"), cases++;
	/* the whole key NUL-terminated early: n counts, not strlen */
	expect_reject("lt_abc123def456_AAAA", 20, "truncated"), cases++;
	/* secret out of range: 2^256 and the largest 43-digit value */
	memcpy(k, base, 16);
	memcpy(k + 16, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp2", 43);
	expect_reject(k, LT_APIKEY_LEN, "secret = 2^256"), cases++;
	memset(k + 16, 'z', 43);
	expect_reject(k, LT_APIKEY_LEN, "secret all z"), cases++;
	/* ... while 2^256 - 1 is accepted */
	memcpy(k + 16, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1", 43);
	assert_int_equal(lt_apikey_parse(k, LT_APIKEY_LEN, &p), LT_OK);
#undef MUT
	assert_true(cases >= 20);
}

static void test_parse_accepts_edges(void **state)
{
	(void)state;
	char k[LT_APIKEY_LEN + 1];
	struct lt_apikey_parts p;
	/* every id and secret character class at the boundaries */
	memcpy(k, "lt_a09zz0az9a0z", 15);
	k[15] = '_';
	memcpy(k + 16, "00000000000000000000000000000000000000009Za", 43);
	assert_int_equal(lt_apikey_parse(k, LT_APIKEY_LEN, &p), LT_OK);
	assert_string_equal(p.id, "a09zz0az9a0z");
	assert_string_equal(p.secret, "00000000000000000000000000000000000000009Za");
	memcpy(k + 16, "0000000000000000000000000000000000000000zAz", 43);
	assert_int_equal(lt_apikey_parse(k, LT_APIKEY_LEN, &p), LT_OK);
}

static void test_base62_vectors(void **state)
{
	(void)state;
	unsigned char in[32], back[32];
	char out[44] = {0}, slow[44] = {0};

	memset(in, 0, 32);
	lt_apikey_base62_encode(in, out);
	for (int i = 0; i < 43; i++)
		assert_int_equal(out[i], '0');

	memset(in, 0xff, 32);
	lt_apikey_base62_encode(in, out);
	slow_base62(in, slow);
	assert_string_equal(out, slow);
	assert_string_equal(out, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
	assert_int_equal(lt_apikey_base62_decode(out, 43, back), LT_OK);
	assert_memory_equal(back, in, 32);

	for (int i = 0; i < 32; i++)
		in[i] = (unsigned char)i;
	lt_apikey_base62_encode(in, out);
	assert_string_equal(out, "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");

	/* small values: 1, 61, 62 */
	memset(in, 0, 32);
	in[31] = 1;
	lt_apikey_base62_encode(in, out);
	assert_memory_equal(out + 40, "001", 3);
	in[31] = 61;
	lt_apikey_base62_encode(in, out);
	assert_memory_equal(out + 40, "00z", 3);
	in[31] = 62;
	lt_apikey_base62_encode(in, out);
	assert_memory_equal(out + 40, "010", 3);

	/* random values: two algorithms agree and decode inverts */
	for (int r = 0; r < 500; r++) {
		randombytes_buf(in, 32);
		if (r % 5 == 0)
			memset(in, 0, (size_t)(r % 32)); /* leading zero bytes */
		lt_apikey_base62_encode(in, out);
		slow_base62(in, slow);
		assert_string_equal(out, slow);
		assert_int_equal(lt_apikey_base62_decode(out, 43, back), LT_OK);
		assert_memory_equal(back, in, 32);
	}

	/* decode is strict */
	assert_int_equal(lt_apikey_base62_decode(out, 42, back), LT_EINVAL);
	assert_int_equal(
		lt_apikey_base62_decode("yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp2", 43, back),
		LT_EINVAL);
	for (int i = 0; i < 32; i++)
		assert_int_equal(back[i], 0);
	memcpy(slow, out, 43);
	slow[7] = '_';
	assert_int_equal(lt_apikey_base62_decode(slow, 43, back), LT_EINVAL);
}

static void test_digest(void **state)
{
	(void)state;
	unsigned char pepper[32], pepper2[32], d1[32], d2[32], d3[32], d4[32];
	for (int i = 0; i < 32; i++)
		pepper[i] = (unsigned char)i;
	char secret[43];
	memset(secret, 'A', sizeof secret);

	/* keyed BLAKE2b-256 test vector (Python hashlib.blake2b(key=, digest_size=32)) */
	static const unsigned char want[32] = {0xcb, 0xf4, 0xc7, 0xac, 0x8c, 0xd4, 0x25, 0xe8,
					       0x05, 0x1a, 0x00, 0x27, 0xcd, 0x4a, 0x64, 0xf3,
					       0x34, 0x3d, 0xc8, 0xec, 0xad, 0x99, 0x75, 0x2c,
					       0xf7, 0x10, 0x3e, 0x71, 0xcd, 0x92, 0x9a, 0x56};
	lt_apikey_digest(pepper, secret, 43, d1);
	assert_memory_equal(d1, want, 32);
	assert_true(lt_apikey_digest_equal(d1, want));

	lt_apikey_digest(pepper, secret, 43, d2);
	assert_true(lt_apikey_digest_equal(d1, d2));

	memcpy(pepper2, pepper, 32);
	pepper2[31] ^= 1;
	lt_apikey_digest(pepper2, secret, 43, d3);
	assert_false(lt_apikey_digest_equal(d1, d3));

	secret[42] = 'B';
	lt_apikey_digest(pepper, secret, 43, d4);
	assert_false(lt_apikey_digest_equal(d1, d4));

	/* one bit anywhere in the digest makes them unequal */
	for (int i = 0; i < 32; i++) {
		memcpy(d2, d1, 32);
		d2[i] ^= 0x80;
		assert_false(lt_apikey_digest_equal(d1, d2));
	}
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_generate_parse_round_trip),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_accepts_edges),
		cmocka_unit_test(test_base62_vectors),
		cmocka_unit_test(test_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
