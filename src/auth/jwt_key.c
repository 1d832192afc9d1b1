/*
 * jwt_key.c — RS256 keys over BearSSL.  See jwt_key.h.
 *
 * Owns the only copies of private key material in the process: the CRT
 * elements in key->priv, plus short-lived stack or heap copies (BearSSL's
 * keygen buffers, DER, PEM, decoder contexts, file contents), each wiped
 * with sodium_memzero before it goes out of scope.  BearSSL structs are built
 * on the stack from struct lt_jwt_key when needed and never stored, so that
 * bearssl.h stays out of the header.
 *
 * BearSSL's key decoder keeps only p, q, dp, dq and iq; n is recomputed from
 * p*q, and e with br_rsa_compute_pubexp, which works for keys whose primes
 * are 3 mod 4 (all keys BearSSL generates).  For other keys e is taken to be
 * 65537 and the sign-then-verify self-check decides; such keys can sign but
 * not be re-encoded (lt_jwt_key_to_pem needs d, which has the same limit).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bearssl.h>
#include <sodium.h>

#include "auth/b64url.h"
#include "auth/jwt_key.h"

#define PUBEXP_DEFAULT 65537u
#define DER_MAX (LT_JWT_KEY_FILE_MAX / 2)

/* DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): SEQUENCE {
 * SEQUENCE { OID 2.16.840.1.101.3.4.2.1, NULL }, OCTET STRING (32) }. */
static const unsigned char sha256_digest_info[19] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
};

static void to_br_pub(const struct lt_jwt_key *key, br_rsa_public_key *pk)
{
	pk->n = (unsigned char *)key->n;
	pk->nlen = key->n_len;
	pk->e = (unsigned char *)key->e;
	pk->elen = key->e_len;
}

static void to_br_priv(const struct lt_jwt_key *key, br_rsa_private_key *sk)
{
	unsigned char *p = key->priv;
	sk->n_bitlen = key->n_bits;
	sk->p = p;
	sk->plen = key->p_len;
	p += key->p_len;
	sk->q = p;
	sk->qlen = key->q_len;
	p += key->q_len;
	sk->dp = p;
	sk->dplen = key->dp_len;
	p += key->dp_len;
	sk->dq = p;
	sk->dqlen = key->dq_len;
	p += key->dq_len;
	sk->iq = p;
	sk->iqlen = key->iq_len;
}

void lt_jwt_key_release(struct lt_jwt_key *key)
{
	if (key->priv) {
		sodium_memzero(key->priv, key->priv_len);
		free(key->priv);
	}
	free(key->n);
	sodium_memzero(key, sizeof *key);
}

/* Bits in a big-endian number without leading zero bytes (n_len > 0). */
static uint32_t bit_length(const unsigned char *n, size_t n_len)
{
	uint32_t bits = (uint32_t)(n_len - 1) * 8;
	for (unsigned top = n[0]; top; top >>= 1)
		bits++;
	return bits;
}

static void strip_zeros(const unsigned char **p, size_t *len)
{
	while (*len > 0 && (*p)[0] == 0) {
		(*p)++;
		(*len)--;
	}
}

/* RFC 7638: SHA-256 over {"e":"..","kty":"RSA","n":".."} exactly. */
static enum lt_err compute_kid(struct lt_jwt_key *key)
{
	char storage[1024];
	struct lt_buf b;
	lt_buf_init(&b, storage, sizeof storage, sizeof storage - 1);
	lt_buf_puts(&b, "{\"e\":\"");
	lt_b64url_encode(key->e, key->e_len, &b);
	lt_buf_puts(&b, "\",\"kty\":\"RSA\",\"n\":\"");
	lt_b64url_encode(key->n, key->n_len, &b);
	enum lt_err err = lt_buf_puts(&b, "\"}");
	if (err == LT_OK) {
		unsigned char digest[32];
		br_sha256_context h;
		br_sha256_init(&h);
		br_sha256_update(&h, b.data, b.len);
		br_sha256_out(&h, digest);
		lt_b64url_encode_raw(digest, sizeof digest, key->kid);
	}
	lt_buf_release(&b);
	return err;
}

/* Fill the public half and the kid of a zeroed key. */
static enum lt_err set_public(struct lt_jwt_key *key, const unsigned char *n, size_t n_len,
			      const unsigned char *e, size_t e_len)
{
	strip_zeros(&n, &n_len);
	strip_zeros(&e, &e_len);
	if (n_len == 0 || n_len > LT_JWT_KEY_MAX_BITS / 8 || (n[n_len - 1] & 1) == 0)
		return LT_EINVAL;
	uint32_t bits = bit_length(n, n_len);
	if (bits < LT_JWT_KEY_MIN_BITS || bits > LT_JWT_KEY_MAX_BITS)
		return LT_EINVAL;
	if (e_len == 0 || e_len > sizeof key->e || (e[e_len - 1] & 1) == 0 ||
	    (e_len == 1 && e[0] < 3))
		return LT_EINVAL;
	key->n = malloc(n_len);
	if (!key->n)
		return LT_ENOMEM;
	memcpy(key->n, n, n_len);
	key->n_len = n_len;
	key->n_bits = bits;
	memcpy(key->e, e, e_len);
	key->e_len = e_len;
	return compute_kid(key);
}

/* Copy the CRT elements of sk into key->priv. */
static enum lt_err set_private(struct lt_jwt_key *key, const br_rsa_private_key *sk)
{
	size_t total = sk->plen + sk->qlen + sk->dplen + sk->dqlen + sk->iqlen;
	if (total == 0 || total > 5 * (LT_JWT_KEY_MAX_BITS / 16) + 16)
		return LT_EINVAL;
	key->priv = malloc(total);
	if (!key->priv)
		return LT_ENOMEM;
	key->priv_len = total;
	unsigned char *p = key->priv;
	memcpy(p, sk->p, sk->plen);
	p += sk->plen;
	memcpy(p, sk->q, sk->qlen);
	p += sk->qlen;
	memcpy(p, sk->dp, sk->dplen);
	p += sk->dplen;
	memcpy(p, sk->dq, sk->dqlen);
	p += sk->dqlen;
	memcpy(p, sk->iq, sk->iqlen);
	key->p_len = sk->plen;
	key->q_len = sk->qlen;
	key->dp_len = sk->dplen;
	key->dq_len = sk->dqlen;
	key->iq_len = sk->iqlen;
	return LT_OK;
}

/* Sign a fixed digest and verify it with the public half. */
static enum lt_err self_check(const struct lt_jwt_key *key)
{
	static const char msg[] = "leaky-tokens jwt key self-check";
	unsigned char digest[32], sig[LT_JWT_KEY_MAX_SIG];
	br_sha256_context h;
	br_sha256_init(&h);
	br_sha256_update(&h, msg, sizeof msg - 1);
	br_sha256_out(&h, digest);
	enum lt_err err = lt_jwt_key_rs256_sign(key, digest, sig, sizeof sig);
	return err == LT_OK ? LT_OK : LT_EINVAL;
}

enum lt_err lt_jwt_key_rs256_sign(const struct lt_jwt_key *key, const unsigned char hash[32],
				  unsigned char *sig, size_t cap)
{
	if (!key->priv)
		return LT_EINVAL;
	if (cap < key->n_len)
		return LT_ETOOBIG;
	br_rsa_private_key sk;
	to_br_priv(key, &sk);
	if (!br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, hash, 32, &sk, sig))
		return LT_EINVAL;
	/* A CRT fault would yield a signature that leaks a factor of n (the
	 * Bellcore attack); check before letting it out. */
	if (!lt_jwt_key_rs256_verify(key, hash, sig, key->n_len)) {
		sodium_memzero(sig, key->n_len);
		return LT_ECORRUPT;
	}
	return LT_OK;
}

bool lt_jwt_key_rs256_verify(const struct lt_jwt_key *key, const unsigned char hash[32],
			     const unsigned char *sig, size_t sig_len)
{
	unsigned char em[LT_JWT_KEY_MAX_SIG], want[LT_JWT_KEY_MAX_SIG];
	size_t k = key->n_len;
	if (!key->n || sig_len != k || k > sizeof em || k < 11 + sizeof sha256_digest_info + 32)
		return false;
	memcpy(em, sig, k);
	br_rsa_public_key pk;
	to_br_pub(key, &pk);
	if (!br_rsa_public_get_default()(em, k, &pk))
		return false; /* wrong length, or signature >= n */
	/* EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo hash */
	size_t ps = k - 3 - sizeof sha256_digest_info - 32;
	want[0] = 0x00;
	want[1] = 0x01;
	memset(want + 2, 0xFF, ps);
	want[2 + ps] = 0x00;
	memcpy(want + 3 + ps, sha256_digest_info, sizeof sha256_digest_info);
	memcpy(want + 3 + ps + sizeof sha256_digest_info, hash, 32);
	return sodium_memcmp(em, want, k) == 0;
}

enum lt_err lt_jwt_key_generate(struct lt_jwt_key *key, unsigned bits)
{
	memset(key, 0, sizeof *key);
	if (bits < LT_JWT_KEY_MIN_BITS || bits > LT_JWT_KEY_MAX_BITS)
		return LT_EINVAL;
	unsigned char seed[48];
	unsigned char kpriv[BR_RSA_KBUF_PRIV_SIZE(LT_JWT_KEY_MAX_BITS)];
	unsigned char kpub[BR_RSA_KBUF_PUB_SIZE(LT_JWT_KEY_MAX_BITS)];
	br_hmac_drbg_context rng;
	br_rsa_private_key sk;
	br_rsa_public_key pk;
	enum lt_err err;

	randombytes_buf(seed, sizeof seed);
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed);
	if (!br_rsa_keygen_get_default()(&rng.vtable, &sk, kpriv, &pk, kpub, bits,
					 PUBEXP_DEFAULT)) {
		err = LT_EIO;
		goto out;
	}
	err = set_private(key, &sk);
	if (!err)
		err = set_public(key, pk.n, pk.nlen, pk.e, pk.elen);
	if (!err && key->n_bits != bits)
		err = LT_EIO;
	if (!err)
		err = self_check(key);
out:
	sodium_memzero(seed, sizeof seed);
	sodium_memzero(kpriv, sizeof kpriv);
	sodium_memzero(&rng, sizeof rng);
	sodium_memzero(&sk, sizeof sk);
	if (err)
		lt_jwt_key_release(key);
	return err;
}

enum lt_err lt_jwt_key_from_public(struct lt_jwt_key *key, const unsigned char *n, size_t n_len,
				   const unsigned char *e, size_t e_len)
{
	memset(key, 0, sizeof *key);
	enum lt_err err = set_public(key, n, n_len, e, e_len);
	if (err)
		lt_jwt_key_release(key);
	return err;
}

struct der_sink {
	unsigned char buf[DER_MAX];
	size_t len;
	bool overflow;
};

static void der_append(void *ctx, const void *src, size_t len)
{
	struct der_sink *d = ctx;
	if (d->overflow || len > sizeof d->buf - d->len) {
		d->overflow = true;
		return;
	}
	memcpy(d->buf + d->len, src, len);
	d->len += len;
}

struct pem_state {
	br_pem_decoder_context pc;
	struct der_sink *der;
	bool in_key; /* inside a private key block */
	bool done;   /* that block ended cleanly */
};

/* Push p[0..n) through the PEM decoder, handling its events. */
static enum lt_err pem_feed(struct pem_state *st, const char *p, size_t n)
{
	while (n > 0 && !st->done) {
		size_t used = br_pem_decoder_push(&st->pc, p, n);
		p += used;
		n -= used;
		int ev = br_pem_decoder_event(&st->pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			const char *name = br_pem_decoder_name(&st->pc);
			st->in_key =
				!strcmp(name, "PRIVATE KEY") || !strcmp(name, "RSA PRIVATE KEY");
			br_pem_decoder_setdest(&st->pc, st->in_key ? der_append : NULL,
					       st->in_key ? st->der : NULL);
		} else if (ev == BR_PEM_END_OBJ) {
			st->done = st->in_key;
			st->in_key = false;
		} else if (ev == BR_PEM_ERROR) {
			return LT_ESYNTAX;
		} else if (used == 0) {
			return LT_ESYNTAX; /* no progress and no event: never loop */
		}
	}
	return LT_OK;
}

/* Extract the DER of the first private key block of the PEM text. */
static enum lt_err pem_to_der(const char *pem, size_t len, struct der_sink *der)
{
	struct pem_state *st = malloc(sizeof *st);
	if (!st)
		return LT_ENOMEM;
	br_pem_decoder_init(&st->pc);
	st->der = der;
	st->in_key = st->done = false;
	enum lt_err err = pem_feed(st, pem, len);
	/* The decoder needs a line end after the END banner: supply one. */
	if (!err && !st->done)
		err = pem_feed(st, "\n", 1);
	if (!err && der->overflow)
		err = LT_ETOOBIG;
	if (!err && !st->done)
		err = LT_ESYNTAX;
	sodium_memzero(st, sizeof *st);
	free(st);
	return err;
}

enum lt_err lt_jwt_key_from_pem(struct lt_jwt_key *key, const char *pem, size_t len)
{
	memset(key, 0, sizeof *key);
	if (len > LT_JWT_KEY_FILE_MAX)
		return LT_ETOOBIG;
	struct der_sink *der = calloc(1, sizeof *der);
	br_skey_decoder_context *sd = malloc(sizeof *sd);
	unsigned char n[LT_JWT_KEY_MAX_SIG], e[4];
	enum lt_err err;

	if (!der || !sd) {
		err = LT_ENOMEM;
		goto out;
	}
	err = pem_to_der(pem, len, der);
	if (err)
		goto out;
	br_skey_decoder_init(sd);
	br_skey_decoder_push(sd, der->buf, der->len);
	if (br_skey_decoder_last_error(sd) != 0) {
		err = LT_ESYNTAX;
		goto out;
	}
	const br_rsa_private_key *sk = br_skey_decoder_get_rsa(sd);
	if (!sk || sk->n_bitlen < LT_JWT_KEY_MIN_BITS || sk->n_bitlen > LT_JWT_KEY_MAX_BITS) {
		err = LT_EINVAL;
		goto out;
	}
	br_rsa_compute_modulus modulus = br_rsa_compute_modulus_get_default();
	size_t n_len = modulus(NULL, sk);
	if (n_len == 0 || n_len > sizeof n || modulus(n, sk) != n_len) {
		err = LT_EINVAL;
		goto out;
	}
	uint32_t pubexp = br_rsa_compute_pubexp_get_default()(sk);
	if (pubexp == 0)
		pubexp = PUBEXP_DEFAULT;
	e[0] = (unsigned char)(pubexp >> 24);
	e[1] = (unsigned char)(pubexp >> 16);
	e[2] = (unsigned char)(pubexp >> 8);
	e[3] = (unsigned char)pubexp;
	err = set_private(key, sk);
	if (!err)
		err = set_public(key, n, n_len, e, sizeof e);
	if (!err && key->n_bits != sk->n_bitlen)
		err = LT_EINVAL;
	if (!err)
		err = self_check(key);
out:
	if (der) {
		sodium_memzero(der, sizeof *der);
		free(der);
	}
	if (sd) {
		sodium_memzero(sd, sizeof *sd);
		free(sd);
	}
	if (err)
		lt_jwt_key_release(key);
	return err;
}

void lt_jwt_key_pem_free(char *pem, size_t len)
{
	if (!pem)
		return;
	sodium_memzero(pem, len);
	free(pem);
}

enum lt_err lt_jwt_key_to_pem(const struct lt_jwt_key *key, char **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (!key->priv)
		return LT_EINVAL;
	br_rsa_private_key sk;
	br_rsa_public_key pk;
	unsigned char d[LT_JWT_KEY_MAX_SIG];
	unsigned char *der = NULL;
	size_t der_len = 0, pem_len;
	char *pem = NULL;
	enum lt_err err = LT_OK;
	uint32_t pubexp = 0;

	to_br_priv(key, &sk);
	to_br_pub(key, &pk);
	for (size_t i = 0; i < key->e_len; i++)
		pubexp = pubexp << 8 | key->e[i];
	br_rsa_compute_privexp privexp = br_rsa_compute_privexp_get_default();
	size_t d_len = privexp(NULL, &sk, pubexp);
	if (d_len == 0 || d_len > sizeof d || privexp(d, &sk, pubexp) != d_len) {
		err = LT_EINVAL;
		goto out;
	}
	der_len = br_encode_rsa_pkcs8_der(NULL, &sk, &pk, d, d_len);
	der = malloc(der_len ? der_len : 1);
	if (!der) {
		err = LT_ENOMEM;
		goto out;
	}
	if (der_len == 0 || br_encode_rsa_pkcs8_der(der, &sk, &pk, d, d_len) != der_len) {
		err = LT_EINVAL;
		goto out;
	}
	pem_len = br_pem_encode(NULL, der, der_len, "PRIVATE KEY", BR_PEM_LINE64);
	pem = malloc(pem_len + 1);
	if (!pem) {
		err = LT_ENOMEM;
		goto out;
	}
	br_pem_encode(pem, der, der_len, "PRIVATE KEY", BR_PEM_LINE64);
	*out = pem;
	*out_len = pem_len;
out:
	sodium_memzero(d, sizeof d);
	if (der) {
		sodium_memzero(der, der_len);
		free(der);
	}
	return err;
}

enum lt_err lt_jwt_key_jwk(const struct lt_jwt_key *key, struct lt_buf *b)
{
	lt_buf_puts(b, "{\"kty\":\"RSA\",\"kid\":\"");
	lt_buf_puts(b, key->kid);
	lt_buf_puts(b, "\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"");
	lt_b64url_encode(key->n, key->n_len, b);
	lt_buf_puts(b, "\",\"e\":\"");
	lt_b64url_encode(key->e, key->e_len, b);
	return lt_buf_puts(b, "\"}");
}

/* Write all of p[0..n) to fd. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync the directory holding path. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else if (slash == path) {
		dir[0] = '/';
		dir[1] = '\0';
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return -1;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Write the key's PEM to a fresh PATH.tmp-XXXXXX (mkstemp: O_EXCL, 0600,
 * so concurrent writers never share a temporary), fsync it, then move it to
 * path: rename(2) when replacing, link(2) when the file must not exist. */
static enum lt_err write_key_file(const struct lt_jwt_key *key, const char *path, bool replace)
{
	char tmp[PATH_MAX];
	char *pem = NULL;
	size_t pem_len = 0;
	int fd = -1;
	bool created = false;
	enum lt_err err;

	int n = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return LT_ETOOBIG;
	err = lt_jwt_key_to_pem(key, &pem, &pem_len);
	if (err)
		goto out;
	err = LT_EIO;
	fd = mkstemp(tmp);
	if (fd < 0)
		goto out;
	created = true;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || fchmod(fd, 0600) != 0 ||
	    write_all(fd, pem, pem_len) != 0 || fsync(fd) != 0)
		goto out;
	int rc = close(fd);
	fd = -1;
	if (rc != 0)
		goto out;
	if (replace) {
		if (rename(tmp, path) != 0)
			goto out;
		created = false;
	} else if (link(tmp, path) != 0) {
		if (errno == EEXIST)
			err = LT_EEXIST;
		goto out;
	}
	if (fsync_parent(path) != 0)
		goto out;
	err = LT_OK;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	lt_jwt_key_pem_free(pem, pem_len);
	return err;
}

enum lt_err lt_jwt_key_save(const struct lt_jwt_key *key, const char *path)
{
	return write_key_file(key, path, true);
}

enum lt_err lt_jwt_key_create(const struct lt_jwt_key *key, const char *path)
{
	return write_key_file(key, path, false);
}

enum lt_err lt_jwt_key_load(struct lt_jwt_key *key, const char *path)
{
	memset(key, 0, sizeof *key);
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	enum lt_err err;

	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return LT_ENOTFOUND;
		return errno == ELOOP ? LT_EDENIED : LT_EIO;
	}
	if (fstat(fd, &st) != 0) {
		err = LT_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		err = LT_EDENIED;
		goto out;
	}
	if (st.st_size > LT_JWT_KEY_FILE_MAX) {
		err = LT_ETOOBIG;
		goto out;
	}
	buf = malloc(LT_JWT_KEY_FILE_MAX + 1);
	if (!buf) {
		err = LT_ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, LT_JWT_KEY_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = LT_EIO;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > LT_JWT_KEY_FILE_MAX) {
			err = LT_ETOOBIG; /* grew while we read */
			goto out;
		}
	}
	err = lt_jwt_key_from_pem(key, buf, len);
out:
	if (buf) {
		sodium_memzero(buf, LT_JWT_KEY_FILE_MAX + 1);
		free(buf);
	}
	close(fd);
	return err;
}
