/*
 * buf.h — a bounded, growable byte buffer (curl's dynbuf, with a maximum).
 *
 * A buffer starts on caller-provided storage (often the stack) or empty, and
 * moves to the heap when it outgrows it.  It never grows past `max`: an append
 * that would is refused with LT_ETOOBIG and leaves the buffer unchanged.
 * The bytes are always NUL-terminated (the NUL is not counted in len).
 * Errors are sticky (like curl's dynbuf): once an append fails, later ones
 * fail too and b->err says why, so a writer may append freely and check once.
 * Ownership: lt_buf_release() frees heap storage; caller storage is the
 * caller's.  Not thread-safe; one owner at a time.
 */
#ifndef LT_UTIL_BUF_H
#define LT_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct lt_buf {
	char *data;	 /* NUL-terminated contents */
	size_t len;	 /* bytes used, excluding the NUL */
	size_t cap;	 /* bytes available including the NUL */
	size_t max;	 /* largest len allowed */
	bool heap;	 /* data was malloc'd by us */
	enum lt_err err; /* sticky: after a failed append, every append fails */
};

/* Start on `storage` (cap bytes, may be NULL with cap 0). */
void lt_buf_init(struct lt_buf *b, char *storage, size_t cap, size_t max);
void lt_buf_release(struct lt_buf *b);
void lt_buf_reset(struct lt_buf *b);

enum lt_err lt_buf_append(struct lt_buf *b, const void *p, size_t n);
enum lt_err lt_buf_puts(struct lt_buf *b, const char *s);
enum lt_err lt_buf_putc(struct lt_buf *b, char c);
enum lt_err lt_buf_printf(struct lt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum lt_err lt_buf_put_i64(struct lt_buf *b, int64_t v);
enum lt_err lt_buf_put_u64(struct lt_buf *b, uint64_t v);

/* Append s[0..n) as a JSON string literal, quotes included.  Control
 * characters, quote and backslash are escaped; invalid UTF-8 bytes are
 * replaced by U+FFFD so the output is always valid JSON. */
enum lt_err lt_buf_put_json_str(struct lt_buf *b, const char *s, size_t n);

/* Take the heap data out of the buffer (copying caller storage if needed);
 * the caller frees the result.  The buffer is left empty. */
enum lt_err lt_buf_detach(struct lt_buf *b, char **out, size_t *out_len);

#endif
