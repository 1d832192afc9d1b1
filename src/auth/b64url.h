/*
 * b64url.h — base64url without padding (RFC 4648 §5, as JOSE uses it).
 *
 * Encoding never pads.  Decoding is strict, so that every byte string has
 * exactly one accepted text (JWT signatures and thumbprints are compared as
 * text): only [A-Za-z0-9_-]; no '=', '+', '/', whitespace or NUL; a length
 * of 1 mod 4 is refused; and the unused low bits of the last character must
 * be zero.  Pure; no allocation except through the caller's lt_buf.
 */
#ifndef LT_AUTH_B64URL_H
#define LT_AUTH_B64URL_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* Characters needed to encode n bytes (no padding, no NUL). */
size_t lt_b64url_encoded_len(size_t n);

/* Largest byte count a text of n characters can decode to. */
size_t lt_b64url_decoded_max(size_t n);

/* Write the encoding of src[0..n) to dst, which holds at least
 * lt_b64url_encoded_len(n) + 1 bytes; dst is NUL-terminated. */
void lt_b64url_encode_raw(const void *src, size_t n, char *dst);

/* Append the encoding of src[0..n) to b (LT_ETOOBIG at b's maximum). */
enum lt_err lt_b64url_encode(const void *src, size_t n, struct lt_buf *b);

/* Decode s[0..n) into out (cap bytes), the length into *out_len.
 * LT_ESYNTAX when s is not canonical unpadded base64url, LT_ETOOBIG when
 * the result would not fit in cap (out is then unspecified). */
enum lt_err lt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap,
			     size_t *out_len);

#endif
