/*
 * test_jwt.c — src/auth/jwt.c and src/auth/b64url.c: signing, the RS256
 * round trip, and every way verification must refuse a token: tampering,
 * alg confusion (none, HS256 keyed with the public key), kid problems, time
 * limits at the skew boundaries, issuer and audience, base64url and segment
 * syntax, size bounds, duplicate names, claim types and bounds, and a
 * DigestInfo that is not SHA-256-with-NULL.
 *
 * Tokens with arbitrary header and payload JSON are made by craft(), which
 * signs with the key's RS256 primitive, so each claim rule is tested behind
 * a valid signature.  Two RSA-2048 keys are generated for the group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>
#include <sodium.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "util/json.h"

#define NOW INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define ISS "leaky-tokens-auth"
#define AUD "leaky-tokens"
#define JTI "3f1c2a4e-8b7d-4c61-9e2f-0a1b2c3d4e5f"
#define SKEW LT_JWT_DEFAULT_SKEW

static struct lt_jwt_key g_a, g_b; /* both known to the default lookup */

static int group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (lt_jwt_key_generate(&g_a, LT_JWT_KEY_BITS) != LT_OK)
		return -1;
	return lt_jwt_key_generate(&g_b, LT_JWT_KEY_BITS) == LT_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	lt_jwt_key_release(&g_a);
	lt_jwt_key_release(&g_b);
	return 0;
}

static int lookups; /* calls to lookup_ab */

static const struct lt_jwt_key *lookup_ab(void *arg, const char *kid, size_t len)
{
	(void)arg;
	lookups++;
	if (len == strlen(g_a.kid) && !memcmp(kid, g_a.kid, len))
		return &g_a;
	if (len == strlen(g_b.kid) && !memcmp(kid, g_b.kid, len))
		return &g_b;
	return NULL;
}

/* A buggy lookup: answers with key b whatever the kid. */
static const struct lt_jwt_key *lookup_always_b(void *arg, const char *kid, size_t len)
{
	(void)arg, (void)kid, (void)len;
	return &g_b;
}

static void base_claims(struct lt_jwt_claims *c)
{
	memset(c, 0, sizeof *c);
	strcpy(c->sub, "0b5e8f3a-1d2c-4e6f-8a9b-7c6d5e4f3a2b");
	strcpy(c->iss, ISS);
	strcpy(c->aud, AUD);
	strcpy(c->tier, "PRO");
	strcpy(c->roles[0], "USER");
	strcpy(c->roles[1], "ADMIN");
	c->n_roles = 2;
	c->iat = NOW;
	c->nbf = NOW;
	c->exp = NOW + 3600;
}

/* Sign claims with key; the token as a NUL-terminated heap string. */
static char *sign(const struct lt_jwt_key *key, const struct lt_jwt_claims *c)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, LT_JWT_MAX_TOKEN);
	assert_int_equal(lt_jwt_sign(key, c, &b), LT_OK);
	char *t;
	size_t n;
	assert_int_equal(lt_buf_detach(&b, &t, &n), LT_OK);
	return t;
}

/* "<b64 header>.<b64 payload>.<b64 RS256 signature by key>" of raw JSON. */
static char *craft(const struct lt_jwt_key *key, const char *header, const char *payload)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 20);
	lt_b64url_encode(header, strlen(header), &b);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(payload, strlen(payload), &b);
	unsigned char h[32], sig[LT_JWT_KEY_MAX_SIG];
	br_sha256_context sc;
	br_sha256_init(&sc);
	br_sha256_update(&sc, b.data, b.len);
	br_sha256_out(&sc, h);
	assert_int_equal(lt_jwt_key_rs256_sign(key, h, sig, sizeof sig), LT_OK);
	lt_buf_putc(&b, '.');
	assert_int_equal(lt_b64url_encode(sig, key->n_len, &b), LT_OK);
	char *t;
	size_t n;
	assert_int_equal(lt_buf_detach(&b, &t, &n), LT_OK);
	return t;
}

static char header_a[256];

static const char *hdr_a(void)
{
	snprintf(header_a, sizeof header_a, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 g_a.kid);
	return header_a;
}

/*
 * The standard payload as JSON, with member `name` replaced by raw JSON
 * `value` (added if not a standard member), or left out if value is NULL.
 */
static char *payload_with(const char *name, const char *value)
{
	static const char *names[] = {"sub", "iss", "aud", "roles", "tier",
				      "iat", "nbf", "exp", "jti"};
	char vals[9][64];
	snprintf(vals[0], 64, "\"u-1\"");
	snprintf(vals[1], 64, "\"%s\"", ISS);
	snprintf(vals[2], 64, "\"%s\"", AUD);
	snprintf(vals[3], 64, "[\"USER\",\"ADMIN\"]");
	snprintf(vals[4], 64, "\"PRO\"");
	snprintf(vals[5], 64, "%lld", (long long)NOW);
	snprintf(vals[6], 64, "%lld", (long long)NOW);
	snprintf(vals[7], 64, "%lld", (long long)NOW + 3600);
	snprintf(vals[8], 64, "\"%s\"", JTI);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 20);
	lt_buf_putc(&b, '{');
	bool found = false, first = true;
	for (int i = 0; i < 9; i++) {
		const char *v = vals[i];
		if (name && !strcmp(name, names[i])) {
			found = true;
			if (!value)
				continue;
			v = value;
		}
		lt_buf_printf(&b, "%s\"%s\":%s", first ? "" : ",", names[i], v);
		first = false;
	}
	if (name && !found && value)
		lt_buf_printf(&b, ",\"%s\":%s", name, value);
	lt_buf_putc(&b, '}');
	assert_int_equal(b.err, LT_OK);
	char *t;
	size_t n;
	assert_int_equal(lt_buf_detach(&b, &t, &n), LT_OK);
	return t;
}

static enum lt_jwt_fail verify_at(const char *tok, size_t len, int64_t now, int64_t skew,
				  struct lt_jwt_claims *out)
{
	enum lt_jwt_fail why = (enum lt_jwt_fail)99;
	enum lt_err e = lt_jwt_verify(tok, len, lookup_ab, NULL, now, skew, ISS, AUD, out, &why);
	if (why == LT_JWT_FAIL_NONE)
		assert_int_equal(e, LT_OK);
	else
		assert_int_equal(e, LT_EDENIED);
	return why;
}

static enum lt_jwt_fail verify(const char *tok)
{
	struct lt_jwt_claims c;
	memset(&c, 0x5A, sizeof c);
	enum lt_jwt_fail why = verify_at(tok, strlen(tok), NOW, SKEW, &c);
	if (why != LT_JWT_FAIL_NONE) {
		/* a refused token leaves nothing behind */
		static const struct lt_jwt_claims zero;
		assert_memory_equal(&c, &zero, sizeof c);
	}
	return why;
}

/* craft with the standard header of key a, then verify. */
static enum lt_jwt_fail verify_payload(const char *payload)
{
	char *t = craft(&g_a, hdr_a(), payload);
	enum lt_jwt_fail why = verify(t);
	free(t);
	return why;
}

static enum lt_jwt_fail verify_with(const char *name, const char *value)
{
	char *p = payload_with(name, value);
	enum lt_jwt_fail why = verify_payload(p);
	free(p);
	return why;
}

static enum lt_jwt_fail verify_header(const char *header)
{
	char *p = payload_with(NULL, NULL);
	char *t = craft(&g_a, header, p);
	enum lt_jwt_fail why = verify(t);
	free(t);
	free(p);
	return why;
}

/* ---- base64url ---- */

static void test_b64url(void **state)
{
	(void)state;
	/* RFC 4648 §10 vectors, unpadded */
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char enc[16];
		lt_b64url_encode_raw(in[i], strlen(in[i]), enc);
		assert_string_equal(enc, out[i]);
		assert_int_equal(lt_b64url_encoded_len(strlen(in[i])), strlen(out[i]));
		unsigned char dec[16];
		size_t n = 99;
		assert_int_equal(lt_b64url_decode(out[i], strlen(out[i]), dec, sizeof dec, &n),
				 LT_OK);
		assert_int_equal(n, strlen(in[i]));
		assert_memory_equal(dec, in[i], n);
	}
	/* the URL-safe alphabet */
	char enc[8];
	lt_b64url_encode_raw("\xfb\xff\xbf", 3, enc);
	assert_string_equal(enc, "-_-_");
	/* every byte string round trips, and agrees with libsodium */
	unsigned char raw[300], back[300];
	char mine[420], ref[420];
	for (size_t n = 0; n < sizeof raw; n += 7) {
		randombytes_buf(raw, n);
		lt_b64url_encode_raw(raw, n, mine);
		sodium_bin2base64(ref, sizeof ref, raw, n,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_string_equal(mine, ref);
		size_t got;
		assert_int_equal(lt_b64url_decode(mine, strlen(mine), back, sizeof back, &got),
				 LT_OK);
		assert_int_equal(got, n);
		assert_memory_equal(back, raw, n);
	}
	/* strict decoding */
	static const struct {
		const char *s;
		enum lt_err want;
	} strict[] = {
		{"Zg==", LT_ESYNTAX},  {"Zm8=", LT_ESYNTAX},   {"Z", LT_ESYNTAX},
		{"Zm9v=", LT_ESYNTAX}, {"Zm+v", LT_ESYNTAX},   {"Zm/v", LT_ESYNTAX},
		{"Zm 9v", LT_ESYNTAX}, {"Zm9v\n", LT_ESYNTAX}, {" Zm9v", LT_ESYNTAX},
		{"Zg", LT_OK},	       {"Zh", LT_ESYNTAX}, /* spare low bits set */
		{"Zm8", LT_OK},	       {"Zm9", LT_ESYNTAX},    {"Zm-", LT_ESYNTAX},
	};
	for (size_t i = 0; i < sizeof strict / sizeof strict[0]; i++) {
		unsigned char d[16];
		size_t n;
		enum lt_err e = lt_b64url_decode(strict[i].s, strlen(strict[i].s), d, sizeof d, &n);
		if (e != strict[i].want)
			fail_msg("\"%s\": got %d, want %d", strict[i].s, e, strict[i].want);
	}
	/* an embedded NUL is not a character */
	unsigned char d[8];
	size_t n;
	assert_int_equal(lt_b64url_decode("Zm\0v", 4, d, sizeof d, &n), LT_ESYNTAX);
	/* capacity */
	assert_int_equal(lt_b64url_decode("Zm9vYmFy", 8, d, 5, &n), LT_ETOOBIG);
	assert_int_equal(lt_b64url_decode("Zm9v*mFy", 8, d, 5, &n), LT_ESYNTAX);
	assert_int_equal(lt_b64url_decode("Zm9vYmFy", 8, d, 6, &n), LT_OK);
	/* appending to a bounded buffer */
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 5);
	assert_int_equal(lt_b64url_encode("foo", 3, &b), LT_OK);
	assert_int_equal(lt_b64url_encode("foo", 3, &b), LT_ETOOBIG);
	lt_buf_release(&b);
}

/* ---- signing and the round trip ---- */

static void test_round_trip(void **state)
{
	(void)state;
	struct lt_jwt_claims in, out;
	base_claims(&in);
	char *t = sign(&g_a, &in);
	/* three segments; the header is exactly ours */
	const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	unsigned char hdr[256];
	size_t hl;
	assert_int_equal(lt_b64url_decode(t, (size_t)(d1 - t), hdr, sizeof hdr, &hl), LT_OK);
	char want[256];
	snprintf(want, sizeof want, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", g_a.kid);
	assert_int_equal(hl, strlen(want));
	assert_memory_equal(hdr, want, hl);
	/* the signature is the modulus length */
	assert_int_equal(strlen(d2 + 1), lt_b64url_encoded_len(256));

	lookups = 0;
	assert_int_equal(verify_at(t, strlen(t), NOW, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(lookups, 1);
	assert_string_equal(out.sub, in.sub);
	assert_string_equal(out.iss, ISS);
	assert_string_equal(out.aud, AUD);
	assert_string_equal(out.tier, "PRO");
	assert_int_equal(out.n_roles, 2);
	assert_string_equal(out.roles[0], "ADMIN"); /* sorted */
	assert_string_equal(out.roles[1], "USER");
	assert_int_equal(out.iat, NOW);
	assert_int_equal(out.nbf, NOW);
	assert_int_equal(out.exp, NOW + 3600);
	assert_true(lt_uuid_valid(out.jti, strlen(out.jti)));
	assert_int_equal(out.jti[14], '4');

	/* the payload lists roles sorted */
	unsigned char pl[1024];
	size_t pn;
	assert_int_equal(lt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pl, sizeof pl - 1, &pn),
			 LT_OK);
	pl[pn] = '\0';
	assert_non_null(strstr((char *)pl, "\"roles\":[\"ADMIN\",\"USER\"]"));

	/* signed by b, verified by b */
	char *tb = sign(&g_b, &in);
	assert_int_equal(verify(tb), LT_JWT_FAIL_NONE);
	free(tb);

	/* a fresh jti each time, and the same token for the same claims */
	char *t2 = sign(&g_a, &in);
	assert_string_not_equal(t, t2);
	strcpy(in.jti, JTI);
	char *t3 = sign(&g_a, &in), *t4 = sign(&g_a, &in);
	assert_string_equal(t3, t4);
	assert_int_equal(verify_at(t3, strlen(t3), NOW, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_string_equal(out.jti, JTI);

	/* no tier, no roles */
	in.tier[0] = '\0';
	in.n_roles = 0;
	char *t5 = sign(&g_a, &in);
	assert_int_equal(verify_at(t5, strlen(t5), NOW, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_string_equal(out.tier, "");
	assert_int_equal(out.n_roles, 0);
	free(t);
	free(t2);
	free(t3);
	free(t4);
	free(t5);
}

static void test_sign_appends(void **state)
{
	(void)state;
	struct lt_jwt_claims c;
	base_claims(&c);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, LT_JWT_MAX_TOKEN);
	lt_buf_puts(&b, "Bearer ");
	assert_int_equal(lt_jwt_sign(&g_a, &c, &b), LT_OK);
	assert_memory_equal(b.data, "Bearer ", 7);
	assert_int_equal(verify(b.data + 7), LT_JWT_FAIL_NONE);
	/* a buffer too small for the token: nothing appended */
	struct lt_buf small;
	lt_buf_init(&small, NULL, 0, 300);
	assert_int_equal(lt_jwt_sign(&g_a, &c, &small), LT_ETOOBIG);
	assert_int_equal(small.len, 0);
	lt_buf_release(&small);
	lt_buf_release(&b);
}

static void test_sign_refusals(void **state)
{
	(void)state;
	struct lt_jwt_claims c;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, LT_JWT_MAX_TOKEN);
#define REFUSE(stmt)                                                                               \
	do {                                                                                       \
		base_claims(&c);                                                                   \
		stmt;                                                                              \
		assert_int_equal(lt_jwt_sign(&g_a, &c, &b), LT_EINVAL);                            \
		assert_int_equal(b.len, 0);                                                        \
	} while (0)
	REFUSE(c.sub[0] = '\0');
	REFUSE(c.iss[0] = '\0');
	REFUSE(c.aud[0] = '\0');
	REFUSE(strcpy(c.sub, "a\nb"));
	REFUSE(strcpy(c.tier, "\x7f"));
	REFUSE(strcpy(c.sub, "\xc3\x28"));	  /* invalid UTF-8 */
	REFUSE(memset(c.sub, 'x', sizeof c.sub)); /* not terminated */
	REFUSE(c.n_roles = LT_JWT_MAX_ROLES + 1);
	REFUSE(strcpy(c.roles[1], "USER")); /* duplicate */
	REFUSE(c.roles[1][0] = '\0');	    /* empty role */
	REFUSE(c.nbf = c.exp + 1);
	REFUSE(c.iat = c.exp + 1);
	REFUSE(c.exp = -1);
	REFUSE(c.exp = LT_JSON_INT_MAX + 1);
	REFUSE(strcpy(c.jti, "not-a-uuid"));
#undef REFUSE
	/* a public-only key cannot sign */
	struct lt_jwt_key pub;
	assert_int_equal(lt_jwt_key_from_public(&pub, g_a.n, g_a.n_len, g_a.e, g_a.e_len), LT_OK);
	base_claims(&c);
	assert_int_equal(lt_jwt_sign(&pub, &c, &b), LT_EINVAL);
	lt_jwt_key_release(&pub);
	/* the maximum roles, each of the maximum length, are fine */
	base_claims(&c);
	c.n_roles = LT_JWT_MAX_ROLES;
	for (int i = 0; i < LT_JWT_MAX_ROLES; i++) {
		memset(c.roles[i], 'A' + i, LT_JWT_ROLE_MAX);
		c.roles[i][LT_JWT_ROLE_MAX] = '\0';
	}
	assert_int_equal(lt_jwt_sign(&g_a, &c, &b), LT_OK);
	struct lt_jwt_claims out;
	assert_int_equal(verify_at(b.data, b.len, NOW, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(out.n_roles, LT_JWT_MAX_ROLES);
	lt_buf_release(&b);
}

/* ---- tampering ---- */

static void test_tampered(void **state)
{
	(void)state;
	struct lt_jwt_claims c;
	base_claims(&c);
	char *t = sign(&g_a, &c);
	char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');

	/* one payload character changed (the first: no padding bits there) */
	char was = d1[1];
	d1[1] = was == 'A' ? 'B' : 'A';
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	d1[1] = was;
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);

	/* one signature character changed */
	was = d2[5];
	d2[5] = was == 'A' ? 'B' : 'A';
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	d2[5] = was;
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);

	/* a header character changed: the header no longer parses or matches */
	char *h = strdup(t);
	h[3] ^= 0x01;
	assert_int_not_equal(verify(h), LT_JWT_FAIL_NONE);
	free(h);

	/* a payload rewritten to grant more, with the original signature */
	char *p = payload_with("roles", "[\"ADMIN\",\"ORG_ADMIN\",\"USER\"]");
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	lt_buf_append(&b, t, (size_t)(d1 - t) + 1);
	lt_b64url_encode(p, strlen(p), &b);
	lt_buf_puts(&b, d2);
	assert_int_equal(verify(b.data), LT_JWT_FAIL_BAD_SIGNATURE);
	lt_buf_release(&b);
	free(p);

	/* signature truncated, emptied, extended, or of another key */
	char *s = strdup(t);
	size_t n = strlen(s);
	s[n - 4] = '\0';
	assert_int_not_equal(verify(s), LT_JWT_FAIL_NONE);
	strcpy(strrchr(s, '.') + 1, "");
	assert_int_equal(verify(s), LT_JWT_FAIL_BAD_SIGNATURE);
	free(s);
	lt_buf_init(&b, NULL, 0, 1 << 16);
	lt_buf_puts(&b, t);
	lt_buf_puts(&b, "AAAA");
	assert_int_equal(verify(b.data), LT_JWT_FAIL_BAD_SIGNATURE);
	/* well-formed signatures of 255, 257 and 512 bytes */
	static const size_t lens[] = {255, 257, 512};
	for (size_t i = 0; i < 3; i++) {
		unsigned char raw[512];
		memset(raw, 0x42, sizeof raw);
		lt_buf_reset(&b);
		lt_buf_append(&b, t, (size_t)(d2 - t) + 1);
		lt_b64url_encode(raw, lens[i], &b);
		assert_int_equal(verify(b.data), LT_JWT_FAIL_BAD_SIGNATURE);
	}
	lt_buf_release(&b);

	/* header of a, signed by b */
	char *pl = payload_with(NULL, NULL);
	char *x = craft(&g_b, hdr_a(), pl);
	assert_int_equal(verify(x), LT_JWT_FAIL_BAD_SIGNATURE);
	free(x);
	/* a lookup that returns a key with another kid is not believed */
	x = craft(&g_a, hdr_a(), pl);
	struct lt_jwt_claims out;
	enum lt_jwt_fail why;
	assert_int_equal(
		lt_jwt_verify(x, strlen(x), lookup_always_b, NULL, NOW, SKEW, ISS, AUD, &out, &why),
		LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_UNKNOWN_KID);
	free(x);
	free(pl);
	free(t);
}

/* ---- algorithm confusion ---- */

static void put_der_len(struct lt_buf *b, size_t n)
{
	if (n < 128) {
		lt_buf_putc(b, (char)n);
	} else if (n < 256) {
		lt_buf_putc(b, (char)0x81);
		lt_buf_putc(b, (char)n);
	} else {
		lt_buf_putc(b, (char)0x82);
		lt_buf_putc(b, (char)(n >> 8));
		lt_buf_putc(b, (char)n);
	}
}

static void put_der(struct lt_buf *b, int tag, const void *p, size_t n)
{
	lt_buf_putc(b, (char)tag);
	put_der_len(b, n);
	lt_buf_append(b, p, n);
}

/* The key's SubjectPublicKeyInfo in PEM ("PUBLIC KEY"), as an attacker would
 * fetch it, to use as an HMAC secret. */
static char *spki_pem(const struct lt_jwt_key *k, size_t *len)
{
	struct lt_buf ints, rsapk, bits, alg, spki;
	lt_buf_init(&ints, NULL, 0, 4096);
	lt_buf_init(&rsapk, NULL, 0, 4096);
	lt_buf_init(&bits, NULL, 0, 4096);
	lt_buf_init(&alg, NULL, 0, 4096);
	lt_buf_init(&spki, NULL, 0, 4096);
	unsigned char n0[513] = {0};
	memcpy(n0 + 1, k->n, k->n_len); /* a leading zero keeps INTEGER positive */
	put_der(&ints, 0x02, n0, k->n_len + 1);
	put_der(&ints, 0x02, k->e, k->e_len);
	put_der(&rsapk, 0x30, ints.data, ints.len);
	lt_buf_putc(&bits, 0);
	lt_buf_append(&bits, rsapk.data, rsapk.len);
	static const unsigned char rsa_alg[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
						0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
	put_der(&alg, 0x30, rsa_alg, sizeof rsa_alg);
	lt_buf_append(&alg, "\x03", 1);
	put_der_len(&alg, bits.len);
	lt_buf_append(&alg, bits.data, bits.len);
	put_der(&spki, 0x30, alg.data, alg.len);
	assert_int_equal(spki.err, LT_OK);
	*len = br_pem_encode(NULL, spki.data, spki.len, "PUBLIC KEY", BR_PEM_LINE64);
	char *pem = malloc(*len + 1);
	br_pem_encode(pem, spki.data, spki.len, "PUBLIC KEY", BR_PEM_LINE64);
	lt_buf_release(&ints);
	lt_buf_release(&rsapk);
	lt_buf_release(&bits);
	lt_buf_release(&alg);
	lt_buf_release(&spki);
	return pem;
}

/* header.payload.HMAC-SHA256(secret, header.payload) */
static char *hs256_token(const char *header, const char *payload, const void *secret, size_t n)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	lt_b64url_encode(header, strlen(header), &b);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(payload, strlen(payload), &b);
	br_hmac_key_context kc;
	br_hmac_context hc;
	unsigned char mac[32];
	br_hmac_key_init(&kc, &br_sha256_vtable, secret, n);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, b.data, b.len);
	br_hmac_out(&hc, mac);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(mac, sizeof mac, &b);
	char *t;
	size_t len;
	assert_int_equal(lt_buf_detach(&b, &t, &len), LT_OK);
	return t;
}

static void test_alg_none(void **state)
{
	(void)state;
	char *pl = payload_with(NULL, NULL);
	static const char *algs[] = {"none", "None", "NONE", "nOnE", ""};
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
		char hdr[256];
		snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
			 algs[i], g_a.kid);
		struct lt_buf b;
		lt_buf_init(&b, NULL, 0, 1 << 16);
		lt_b64url_encode(hdr, strlen(hdr), &b);
		lt_buf_putc(&b, '.');
		lt_b64url_encode(pl, strlen(pl), &b);
		lt_buf_putc(&b, '.'); /* empty signature */
		lookups = 0;
		assert_int_equal(verify(b.data), LT_JWT_FAIL_BAD_ALG);
		assert_int_equal(lookups, 0); /* refused before any key is involved */
		/* and without the trailing dot: two segments */
		b.data[--b.len] = '\0';
		assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);
		lt_buf_release(&b);
	}
	/* alg none with a real RS256 signature attached is still refused */
	char hdr[256];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"none\",\"kid\":\"%s\"}", g_a.kid);
	char *t = craft(&g_a, hdr, pl);
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_ALG);
	free(t);
	free(pl);
}

static void test_alg_hs256_with_public_key(void **state)
{
	(void)state;
	char *pl = payload_with(NULL, NULL);
	size_t pem_len;
	char *pem = spki_pem(&g_a, &pem_len);
	assert_memory_equal(pem, "-----BEGIN PUBLIC KEY-----", 26);
	struct lt_buf jwk;
	lt_buf_init(&jwk, NULL, 0, 4096);
	assert_int_equal(lt_jwt_key_jwk(&g_a, &jwk), LT_OK);
	const struct {
		const void *p;
		size_t n;
	} secrets[] = {{pem, pem_len}, {jwk.data, jwk.len}, {g_a.n, g_a.n_len}};
	static const char *algs[] = {"HS256", "HS384", "HS512", "hs256"};
	for (size_t s = 0; s < 3; s++) {
		for (size_t a = 0; a < 4; a++) {
			char hdr[256];
			snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
				 algs[a], g_a.kid);
			char *t = hs256_token(hdr, pl, secrets[s].p, secrets[s].n);
			assert_int_equal(verify(t), LT_JWT_FAIL_BAD_ALG);
			free(t);
		}
	}
	/* other algorithms, and near misses of RS256 */
	static const char *others[] = {"RS512", "RS384",  "PS256",  "ES256", "EdDSA",
				       "rs256", "RS256 ", " RS256", "RS2560"};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		char hdr[256];
		snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
			 others[i], g_a.kid);
		char *t = craft(&g_a, hdr, pl);
		if (verify(t) != LT_JWT_FAIL_BAD_ALG)
			fail_msg("alg \"%s\" not refused as bad_alg", others[i]);
		free(t);
	}
	/* alg as RS256 with a NUL after it: "RS256\u0000x" */
	char hdr[256];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\\u0000x\",\"kid\":\"%s\"}", g_a.kid);
	char *t = craft(&g_a, hdr, pl);
	enum lt_jwt_fail why = verify(t);
	(void)why; /* cJSON stops at the NUL; the token is ours and signed, so
		      either answer is safe — it must simply not crash */
	free(t);
	lt_buf_release(&jwk);
	free(pem);
	free(pl);
}

/* ---- header rules ---- */

static void test_header_rules(void **state)
{
	(void)state;
	char h[512];
	const char *kid = g_a.kid;
	/* kid missing or unknown */
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"),
			 LT_JWT_FAIL_UNKNOWN_KID);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"nope\"}"),
			 LT_JWT_FAIL_UNKNOWN_KID);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"\"}"),
			 LT_JWT_FAIL_UNKNOWN_KID);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":null}"),
			 LT_JWT_FAIL_UNKNOWN_KID);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":42}"), LT_JWT_FAIL_MALFORMED);
	/* kid of the right key but with a different case or an extra char */
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%sx\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_UNKNOWN_KID);
	/* typ: optional, exactly JWT */
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_NONE);
	snprintf(h, sizeof h, "{\"kid\":\"%s\",\"typ\":\"JWT\",\"alg\":\"RS256\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_NONE);
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"typ\":\"JWS\",\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"typ\":1,\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	/* fields we never use are refused */
	static const char *extra[] = {"\"crit\":[\"exp\"]",
				      "\"jku\":\"https://evil/jwks\"",
				      "\"jwk\":{\"kty\":\"RSA\"}",
				      "\"x5u\":\"https://evil\"",
				      "\"x5c\":[]",
				      "\"cty\":\"JWT\"",
				      "\"zip\":\"DEF\""};
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
		snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\",%s}", kid, extra[i]);
		if (verify_header(h) != LT_JWT_FAIL_MALFORMED)
			fail_msg("header member %s accepted", extra[i]);
	}
	/* duplicates */
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"kid\":\"other\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	/* not an object, not JSON, alg missing or not a string */
	assert_int_equal(verify_header("[\"RS256\"]"), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(verify_header("\"RS256\""), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(verify_header("null"), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(verify_header("{\"alg\":\"RS256\""), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\"} x", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	snprintf(h, sizeof h, "{\"alg\":[\"RS256\"],\"kid\":\"%s\"}", kid);
	assert_int_equal(verify_header(h), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(verify_header(""), LT_JWT_FAIL_MALFORMED);
	/* a header over 1 KiB of text */
	char big[1200];
	snprintf(big, sizeof big, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"%*s}", kid, 800,
		 "");
	assert_int_equal(verify_header(big), LT_JWT_FAIL_MALFORMED);
}

/* ---- time and audience ---- */

static void test_times(void **state)
{
	(void)state;
	struct lt_jwt_claims c, out;
	base_claims(&c);
	char *t = sign(&g_a, &c); /* iat = nbf = NOW, exp = NOW + 3600 */
	size_t n = strlen(t);
	int64_t exp = NOW + 3600;
	/* exp: valid while exp > now - skew */
	assert_int_equal(verify_at(t, n, exp - 1, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_at(t, n, exp, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_at(t, n, exp + SKEW - 1, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_at(t, n, exp + SKEW, SKEW, &out), LT_JWT_FAIL_EXPIRED);
	assert_int_equal(verify_at(t, n, exp + SKEW + 1, SKEW, &out), LT_JWT_FAIL_EXPIRED);
	assert_int_equal(verify_at(t, n, exp, 0, &out), LT_JWT_FAIL_EXPIRED);
	assert_int_equal(verify_at(t, n, exp - 1, 0, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_at(t, n, INT64_MAX, SKEW, &out), LT_JWT_FAIL_EXPIRED);
	/* nbf: valid once nbf <= now + skew */
	assert_int_equal(verify_at(t, n, NOW - SKEW, SKEW, &out), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_at(t, n, NOW - SKEW - 1, SKEW, &out), LT_JWT_FAIL_NOT_YET_VALID);
	assert_int_equal(verify_at(t, n, NOW - 1, 0, &out), LT_JWT_FAIL_NOT_YET_VALID);
	assert_int_equal(verify_at(t, n, INT64_MIN, SKEW, &out), LT_JWT_FAIL_NOT_YET_VALID);
	free(t);

	/* an expired token and a future one at NOW */
	base_claims(&c);
	c.iat = c.nbf = NOW - 7200;
	c.exp = NOW - SKEW - 1;
	t = sign(&g_a, &c);
	assert_int_equal(verify(t), LT_JWT_FAIL_EXPIRED);
	free(t);
	c.exp = NOW - SKEW + 1; /* within the skew */
	t = sign(&g_a, &c);
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);
	free(t);
	base_claims(&c);
	c.iat = NOW;
	c.nbf = NOW + SKEW + 1;
	t = sign(&g_a, &c);
	assert_int_equal(verify(t), LT_JWT_FAIL_NOT_YET_VALID);
	free(t);
	c.nbf = NOW + SKEW;
	t = sign(&g_a, &c);
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);
	free(t);
}

static void test_issuer_audience(void **state)
{
	(void)state;
	struct lt_jwt_claims c, out;
	enum lt_jwt_fail why;
	base_claims(&c);
	char *t = sign(&g_a, &c);
	size_t n = strlen(t);
	assert_int_equal(lt_jwt_verify(t, n, lookup_ab, NULL, NOW, SKEW, "other", AUD, &out, &why),
			 LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_WRONG_ISSUER);
	assert_int_equal(lt_jwt_verify(t, n, lookup_ab, NULL, NOW, SKEW, ISS "x", AUD, &out, &why),
			 LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_WRONG_ISSUER);
	assert_int_equal(lt_jwt_verify(t, n, lookup_ab, NULL, NOW, SKEW, ISS, "other", &out, &why),
			 LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_WRONG_AUDIENCE);
	assert_int_equal(lt_jwt_verify(t, n, lookup_ab, NULL, NOW, SKEW, ISS, "", &out, &why),
			 LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_WRONG_AUDIENCE);
	/* issuer is checked before time */
	assert_int_equal(
		lt_jwt_verify(t, n, lookup_ab, NULL, NOW + 99999, SKEW, "other", AUD, &out, &why),
		LT_EDENIED);
	assert_int_equal(why, LT_JWT_FAIL_WRONG_ISSUER);
	free(t);
	/* an aud array is not accepted (we only issue strings) */
	assert_int_equal(verify_with("aud", "[\"" AUD "\"]"), LT_JWT_FAIL_MALFORMED);
}

/* ---- syntax and bounds ---- */

static void test_segments_and_base64(void **state)
{
	(void)state;
	struct lt_jwt_claims c;
	base_claims(&c);
	char *t = sign(&g_a, &c);
	size_t n = strlen(t);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);

	static const char *tiny[] = {"", ".", "..", "...", "a.b", "a..c", ".b.c"};
	for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++)
		assert_int_equal(verify(tiny[i]), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(verify_at(NULL, 0, NOW, SKEW, &c), LT_JWT_FAIL_MALFORMED);

	/* an extra segment, a trailing dot, a leading dot */
	lt_buf_printf(&b, "%s.AAAA", t);
	assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_reset(&b);
	lt_buf_printf(&b, "%s.", t);
	assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_reset(&b);
	lt_buf_printf(&b, ".%s", t);
	assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);

	/* padding, standard alphabet, whitespace, NUL: in each segment */
	const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
	size_t cut[3] = {(size_t)(d1 - t), (size_t)(d2 - t), n};
	static const char *junk[] = {"=", "==", "+", "/", " ", "\n", "\t", "%"};
	for (int s = 0; s < 3; s++) {
		for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++) {
			lt_buf_reset(&b);
			lt_buf_append(&b, t, cut[s]);
			lt_buf_puts(&b, junk[j]);
			lt_buf_puts(&b, t + cut[s]);
			if (verify(b.data) != LT_JWT_FAIL_MALFORMED)
				fail_msg("segment %d with \"%s\" inserted not malformed", s,
					 junk[j]);
		}
		/* replace a character inside the segment */
		lt_buf_reset(&b);
		lt_buf_puts(&b, t);
		b.data[cut[s] - 2] = '+';
		assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);
	}
	/* a NUL inside the given length */
	lt_buf_reset(&b);
	lt_buf_puts(&b, t);
	b.data[10] = '\0';
	assert_int_equal(verify_at(b.data, n, NOW, SKEW, &c), LT_JWT_FAIL_MALFORMED);
	/* the length given is what counts, not the NUL */
	assert_int_equal(verify_at(t, n - 1, NOW, SKEW, &c), LT_JWT_FAIL_MALFORMED);

	/* non-canonical last character of the signature (256 bytes: 4 spare bits) */
	lt_buf_reset(&b);
	lt_buf_puts(&b, t);
	char *last = &b.data[b.len - 1];
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t v = (size_t)(strchr(alpha, *last) - alpha);
	*last = alpha[v ^ 1]; /* set a spare bit: same bytes, other text */
	assert_int_equal(verify(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_release(&b);
	free(t);
}

static void test_size_bounds(void **state)
{
	(void)state;
	/* a valid token with a large unknown claim: fine under 8 KiB... */
	char pad[5002];
	pad[0] = '"';
	memset(pad + 1, 'p', 4999);
	pad[5000] = '"';
	pad[5001] = '\0';
	char *p = payload_with("pad", pad);
	char *t = craft(&g_a, hdr_a(), p);
	assert_true(strlen(t) < LT_JWT_MAX_TOKEN);
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);
	free(t);
	free(p);
	/* ...refused over it, signature or not */
	char big[6402];
	big[0] = '"';
	memset(big + 1, 'p', 6399);
	big[6400] = '"';
	big[6401] = '\0';
	p = payload_with("pad", big);
	t = craft(&g_a, hdr_a(), p);
	assert_true(strlen(t) > LT_JWT_MAX_TOKEN);
	lookups = 0;
	assert_int_equal(verify(t), LT_JWT_FAIL_MALFORMED);
	assert_int_equal(lookups, 0);
	free(t);
	free(p);
	/* too many claims */
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	char *base = payload_with(NULL, NULL);
	lt_buf_append(&b, base, strlen(base) - 1);
	for (int i = 0; i < 30; i++)
		lt_buf_printf(&b, ",\"x%d\":%d", i, i);
	lt_buf_putc(&b, '}');
	assert_int_equal(verify_payload(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_release(&b);
	free(base);
}

static void test_claim_rules(void **state)
{
	(void)state;
	/* control: the standard payload verifies */
	assert_int_equal(verify_with(NULL, NULL), LT_JWT_FAIL_NONE);
	/* missing (or null) required claims */
	static const char *required[] = {"sub", "iss", "aud", "roles", "iat", "nbf", "exp", "jti"};
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		if (verify_with(required[i], NULL) != LT_JWT_FAIL_MISSING_CLAIM)
			fail_msg("missing %s not reported", required[i]);
		if (verify_with(required[i], "null") != LT_JWT_FAIL_MISSING_CLAIM)
			fail_msg("null %s not reported", required[i]);
	}
	/* tier is optional */
	assert_int_equal(verify_with("tier", NULL), LT_JWT_FAIL_NONE);
	/* unknown claims are ignored */
	assert_int_equal(verify_with("scope", "\"admin\""), LT_JWT_FAIL_NONE);

	static const struct {
		const char *name, *value;
	} bad[] = {
		/* times: integers in 0..2^53-1 */
		{"exp", "\"1767229200\""},
		{"exp", "1767229200.5"},
		{"exp", "-1"},
		{"exp", "1e300"},
		{"exp", "9007199254740992"},
		{"exp", "true"},
		{"iat", "\"now\""},
		{"nbf", "[1]"},
		/* strings: types, emptiness, lengths, control characters */
		{"sub", "\"\""},
		{"sub", "42"},
		{"sub",
		 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""}, /* 65 */
		{"sub", "\"a\\u0001b\""},
		{"sub", "\"a\\nb\""},
		{"iss", "[\"" ISS "\"]"},
		{"tier", "\"\""},
		{"tier", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""}, /* 33 */
		{"jti", "\"not-a-uuid\""},
		{"jti", "7"},
		/* roles */
		{"roles", "\"ADMIN\""},
		{"roles", "{}"},
		{"roles", "[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\",\"H\",\"I\"]"}, /* 9 */
		{"roles", "[\"USER\",\"USER\"]"},
		{"roles", "[\"\"]"},
		{"roles", "[1]"},
		{"roles", "[null]"},
		{"roles", "[[\"ADMIN\"]]"},
		{"roles", "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]"}, /* 33 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum lt_jwt_fail why = verify_with(bad[i].name, bad[i].value);
		if (why != LT_JWT_FAIL_MALFORMED)
			fail_msg("%s = %s: got %s", bad[i].name, bad[i].value,
				 lt_jwt_fail_str(why));
	}
	/* bounds are inclusive */
	assert_int_equal(
		verify_with("sub",
			    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
		LT_JWT_FAIL_NONE); /* 64 */
	assert_int_equal(verify_with("roles", "[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\",\"H\"]"),
			 LT_JWT_FAIL_NONE);
	assert_int_equal(verify_with("roles", "[]"), LT_JWT_FAIL_NONE);
	assert_int_equal(verify_with("exp", "1e10"), LT_JWT_FAIL_NONE); /* an exact integer */
	assert_int_equal(verify_with("sub", "\"caf\\u00e9\""), LT_JWT_FAIL_NONE);

	/* duplicate claims, even with equal values */
	char *p = payload_with(NULL, NULL);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	lt_buf_append(&b, p, strlen(p) - 1);
	lt_buf_puts(&b, ",\"sub\":\"admin\"}");
	assert_int_equal(verify_payload(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_reset(&b);
	lt_buf_append(&b, p, strlen(p) - 1);
	lt_buf_printf(&b, ",\"exp\":%lld}", (long long)NOW + 3600);
	assert_int_equal(verify_payload(b.data), LT_JWT_FAIL_MALFORMED);
	lt_buf_release(&b);
	free(p);

	/* payloads that are not objects or not JSON */
	static const char *shapes[] = {"[]", "null", "\"x\"", "1", "{", "{} {}", "{\"a\":01}"};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		if (verify_payload(shapes[i]) != LT_JWT_FAIL_MALFORMED)
			fail_msg("payload %s not malformed", shapes[i]);
	/* invalid UTF-8 in the payload */
	assert_int_equal(verify_with("sub", "\"\xc3\x28\""), LT_JWT_FAIL_MALFORMED);
}

/* A signature over a hand-made encoded message (raw RSA private op). */
static char *craft_em(const char *header, const char *payload, const unsigned char *digest_info,
		      size_t di_len, size_t hash_len)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	lt_b64url_encode(header, strlen(header), &b);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(payload, strlen(payload), &b);
	unsigned char h[64] = {0};
	br_sha256_context sc;
	br_sha256_init(&sc);
	br_sha256_update(&sc, b.data, b.len);
	br_sha256_out(&sc, h);
	size_t k = g_a.n_len, t = di_len + hash_len;
	unsigned char em[512];
	em[0] = 0;
	em[1] = 1;
	memset(em + 2, 0xFF, k - t - 3);
	em[k - t - 1] = 0;
	memcpy(em + k - t, digest_info, di_len);
	memcpy(em + k - hash_len, h, hash_len);
	br_rsa_private_key sk;
	unsigned char *p = g_a.priv;
	sk.n_bitlen = g_a.n_bits;
	sk.p = p, sk.plen = g_a.p_len, p += g_a.p_len;
	sk.q = p, sk.qlen = g_a.q_len, p += g_a.q_len;
	sk.dp = p, sk.dplen = g_a.dp_len, p += g_a.dp_len;
	sk.dq = p, sk.dqlen = g_a.dq_len, p += g_a.dq_len;
	sk.iq = p, sk.iqlen = g_a.iq_len;
	assert_true(br_rsa_private_get_default()(em, &sk));
	lt_buf_putc(&b, '.');
	lt_b64url_encode(em, k, &b);
	char *tok;
	size_t n;
	assert_int_equal(lt_buf_detach(&b, &tok, &n), LT_OK);
	return tok;
}

static void test_digest_info_strict(void **state)
{
	(void)state;
	char *pl = payload_with(NULL, NULL);
	static const unsigned char good[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
					     0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
					     0x01, 0x05, 0x00, 0x04, 0x20};
	/* control: the hand-made standard encoding verifies */
	char *t = craft_em(hdr_a(), pl, good, sizeof good, 32);
	assert_int_equal(verify(t), LT_JWT_FAIL_NONE);
	free(t);
	/* SHA-256 OID without the NULL parameters (a legal but other encoding) */
	static const unsigned char no_null[] = {0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09,
						0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
						0x04, 0x02, 0x01, 0x04, 0x20};
	t = craft_em(hdr_a(), pl, no_null, sizeof no_null, 32);
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	free(t);
	/* the SHA-384 and SHA-512 OIDs around the right SHA-256 value */
	unsigned char other[sizeof good];
	memcpy(other, good, sizeof good);
	other[14] = 0x02;
	t = craft_em(hdr_a(), pl, other, sizeof other, 32);
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	free(t);
	other[14] = 0x03;
	t = craft_em(hdr_a(), pl, other, sizeof other, 32);
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	free(t);
	/* the raw hash with no DigestInfo at all */
	t = craft_em(hdr_a(), pl, good, 0, 32);
	assert_int_equal(verify(t), LT_JWT_FAIL_BAD_SIGNATURE);
	free(t);
	free(pl);
}

static void test_fail_names(void **state)
{
	(void)state;
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_NONE), "none");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_MALFORMED), "malformed");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_BAD_ALG), "bad_alg");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_UNKNOWN_KID), "unknown_kid");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_BAD_SIGNATURE), "bad_signature");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_EXPIRED), "expired");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_NOT_YET_VALID), "not_yet_valid");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_WRONG_ISSUER), "wrong_issuer");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_WRONG_AUDIENCE), "wrong_audience");
	assert_string_equal(lt_jwt_fail_str(LT_JWT_FAIL_MISSING_CLAIM), "missing_claim");
	assert_string_equal(lt_jwt_fail_str((enum lt_jwt_fail)1234), "unknown");
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_sign_appends),
		cmocka_unit_test(test_sign_refusals),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_alg_hs256_with_public_key),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_issuer_audience),
		cmocka_unit_test(test_segments_and_base64),
		cmocka_unit_test(test_size_bounds),
		cmocka_unit_test(test_claim_rules),
		cmocka_unit_test(test_digest_info_strict),
		cmocka_unit_test(test_fail_names),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
