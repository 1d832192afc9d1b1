/*
 * http_parse.c — the incremental HTTP/1.1 response parser (pure: no I/O,
 * no allocation).  The contract is in http_parse.h; this file owns the byte
 * loop and the framing rules of RFC 9112.
 *
 * Representation (all inside struct lt_http_resp, so the parser holds no
 * heap memory):
 * - The line states (STATUS, HEADERS, CHUNK_SIZE, TRAILERS) assemble one
 *   line in p->line.  p->line_len counts every byte of the line seen so far
 *   (CR LF excluded); only the first LINE_KEEP of them are kept.  A long
 *   header line is therefore judged by its prefix: the strings we copy are
 *   truncated to their fields anyway, and a framing header (Content-Length,
 *   Transfer-Encoding, Connection) that does not fit is LT_EPROTO.  A chunk
 *   size line (size plus extensions) longer than LINE_KEEP is LT_ETOOBIG.
 * - The last byte of p->line is not line text but the "CR seen" flag, so a
 *   CR split from its LF across two feeds is remembered and a bare CR
 *   (CR followed by anything but LF) is LT_EPROTO.  A bare LF is accepted as
 *   a line end (RFC 9112 §2.2 allows it).
 * - While header lines are read, p->remaining holds H_* flags (what the
 *   Connection and Transfer-Encoding fields said); once the headers are
 *   done it is the byte count left in the Content-Length body or chunk.
 * - header_bytes counts the status line and header lines of every block
 *   read, 1xx blocks and chunked trailers included, against max_header.
 *
 * Determinism: every limit is checked per byte, or before a whole body or
 * chunk is delivered (a close-delimited body delivers what fits within
 * max_body, then fails), so the bytes handed to the callback and the result
 * never depend on how the input was split into feeds.
 *
 * Framing decisions (RFC 9112 §6.3): HEAD responses, 1xx, 204 and 304 have
 * no body; Transfer-Encoding must be exactly "chunked" (we never ask for
 * other codings; anything else is LT_EPROTO), and with a Content-Length too
 * chunked wins, the length is dropped (content_length = -1) and the
 * connection must be closed afterwards (close = true).  HTTP/1.0 with
 * Transfer-Encoding is faulty framing: LT_EPROTO.  101 Switching Protocols
 * is LT_EPROTO (we never ask to upgrade).  Obsolete line folding is
 * LT_EPROTO.  Content-Length may repeat (as separate fields or a list) only
 * with the same value.
 */
#include <string.h>
#include <strings.h>

#include "provider/http_parse.h"

/* Line text kept: the buffer less the NUL we add and the CR flag. */
#define LINE_KEEP(p) (sizeof((p)->line) - 2)
#define CR_SEEN(p) ((p)->line[sizeof((p)->line) - 1])

/* Flags in p->remaining while the header block is read. */
#define H_CONN_CLOSE 1u
#define H_CONN_KEEPALIVE 2u
#define H_TE 4u

static enum lt_err fail(struct lt_http_resp *p, enum lt_err e)
{
	p->state = LT_HR_ERROR;
	p->err = e;
	return e;
}

/* Forget everything a header block set (a 1xx block is discarded whole). */
static void reset_message(struct lt_http_resp *p)
{
	p->headers_done = false;
	p->status = 0;
	p->minor = 0;
	p->content_length = -1;
	p->chunked = false;
	p->close = false;
	p->retry_after_s = -1;
	p->content_type[0] = '\0';
	p->request_id[0] = '\0';
	p->remaining = 0;
	p->saw_cl = false;
	p->interim = false;
}

void lt_http_resp_init(struct lt_http_resp *p, size_t max_header, size_t max_body, bool head)
{
	memset(p, 0, sizeof *p);
	p->max_header = max_header;
	p->max_body = max_body;
	p->head = head;
	reset_message(p);
	p->state = LT_HR_STATUS;
	p->err = LT_OK;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool token_is(const char *s, size_t len, const char *lower)
{
	return len == strlen(lower) && strncasecmp(s, lower, len) == 0;
}

/* The next element of a comma-separated list in [*cur, end), OWS trimmed
 * (possibly empty).  *cur becomes NULL after the last element. */
static bool list_next(const char **cur, const char *end, const char **el, size_t *len)
{
	const char *s = *cur;
	if (!s)
		return false;
	const char *comma = memchr(s, ',', (size_t)(end - s));
	const char *e = comma ? comma : end;
	*cur = comma ? comma + 1 : NULL;
	while (s < e && is_ows((unsigned char)*s))
		s++;
	while (e > s && is_ows((unsigned char)e[-1]))
		e--;
	*el = s;
	*len = (size_t)(e - s);
	return true;
}

static void copy_field(char *dst, size_t cap, const char *v, size_t vlen)
{
	if (vlen > cap - 1)
		vlen = cap - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

/* "HTTP/1.x SP 3DIGIT [SP reason]"; the reason's bytes were checked as
 * they arrived. */
static enum lt_err parse_status(struct lt_http_resp *p, const char *l, size_t n)
{
	if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || !is_digit((unsigned char)l[7]) ||
	    l[8] != ' ' || !is_digit((unsigned char)l[9]) || !is_digit((unsigned char)l[10]) ||
	    !is_digit((unsigned char)l[11]) || (n > 12 && l[12] != ' '))
		return fail(p, LT_EPROTO);
	int status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (status < 100 || status > 599 || status == 101)
		return fail(p, LT_EPROTO);
	p->minor = l[7] - '0';
	p->status = status;
	p->interim = status < 200;
	p->state = LT_HR_HEADERS;
	return LT_OK;
}

static enum lt_err parse_content_length(struct lt_http_resp *p, const char *v, size_t vlen)
{
	const char *cur = v, *el;
	size_t len;
	while (list_next(&cur, v + vlen, &el, &len)) {
		if (len == 0)
			return fail(p, LT_EPROTO);
		int64_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (!is_digit((unsigned char)el[i]))
				return fail(p, LT_EPROTO);
			int d = el[i] - '0';
			if (n > (INT64_MAX - d) / 10)
				return fail(p, LT_EPROTO);
			n = n * 10 + d;
		}
		if (p->saw_cl && n != p->content_length)
			return fail(p, LT_EPROTO);
		p->saw_cl = true;
		p->content_length = n;
	}
	return LT_OK;
}

/* Only "chunked", once, may appear: we never ask for other codings. */
static enum lt_err parse_transfer_encoding(struct lt_http_resp *p, const char *v, size_t vlen)
{
	const char *cur = v, *el;
	size_t len;
	p->remaining |= H_TE;
	while (list_next(&cur, v + vlen, &el, &len)) {
		if (len == 0)
			continue;
		if (p->chunked || !token_is(el, len, "chunked"))
			return fail(p, LT_EPROTO);
		p->chunked = true;
	}
	return LT_OK;
}

static void parse_connection(struct lt_http_resp *p, const char *v, size_t vlen)
{
	const char *cur = v, *el;
	size_t len;
	while (list_next(&cur, v + vlen, &el, &len)) {
		if (token_is(el, len, "close"))
			p->remaining |= H_CONN_CLOSE;
		else if (token_is(el, len, "keep-alive"))
			p->remaining |= H_CONN_KEEPALIVE;
	}
}

/* delta-seconds, saturating at INT64_MAX; anything else (an HTTP-date,
 * garbage) counts as absent. */
static int64_t parse_retry_after(const char *v, size_t vlen)
{
	if (vlen == 0)
		return -1;
	int64_t n = 0;
	for (size_t i = 0; i < vlen; i++) {
		if (!is_digit((unsigned char)v[i]))
			return -1;
		int d = v[i] - '0';
		n = n > (INT64_MAX - d) / 10 ? INT64_MAX : n * 10 + d;
	}
	return n;
}

/* Split "name: value" (OWS around the value dropped) and check the name;
 * used for header and trailer lines alike. */
static enum lt_err split_field(struct lt_http_resp *p, const char *l, size_t n, const char **name,
			       size_t *name_len, const char **value, size_t *value_len)
{
	if (is_ows((unsigned char)l[0])) /* obs-fold, or whitespace before a name */
		return fail(p, LT_EPROTO);
	const char *colon = memchr(l, ':', n);
	if (!colon || colon == l)
		return fail(p, LT_EPROTO);
	for (const char *c = l; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return fail(p, LT_EPROTO);
	const char *v = colon + 1, *e = l + n;
	while (v < e && is_ows((unsigned char)*v))
		v++;
	while (e > v && is_ows((unsigned char)e[-1]))
		e--;
	*name = l;
	*name_len = (size_t)(colon - l);
	*value = v;
	*value_len = (size_t)(e - v);
	return LT_OK;
}

static enum lt_err parse_header(struct lt_http_resp *p, const char *l, size_t n, bool truncated)
{
	const char *name, *v;
	size_t nlen, vlen;
	enum lt_err e = split_field(p, l, n, &name, &nlen, &v, &vlen);
	if (e != LT_OK)
		return e;
	bool framing = token_is(name, nlen, "content-length") ||
		       token_is(name, nlen, "transfer-encoding") ||
		       token_is(name, nlen, "connection");
	if (framing && truncated)
		return fail(p, LT_EPROTO);
	if (token_is(name, nlen, "content-length"))
		return parse_content_length(p, v, vlen);
	if (token_is(name, nlen, "transfer-encoding"))
		return parse_transfer_encoding(p, v, vlen);
	if (token_is(name, nlen, "connection"))
		parse_connection(p, v, vlen);
	else if (token_is(name, nlen, "retry-after"))
		p->retry_after_s = truncated ? -1 : parse_retry_after(v, vlen);
	else if (token_is(name, nlen, "content-type"))
		copy_field(p->content_type, sizeof p->content_type, v, vlen);
	else if (token_is(name, nlen, "x-request-id"))
		copy_field(p->request_id, sizeof p->request_id, v, vlen);
	return LT_OK;
}

/* The empty line after the headers: decide the framing. */
static enum lt_err end_headers(struct lt_http_resp *p)
{
	if (p->interim) {
		reset_message(p);
		p->state = LT_HR_STATUS;
		return LT_OK;
	}
	uint64_t flags = p->remaining;
	p->remaining = 0;
	if ((flags & H_TE) && !p->chunked)
		return fail(p, LT_EPROTO);
	if (p->chunked && p->minor == 0)
		return fail(p, LT_EPROTO);
	p->close = (flags & H_CONN_CLOSE) || (p->minor == 0 && !(flags & H_CONN_KEEPALIVE));
	if (p->chunked && p->saw_cl) {
		p->content_length = -1;
		p->close = true;
	}
	p->headers_done = true;
	if (p->head || p->status == 204 || p->status == 304) {
		p->state = LT_HR_DONE;
	} else if (p->chunked) {
		p->state = LT_HR_CHUNK_SIZE;
	} else if (p->content_length >= 0) {
		if ((uint64_t)p->content_length > p->max_body)
			return fail(p, LT_ETOOBIG);
		p->remaining = (uint64_t)p->content_length;
		p->state = p->remaining ? LT_HR_BODY_LEN : LT_HR_DONE;
	} else {
		p->state = LT_HR_BODY_EOF;
	}
	return LT_OK;
}

/* chunk-size [BWS ";" extensions]; the extensions are ignored. */
static enum lt_err parse_chunk_size(struct lt_http_resp *p, const char *l, size_t n)
{
	uint64_t size = 0;
	size_t i = 0;
	for (; i < n; i++) {
		int h = hex_value((unsigned char)l[i]);
		if (h < 0)
			break;
		if (size >= (UINT64_C(1) << 59)) /* keeps it below 2^63 */
			return fail(p, LT_EPROTO);
		size = size * 16 + (uint64_t)h;
	}
	if (i == 0)
		return fail(p, LT_EPROTO);
	while (i < n && is_ows((unsigned char)l[i]))
		i++;
	if (i < n && l[i] != ';')
		return fail(p, LT_EPROTO);
	if (size == 0) {
		p->state = LT_HR_TRAILERS;
		return LT_OK;
	}
	if (size > p->max_body - p->body_bytes)
		return fail(p, LT_ETOOBIG);
	p->remaining = size;
	p->state = LT_HR_CHUNK_DATA;
	return LT_OK;
}

static enum lt_err end_line(struct lt_http_resp *p)
{
	size_t kept = p->line_len < LINE_KEEP(p) ? p->line_len : LINE_KEEP(p);
	bool truncated = p->line_len > kept;
	p->line[kept] = '\0';
	p->line_len = 0;
	switch (p->state) {
	case LT_HR_STATUS: return parse_status(p, p->line, kept);
	case LT_HR_HEADERS:
		if (kept == 0)
			return end_headers(p);
		return parse_header(p, p->line, kept, truncated);
	case LT_HR_CHUNK_SIZE: return parse_chunk_size(p, p->line, kept);
	case LT_HR_TRAILERS: {
		if (kept == 0) {
			p->state = LT_HR_DONE;
			return LT_OK;
		}
		const char *name, *v;
		size_t nlen, vlen;
		return split_field(p, p->line, kept, &name, &nlen, &v, &vlen);
	}
	default: return fail(p, LT_EPROTO); /* not reached: only line states get here */
	}
}

/* One byte of a line state. */
static enum lt_err line_byte(struct lt_http_resp *p, unsigned char c)
{
	if (p->state != LT_HR_CHUNK_SIZE && ++p->header_bytes > p->max_header)
		return fail(p, LT_ETOOBIG);
	if (CR_SEEN(p)) {
		if (c != '\n')
			return fail(p, LT_EPROTO);
		CR_SEEN(p) = 0;
		return end_line(p);
	}
	if (c == '\r') {
		CR_SEEN(p) = 1;
		return LT_OK;
	}
	if (c == '\n')
		return end_line(p);
	if ((c < 0x20 && c != '\t') || c == 0x7f)
		return fail(p, LT_EPROTO);
	if (p->line_len < LINE_KEEP(p))
		p->line[p->line_len] = (char)c;
	else if (p->state == LT_HR_CHUNK_SIZE)
		return fail(p, LT_ETOOBIG);
	p->line_len++;
	return LT_OK;
}

static enum lt_err deliver(struct lt_http_resp *p, const char *data, size_t n,
			   lt_http_body_fn on_body, void *arg)
{
	if (n == 0)
		return LT_OK;
	p->body_bytes += n;
	if (on_body) {
		enum lt_err e = on_body(arg, data, n);
		if (e != LT_OK)
			return fail(p, e);
	}
	return LT_OK;
}

enum lt_err lt_http_resp_feed(struct lt_http_resp *p, const char *data, size_t len,
			      size_t *consumed, lt_http_body_fn on_body, void *arg)
{
	size_t i = 0;
	enum lt_err e = LT_OK;
	if (p->state == LT_HR_ERROR) {
		e = p->err;
		goto out;
	}
	while (i < len && p->state != LT_HR_DONE) {
		switch (p->state) {
		case LT_HR_BODY_LEN:
		case LT_HR_CHUNK_DATA: {
			size_t n = len - i;
			if (n > p->remaining)
				n = (size_t)p->remaining;
			p->remaining -= n;
			e = deliver(p, data + i, n, on_body, arg);
			i += n;
			if (e != LT_OK)
				goto out;
			if (p->remaining == 0) {
				if (p->state == LT_HR_BODY_LEN) {
					p->state = LT_HR_DONE;
				} else {
					p->state = LT_HR_CHUNK_CRLF;
					CR_SEEN(p) = 0;
				}
			}
			break;
		}
		case LT_HR_BODY_EOF: {
			size_t n = len - i;
			uint64_t room = p->max_body - p->body_bytes;
			bool over = n > room;
			if (over)
				n = (size_t)room;
			e = deliver(p, data + i, n, on_body, arg);
			i += n;
			if (e == LT_OK && over)
				e = fail(p, LT_ETOOBIG);
			if (e != LT_OK)
				goto out;
			break;
		}
		case LT_HR_CHUNK_CRLF: {
			unsigned char c = (unsigned char)data[i++];
			if (c == '\n') {
				CR_SEEN(p) = 0;
				p->line_len = 0;
				p->state = LT_HR_CHUNK_SIZE;
			} else if (c == '\r' && !CR_SEEN(p)) {
				CR_SEEN(p) = 1;
			} else {
				e = fail(p, LT_EPROTO);
				goto out;
			}
			break;
		}
		case LT_HR_STATUS:
		case LT_HR_HEADERS:
		case LT_HR_CHUNK_SIZE:
		case LT_HR_TRAILERS:
			e = line_byte(p, (unsigned char)data[i++]);
			if (e != LT_OK)
				goto out;
			break;
		case LT_HR_DONE:
		case LT_HR_ERROR: goto out; /* not reached: the loop stops on DONE, errors leave */
		}
	}
out:
	if (consumed)
		*consumed = i;
	return e;
}

enum lt_err lt_http_resp_eof(struct lt_http_resp *p)
{
	switch (p->state) {
	case LT_HR_BODY_EOF: p->state = LT_HR_DONE; return LT_OK;
	case LT_HR_DONE: return LT_OK;
	case LT_HR_ERROR: return p->err;
	default: return fail(p, LT_ECLOSED);
	}
}

bool lt_http_resp_done(const struct lt_http_resp *p)
{
	return p->state == LT_HR_DONE;
}

bool lt_http_resp_reusable(const struct lt_http_resp *p)
{
	if (p->state != LT_HR_DONE || p->minor < 1 || p->close)
		return false;
	bool bodyless = p->head || p->status == 204 || p->status == 304;
	return bodyless || p->chunked || p->content_length >= 0;
}
