/*
 * jwt.c — compact JWS (RS256) tokens: signing and strict verification.
 * See jwt.h for the rules.
 *
 * Owns nothing beyond the call: each function works on the caller's key,
 * claims and buffers plus stack storage and the cJSON trees it parses (freed
 * before returning).  Untrusted input is handled in a fixed order so that
 * as little as possible is parsed before the signature is known good: the
 * token's length and segment syntax, then the small header (≤ 1 KiB of
 * text), then the RSA check over the raw "header.payload" bytes, and only
 * then the payload JSON.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "util/json.h"
#include "util/utf8.h"

#define HEADER_SEG_MAX 1024 /* characters of the encoded header */
#define HEADER_MEMBERS_MAX 8
#define CLAIM_MEMBERS_MAX 32
#define KID_MAX 128 /* longer kids are unknown without asking */

const char *lt_jwt_fail_str(enum lt_jwt_fail why)
{
	switch (why) {
	case LT_JWT_FAIL_NONE: return "none";
	case LT_JWT_FAIL_MALFORMED: return "malformed";
	case LT_JWT_FAIL_BAD_ALG: return "bad_alg";
	case LT_JWT_FAIL_UNKNOWN_KID: return "unknown_kid";
	case LT_JWT_FAIL_BAD_SIGNATURE: return "bad_signature";
	case LT_JWT_FAIL_EXPIRED: return "expired";
	case LT_JWT_FAIL_NOT_YET_VALID: return "not_yet_valid";
	case LT_JWT_FAIL_WRONG_ISSUER: return "wrong_issuer";
	case LT_JWT_FAIL_WRONG_AUDIENCE: return "wrong_audience";
	case LT_JWT_FAIL_MISSING_CLAIM: return "missing_claim";
	}
	return "unknown";
}

/* Valid UTF-8 with no control characters. */
static bool text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7F)
			return false;
	}
	return lt_utf8_valid(s, n, NULL);
}

/* A NUL-terminated string field of at most max bytes, non-empty if asked. */
static bool field_ok(const char *s, size_t size, bool nonempty)
{
	size_t n = strnlen(s, size);
	return n < size && (!nonempty || n > 0) && text_ok(s, n);
}

static int role_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sort the roles and check they are distinct. */
static bool roles_sort_unique(struct lt_jwt_claims *c)
{
	qsort(c->roles, c->n_roles, sizeof c->roles[0], role_cmp);
	for (size_t i = 1; i < c->n_roles; i++)
		if (strcmp(c->roles[i - 1], c->roles[i]) == 0)
			return false;
	return true;
}

static bool time_ok(int64_t t)
{
	return t >= 0 && t <= LT_JSON_INT_MAX;
}

/* Check (and normalise: sorted roles) claims before signing them. */
static bool claims_ok(struct lt_jwt_claims *c)
{
	if (!field_ok(c->sub, sizeof c->sub, true) || !field_ok(c->iss, sizeof c->iss, true) ||
	    !field_ok(c->aud, sizeof c->aud, true) || !field_ok(c->tier, sizeof c->tier, false))
		return false;
	if (c->n_roles > LT_JWT_MAX_ROLES)
		return false;
	for (size_t i = 0; i < c->n_roles; i++)
		if (!field_ok(c->roles[i], sizeof c->roles[i], true))
			return false;
	if (!roles_sort_unique(c))
		return false;
	if (!time_ok(c->iat) || !time_ok(c->nbf) || !time_ok(c->exp) || c->nbf > c->exp ||
	    c->iat > c->exp)
		return false;
	size_t jl = strnlen(c->jti, sizeof c->jti);
	return jl == 0 || lt_uuid_valid(c->jti, jl);
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	br_sha256_context h;
	br_sha256_init(&h);
	br_sha256_update(&h, p, n);
	br_sha256_out(&h, out);
}

static void put_str_member(struct lt_buf *b, const char *name, const char *v)
{
	lt_buf_putc(b, '"');
	lt_buf_puts(b, name);
	lt_buf_puts(b, "\":");
	lt_buf_put_json_str(b, v, strlen(v));
}

static void put_int_member(struct lt_buf *b, const char *name, int64_t v)
{
	lt_buf_puts(b, ",\"");
	lt_buf_puts(b, name);
	lt_buf_puts(b, "\":");
	lt_buf_put_i64(b, v);
}

enum lt_err lt_jwt_sign(const struct lt_jwt_key *key, const struct lt_jwt_claims *claims,
			struct lt_buf *out_token)
{
	struct lt_jwt_claims c = *claims;
	char pstore[2048];
	struct lt_buf pl, tok;
	unsigned char digest[32], sig[LT_JWT_KEY_MAX_SIG];
	enum lt_err err;

	lt_buf_init(&pl, pstore, sizeof pstore, LT_JWT_MAX_TOKEN);
	lt_buf_init(&tok, NULL, 0, LT_JWT_MAX_TOKEN);
	if (!lt_jwt_key_has_private(key) || !claims_ok(&c)) {
		err = LT_EINVAL;
		goto out;
	}
	if (c.jti[0] == '\0')
		lt_uuid_v4(c.jti);

	lt_buf_puts(&pl, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"");
	lt_buf_puts(&pl, key->kid);
	lt_buf_puts(&pl, "\"}");
	lt_b64url_encode(pl.data, pl.len, &tok);
	lt_buf_putc(&tok, '.');

	lt_buf_reset(&pl);
	lt_buf_putc(&pl, '{');
	put_str_member(&pl, "sub", c.sub);
	lt_buf_putc(&pl, ',');
	put_str_member(&pl, "iss", c.iss);
	lt_buf_putc(&pl, ',');
	put_str_member(&pl, "aud", c.aud);
	lt_buf_puts(&pl, ",\"roles\":[");
	for (size_t i = 0; i < c.n_roles; i++) {
		if (i)
			lt_buf_putc(&pl, ',');
		lt_buf_put_json_str(&pl, c.roles[i], strlen(c.roles[i]));
	}
	lt_buf_putc(&pl, ']');
	if (c.tier[0]) {
		lt_buf_putc(&pl, ',');
		put_str_member(&pl, "tier", c.tier);
	}
	put_int_member(&pl, "iat", c.iat);
	put_int_member(&pl, "nbf", c.nbf);
	put_int_member(&pl, "exp", c.exp);
	lt_buf_putc(&pl, ',');
	put_str_member(&pl, "jti", c.jti);
	lt_buf_putc(&pl, '}');
	if (pl.err) {
		err = pl.err;
		goto out;
	}
	err = lt_b64url_encode(pl.data, pl.len, &tok);
	if (err)
		goto out;

	sha256(tok.data, tok.len, digest);
	err = lt_jwt_key_rs256_sign(key, digest, sig, sizeof sig);
	if (err)
		goto out;
	lt_buf_putc(&tok, '.');
	err = lt_b64url_encode(sig, key->n_len, &tok);
	if (err)
		goto out;
	err = lt_buf_append(out_token, tok.data, tok.len);
out:
	lt_buf_release(&pl);
	lt_buf_release(&tok);
	return err;
}

/* Every member name of obj distinct, and at most max members. */
static bool names_unique(const cJSON *obj, size_t max)
{
	size_t n = 0;
	for (const cJSON *a = obj->child; a; a = a->next) {
		if (++n > max || !a->string)
			return false;
		for (const cJSON *b = obj->child; b != a; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return false;
	}
	return true;
}

/* Syntax of a segment without decoding it: alphabet and length. */
static bool segment_ok(const char *s, size_t n)
{
	unsigned char scratch[96];
	while (n >= 128) { /* whole quartets, 96 bytes at a time */
		size_t got;
		if (lt_b64url_decode(s, 128, scratch, sizeof scratch, &got) != LT_OK)
			return false;
		s += 128;
		n -= 128;
	}
	size_t got;
	return lt_b64url_decode(s, n, scratch, sizeof scratch, &got) == LT_OK;
}

/* Parse text[0..n) as a JSON object with distinct member names. */
static enum lt_jwt_fail parse_object(const unsigned char *text, size_t n, size_t max_members,
				     cJSON **out, enum lt_err *err)
{
	size_t pos;
	*err = lt_json_parse((const char *)text, n, out, &pos);
	if (*err == LT_ENOMEM)
		return LT_JWT_FAIL_MALFORMED;
	*err = LT_OK;
	if (!*out)
		return LT_JWT_FAIL_MALFORMED;
	if (!cJSON_IsObject(*out) || !names_unique(*out, max_members))
		return LT_JWT_FAIL_MALFORMED;
	return LT_JWT_FAIL_NONE;
}

/* The header's checks; *kid points into the tree. */
static enum lt_jwt_fail check_header(const cJSON *h, const char **kid)
{
	const char *alg, *typ;
	enum lt_err e = lt_json_get_str(h, "alg", &alg);
	if (e != LT_OK)
		return LT_JWT_FAIL_MALFORMED;
	if (strcmp(alg, "RS256") != 0)
		return LT_JWT_FAIL_BAD_ALG;
	for (const cJSON *m = h->child; m; m = m->next)
		if (strcmp(m->string, "alg") && strcmp(m->string, "kid") &&
		    strcmp(m->string, "typ"))
			return LT_JWT_FAIL_MALFORMED; /* crit, jku, jwk, x5u...: never */
	e = lt_json_get_str(h, "typ", &typ);
	if (e == LT_OK ? strcmp(typ, "JWT") != 0 : e != LT_ENOTFOUND)
		return LT_JWT_FAIL_MALFORMED;
	e = lt_json_get_str(h, "kid", kid);
	if (e == LT_ENOTFOUND)
		return LT_JWT_FAIL_UNKNOWN_KID;
	if (e != LT_OK)
		return LT_JWT_FAIL_MALFORMED;
	return LT_JWT_FAIL_NONE;
}

static enum lt_jwt_fail get_str(const cJSON *obj, const char *name, char *dst, size_t size,
				bool required)
{
	const char *s;
	dst[0] = '\0';
	enum lt_err e = lt_json_get_str(obj, name, &s);
	if (e == LT_ENOTFOUND)
		return required ? LT_JWT_FAIL_MISSING_CLAIM : LT_JWT_FAIL_NONE;
	if (e != LT_OK)
		return LT_JWT_FAIL_MALFORMED;
	size_t n = strlen(s);
	if (n == 0 || n >= size || !text_ok(s, n))
		return LT_JWT_FAIL_MALFORMED;
	memcpy(dst, s, n + 1);
	return LT_JWT_FAIL_NONE;
}

static enum lt_jwt_fail get_time(const cJSON *obj, const char *name, int64_t *out)
{
	enum lt_err e = lt_json_get_i64(obj, name, 0, LT_JSON_INT_MAX, out);
	if (e == LT_ENOTFOUND)
		return LT_JWT_FAIL_MISSING_CLAIM;
	return e == LT_OK ? LT_JWT_FAIL_NONE : LT_JWT_FAIL_MALFORMED;
}

static enum lt_jwt_fail get_roles(const cJSON *obj, struct lt_jwt_claims *c)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "roles");
	const cJSON *it;
	if (!arr || cJSON_IsNull(arr))
		return LT_JWT_FAIL_MISSING_CLAIM;
	if (!cJSON_IsArray(arr))
		return LT_JWT_FAIL_MALFORMED;
	c->n_roles = 0;
	cJSON_ArrayForEach(it, arr)
	{
		if (c->n_roles == LT_JWT_MAX_ROLES || !cJSON_IsString(it))
			return LT_JWT_FAIL_MALFORMED;
		size_t n = strlen(it->valuestring);
		if (n == 0 || n > LT_JWT_ROLE_MAX || !text_ok(it->valuestring, n))
			return LT_JWT_FAIL_MALFORMED;
		memcpy(c->roles[c->n_roles++], it->valuestring, n + 1);
	}
	return roles_sort_unique(c) ? LT_JWT_FAIL_NONE : LT_JWT_FAIL_MALFORMED;
}

/* All claims, in a fixed order; the first failure wins. */
static enum lt_jwt_fail read_claims(const cJSON *p, struct lt_jwt_claims *c)
{
	enum lt_jwt_fail f;
	if ((f = get_str(p, "sub", c->sub, sizeof c->sub, true)) ||
	    (f = get_str(p, "iss", c->iss, sizeof c->iss, true)) ||
	    (f = get_str(p, "aud", c->aud, sizeof c->aud, true)) ||
	    (f = get_str(p, "tier", c->tier, sizeof c->tier, false)) ||
	    (f = get_str(p, "jti", c->jti, sizeof c->jti, true)) || (f = get_roles(p, c)) ||
	    (f = get_time(p, "iat", &c->iat)) || (f = get_time(p, "nbf", &c->nbf)) ||
	    (f = get_time(p, "exp", &c->exp)))
		return f;
	if (!lt_uuid_valid(c->jti, strlen(c->jti)))
		return LT_JWT_FAIL_MALFORMED;
	return LT_JWT_FAIL_NONE;
}

enum lt_err lt_jwt_verify(const char *token, size_t len, lt_jwt_key_lookup lookup, void *lookup_arg,
			  int64_t now_s, int64_t skew_s, const char *iss, const char *aud,
			  struct lt_jwt_claims *out, enum lt_jwt_fail *why)
{
	assert(skew_s >= 0 && skew_s <= LT_JWT_MAX_SKEW);
	enum lt_jwt_fail f = LT_JWT_FAIL_MALFORMED;
	enum lt_err err = LT_OK;
	cJSON *hdr = NULL, *pay = NULL;
	unsigned char hbuf[HEADER_SEG_MAX / 4 * 3], sig[LT_JWT_KEY_MAX_SIG], digest[32];
	unsigned char *pbuf = NULL;
	const char *kid = NULL;
	const struct lt_jwt_key *key;
	size_t hlen, slen, plen;

	memset(out, 0, sizeof *out);
	if (!token || len == 0 || len > LT_JWT_MAX_TOKEN)
		goto out;
	const char *d1 = memchr(token, '.', len);
	if (!d1)
		goto out;
	const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
		goto out;
	const char *hs = token, *ps = d1 + 1, *ss = d2 + 1;
	size_t hn = (size_t)(d1 - token), pn = (size_t)(d2 - ps), sn = len - (size_t)(ss - token);
	if (hn == 0 || pn == 0 || hn > HEADER_SEG_MAX || !segment_ok(ps, pn) || !segment_ok(ss, sn))
		goto out;
	if (lt_b64url_decode(hs, hn, hbuf, sizeof hbuf, &hlen) != LT_OK)
		goto out;

	if ((f = parse_object(hbuf, hlen, HEADER_MEMBERS_MAX, &hdr, &err)))
		goto out;
	if ((f = check_header(hdr, &kid)))
		goto out;
	size_t kid_len = strlen(kid);
	f = LT_JWT_FAIL_UNKNOWN_KID;
	if (kid_len == 0 || kid_len > KID_MAX)
		goto out;
	key = lookup(lookup_arg, kid, kid_len);
	if (!key || strlen(key->kid) != kid_len || memcmp(key->kid, kid, kid_len) != 0)
		goto out;

	f = LT_JWT_FAIL_BAD_SIGNATURE;
	if (lt_b64url_decode(ss, sn, sig, sizeof sig, &slen) != LT_OK || slen != key->n_len)
		goto out;
	sha256(token, (size_t)(d2 - token), digest);
	if (!lt_jwt_key_rs256_verify(key, digest, sig, slen))
		goto out;

	f = LT_JWT_FAIL_MALFORMED;
	pbuf = malloc(lt_b64url_decoded_max(pn) + 1);
	if (!pbuf) {
		err = LT_ENOMEM;
		goto out;
	}
	if (lt_b64url_decode(ps, pn, pbuf, lt_b64url_decoded_max(pn) + 1, &plen) != LT_OK)
		goto out;
	if ((f = parse_object(pbuf, plen, CLAIM_MEMBERS_MAX, &pay, &err)))
		goto out;
	if ((f = read_claims(pay, out)))
		goto out;
	if (strcmp(out->iss, iss) != 0)
		f = LT_JWT_FAIL_WRONG_ISSUER;
	else if (strcmp(out->aud, aud) != 0)
		f = LT_JWT_FAIL_WRONG_AUDIENCE;
	else if (out->exp + skew_s <= now_s)
		f = LT_JWT_FAIL_EXPIRED;
	else if (out->nbf - skew_s > now_s)
		f = LT_JWT_FAIL_NOT_YET_VALID;
out:
	cJSON_Delete(hdr);
	cJSON_Delete(pay);
	free(pbuf);
	*why = f;
	if (f != LT_JWT_FAIL_NONE) {
		memset(out, 0, sizeof *out);
		if (err == LT_OK)
			err = LT_EDENIED;
	}
	return err;
}
