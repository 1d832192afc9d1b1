/*
 * utf8.h — UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).  Pure.
 */
#ifndef LT_UTIL_UTF8_H
#define LT_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid sequence starting at s[0], given n > 0 bytes
 * available; 0 if the bytes there are not valid UTF-8. */
size_t lt_utf8_seq(const unsigned char *s, size_t n);

/* True if s[0..n) is valid UTF-8.  On false, *bad_at (if not NULL) is the
 * offset of the first byte of the first invalid sequence. */
bool lt_utf8_valid(const char *s, size_t n, size_t *bad_at);

#endif
