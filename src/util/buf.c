/*
 * buf.c — bounded growable buffer.  See buf.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"

void lt_buf_init(struct lt_buf *b, char *storage, size_t cap, size_t max)
{
	b->data = storage;
	b->cap = storage ? cap : 0;
	b->len = 0;
	b->max = max;
	b->heap = false;
	b->err = LT_OK;
	if (b->data && b->cap)
		b->data[0] = '\0';
}

void lt_buf_release(struct lt_buf *b)
{
	if (b->heap)
		free(b->data);
	b->data = NULL;
	b->cap = b->len = 0;
	b->heap = false;
}

void lt_buf_reset(struct lt_buf *b)
{
	b->len = 0;
	b->err = LT_OK;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for n more bytes plus the NUL. */
static enum lt_err reserve(struct lt_buf *b, size_t n)
{
	if (b->err)
		return b->err;
	if (n > b->max - b->len)
		return b->err = LT_ETOOBIG;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return LT_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p;
	if (b->heap) {
		p = realloc(b->data, cap);
		if (!p)
			return b->err = LT_ENOMEM;
	} else {
		p = malloc(cap);
		if (!p)
			return b->err = LT_ENOMEM;
		if (b->len)
			memcpy(p, b->data, b->len);
		p[b->len] = '\0';
	}
	b->data = p;
	b->cap = cap;
	b->heap = true;
	return LT_OK;
}

enum lt_err lt_buf_append(struct lt_buf *b, const void *p, size_t n)
{
	enum lt_err err = reserve(b, n);
	if (err)
		return err;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return LT_OK;
}

enum lt_err lt_buf_puts(struct lt_buf *b, const char *s)
{
	return lt_buf_append(b, s, strlen(s));
}

enum lt_err lt_buf_putc(struct lt_buf *b, char c)
{
	return lt_buf_append(b, &c, 1);
}

enum lt_err lt_buf_printf(struct lt_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (b->err)
		return b->err;
	if (n < 0)
		return b->err = LT_EINVAL;
	if ((size_t)n < sizeof small)
		return lt_buf_append(b, small, (size_t)n);
	enum lt_err err = reserve(b, (size_t)n);
	if (err)
		return err;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return LT_OK;
}

enum lt_err lt_buf_put_u64(struct lt_buf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return lt_buf_append(b, tmp + i, sizeof tmp - i);
}

enum lt_err lt_buf_put_i64(struct lt_buf *b, int64_t v)
{
	if (v < 0) {
		enum lt_err err = lt_buf_putc(b, '-');
		if (err)
			return err;
		return lt_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
	}
	return lt_buf_put_u64(b, (uint64_t)v);
}

enum lt_err lt_buf_put_json_str(struct lt_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t start_len = b->len;
	enum lt_err err = lt_buf_putc(b, '"');
	size_t i = 0, run = 0; /* run: bytes [i-run, i) to copy verbatim */
	while (!err && i < n) {
		unsigned char c = p[i];
		const char *esc = NULL;
		char ubuf[7];
		size_t seq = 1;
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c < 0x20 || c == 0x7F) {
			ubuf[0] = '\\';
			ubuf[1] = 'u';
			ubuf[2] = '0';
			ubuf[3] = '0';
			ubuf[4] = hex[c >> 4];
			ubuf[5] = hex[c & 15];
			ubuf[6] = 0;
			esc = ubuf;
		} else if (c >= 0x80) {
			seq = lt_utf8_seq(p + i, n - i);
			if (!seq) {
				esc = "\xEF\xBF\xBD";
				seq = 1;
			}
		}
		if (!esc) {
			run += seq;
			i += seq;
			continue;
		}
		if (run)
			err = lt_buf_append(b, p + i - run, run);
		run = 0;
		if (!err)
			err = lt_buf_puts(b, esc);
		i += seq;
	}
	if (!err && run)
		err = lt_buf_append(b, p + i - run, run);
	if (!err)
		err = lt_buf_putc(b, '"');
	if (err) { /* leave the contents as they were; the error stays */
		b->len = start_len;
		if (b->data)
			b->data[b->len] = '\0';
	}
	return err;
}

enum lt_err lt_buf_detach(struct lt_buf *b, char **out, size_t *out_len)
{
	if (b->err)
		return b->err;
	if (!b->heap) {
		char *p = malloc(b->len + 1);
		if (!p)
			return LT_ENOMEM;
		if (b->len)
			memcpy(p, b->data, b->len);
		p[b->len] = '\0';
		*out = p;
	} else {
		*out = b->data;
	}
	*out_len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	b->heap = false;
	return LT_OK;
}
