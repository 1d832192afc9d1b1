/*
 * test_jwt_key.c — src/auth/jwt_key.c: RSA key generation, PKCS#8 PEM round
 * trip and refusals, the RFC 7638 kid (checked against libsodium's base64
 * and BearSSL's SHA-256, and the RFC's own example), the public JWK, the
 * RS256 primitives, and the key file rules (atomic 0600 write, create-only,
 * refusal of loose permissions and symlinks).
 *
 * One RSA-2048 key is generated for the whole group (keygen takes 0.1-1 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bearssl.h>
#include <sodium.h>

#include "auth/jwt_key.h"
#include "testutil.h"
#include "util/json.h"

static struct lt_jwt_key g_key;

static int group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	return lt_jwt_key_generate(&g_key, LT_JWT_KEY_BITS) == LT_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	lt_jwt_key_release(&g_key);
	return 0;
}

/* Base64url without padding by libsodium: an encoder independent of ours. */
static void ref_b64url(const unsigned char *p, size_t n, char *out, size_t cap)
{
	assert_non_null(
		sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
}

static size_t ref_b64url_decode(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	assert_int_equal(sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
			 0);
	return n;
}

/* RFC 7638 thumbprint of (n, e) computed from the JWK string by hand. */
static void ref_thumbprint(const unsigned char *n, size_t n_len, const unsigned char *e,
			   size_t e_len, char out[64])
{
	char n64[1024], e64[16], jwk[1200];
	ref_b64url(n, n_len, n64, sizeof n64);
	ref_b64url(e, e_len, e64, sizeof e64);
	int len =
		snprintf(jwk, sizeof jwk, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e64, n64);
	assert_true(len > 0 && (size_t)len < sizeof jwk);
	unsigned char digest[32];
	br_sha256_context h;
	br_sha256_init(&h);
	br_sha256_update(&h, jwk, (size_t)len);
	br_sha256_out(&h, digest);
	ref_b64url(digest, sizeof digest, out, 64);
}

static void test_generated_shape(void **state)
{
	(void)state;
	assert_int_equal(g_key.n_bits, 2048);
	assert_int_equal(g_key.n_len, 256);
	assert_true(g_key.n[0] & 0x80);
	assert_true(g_key.n[255] & 1);
	assert_int_equal(g_key.e_len, 3);
	assert_memory_equal(g_key.e, "\x01\x00\x01", 3);
	assert_true(lt_jwt_key_has_private(&g_key));
	assert_int_equal(strlen(g_key.kid), LT_JWT_KID_LEN);
	assert_int_equal(strspn(g_key.kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789-_"),
			 LT_JWT_KID_LEN);
	/* sizes outside the allowed range are refused */
	struct lt_jwt_key k;
	assert_int_equal(lt_jwt_key_generate(&k, 1024), LT_EINVAL);
	assert_int_equal(lt_jwt_key_generate(&k, 8192), LT_EINVAL);
	lt_jwt_key_release(&k); /* released state: safe */
}

static void test_kid_is_rfc7638_thumbprint(void **state)
{
	(void)state;
	char want[64];
	ref_thumbprint(g_key.n, g_key.n_len, g_key.e, g_key.e_len, want);
	assert_string_equal(g_key.kid, want);
}

/* RFC 7638 §3.1: the example key and its thumbprint. */
static const char rfc7638_n[] =
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
	"BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
	"65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
	"bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

static void test_rfc7638_example(void **state)
{
	(void)state;
	unsigned char n[512];
	size_t n_len = ref_b64url_decode(rfc7638_n, n, sizeof n);
	assert_int_equal(n_len, 256);
	struct lt_jwt_key k;
	assert_int_equal(
		lt_jwt_key_from_public(&k, n, n_len, (const unsigned char *)"\x01\x00\x01", 3),
		LT_OK);
	assert_string_equal(k.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	assert_false(lt_jwt_key_has_private(&k));
	/* public-only: no PEM, no signing, no saving */
	char *pem;
	size_t pem_len;
	unsigned char h[32] = {0}, sig[512];
	assert_int_equal(lt_jwt_key_to_pem(&k, &pem, &pem_len), LT_EINVAL);
	assert_null(pem);
	assert_int_equal(lt_jwt_key_rs256_sign(&k, h, sig, sizeof sig), LT_EINVAL);
	assert_int_equal(lt_jwt_key_save(&k, "/nonexistent/never"), LT_EINVAL);
	lt_jwt_key_release(&k);
	lt_jwt_key_release(&k); /* twice is fine */

	/* leading zero bytes are not part of the value */
	unsigned char nz[257] = {0};
	memcpy(nz + 1, n, 256);
	assert_int_equal(lt_jwt_key_from_public(&k, nz, sizeof nz,
						(const unsigned char *)"\x00\x01\x00\x01", 4),
			 LT_OK);
	assert_string_equal(k.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	lt_jwt_key_release(&k);
}

static void test_from_public_refusals(void **state)
{
	(void)state;
	struct lt_jwt_key k;
	unsigned char n[513];
	const unsigned char *e = (const unsigned char *)"\x01\x00\x01";
	memset(n, 0xC5, sizeof n); /* odd, top bit set */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 256, e, 3), LT_OK);
	lt_jwt_key_release(&k);
	assert_int_equal(lt_jwt_key_from_public(&k, n, 512, e, 3), LT_OK); /* 4096 bits */
	lt_jwt_key_release(&k);
	assert_int_equal(lt_jwt_key_from_public(&k, n, 513, e, 3), LT_EINVAL); /* 4104 bits */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 255, e, 3), LT_EINVAL); /* 2040 bits */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 128, e, 3), LT_EINVAL); /* RSA-1024 */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 0, e, 3), LT_EINVAL);
	n[255] = 0xC4; /* even modulus */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 256, e, 3), LT_EINVAL);
	n[255] = 0xC5;
	assert_int_equal(
		lt_jwt_key_from_public(&k, n, 256, (const unsigned char *)"\x01\x00\x00", 3),
		LT_EINVAL); /* even e */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 256, (const unsigned char *)"\x01", 1),
			 LT_EINVAL); /* e = 1 */
	assert_int_equal(lt_jwt_key_from_public(&k, n, 256, (const unsigned char *)"", 0),
			 LT_EINVAL);
	assert_int_equal(lt_jwt_key_from_public(&k, n, 256,
						(const unsigned char *)"\x01\x00\x00\x00\x01", 5),
			 LT_EINVAL); /* e beyond 32 bits */
	assert_null(k.n);
}

static void test_jwk(void **state)
{
	(void)state;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 4096);
	assert_int_equal(lt_jwt_key_jwk(&g_key, &b), LT_OK);
	cJSON *j;
	size_t pos;
	assert_int_equal(lt_json_parse(b.data, b.len, &j, &pos), LT_OK);
	assert_int_equal(cJSON_GetArraySize(j), 6);
	const char *s;
	assert_int_equal(lt_json_get_str(j, "kty", &s), LT_OK);
	assert_string_equal(s, "RSA");
	assert_int_equal(lt_json_get_str(j, "use", &s), LT_OK);
	assert_string_equal(s, "sig");
	assert_int_equal(lt_json_get_str(j, "alg", &s), LT_OK);
	assert_string_equal(s, "RS256");
	assert_int_equal(lt_json_get_str(j, "kid", &s), LT_OK);
	assert_string_equal(s, g_key.kid);
	assert_int_equal(lt_json_get_str(j, "e", &s), LT_OK);
	assert_string_equal(s, "AQAB");
	assert_int_equal(lt_json_get_str(j, "n", &s), LT_OK);
	unsigned char n[600];
	assert_int_equal(ref_b64url_decode(s, n, sizeof n), 256);
	assert_memory_equal(n, g_key.n, 256);
	/* private parts never appear */
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "d"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "p"));
	cJSON_Delete(j);
	/* bounded: a too-small buffer fails cleanly */
	struct lt_buf small;
	lt_buf_init(&small, NULL, 0, 100);
	assert_int_equal(lt_jwt_key_jwk(&g_key, &small), LT_ETOOBIG);
	lt_buf_release(&small);
	lt_buf_release(&b);
}

static void assert_same_key(const struct lt_jwt_key *a, const struct lt_jwt_key *b)
{
	assert_int_equal(a->n_bits, b->n_bits);
	assert_int_equal(a->n_len, b->n_len);
	assert_memory_equal(a->n, b->n, a->n_len);
	assert_int_equal(a->e_len, b->e_len);
	assert_memory_equal(a->e, b->e, a->e_len);
	assert_string_equal(a->kid, b->kid);
	assert_int_equal(a->priv_len, b->priv_len);
	assert_memory_equal(a->priv, b->priv, a->priv_len);
}

static void test_pem_round_trip(void **state)
{
	(void)state;
	char *pem;
	size_t len;
	assert_int_equal(lt_jwt_key_to_pem(&g_key, &pem, &len), LT_OK);
	assert_int_equal(strlen(pem), len);
	const char begin[] = "-----BEGIN PRIVATE KEY-----\n";
	assert_memory_equal(pem, begin, sizeof begin - 1);
	assert_non_null(strstr(pem, "-----END PRIVATE KEY-----"));
	/* 64-column lines */
	const char *line = pem + sizeof begin - 1;
	assert_int_equal(strchr(line, '\n') - line, 64);

	struct lt_jwt_key k;
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len), LT_OK);
	assert_same_key(&k, &g_key);

	/* a signature by the reloaded key verifies under the original */
	unsigned char h[32], sig[512];
	randombytes_buf(h, sizeof h);
	assert_int_equal(lt_jwt_key_rs256_sign(&k, h, sig, sizeof sig), LT_OK);
	assert_true(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
	lt_jwt_key_release(&k);

	/* no final newline is fine too */
	char *copy = malloc(len + 1);
	memcpy(copy, pem, len + 1);
	while (len > 0 && copy[len - 1] == '\n')
		copy[--len] = '\0';
	assert_int_equal(lt_jwt_key_from_pem(&k, copy, len), LT_OK);
	assert_same_key(&k, &g_key);
	lt_jwt_key_release(&k);

	/* text around the block is ignored */
	char *wrapped = malloc(len + 64);
	int wl = snprintf(wrapped, len + 64, "comment line\n%s\ntrailer\n", copy);
	assert_int_equal(lt_jwt_key_from_pem(&k, wrapped, (size_t)wl), LT_OK);
	lt_jwt_key_release(&k);
	free(wrapped);
	free(copy);
	lt_jwt_key_pem_free(pem, strlen(pem));
	lt_jwt_key_pem_free(NULL, 0);
}

/* PEM-encode DER under a banner (caller frees). */
static char *pem_of(const void *der, size_t der_len, const char *banner, size_t *len)
{
	*len = br_pem_encode(NULL, der, der_len, banner, 0);
	char *p = malloc(*len + 1);
	assert_non_null(p);
	br_pem_encode(p, der, der_len, banner, 0);
	return p;
}

/* Rebuild the private key of g_key in BearSSL form. */
static void g_br_priv(br_rsa_private_key *sk)
{
	unsigned char *p = g_key.priv;
	sk->n_bitlen = g_key.n_bits;
	sk->p = p, sk->plen = g_key.p_len, p += g_key.p_len;
	sk->q = p, sk->qlen = g_key.q_len, p += g_key.q_len;
	sk->dp = p, sk->dplen = g_key.dp_len, p += g_key.dp_len;
	sk->dq = p, sk->dqlen = g_key.dq_len, p += g_key.dq_len;
	sk->iq = p, sk->iqlen = g_key.iq_len;
}

static void test_pem_pkcs1_banner(void **state)
{
	(void)state;
	br_rsa_private_key sk;
	br_rsa_public_key pk = {g_key.n, g_key.n_len, g_key.e, g_key.e_len};
	g_br_priv(&sk);
	unsigned char d[512], der[4096];
	size_t d_len = br_rsa_compute_privexp_get_default()(d, &sk, 65537);
	assert_true(d_len > 0);
	size_t der_len = br_encode_rsa_raw_der(der, &sk, &pk, d, d_len);
	assert_true(der_len > 0 && der_len < sizeof der);
	size_t len;
	char *pem = pem_of(der, der_len, "RSA PRIVATE KEY", &len);
	struct lt_jwt_key k;
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len), LT_OK);
	assert_same_key(&k, &g_key);
	lt_jwt_key_release(&k);
	free(pem);

	/* a key whose public exponent does not match its primes: self-check */
	sk.dp[sk.dplen - 1] ^= 2;
	der_len = br_encode_rsa_pkcs8_der(der, &sk, &pk, d, d_len);
	sk.dp[sk.dplen - 1] ^= 2;
	pem = pem_of(der, der_len, "PRIVATE KEY", &len);
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len), LT_EINVAL);
	assert_null(k.priv);
	assert_null(k.n);
	free(pem);
}

static void test_pem_refusals(void **state)
{
	(void)state;
	struct lt_jwt_key k;
	char *pem;
	size_t len;
	assert_int_equal(lt_jwt_key_to_pem(&g_key, &pem, &len), LT_OK);

	assert_int_equal(lt_jwt_key_from_pem(&k, "", 0), LT_ESYNTAX);
	assert_int_equal(lt_jwt_key_from_pem(&k, "garbage", 7), LT_ESYNTAX);
	/* truncated: no END banner */
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len / 2), LT_ESYNTAX);
	/* a base64 error inside the block */
	char *bad = malloc(len + 1);
	memcpy(bad, pem, len + 1);
	bad[40] = '*';
	assert_int_equal(lt_jwt_key_from_pem(&k, bad, len), LT_ESYNTAX);
	/* another banner */
	memcpy(bad, pem, len + 1);
	memcpy(bad + 11, "PUBLIC ", 7);
	char *end = strstr(bad, "-----END PRIVATE KEY");
	memcpy(end + 9, "PUBLIC ", 7);
	assert_int_equal(lt_jwt_key_from_pem(&k, bad, len), LT_ESYNTAX);
	/* damaged DER inside well-formed PEM */
	unsigned char der[4096];
	br_rsa_private_key sk;
	br_rsa_public_key pk = {g_key.n, g_key.n_len, g_key.e, g_key.e_len};
	unsigned char d[512];
	g_br_priv(&sk);
	size_t d_len = br_rsa_compute_privexp_get_default()(d, &sk, 65537);
	size_t der_len = br_encode_rsa_pkcs8_der(der, &sk, &pk, d, d_len);
	der[1] ^= 0x01; /* outer length */
	size_t bl;
	char *b2 = pem_of(der, der_len, "PRIVATE KEY", &bl);
	assert_int_equal(lt_jwt_key_from_pem(&k, b2, bl), LT_ESYNTAX);
	free(b2);
	/* oversized text */
	char *big = malloc(LT_JWT_KEY_FILE_MAX + 2);
	memset(big, '\n', LT_JWT_KEY_FILE_MAX + 1);
	memcpy(big, pem, len);
	assert_int_equal(lt_jwt_key_from_pem(&k, big, LT_JWT_KEY_FILE_MAX + 1), LT_ETOOBIG);
	assert_int_equal(lt_jwt_key_from_pem(&k, big, LT_JWT_KEY_FILE_MAX), LT_OK);
	lt_jwt_key_release(&k);
	free(big);
	free(bad);
	lt_jwt_key_pem_free(pem, len);
}

static void test_pem_wrong_key_types(void **state)
{
	(void)state;
	br_hmac_drbg_context rng;
	unsigned char seed[32];
	randombytes_buf(seed, sizeof seed);
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed);
	struct lt_jwt_key k;
	size_t len;

	/* EC P-256 in PKCS#8: not RSA */
	unsigned char ec_priv[BR_EC_KBUF_PRIV_MAX_SIZE], ec_pub[BR_EC_KBUF_PUB_MAX_SIZE];
	br_ec_private_key esk;
	br_ec_public_key epk;
	const br_ec_impl *ec = br_ec_get_default();
	assert_true(br_ec_keygen(&rng.vtable, ec, &esk, ec_priv, BR_EC_secp256r1) > 0);
	assert_true(br_ec_compute_pub(ec, &epk, ec_pub, &esk) > 0);
	unsigned char der[4096];
	size_t der_len = br_encode_ec_pkcs8_der(der, &esk, &epk);
	assert_true(der_len > 0);
	char *pem = pem_of(der, der_len, "PRIVATE KEY", &len);
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len), LT_EINVAL);
	free(pem);

	/* RSA-1024: too small (fast to generate) */
	unsigned char kp[BR_RSA_KBUF_PRIV_SIZE(1024)], kq[BR_RSA_KBUF_PUB_SIZE(1024)];
	br_rsa_private_key sk;
	br_rsa_public_key pk;
	assert_true(br_rsa_keygen_get_default()(&rng.vtable, &sk, kp, &pk, kq, 1024, 65537));
	unsigned char d[128];
	size_t d_len = br_rsa_compute_privexp_get_default()(d, &sk, 65537);
	der_len = br_encode_rsa_pkcs8_der(der, &sk, &pk, d, d_len);
	pem = pem_of(der, der_len, "PRIVATE KEY", &len);
	assert_int_equal(lt_jwt_key_from_pem(&k, pem, len), LT_EINVAL);
	free(pem);
}

static void test_rs256_primitives(void **state)
{
	(void)state;
	unsigned char h[32], sig[512], sig2[512];
	randombytes_buf(h, sizeof h);
	assert_int_equal(lt_jwt_key_rs256_sign(&g_key, h, sig, 255), LT_ETOOBIG);
	assert_int_equal(lt_jwt_key_rs256_sign(&g_key, h, sig, sizeof sig), LT_OK);
	assert_true(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
	/* deterministic (PKCS#1 v1.5) */
	assert_int_equal(lt_jwt_key_rs256_sign(&g_key, h, sig2, sizeof sig2), LT_OK);
	assert_memory_equal(sig, sig2, 256);
	/* wrong length, wrong hash, flipped bit, value >= n */
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 255));
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 257));
	h[31] ^= 1;
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
	h[31] ^= 1;
	sig[100] ^= 0x10;
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
	memset(sig, 0xFF, 256);
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
	memset(sig, 0, 256);
	assert_false(lt_jwt_key_rs256_verify(&g_key, h, sig, 256));
}

/* Files in dir whose name contains ".tmp-": leftovers of a save. */
static int count_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

static void test_save_load(void **state)
{
	(void)state;
	char dir[TU_PATH_MAX], path[TU_PATH_MAX];
	tu_tmpdir(dir);
	tu_path(path, dir, "jwt.pem");
	struct lt_jwt_key k;
	struct stat st;

	assert_int_equal(lt_jwt_key_load(&k, path), LT_ENOTFOUND);
	mode_t old = umask(0); /* even with a permissive umask: 0600 */
	assert_int_equal(lt_jwt_key_save(&g_key, path), LT_OK);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_temporaries(dir), 0);
	assert_int_equal(lt_jwt_key_load(&k, path), LT_OK);
	assert_same_key(&k, &g_key);
	lt_jwt_key_release(&k);
	/* saving again replaces */
	tu_write_file(path, "old contents\n", 13);
	assert_int_equal(lt_jwt_key_save(&g_key, path), LT_OK);
	assert_int_equal(lt_jwt_key_load(&k, path), LT_OK);
	lt_jwt_key_release(&k);
	assert_int_equal(count_temporaries(dir), 0);

	/* create: only when absent; the existing file is kept */
	char first[TU_PATH_MAX];
	tu_path(first, dir, "first.pem");
	assert_int_equal(lt_jwt_key_create(&g_key, first), LT_OK);
	assert_int_equal(lt_jwt_key_load(&k, first), LT_OK);
	lt_jwt_key_release(&k);
	tu_write_file(first, "someone else's key\n", 19);
	assert_int_equal(lt_jwt_key_create(&g_key, first), LT_EEXIST);
	size_t flen;
	char *fdata = tu_read_file(first, &flen);
	assert_string_equal(fdata, "someone else's key\n");
	free(fdata);
	assert_int_equal(count_temporaries(dir), 0);

	/* group or other bits: refused */
	static const mode_t loose[] = {0640, 0604, 0620, 0602, 0610, 0601, 0644};
	for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
		assert_int_equal(chmod(path, loose[i]), 0);
		assert_int_equal(lt_jwt_key_load(&k, path), LT_EDENIED);
		assert_null(k.n);
	}
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(lt_jwt_key_load(&k, path), LT_OK);
	lt_jwt_key_release(&k);
	assert_int_equal(chmod(path, 0600), 0);

	/* a symlink, even to a good file, and a directory: refused */
	char link[TU_PATH_MAX];
	tu_path(link, dir, "link.pem");
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(lt_jwt_key_load(&k, link), LT_EDENIED);
	assert_int_equal(lt_jwt_key_load(&k, dir), LT_EDENIED);

	/* garbage with the right mode: a syntax error */
	char junk[TU_PATH_MAX];
	tu_path(junk, dir, "junk.pem");
	tu_write_file(junk, "not a key\n", 10);
	chmod(junk, 0600);
	assert_int_equal(lt_jwt_key_load(&k, junk), LT_ESYNTAX);
	/* too large */
	char *big = calloc(1, LT_JWT_KEY_FILE_MAX + 1);
	memset(big, '\n', LT_JWT_KEY_FILE_MAX + 1);
	tu_write_file(junk, big, LT_JWT_KEY_FILE_MAX + 1);
	assert_int_equal(lt_jwt_key_load(&k, junk), LT_ETOOBIG);
	free(big);

	/* saving into a missing directory fails cleanly */
	char missing[TU_PATH_MAX];
	tu_path(missing, dir, "no/such/key.pem");
	assert_int_equal(lt_jwt_key_save(&g_key, missing), LT_EIO);
	tu_rmtree(dir);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generated_shape),
		cmocka_unit_test(test_kid_is_rfc7638_thumbprint),
		cmocka_unit_test(test_rfc7638_example),
		cmocka_unit_test(test_from_public_refusals),
		cmocka_unit_test(test_jwk),
		cmocka_unit_test(test_pem_round_trip),
		cmocka_unit_test(test_pem_pkcs1_banner),
		cmocka_unit_test(test_pem_refusals),
		cmocka_unit_test(test_pem_wrong_key_types),
		cmocka_unit_test(test_rs256_primitives),
		cmocka_unit_test(test_save_load),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
