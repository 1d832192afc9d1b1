/*
 * apikey.h — API key format, generation, strict parsing and the stored digest.
 *
 * A key is  lt_<id>_<secret>  (LT_APIKEY_LEN = 59 characters):
 *   id      12 characters of [a-z0-9], random; public, the row's lookup key;
 *   secret  32 random bytes as a big-endian number in base 62 ([0-9A-Za-z],
 *           digit values in that order), zero-padded to exactly 43 digits.
 * Neither part can contain '_', so the format has one parse.  The parser
 * accepts exactly the strings the generator can produce: the secret must
 * also be below 2^256 (43 base-62 digits reach a little past it).
 *
 * Storage: only lt_apikey_digest(pepper, secret) is kept — keyed BLAKE2b-256
 * with a 32-byte pepper from var/secrets/ (see secret_file.h) — and is
 * compared with lt_apikey_digest_equal (constant time).  Listings show the
 * prefix "lt_<id>"; the secret is shown once, at creation.
 *
 * Secrets: lt_apikey_parse copies the secret into struct lt_apikey_parts;
 * wipe it with lt_apikey_parts_wipe when done.  Checking the characters of
 * the secret does not branch on them.
 *
 * Pure functions, no state; thread-safe.  sodium_init() must have been called.
 */
#ifndef LT_AUTH_APIKEY_H
#define LT_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define LT_APIKEY_TAG "lt_"
#define LT_APIKEY_TAG_LEN 3
#define LT_APIKEY_ID_LEN 12
#define LT_APIKEY_SECRET_BYTES 32
#define LT_APIKEY_SECRET_LEN 43						/* base-62 digits */
#define LT_APIKEY_PREFIX_LEN (LT_APIKEY_TAG_LEN + LT_APIKEY_ID_LEN)	/* "lt_<id>" = 15 */
#define LT_APIKEY_LEN (LT_APIKEY_PREFIX_LEN + 1 + LT_APIKEY_SECRET_LEN) /* 59 */
#define LT_APIKEY_PEPPER_LEN 32
#define LT_APIKEY_DIGEST_LEN 32

struct lt_apikey_parts {
	char id[LT_APIKEY_ID_LEN + 1];	       /* NUL-terminated */
	char secret[LT_APIKEY_SECRET_LEN + 1]; /* NUL-terminated; wipe after use */
};

/* A new random key (NUL-terminated) and its public id (NUL-terminated).
 * The caller stores the digest of the secret part and shows key_out once,
 * then wipes it. */
void lt_apikey_generate(char key_out[LT_APIKEY_LEN + 1], char id_out[LT_APIKEY_ID_LEN + 1]);

/* Split s[0..n) into id and secret.  LT_EINVAL unless n == LT_APIKEY_LEN and
 * s is exactly "lt_", 12 of [a-z0-9], "_", 43 of [0-9A-Za-z] below 2^256.
 * Reads only s[0..n).  On error *out is zeroed. */
enum lt_err lt_apikey_parse(const char *s, size_t n, struct lt_apikey_parts *out);

void lt_apikey_parts_wipe(struct lt_apikey_parts *p);

/* The listing prefix "lt_<id>" (NUL-terminated) for a 12-character id. */
void lt_apikey_prefix(const char id[LT_APIKEY_ID_LEN], char out[LT_APIKEY_PREFIX_LEN + 1]);

/* Keyed BLAKE2b-256 of secret[0..n) with the pepper as key. */
void lt_apikey_digest(const unsigned char pepper[LT_APIKEY_PEPPER_LEN], const char *secret,
		      size_t n, unsigned char out[LT_APIKEY_DIGEST_LEN]);

/* Constant-time comparison of two digests. */
bool lt_apikey_digest_equal(const unsigned char a[LT_APIKEY_DIGEST_LEN],
			    const unsigned char b[LT_APIKEY_DIGEST_LEN]);

/* Base 62 of a 32-byte big-endian number: exactly 43 digits, zero-padded. */
void lt_apikey_base62_encode(const unsigned char in[LT_APIKEY_SECRET_BYTES],
			     char out[LT_APIKEY_SECRET_LEN]);

/* The inverse: LT_EINVAL unless n == 43, every character is a base-62 digit
 * and the value is below 2^256.  No branches on the characters' values.
 * On error out is zeroed. */
enum lt_err lt_apikey_base62_decode(const char *s, size_t n,
				    unsigned char out[LT_APIKEY_SECRET_BYTES]);

#endif
