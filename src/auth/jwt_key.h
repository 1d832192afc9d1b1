/*
 * jwt_key.h — RS256 signing keys: generation, PEM storage, the public JWK and
 * its RFC 7638 thumbprint (the `kid`), and the raw PKCS#1 v1.5 primitives.
 *
 * Owns: struct lt_jwt_key and every byte it points to.  A key is RSA with a
 * modulus of LT_JWT_KEY_MIN_BITS..LT_JWT_KEY_MAX_BITS bits; generated keys
 * are 2048 bits with e = 65537.  A key either has its private half (it was
 * generated or loaded from PEM) or is public-only (built from n and e, as for
 * a JWKS entry).  Stored form: unencrypted PKCS#8 DER in a PEM "PRIVATE KEY"
 * block, in a file of mode 0600 owned by the running user.
 *
 * Every constructor checks the key before returning it: modulus size and
 * parity, exponent, and for private keys a sign-then-verify round trip with
 * the derived public half (so a damaged or mismatched file is refused rather
 * than issuing tokens nobody can verify).
 *
 * Ownership: constructors (lt_jwt_key_generate, _from_pem, _from_public,
 * _load) fill a caller-provided struct, which the caller must pass to
 * lt_jwt_key_release exactly once; release wipes the private material.  On
 * error the struct is left released (safe to release again).  PEM text from
 * lt_jwt_key_to_pem is the caller's and is freed with lt_jwt_key_pem_free,
 * which wipes it.
 *
 * Thread safety: a constructed key is immutable; any number of threads may
 * sign, verify and render with it concurrently.  Constructors and release
 * need exclusive access.  Generation uses libsodium's CSPRNG: sodium_init()
 * must have run.
 */
#ifndef LT_AUTH_JWT_KEY_H
#define LT_AUTH_JWT_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

/* Sizes: generated keys, accepted keys, the largest signature (bytes), the
 * kid (base64url of a SHA-256 digest, no padding) and the largest key file
 * or PEM text accepted. */
#define LT_JWT_KEY_BITS 2048
#define LT_JWT_KEY_MIN_BITS 2048
#define LT_JWT_KEY_MAX_BITS 4096
#define LT_JWT_KEY_MAX_SIG (LT_JWT_KEY_MAX_BITS / 8)
#define LT_JWT_KID_LEN 43
#define LT_JWT_KEY_FILE_MAX 16384

struct lt_jwt_key {
	uint32_t n_bits;    /* exact modulus size in bits */
	unsigned char *n;   /* modulus, big-endian, no leading zero byte */
	size_t n_len;	    /* (n_bits + 7) / 8: also the signature length */
	unsigned char e[4]; /* public exponent, big-endian, no leading zero */
	size_t e_len;
	/* Private half (CRT form), all in one allocation; NULL if public-only. */
	unsigned char *priv;
	size_t priv_len;
	size_t p_len, q_len, dp_len, dq_len, iq_len; /* p|q|dp|dq|iq in priv */
	/* RFC 7638 thumbprint, base64url: the JWT `kid` */
	char kid[LT_JWT_KID_LEN + 1];
};

/* Generate a fresh key of `bits` bits (LT_JWT_KEY_BITS normally) with
 * e = 65537.  LT_EINVAL for a size outside MIN..MAX, LT_ENOMEM, LT_EIO if
 * BearSSL's generator fails. */
enum lt_err lt_jwt_key_generate(struct lt_jwt_key *key, unsigned bits);

/* Decode the first private key in PEM text pem[0..len): a "PRIVATE KEY"
 * (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1) block.  LT_ESYNTAX if there is no
 * such block or it does not decode, LT_EINVAL for a non-RSA key, a size
 * outside MIN..MAX or a key that fails its self-check, LT_ETOOBIG past
 * LT_JWT_KEY_FILE_MAX, LT_ENOMEM. */
enum lt_err lt_jwt_key_from_pem(struct lt_jwt_key *key, const char *pem, size_t len);

/* A public-only key from its modulus and exponent (big-endian; leading zero
 * bytes allowed).  LT_EINVAL if n is even or outside MIN..MAX bits, or e is
 * not an odd value in 3..2^32-1. */
enum lt_err lt_jwt_key_from_public(struct lt_jwt_key *key, const unsigned char *n, size_t n_len,
				   const unsigned char *e, size_t e_len);

/* The private key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----", 64-column
 * lines, LF).  *out is NUL-terminated, *out_len excludes the NUL; free it
 * with lt_jwt_key_pem_free.  LT_EINVAL for a public-only key, LT_ENOMEM. */
enum lt_err lt_jwt_key_to_pem(const struct lt_jwt_key *key, char **out, size_t *out_len);

/* Wipe and free PEM text from lt_jwt_key_to_pem (NULL is fine). */
void lt_jwt_key_pem_free(char *pem, size_t len);

/* Append the public JWK object
 *   {"kty":"RSA","kid":"...","use":"sig","alg":"RS256","n":"...","e":"..."}
 * to b.  LT_ETOOBIG at b's maximum. */
enum lt_err lt_jwt_key_jwk(const struct lt_jwt_key *key, struct lt_buf *b);

/* Write the key's PEM to path atomically: a fresh path.tmp-XXXXXX is
 * created 0600 (unique, so concurrent writers such as leakyd and leakyctl
 * never share one), written, fsync'd, renamed over path, and the directory
 * fsync'd.  LT_EINVAL for a public-only key, LT_EIO on any I/O failure (the
 * temporary is removed), LT_ETOOBIG for an overlong path. */
enum lt_err lt_jwt_key_save(const struct lt_jwt_key *key, const char *path);

/* As lt_jwt_key_save, but never replaces: LT_EEXIST if path exists (the
 * file is moved into place with link(2)), so of two processes creating the
 * first key at once exactly one wins and the other loads the winner's. */
enum lt_err lt_jwt_key_create(const struct lt_jwt_key *key, const char *path);

/* Load a key written by lt_jwt_key_save or _create.  LT_ENOTFOUND if path does not
 * exist; LT_EDENIED if it is not a regular file owned by this user with no
 * group or other permission bits (symlinks are refused); LT_ETOOBIG past
 * LT_JWT_KEY_FILE_MAX; LT_EIO on read errors; else as lt_jwt_key_from_pem. */
enum lt_err lt_jwt_key_load(struct lt_jwt_key *key, const char *path);

/* Free the key's storage, wiping the private half; the struct is left
 * zeroed.  Safe on a zeroed or already released struct. */
void lt_jwt_key_release(struct lt_jwt_key *key);

static inline bool lt_jwt_key_has_private(const struct lt_jwt_key *key)
{
	return key->priv != NULL;
}

/* RSASSA-PKCS1-v1_5 with SHA-256 over a precomputed digest: write the
 * signature (key->n_len bytes) to sig (cap bytes).  LT_EINVAL for a
 * public-only key, LT_ETOOBIG if cap < key->n_len, LT_ECORRUPT if the
 * signature fails to verify under the key's own public half (a fault in the
 * CRT computation; the signature is wiped, never returned). */
enum lt_err lt_jwt_key_rs256_sign(const struct lt_jwt_key *key, const unsigned char hash[32],
				  unsigned char *sig, size_t cap);

/* True if sig[0..sig_len) is an RSASSA-PKCS1-v1_5 SHA-256 signature of the
 * digest under key.  The whole encoded message is rebuilt and compared in
 * constant time (RFC 8017 §8.2.2: encode, then compare), so the padding,
 * the DigestInfo (SHA-256 OID with NULL parameters) and the hash are all
 * checked; sig_len must equal key->n_len. */
bool lt_jwt_key_rs256_verify(const struct lt_jwt_key *key, const unsigned char hash[32],
			     const unsigned char *sig, size_t sig_len);

#endif
