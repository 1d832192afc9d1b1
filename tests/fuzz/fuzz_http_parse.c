/*
 * fuzz_http_parse.c — lt_http_resp_feed / lt_http_resp_eof on arbitrary
 * bytes.  The first input byte picks the options (HEAD, small limits) and
 * a split position; the rest is the response.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - fed whole, split in two at the chosen position, and byte by byte, the
 *     parser reaches the same result: error code, done, status, header
 *     fields, consumed bytes and the exact body bytes delivered;
 *   - body_bytes equals what the callback got and never exceeds max_body;
 *     a finished Content-Length body is exactly that long;
 *   - after an error every feed returns the same error and consumes
 *     nothing, and eof returns it too; after the end a feed consumes
 *     nothing; reusable implies done, and never for HTTP/1.0;
 *   - every error is one the contract names (LT_EPROTO, LT_ETOOBIG,
 *     LT_ECLOSED at eof).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/http_parse.h"

#include "fuzz_check.h"

#define BODY_CAP 8192 /* ≥ the input size libFuzzer is run with (-max_len=4096) */

struct run {
	struct lt_http_resp p;
	enum lt_err err;
	size_t consumed;
	size_t body_len;
	char body[BODY_CAP];
	enum lt_err eof_err;
};

static enum lt_err on_body(void *arg, const char *data, size_t len)
{
	struct run *r = arg;
	CHECK(len > 0);
	CHECK(len <= BODY_CAP - r->body_len);
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	return LT_OK;
}

struct opts {
	size_t max_header, max_body;
	bool head;
};

/* Feed in pieces cut at the given ascending offsets; stop at an error or
 * the end of the response. */
static void run(struct run *r, const struct opts *o, const char *in, size_t len, const size_t *cuts,
		size_t ncuts)
{
	memset(r, 0, sizeof *r);
	lt_http_resp_init(&r->p, o->max_header, o->max_body, o->head);
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		size_t c = SIZE_MAX;
		r->err = lt_http_resp_feed(&r->p, in + at, end - at, &c, on_body, r);
		CHECK(c <= end - at);
		r->consumed += c;
		if (r->err != LT_OK) {
			CHECK(r->err == LT_EPROTO || r->err == LT_ETOOBIG);
			CHECK(r->p.state == LT_HR_ERROR && r->p.err == r->err);
			break;
		}
		if (lt_http_resp_done(&r->p))
			break;
		CHECK(c == end - at);
		at = end;
	}
	CHECK(r->p.body_bytes == r->body_len);
	CHECK(r->p.body_bytes <= o->max_body);

	/* stopped by an error or the end: more bytes change nothing */
	if (r->err != LT_OK || lt_http_resp_done(&r->p)) {
		size_t c = SIZE_MAX;
		enum lt_err again =
			lt_http_resp_feed(&r->p, "HTTP/1.1 200 OK\r\n\r\n", 19, &c, on_body, r);
		CHECK(again == r->err && c == 0);
	}
	if (lt_http_resp_done(&r->p) && r->p.status != 204 && r->p.status != 304 && !r->p.head &&
	    !r->p.chunked && r->p.content_length >= 0)
		CHECK(r->p.body_bytes == (uint64_t)r->p.content_length);
	if (lt_http_resp_reusable(&r->p))
		CHECK(lt_http_resp_done(&r->p) && r->p.minor >= 1 && !r->p.close);
	if (r->p.headers_done) {
		CHECK(r->p.status >= 200 && r->p.status <= 599);
		CHECK(memchr(r->p.content_type, 0, sizeof r->p.content_type) != NULL);
		CHECK(memchr(r->p.request_id, 0, sizeof r->p.request_id) != NULL);
		CHECK(r->p.retry_after_s >= -1);
	}
	CHECK(r->p.header_bytes <= o->max_header + 1); /* + the byte that failed */

	bool was_done = lt_http_resp_done(&r->p);
	r->eof_err = lt_http_resp_eof(&r->p);
	if (r->err != LT_OK)
		CHECK(r->eof_err == r->err);
	else if (was_done)
		CHECK(r->eof_err == LT_OK);
	else
		CHECK(r->eof_err == LT_OK || r->eof_err == LT_ECLOSED);
	CHECK(lt_http_resp_eof(&r->p) == r->eof_err);
	if (r->eof_err == LT_OK)
		CHECK(lt_http_resp_done(&r->p));
}

static void same(const struct run *a, const struct run *b)
{
	CHECK(a->err == b->err);
	CHECK(a->eof_err == b->eof_err);
	CHECK(a->consumed == b->consumed);
	CHECK(lt_http_resp_done(&a->p) == lt_http_resp_done(&b->p));
	CHECK(lt_http_resp_reusable(&a->p) == lt_http_resp_reusable(&b->p));
	CHECK(a->p.headers_done == b->p.headers_done);
	CHECK(a->p.status == b->p.status);
	CHECK(a->p.minor == b->p.minor);
	CHECK(a->p.content_length == b->p.content_length);
	CHECK(a->p.chunked == b->p.chunked);
	CHECK(a->p.close == b->p.close);
	CHECK(a->p.retry_after_s == b->p.retry_after_s);
	CHECK(strcmp(a->p.content_type, b->p.content_type) == 0);
	CHECK(strcmp(a->p.request_id, b->p.request_id) == 0);
	CHECK(a->body_len == b->body_len);
	CHECK(memcmp(a->body, b->body, a->body_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > BODY_CAP)
		return 0;
	uint8_t ctl = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	struct opts o = {
		.max_header = (ctl & 0x08) ? 96 : 8192,
		.max_body = (ctl & 0x04) ? 16 : 65536,
		.head = (ctl & 0x03) == 0x03,
	};
	size_t k = len ? ((size_t)ctl * 2654435761u) % (len + 1) : 0;

	struct run *whole = malloc(sizeof *whole), *other = malloc(sizeof *other);
	size_t *cuts = malloc((len ? len : 1) * sizeof *cuts);
	CHECK(whole && other && cuts);
	run(whole, &o, in, len, NULL, 0);
	cuts[0] = k;
	run(other, &o, in, len, cuts, 1);
	same(whole, other);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run(other, &o, in, len, cuts, len ? len - 1 : 0);
	same(whole, other);
	free(cuts);
	free(other);
	free(whole);
	return 0;
}
