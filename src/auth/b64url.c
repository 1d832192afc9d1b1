/*
 * b64url.c — strict unpadded base64url.  See b64url.h.
 *
 * Table-driven, branch-light, no allocation.  Not constant-time: it encodes
 * public data (JWT segments, key moduli, thumbprints) and the PEM of private
 * keys goes through BearSSL's own encoder instead.
 */
#include <stdint.h>

#include "auth/b64url.h"

static const char enc_tab[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of a base64url character, or -1. */
static int dec_char(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

size_t lt_b64url_encoded_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t lt_b64url_decoded_max(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

void lt_b64url_encode_raw(const void *src, size_t n, char *dst)
{
	const unsigned char *p = src;
	size_t i = 0, o = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		dst[o++] = enc_tab[v >> 18];
		dst[o++] = enc_tab[(v >> 12) & 63];
		dst[o++] = enc_tab[(v >> 6) & 63];
		dst[o++] = enc_tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		dst[o++] = enc_tab[v >> 18];
		dst[o++] = enc_tab[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		dst[o++] = enc_tab[v >> 18];
		dst[o++] = enc_tab[(v >> 12) & 63];
		dst[o++] = enc_tab[(v >> 6) & 63];
	}
	dst[o] = '\0';
}

enum lt_err lt_b64url_encode(const void *src, size_t n, struct lt_buf *b)
{
	const unsigned char *p = src;
	char chunk[257]; /* 192 input bytes at a time */
	enum lt_err err = b->err;
	while (!err && n > 0) {
		size_t take = n > 192 ? 192 : n;
		lt_b64url_encode_raw(p, take, chunk);
		err = lt_buf_append(b, chunk, lt_b64url_encoded_len(take));
		p += take;
		n -= take;
	}
	return err;
}

enum lt_err lt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap,
			     size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t rem = n % 4, i = 0, o = 0;
	if (rem == 1)
		return LT_ESYNTAX;
	if (lt_b64url_decoded_max(n) > cap) {
		/* still tell a syntax error apart from a size error */
		for (size_t k = 0; k < n; k++)
			if (dec_char(p[k]) < 0)
				return LT_ESYNTAX;
		return LT_ETOOBIG;
	}
	for (; i + 4 <= n; i += 4) {
		int a = dec_char(p[i]), b = dec_char(p[i + 1]), c = dec_char(p[i + 2]),
		    d = dec_char(p[i + 3]);
		if ((a | b | c | d) < 0)
			return LT_ESYNTAX;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	if (rem == 2) {
		int a = dec_char(p[i]), b = dec_char(p[i + 1]);
		if ((a | b) < 0 || (b & 15) != 0)
			return LT_ESYNTAX;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
	} else if (rem == 3) {
		int a = dec_char(p[i]), b = dec_char(p[i + 1]), c = dec_char(p[i + 2]);
		if ((a | b | c) < 0 || (c & 3) != 0)
			return LT_ESYNTAX;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
	}
	*out_len = o;
	return LT_OK;
}
