/*
 * fuzz_jwt.c — lt_jwt_verify, the PEM key decoder and the base64url codec on
 * arbitrary bytes.
 *
 * The key is an RSA-2048 key generated once, deterministically, from a fixed
 * DRBG seed (so no private key text lives in the source; the seed corpus's
 * key.pem is that key, for test use only), then passed through PKCS#8 PEM
 * and lt_jwt_key_from_pem.  At start-up a fixed set of tokens is signed with
 * it (fixed jti: PKCS#1 v1.5 is deterministic, so these are the seed
 * corpus's tokens byte for byte).
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - lt_jwt_verify returns LT_OK exactly when *why is NONE, else LT_EDENIED
 *     with a reason in range and zeroed claims;
 *   - it accepts only tokens signed here: an accepted input must equal one of
 *     the start-up tokens (a JWS with strict base64url has one encoding), and
 *     its claims obey the documented bounds;
 *   - base64url: an accepted text re-encodes to itself; any input encodes
 *     and decodes back to itself;
 *   - a PEM the decoder accepts is a 2048..4096-bit RSA key that signs,
 *     re-encodes and decodes to the same kid.
 *
 * Set FUZZ_JWT_WRITE_SEEDS=DIR to write the seed corpus into DIR.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>
#include <sodium.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "auth/jwt_key.h"
#include "util/json.h"

#include "fuzz_check.h"

#define NOW INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define ISS "leaky-tokens-auth"
#define AUD "leaky-tokens"
#define MAX_SIGNED 16

static struct lt_jwt_key g_key;
static char *g_pem;
static size_t g_pem_len;
static char *g_signed[MAX_SIGNED];
static size_t g_n_signed;

static const struct lt_jwt_key *lookup(void *arg, const char *kid, size_t len)
{
	(void)arg;
	if (len == LT_JWT_KID_LEN && memcmp(kid, g_key.kid, len) == 0)
		return &g_key;
	return NULL;
}

static void make_key(void)
{
	static const char seed[] = "leaky-tokens fuzz_jwt fixed key seed, test use only";
	br_hmac_drbg_context rng;
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed - 1);
	static unsigned char kpriv[BR_RSA_KBUF_PRIV_SIZE(2048)], kpub[BR_RSA_KBUF_PUB_SIZE(2048)];
	br_rsa_private_key sk;
	br_rsa_public_key pk;
	CHECK(br_rsa_keygen_get_default()(&rng.vtable, &sk, kpriv, &pk, kpub, 2048, 65537));
	unsigned char d[256], der[2048];
	size_t d_len = br_rsa_compute_privexp_get_default()(d, &sk, 65537);
	CHECK(d_len > 0);
	size_t der_len = br_encode_rsa_pkcs8_der(NULL, &sk, &pk, d, d_len);
	CHECK(der_len <= sizeof der);
	br_encode_rsa_pkcs8_der(der, &sk, &pk, d, d_len);
	g_pem_len = br_pem_encode(NULL, der, der_len, "PRIVATE KEY", BR_PEM_LINE64);
	g_pem = malloc(g_pem_len + 1);
	CHECK(g_pem);
	br_pem_encode(g_pem, der, der_len, "PRIVATE KEY", BR_PEM_LINE64);
	CHECK(lt_jwt_key_from_pem(&g_key, g_pem, g_pem_len) == LT_OK);
}

static void claims(struct lt_jwt_claims *c, int variant)
{
	memset(c, 0, sizeof *c);
	snprintf(c->sub, sizeof c->sub, "0b5e8f3a-1d2c-4e6f-8a9b-7c6d5e4f3a2%c", '0' + variant);
	snprintf(c->iss, sizeof c->iss, "%s", ISS);
	snprintf(c->aud, sizeof c->aud, "%s", AUD);
	snprintf(c->jti, sizeof c->jti, "3f1c2a4e-8b7d-4c61-9e2f-0a1b2c3d4e5%c", '0' + variant);
	c->iat = c->nbf = NOW - 60;
	c->exp = NOW + 3600;
	switch (variant) {
	case 0:
		snprintf(c->tier, sizeof c->tier, "USER");
		snprintf(c->roles[0], sizeof c->roles[0], "USER");
		c->n_roles = 1;
		break;
	case 1: /* no tier, no roles */ break;
	case 2: /* every role slot, of every length */
		snprintf(c->tier, sizeof c->tier, "ENTERPRISE");
		for (int i = 0; i < LT_JWT_MAX_ROLES; i++) {
			memset(c->roles[i], 'A' + i, (size_t)(i * 4 + 4));
			c->roles[i][i * 4 + 4] = '\0';
		}
		c->n_roles = LT_JWT_MAX_ROLES;
		break;
	case 3: /* expired at NOW */
		c->exp = NOW - 3600;
		c->iat = c->nbf = NOW - 7200;
		break;
	case 4: /* not yet valid at NOW */ c->nbf = NOW + 600; break;
	case 5: /* another issuer */ snprintf(c->iss, sizeof c->iss, "someone-else"); break;
	}
}

static void add_signed(char *t)
{
	CHECK(g_n_signed < MAX_SIGNED);
	g_signed[g_n_signed++] = t;
}

static char *sign_variant(int variant)
{
	struct lt_jwt_claims c;
	struct lt_buf b;
	char *t;
	size_t n;
	claims(&c, variant);
	lt_buf_init(&b, NULL, 0, LT_JWT_MAX_TOKEN);
	CHECK(lt_jwt_sign(&g_key, &c, &b) == LT_OK);
	CHECK(lt_buf_detach(&b, &t, &n) == LT_OK);
	return t;
}

/* header.payload signed with the key: for seeds that break a rule. */
static char *craft(const char *header, const char *payload)
{
	struct lt_buf b;
	unsigned char h[32], sig[LT_JWT_KEY_MAX_SIG];
	br_sha256_context sc;
	char *t;
	size_t n;
	lt_buf_init(&b, NULL, 0, LT_JWT_MAX_TOKEN);
	lt_b64url_encode(header, strlen(header), &b);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(payload, strlen(payload), &b);
	br_sha256_init(&sc);
	br_sha256_update(&sc, b.data, b.len);
	br_sha256_out(&sc, h);
	CHECK(lt_jwt_key_rs256_sign(&g_key, h, sig, sizeof sig) == LT_OK);
	lt_buf_putc(&b, '.');
	lt_b64url_encode(sig, g_key.n_len, &b);
	CHECK(lt_buf_detach(&b, &t, &n) == LT_OK);
	return t;
}

static void write_seed(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "wb");
	CHECK(fp);
	CHECK(fwrite(text, 1, strlen(text), fp) == strlen(text));
	CHECK(fclose(fp) == 0);
}

static void write_seeds(const char *dir)
{
	static const char *names[] = {"valid-user.jwt", "valid-bare.jwt",    "valid-max-roles.jwt",
				      "expired.jwt",	"not-yet-valid.jwt", "wrong-issuer.jwt"};
	for (int i = 0; i < 6; i++)
		write_seed(dir, names[i], g_signed[i]);
	write_seed(dir, "dup-claim.jwt", g_signed[6]);
	write_seed(dir, "alg-none-signed.jwt", g_signed[7]);
	write_seed(dir, "crit-header.jwt", g_signed[8]);
	write_seed(dir, "valid-plain-header.jwt", g_signed[9]);

	/* unsigned variants derived from the first token */
	const char *t = g_signed[0];
	const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	char hdr[128];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", g_key.kid);
	lt_b64url_encode(hdr, strlen(hdr), &b);
	lt_buf_append(&b, d1, (size_t)(d2 - d1) + 1);
	write_seed(dir, "alg-none.jwt", b.data);

	lt_buf_reset(&b);
	snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", g_key.kid);
	lt_b64url_encode(hdr, strlen(hdr), &b);
	lt_buf_append(&b, d1, (size_t)(d2 - d1) + 1);
	lt_buf_puts(&b, "3q2-7w3q2-7w3q2-7w3q2-7w3q2-7w3q2-7w3q2-7wA");
	write_seed(dir, "alg-hs256.jwt", b.data);

	lt_buf_reset(&b);
	lt_buf_puts(&b, t);
	b.data[d1 - t + 5] = b.data[d1 - t + 5] == 'A' ? 'B' : 'A';
	write_seed(dir, "tampered-payload.jwt", b.data);

	lt_buf_reset(&b);
	lt_buf_puts(&b, t);
	lt_buf_puts(&b, ".extra");
	write_seed(dir, "four-segments.jwt", b.data);

	write_seed(dir, "b64-padded.txt", "eyJhbGciOiJSUzI1NiJ9.Zm8=.Zg==");
	write_seed(dir, "b64-noncanonical.txt", "Zh");

	lt_buf_reset(&b);
	lt_buf_puts(&b, "test key for tests/fuzz/fuzz_jwt.c only; it signs nothing real\n");
	lt_buf_append(&b, g_pem, g_pem_len);
	write_seed(dir, "key.pem", b.data);
	lt_buf_release(&b);
}

static void init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	CHECK(sodium_init() >= 0);
	make_key();
	for (int v = 0; v < 6; v++)
		add_signed(sign_variant(v));
	char hdr[128], pl[512];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", g_key.kid);
	snprintf(pl, sizeof pl,
		 "{\"sub\":\"a\",\"sub\":\"b\",\"iss\":\"%s\",\"aud\":\"%s\",\"roles\":[],"
		 "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":\"3f1c2a4e-8b7d-4c61-9e2f-"
		 "0a1b2c3d4e5f\"}",
		 ISS, AUD, (long long)NOW, (long long)NOW, (long long)NOW + 60);
	add_signed(craft(hdr, pl));
	char none[128];
	snprintf(none, sizeof none, "{\"alg\":\"none\",\"kid\":\"%s\"}", g_key.kid);
	snprintf(pl, sizeof pl,
		 "{\"sub\":\"a\",\"iss\":\"%s\",\"aud\":\"%s\",\"roles\":[],\"iat\":%lld,"
		 "\"nbf\":%lld,\"exp\":%lld,\"jti\":\"3f1c2a4e-8b7d-4c61-9e2f-0a1b2c3d4e5f\"}",
		 ISS, AUD, (long long)NOW, (long long)NOW, (long long)NOW + 60);
	add_signed(craft(none, pl));
	snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"kid\":\"%s\"}",
		 g_key.kid);
	add_signed(craft(hdr, pl));
	/* the control: the same payload under a proper header is accepted */
	snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", g_key.kid);
	add_signed(craft(hdr, pl));

	const char *dir = getenv("FUZZ_JWT_WRITE_SEEDS");
	if (dir)
		write_seeds(dir);
}

static bool is_signed_here(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < g_n_signed; i++)
		if (strlen(g_signed[i]) == size && memcmp(g_signed[i], data, size) == 0)
			return true;
	return false;
}

static void check_claims(const struct lt_jwt_claims *c)
{
	CHECK(strlen(c->sub) > 0 && strlen(c->sub) <= LT_JWT_SUB_MAX);
	CHECK(strcmp(c->iss, ISS) == 0 && strcmp(c->aud, AUD) == 0);
	CHECK(c->n_roles <= LT_JWT_MAX_ROLES);
	for (size_t i = 0; i < c->n_roles; i++) {
		CHECK(strlen(c->roles[i]) > 0 && strlen(c->roles[i]) <= LT_JWT_ROLE_MAX);
		if (i)
			CHECK(strcmp(c->roles[i - 1], c->roles[i]) < 0);
	}
	CHECK(c->exp + LT_JWT_DEFAULT_SKEW > NOW && c->nbf - LT_JWT_DEFAULT_SKEW <= NOW);
	CHECK(c->iat >= 0 && c->iat <= LT_JSON_INT_MAX);
	CHECK(strlen(c->jti) == 36);
}

static void fuzz_verify(const uint8_t *data, size_t size)
{
	static const struct lt_jwt_claims zero;
	struct lt_jwt_claims c;
	enum lt_jwt_fail why = (enum lt_jwt_fail) - 1;
	memset(&c, 0xA5, sizeof c);
	enum lt_err e = lt_jwt_verify((const char *)data, size, lookup, NULL, NOW,
				      LT_JWT_DEFAULT_SKEW, ISS, AUD, &c, &why);
	if (e == LT_OK) {
		CHECK(why == LT_JWT_FAIL_NONE);
		if (!is_signed_here(data, size)) {
			fprintf(stderr, "accepted a token not signed here: %.*s\n", (int)size,
				(const char *)data);
			abort();
		}
		check_claims(&c);
		/* the same token a day after it expired */
		e = lt_jwt_verify((const char *)data, size, lookup, NULL, c.exp + 86400,
				  LT_JWT_DEFAULT_SKEW, ISS, AUD, &c, &why);
		CHECK(e == LT_EDENIED && why == LT_JWT_FAIL_EXPIRED);
	} else {
		CHECK(e == LT_EDENIED || e == LT_ENOMEM);
		CHECK(why > LT_JWT_FAIL_NONE && why <= LT_JWT_FAIL_MISSING_CLAIM);
		CHECK(memcmp(&c, &zero, sizeof c) == 0);
	}
}

static void fuzz_b64url(const uint8_t *data, size_t size)
{
	size_t cap = lt_b64url_decoded_max(size) + 1;
	unsigned char *out = malloc(cap);
	char *enc = malloc(lt_b64url_encoded_len(size) + 1);
	CHECK(out && enc);
	size_t n = 0;
	enum lt_err e = lt_b64url_decode((const char *)data, size, out, cap, &n);
	CHECK(e == LT_OK || e == LT_ESYNTAX);
	if (e == LT_OK) {
		CHECK(n <= lt_b64url_decoded_max(size));
		CHECK(lt_b64url_encoded_len(n) == size);
		lt_b64url_encode_raw(out, n, enc);
		CHECK(memcmp(enc, data, size) == 0);
	}
	/* every byte string survives encode then decode */
	free(out);
	lt_b64url_encode_raw(data, size, enc);
	size_t elen = strlen(enc);
	CHECK(elen == lt_b64url_encoded_len(size));
	out = malloc(size + 1);
	CHECK(out);
	CHECK(lt_b64url_decode(enc, elen, out, size + 1, &n) == LT_OK);
	CHECK(n == size && memcmp(out, data, size) == 0);
	free(out);
	free(enc);
}

static void fuzz_pem(const uint8_t *data, size_t size)
{
	struct lt_jwt_key k;
	enum lt_err e = lt_jwt_key_from_pem(&k, (const char *)data, size);
	if (e != LT_OK) {
		CHECK(e == LT_ESYNTAX || e == LT_EINVAL || e == LT_ETOOBIG);
		CHECK(k.n == NULL && k.priv == NULL);
		lt_jwt_key_release(&k);
		return;
	}
	CHECK(k.n_bits >= LT_JWT_KEY_MIN_BITS && k.n_bits <= LT_JWT_KEY_MAX_BITS);
	CHECK(lt_jwt_key_has_private(&k));
	char *pem;
	size_t len;
	e = lt_jwt_key_to_pem(&k, &pem, &len);
	CHECK(e == LT_OK || e == LT_EINVAL); /* EINVAL: primes not 3 mod 4 */
	if (e == LT_OK) {
		struct lt_jwt_key again;
		CHECK(lt_jwt_key_from_pem(&again, pem, len) == LT_OK);
		CHECK(strcmp(again.kid, k.kid) == 0);
		lt_jwt_key_release(&again);
		lt_jwt_key_pem_free(pem, len);
	}
	lt_jwt_key_release(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	fuzz_verify(data, size);
	fuzz_b64url(data, size);
	fuzz_pem(data, size);
	return 0;
}
