/*
 * sse.c — the Server-Sent Events splitter (pure: no I/O).  The contract is
 * in sse.h; the rules are the WHATWG "interpreting an event stream" ones,
 * applied to bytes (no UTF-8 decoding: invalid sequences pass through).
 *
 * Buffers: s->line holds the line being assembled, s->data the data of the
 * event being built.  Both start small and grow by doubling up to their
 * caps (line: max_event + 64 bytes; data: max_event bytes plus a NUL), so a
 * stream of small events costs little.  Limits are checked as bytes
 * arrive, so the events dispatched before an LT_ETOOBIG do not depend on
 * how the stream was split into feeds.
 *
 * BOM: until the first three bytes have been seen (bom_checked false), the
 * bytes that match the UTF-8 BOM so far are held in s->line; a full BOM is
 * dropped, a mismatch leaves them as ordinary line text.
 *
 * After an error (LT_ETOOBIG, LT_ENOMEM or the callback's) the stream is
 * abandoned: further feeds are not meaningful.  lt_sse_finish resets the
 * splitter for a new stream, keeping its buffers and the event count.
 *
 * Ownership: the buffers belong to the struct (lt_sse_init / lt_sse_free).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider/sse.h"

#define SSE_INITIAL_CAP 1024
#define SSE_LINE_SLACK 64
/* Larger max_event values are clamped, so the caps below cannot overflow. */
#define SSE_MAX_EVENT (SIZE_MAX / 4)

static size_t line_limit(const struct lt_sse *s)
{
	return s->max_event + SSE_LINE_SLACK;
}

/* Grow *buf (capacity *cap) to hold at least need bytes, never beyond
 * limit (need ≤ limit is the caller's check). */
static enum lt_err grow(char **buf, size_t *cap, size_t need, size_t limit)
{
	if (need <= *cap)
		return LT_OK;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n = n > limit / 2 ? limit : n * 2;
	char *p = realloc(*buf, n);
	if (!p)
		return LT_ENOMEM;
	*buf = p;
	*cap = n;
	return LT_OK;
}

enum lt_err lt_sse_init(struct lt_sse *s, size_t max_event)
{
	memset(s, 0, sizeof *s);
	s->max_event = max_event < SSE_MAX_EVENT ? max_event : SSE_MAX_EVENT;
	s->line_cap = SSE_INITIAL_CAP < line_limit(s) ? SSE_INITIAL_CAP : line_limit(s);
	s->data_cap = SSE_INITIAL_CAP < s->max_event + 1 ? SSE_INITIAL_CAP : s->max_event + 1;
	s->line = malloc(s->line_cap);
	s->data = malloc(s->data_cap);
	if (!s->line || !s->data) {
		lt_sse_free(s);
		return LT_ENOMEM;
	}
	return LT_OK;
}

void lt_sse_free(struct lt_sse *s)
{
	free(s->line);
	free(s->data);
	s->line = s->data = NULL;
	s->line_cap = s->line_len = s->data_cap = s->data_len = 0;
}

static enum lt_err line_append(struct lt_sse *s, const char *p, size_t n)
{
	if (n > line_limit(s) - s->line_len)
		return LT_ETOOBIG;
	enum lt_err e = grow(&s->line, &s->line_cap, s->line_len + n, line_limit(s));
	if (e != LT_OK)
		return e;
	memcpy(s->line + s->line_len, p, n);
	s->line_len += n;
	return LT_OK;
}

static enum lt_err dispatch(struct lt_sse *s, lt_sse_event_fn fn, void *arg)
{
	enum lt_err e = LT_OK;
	if (s->has_data) {
		s->data[s->data_len] = '\0';
		s->events++;
		e = fn(arg, s->event[0] ? s->event : "message", s->data, s->data_len);
	}
	s->data_len = 0;
	s->has_data = false;
	s->event[0] = '\0';
	return e;
}

static bool field_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* One complete line, already taken out of s->line (which it still points
 * into: nothing appends to s->line until this returns). */
static enum lt_err process_line(struct lt_sse *s, const char *l, size_t n, lt_sse_event_fn fn,
				void *arg)
{
	if (n == 0)
		return dispatch(s, fn, arg);
	if (l[0] == ':')
		return LT_OK; /* comment */
	const char *colon = memchr(l, ':', n);
	size_t nlen = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	size_t vlen = (size_t)(l + n - v);
	if (vlen && *v == ' ') {
		v++;
		vlen--;
	}
	if (field_is(l, nlen, "data")) {
		size_t add = vlen + (s->has_data ? 1 : 0);
		if (add > s->max_event - s->data_len)
			return LT_ETOOBIG;
		enum lt_err e =
			grow(&s->data, &s->data_cap, s->data_len + add + 1, s->max_event + 1);
		if (e != LT_OK)
			return e;
		if (s->has_data)
			s->data[s->data_len++] = '\n';
		memcpy(s->data + s->data_len, v, vlen);
		s->data_len += vlen;
		s->has_data = true;
	} else if (field_is(l, nlen, "event")) {
		/* Truncated to the field; a NUL inside ends it early. */
		size_t k = vlen < sizeof s->event - 1 ? vlen : sizeof s->event - 1;
		memcpy(s->event, v, k);
		s->event[k] = '\0';
	}
	/* "id", "retry" and unknown fields are ignored. */
	return LT_OK;
}

enum lt_err lt_sse_feed(struct lt_sse *s, const char *data, size_t len, lt_sse_event_fn fn,
			void *arg)
{
	static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
	size_t i = 0;
	enum lt_err e;
	while (i < len) {
		if (!s->bom_checked) {
			if ((unsigned char)data[i] == bom[s->line_len]) {
				e = line_append(s, data + i, 1);
				if (e != LT_OK)
					return e;
				i++;
				if (s->line_len == sizeof bom) {
					s->line_len = 0;
					s->bom_checked = true;
				}
				continue;
			}
			s->bom_checked = true; /* held bytes stay as line text */
		}
		if (s->last_cr) {
			s->last_cr = false;
			if (data[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < len && data[j] != '\r' && data[j] != '\n')
			j++;
		if (j > i) {
			e = line_append(s, data + i, j - i);
			if (e != LT_OK)
				return e;
			i = j;
		}
		if (i < len) {
			s->last_cr = data[i] == '\r';
			i++;
			size_t n = s->line_len;
			s->line_len = 0;
			e = process_line(s, s->line, n, fn, arg);
			if (e != LT_OK)
				return e;
		}
	}
	return LT_OK;
}

bool lt_sse_finish(struct lt_sse *s)
{
	bool pending = s->line_len > 0 || s->has_data || s->event[0] != '\0';
	s->line_len = 0;
	s->data_len = 0;
	s->has_data = false;
	s->event[0] = '\0';
	s->bom_checked = false;
	s->last_cr = false;
	return pending;
}
