/*
 * apikey.c — API key generation, parsing and digests.  See apikey.h.
 * No state.  Work on secret material avoids branches and table lookups that
 * depend on it, and every temporary copy of a secret is wiped.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "auth/apikey.h"

_Static_assert(LT_APIKEY_LEN == 59, "key length");
_Static_assert(LT_APIKEY_DIGEST_LEN == crypto_generichash_BYTES, "digest size");
_Static_assert(LT_APIKEY_PEPPER_LEN >= crypto_generichash_KEYBYTES_MIN &&
		       LT_APIKEY_PEPPER_LEN <= crypto_generichash_KEYBYTES_MAX,
	       "pepper size");

static const char id_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

/* Base-62 digit value v (0..61) to its character, without a table. */
static char b62_char(unsigned v)
{
	/* '0'..'9' = 48.., 'A'..'Z' = 65.. (48 + 10 + 7), 'a'..'z' = 97.. (+6) */
	return (char)(v + '0' + 7u * (v >= 10) + 6u * (v >= 36));
}

/* Character to digit value; *bad gets 1 or'ed in if c is not a digit. */
static unsigned b62_value(unsigned char c, unsigned *bad)
{
	unsigned d = (unsigned)c - '0', u = (unsigned)c - 'A', l = (unsigned)c - 'a';
	unsigned is_d = d < 10, is_u = u < 26, is_l = l < 26;
	*bad |= 1u ^ (is_d | is_u | is_l);
	return is_d * d + is_u * (u + 10) + is_l * (l + 36);
}

void lt_apikey_base62_encode(const unsigned char in[LT_APIKEY_SECRET_BYTES],
			     char out[LT_APIKEY_SECRET_LEN])
{
	unsigned char n[LT_APIKEY_SECRET_BYTES];
	memcpy(n, in, sizeof n);
	/* Divide the big-endian number by 62 once per digit, least significant
	 * digit first.  62^43 > 2^256, so 43 divisions always reach zero. */
	for (int i = LT_APIKEY_SECRET_LEN - 1; i >= 0; i--) {
		unsigned rem = 0;
		for (size_t j = 0; j < sizeof n; j++) {
			unsigned cur = rem << 8 | n[j];
			n[j] = (unsigned char)(cur / 62);
			rem = cur % 62;
		}
		out[i] = b62_char(rem);
	}
	sodium_memzero(n, sizeof n);
}

enum lt_err lt_apikey_base62_decode(const char *s, size_t n,
				    unsigned char out[LT_APIKEY_SECRET_BYTES])
{
	/* 256 bits as eight 32-bit limbs, least significant first. */
	uint32_t acc[LT_APIKEY_SECRET_BYTES / 4] = {0};
	unsigned bad = 0;
	uint64_t overflow = 0;

	memset(out, 0, LT_APIKEY_SECRET_BYTES);
	if (n != LT_APIKEY_SECRET_LEN)
		return LT_EINVAL;
	for (size_t i = 0; i < n; i++) {
		/* acc = acc * 62 + digit; a carry out of the top limb means the
		 * value reached 2^256. */
		uint64_t carry = b62_value((unsigned char)s[i], &bad);
		for (size_t j = 0; j < sizeof acc / sizeof acc[0]; j++) {
			uint64_t t = (uint64_t)acc[j] * 62 + carry;
			acc[j] = (uint32_t)t;
			carry = t >> 32;
		}
		overflow |= carry;
	}
	for (size_t j = 0; j < sizeof acc / sizeof acc[0]; j++)
		for (size_t b = 0; b < 4; b++)
			out[LT_APIKEY_SECRET_BYTES - 1 - 4 * j - b] =
				(unsigned char)(acc[j] >> (8 * b));
	sodium_memzero(acc, sizeof acc);
	if (bad | overflow) {
		sodium_memzero(out, LT_APIKEY_SECRET_BYTES);
		return LT_EINVAL;
	}
	return LT_OK;
}

void lt_apikey_generate(char key_out[LT_APIKEY_LEN + 1], char id_out[LT_APIKEY_ID_LEN + 1])
{
	unsigned char secret[LT_APIKEY_SECRET_BYTES];
	char *p = key_out;

	for (int i = 0; i < LT_APIKEY_ID_LEN; i++)
		id_out[i] = id_alphabet[randombytes_uniform(sizeof id_alphabet - 1)];
	id_out[LT_APIKEY_ID_LEN] = '\0';

	memcpy(p, LT_APIKEY_TAG, LT_APIKEY_TAG_LEN);
	p += LT_APIKEY_TAG_LEN;
	memcpy(p, id_out, LT_APIKEY_ID_LEN);
	p += LT_APIKEY_ID_LEN;
	*p++ = '_';
	randombytes_buf(secret, sizeof secret);
	lt_apikey_base62_encode(secret, p);
	p += LT_APIKEY_SECRET_LEN;
	*p = '\0';
	sodium_memzero(secret, sizeof secret);
}

static bool id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

enum lt_err lt_apikey_parse(const char *s, size_t n, struct lt_apikey_parts *out)
{
	unsigned char value[LT_APIKEY_SECRET_BYTES];
	const char *id = s + LT_APIKEY_TAG_LEN;
	const char *secret = id + LT_APIKEY_ID_LEN + 1;
	enum lt_err e = LT_EINVAL;

	memset(out, 0, sizeof *out);
	if (n != LT_APIKEY_LEN || memcmp(s, LT_APIKEY_TAG, LT_APIKEY_TAG_LEN) != 0)
		return LT_EINVAL;
	for (int i = 0; i < LT_APIKEY_ID_LEN; i++)
		if (!id_char((unsigned char)id[i]))
			return LT_EINVAL;
	if (id[LT_APIKEY_ID_LEN] != '_')
		return LT_EINVAL;
	/* Checks the alphabet and the range without branching on the secret. */
	e = lt_apikey_base62_decode(secret, LT_APIKEY_SECRET_LEN, value);
	sodium_memzero(value, sizeof value);
	if (e != LT_OK)
		return e;
	memcpy(out->id, id, LT_APIKEY_ID_LEN);
	memcpy(out->secret, secret, LT_APIKEY_SECRET_LEN);
	return LT_OK;
}

void lt_apikey_parts_wipe(struct lt_apikey_parts *p)
{
	sodium_memzero(p, sizeof *p);
}

void lt_apikey_prefix(const char id[LT_APIKEY_ID_LEN], char out[LT_APIKEY_PREFIX_LEN + 1])
{
	memcpy(out, LT_APIKEY_TAG, LT_APIKEY_TAG_LEN);
	memcpy(out + LT_APIKEY_TAG_LEN, id, LT_APIKEY_ID_LEN);
	out[LT_APIKEY_PREFIX_LEN] = '\0';
}

void lt_apikey_digest(const unsigned char pepper[LT_APIKEY_PEPPER_LEN], const char *secret,
		      size_t n, unsigned char out[LT_APIKEY_DIGEST_LEN])
{
	/* Cannot fail with these sizes (checked at compile time above). */
	crypto_generichash(out, LT_APIKEY_DIGEST_LEN, (const unsigned char *)secret, n, pepper,
			   LT_APIKEY_PEPPER_LEN);
}

bool lt_apikey_digest_equal(const unsigned char a[LT_APIKEY_DIGEST_LEN],
			    const unsigned char b[LT_APIKEY_DIGEST_LEN])
{
	return sodium_memcmp(a, b, LT_APIKEY_DIGEST_LEN) == 0;
}
