/*
 * jwt.h — issuing and verifying the gateway's RS256 JSON Web Tokens.
 *
 * Token format (API.md §1): header {"alg":"RS256","typ":"JWT","kid":K};
 * claims {"sub","iss","aud","roles":[sorted],"tier","iat","nbf","exp","jti"},
 * times in integer Unix seconds.
 *
 * Verification pins the algorithm: RS256 is the only one this module knows,
 * the key comes from the caller's lookup by `kid`, and "alg" in the header is
 * only checked to be exactly "RS256" ("none", "HS256", "RS512", "rs256" all
 * fail with LT_JWT_FAIL_BAD_ALG).  The header may hold only alg, kid and
 * typ (typ, if present, exactly "JWT"); duplicate member names anywhere are
 * refused.  Claims are read only after the signature has been checked.
 * Every token we sign has all of sub, iss, aud, roles, iat, nbf, exp and
 * jti; all are required when verifying (tier is optional).  Unknown claims
 * are ignored.
 *
 * Pure: no clock (now is a parameter), no files, no globals.  Thread-safe
 * as long as the keys are not released while in use.  lt_jwt_sign uses
 * libsodium's CSPRNG for a missing jti: sodium_init() must have run.
 */
#ifndef LT_AUTH_JWT_H
#define LT_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt_key.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/uuid.h"

#define LT_JWT_MAX_TOKEN 8192 /* longest token text accepted */
#define LT_JWT_MAX_ROLES 8
#define LT_JWT_ROLE_MAX 32 /* bytes per role */
#define LT_JWT_SUB_MAX 64
#define LT_JWT_ISS_MAX 128
#define LT_JWT_AUD_MAX 128
#define LT_JWT_TIER_MAX 32
#define LT_JWT_DEFAULT_SKEW 60 /* seconds (API.md §1) */
#define LT_JWT_MAX_SKEW 3600   /* larger skews are a caller bug */

/*
 * Claims, by value: fixed-size NUL-terminated strings, so a struct can be
 * copied (the token cache stores them) and needs no release.  Strings are
 * valid UTF-8 without control characters; sub, iss, aud are non-empty;
 * roles[0..n_roles) are non-empty, distinct and sorted (strcmp order).
 */
struct lt_jwt_claims {
	char sub[LT_JWT_SUB_MAX + 1];
	char iss[LT_JWT_ISS_MAX + 1];
	char aud[LT_JWT_AUD_MAX + 1];
	char tier[LT_JWT_TIER_MAX + 1]; /* "" when absent */
	char jti[LT_UUID_LEN];		/* canonical UUID */
	char roles[LT_JWT_MAX_ROLES][LT_JWT_ROLE_MAX + 1];
	size_t n_roles;
	int64_t iat, nbf, exp; /* Unix seconds, 0..2^53-1 */
};

/* Why a token was refused: for logs and metrics only.  The client always
 * gets the same plain 401.  Append-only. */
enum lt_jwt_fail {
	LT_JWT_FAIL_NONE = 0,
	LT_JWT_FAIL_MALFORMED,	   /* not three strict base64url segments of JSON
				       objects, too long, bad types or bounds,
				       duplicate names, unknown header fields */
	LT_JWT_FAIL_BAD_ALG,	   /* alg is not exactly "RS256" */
	LT_JWT_FAIL_UNKNOWN_KID,   /* kid absent or not known to the lookup */
	LT_JWT_FAIL_BAD_SIGNATURE, /* wrong length or does not verify */
	LT_JWT_FAIL_EXPIRED,	   /* exp <= now - skew */
	LT_JWT_FAIL_NOT_YET_VALID, /* nbf > now + skew */
	LT_JWT_FAIL_WRONG_ISSUER,
	LT_JWT_FAIL_WRONG_AUDIENCE,
	LT_JWT_FAIL_MISSING_CLAIM, /* a required claim is absent (or null) */
};

/* Static name ("malformed", "bad_alg", ...); never NULL. */
const char *lt_jwt_fail_str(enum lt_jwt_fail why);

/*
 * Find the verification key for kid[0..kid_len) (not NUL-terminated), or
 * NULL.  The returned key must stay valid until lt_jwt_verify returns; it is
 * not kept.  Its own kid must equal the one asked for (checked).
 */
typedef const struct lt_jwt_key *(*lt_jwt_key_lookup)(void *arg, const char *kid, size_t kid_len);

/*
 * Sign claims with key (which must have its private half) and append the
 * compact token to out_token; nothing is appended on error.  An empty
 * claims->jti gets a fresh UUID v4 (read it back with lt_jwt_verify if it
 * is needed).  The roles are emitted sorted.  LT_EINVAL if the claims would
 * not pass lt_jwt_verify's bounds (empty sub/iss/aud, control characters or
 * invalid UTF-8, too many or duplicate roles, times outside 0..2^53-1,
 * nbf > exp, a non-canonical jti) or the key has no private half;
 * LT_ETOOBIG at out_token's maximum; LT_ECORRUPT if the RSA self-check of
 * the signature fails; LT_ENOMEM.
 */
enum lt_err lt_jwt_sign(const struct lt_jwt_key *key, const struct lt_jwt_claims *claims,
			struct lt_buf *out_token);

/*
 * Verify token[0..len) at time now_s with a clock skew of skew_s seconds
 * (0..LT_JWT_MAX_SKEW; LT_JWT_DEFAULT_SKEW normally), requiring iss and aud
 * to equal the given strings.  LT_OK with *out filled and *why =
 * LT_JWT_FAIL_NONE; LT_EDENIED with *why set (out zeroed) when the token is
 * refused — the caller answers 401, not lt_err's usual 403; LT_ENOMEM if
 * the JSON parser ran out of memory (*why = LT_JWT_FAIL_MALFORMED).
 *
 * Checks, in order: length and segments; header (base64url, JSON object,
 * alg, typ, kid); key lookup; signature length and value; claims JSON and
 * types; iss; aud; exp > now - skew; nbf <= now + skew.
 */
enum lt_err lt_jwt_verify(const char *token, size_t len, lt_jwt_key_lookup lookup, void *lookup_arg,
			  int64_t now_s, int64_t skew_s, const char *iss, const char *aud,
			  struct lt_jwt_claims *out, enum lt_jwt_fail *why);

#endif
