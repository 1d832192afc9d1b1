/*
 * test_http_parse.c — src/provider/http_parse.c: every body framing
 * (Content-Length, chunked with extensions and trailers, close-delimited,
 * 1xx skipped, 204/304, HEAD), split feeding at every position and byte at
 * a time equal to whole feeding, keep-alive decisions, limits, malformed
 * input, callback errors, sticky errors and *consumed with pipelined bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "provider/http_parse.h"

#define BODY_MAX 8192

struct sink {
	char body[BODY_MAX];
	size_t len;
	int calls;
	enum lt_err fail_with; /* returned by the callback */
};

static enum lt_err on_body(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;
	s->calls++;
	if (len > sizeof s->body - s->len)
		fail_msg("body larger than the test sink");
	memcpy(s->body + s->len, data, len);
	s->len += len;
	return s->fail_with;
}

struct run {
	struct lt_http_resp p;
	struct sink sink;
	enum lt_err err;
	size_t consumed; /* sum of *consumed over the feeds */
};

/* Feed in[0, len) in pieces of `step` bytes (0: whole), stopping at an
 * error or the end of the response. */
static void run_step(struct run *r, const char *in, size_t len, size_t step, size_t max_header,
		     size_t max_body, bool head)
{
	memset(r, 0, sizeof *r);
	lt_http_resp_init(&r->p, max_header, max_body, head);
	size_t off = 0;
	do {
		size_t n = step && step < len - off ? step : len - off;
		size_t c = 12345;
		r->err = lt_http_resp_feed(&r->p, in + off, n, &c, on_body, &r->sink);
		assert_true(c <= n);
		r->consumed += c;
		off += n;
		if (r->err != LT_OK || lt_http_resp_done(&r->p))
			break;
	} while (off < len);
}

/* Feed in[0, k) then in[k, len). */
static void run_split(struct run *r, const char *in, size_t len, size_t k, size_t max_header,
		      size_t max_body, bool head)
{
	memset(r, 0, sizeof *r);
	lt_http_resp_init(&r->p, max_header, max_body, head);
	size_t c = 0;
	r->err = lt_http_resp_feed(&r->p, in, k, &c, on_body, &r->sink);
	r->consumed = c;
	if (r->err == LT_OK && !lt_http_resp_done(&r->p)) {
		r->err = lt_http_resp_feed(&r->p, in + k, len - k, &c, on_body, &r->sink);
		r->consumed += c;
	}
}

static void whole(struct run *r, const char *in)
{
	run_step(r, in, strlen(in), 0, 16384, BODY_MAX, false);
}

static void assert_same(const struct run *a, const struct run *b, const char *what, size_t k)
{
	const struct lt_http_resp *x = &a->p, *y = &b->p;
	if (a->err != b->err || a->consumed != b->consumed || x->status != y->status ||
	    x->minor != y->minor || x->content_length != y->content_length ||
	    x->chunked != y->chunked || x->close != y->close ||
	    x->retry_after_s != y->retry_after_s || x->headers_done != y->headers_done ||
	    lt_http_resp_done(x) != lt_http_resp_done(y) ||
	    lt_http_resp_reusable(x) != lt_http_resp_reusable(y) ||
	    x->body_bytes != y->body_bytes || strcmp(x->content_type, y->content_type) != 0 ||
	    strcmp(x->request_id, y->request_id) != 0 || a->sink.len != b->sink.len ||
	    memcmp(a->sink.body, b->sink.body, a->sink.len) != 0)
		fail_msg("%s: feeding split at %zu differs from whole (err %d/%d, status %d/%d, "
			 "body %zu/%zu, consumed %zu/%zu)",
			 what, k, (int)a->err, (int)b->err, x->status, y->status, a->sink.len,
			 b->sink.len, a->consumed, b->consumed);
}

static void assert_body(const struct run *r, const char *want)
{
	if (r->sink.len != strlen(want) || memcmp(r->sink.body, want, r->sink.len) != 0)
		fail_msg("body '%.*s', want '%s'", (int)r->sink.len, r->sink.body, want);
	assert_int_equal(r->p.body_bytes, strlen(want));
}

static const char openai_json[] = "HTTP/1.1 200 OK\r\n"
				  "Date: Tue, 01 Jul 2025 10:00:00 GMT\r\n"
				  "Content-Type: application/json\r\n"
				  "Content-Length: 25\r\n"
				  "Connection: keep-alive\r\n"
				  "x-request-id: req_7f3a9c\r\n"
				  "openai-processing-ms: 412\r\n"
				  "\r\n"
				  "{\"id\":\"chatcmpl-1\",\"a\":1}";

static void test_content_length(void **state)
{
	(void)state;
	struct run r;
	whole(&r, openai_json);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_true(r.p.headers_done);
	assert_int_equal(r.p.status, 200);
	assert_int_equal(r.p.minor, 1);
	assert_int_equal(r.p.content_length, 25);
	assert_false(r.p.chunked);
	assert_false(r.p.close);
	assert_int_equal(r.p.retry_after_s, -1);
	assert_string_equal(r.p.content_type, "application/json");
	assert_string_equal(r.p.request_id, "req_7f3a9c");
	assert_body(&r, "{\"id\":\"chatcmpl-1\",\"a\":1}");
	assert_int_equal(r.consumed, strlen(openai_json));
	assert_true(lt_http_resp_reusable(&r.p));
	assert_int_equal(lt_http_resp_eof(&r.p), LT_OK); /* closing after the end is fine */

	/* Content-Length: 0 is done at the end of the headers */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.sink.calls, 0);
	assert_true(lt_http_resp_reusable(&r.p));

	/* identical duplicates are one length */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok");
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "ok");
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok");
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "ok");
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length:\t002 \r\n\r\nok");
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "ok");

	/* a body cut short is LT_ECLOSED at eof, and stays so */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
	assert_int_equal(r.err, LT_OK);
	assert_false(lt_http_resp_done(&r.p));
	assert_false(lt_http_resp_reusable(&r.p));
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);
	size_t c = 99;
	assert_int_equal(lt_http_resp_feed(&r.p, "defghij", 7, &c, on_body, &r.sink), LT_ECLOSED);
	assert_int_equal(c, 0);
	assert_false(lt_http_resp_done(&r.p));
}

static const char chunked_ext[] = "HTTP/1.1 200 OK\r\n"
				  "Content-Type: text/event-stream; charset=utf-8\r\n"
				  "Transfer-Encoding: chunked\r\n"
				  "\r\n"
				  "5;name=value\r\n"
				  "hello\r\n"
				  "6 ; a=\"b;c\" ;d\r\n"
				  " world\r\n"
				  "A\r\n"
				  "0123456789\r\n"
				  "0;last\r\n"
				  "X-Trailer: yes\r\n"
				  "Server-Timing: total;dur=12\r\n"
				  "\r\n";

static void test_chunked(void **state)
{
	(void)state;
	struct run r;
	whole(&r, chunked_ext);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_true(r.p.chunked);
	assert_int_equal(r.p.content_length, -1);
	assert_false(r.p.close);
	assert_string_equal(r.p.content_type, "text/event-stream; charset=utf-8");
	assert_body(&r, "hello world0123456789");
	assert_int_equal(r.consumed, strlen(chunked_ext));
	assert_true(lt_http_resp_reusable(&r.p));

	/* no trailers, upper-case hex, Transfer-Encoding in any case */
	whole(&r, "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
		  "1F\r\n0123456789abcdefghijklmnopqrstu\r\n0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_body(&r, "0123456789abcdefghijklmnopqrstu");

	/* cut in the middle of the chunks or trailers */
	whole(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
	assert_int_equal(r.err, LT_OK);
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);
	whole(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_false(lt_http_resp_done(&r.p));
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);

	/* chunked wins over Content-Length, and the connection is not reused */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "2\r\nok\r\n0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_true(r.p.chunked);
	assert_int_equal(r.p.content_length, -1);
	assert_true(r.p.close);
	assert_body(&r, "ok");
	assert_false(lt_http_resp_reusable(&r.p));
	whole(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"
		  "2\r\nok\r\n0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "ok");
	assert_true(r.p.close);
}

static void test_close_delimited(void **state)
{
	(void)state;
	struct run r;
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close");
	assert_int_equal(r.err, LT_OK);
	assert_true(r.p.headers_done);
	assert_false(lt_http_resp_done(&r.p));
	assert_body(&r, "streamed until close");
	size_t c = 0;
	assert_int_equal(lt_http_resp_feed(&r.p, " more", 5, &c, on_body, &r.sink), LT_OK);
	assert_int_equal(c, 5);
	assert_int_equal(lt_http_resp_eof(&r.p), LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_body(&r, "streamed until close more");
	assert_false(lt_http_resp_reusable(&r.p));
	assert_false(r.p.close); /* nobody said close, but the body was close-delimited */

	/* an empty close-delimited body */
	whole(&r, "HTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(lt_http_resp_eof(&r.p), LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.sink.len, 0);

	/* HTTP/1.0 */
	whole(&r, "HTTP/1.0 200 OK\r\n\r\nold");
	assert_int_equal(r.p.minor, 0);
	assert_true(r.p.close);
	assert_int_equal(lt_http_resp_eof(&r.p), LT_OK);
	assert_body(&r, "old");
	assert_false(lt_http_resp_reusable(&r.p));

	/* eof before or inside the headers */
	struct lt_http_resp p;
	lt_http_resp_init(&p, 1024, 1024, false);
	assert_int_equal(lt_http_resp_eof(&p), LT_ECLOSED);
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Le");
	assert_int_equal(r.err, LT_OK);
	assert_false(r.p.headers_done);
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);
}

static void test_interim(void **state)
{
	(void)state;
	struct run r;
	static const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
				 "HTTP/1.1 103 Early Hints\r\n"
				 "Link: </style.css>; rel=preload\r\n"
				 "Content-Type: text/html\r\n"
				 "Retry-After: 5\r\n"
				 "\r\n"
				 "HTTP/1.1 200 OK\r\n"
				 "Content-Length: 2\r\n"
				 "\r\n"
				 "ok";
	whole(&r, in);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.p.status, 200);
	assert_string_equal(r.p.content_type, ""); /* the 103's fields are forgotten */
	assert_int_equal(r.p.retry_after_s, -1);
	assert_body(&r, "ok");
	assert_int_equal(r.consumed, strlen(in));
	assert_true(lt_http_resp_reusable(&r.p));

	/* after only the 100, the response has not started */
	whole(&r, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_false(r.p.headers_done);
	assert_false(lt_http_resp_done(&r.p));
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ECLOSED);

	/* 101 is not an interim response we can skip */
	whole(&r, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n");
	assert_int_equal(r.err, LT_EPROTO);
}

static void test_no_body(void **state)
{
	(void)state;
	struct run r;
	static const char in204[] = "HTTP/1.1 204 No Content\r\nx-request-id: r204\r\n\r\n";
	whole(&r, in204);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.p.status, 204);
	assert_string_equal(r.p.request_id, "r204");
	assert_int_equal(r.sink.calls, 0);
	assert_true(lt_http_resp_reusable(&r.p));

	/* 304 with a Content-Length of the entity: still no body */
	static const char in304[] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\n\r\nNEXT";
	whole(&r, in304);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.sink.len, 0);
	assert_int_equal(r.consumed, strlen(in304) - 4);
	assert_true(lt_http_resp_reusable(&r.p));

	/* HEAD: headers describe a body that is not sent */
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
	run_step(&r, head, strlen(head), 0, 1024, 10, true);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(r.p.content_length, 100000);
	assert_int_equal(r.sink.len, 0);
	assert_true(lt_http_resp_reusable(&r.p));
	static const char head_chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	run_step(&r, head_chunked, strlen(head_chunked), 0, 1024, 10, true);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_true(lt_http_resp_reusable(&r.p));
	static const char head_eof[] = "HTTP/1.1 200 OK\r\n\r\n";
	run_step(&r, head_eof, strlen(head_eof), 0, 1024, 10, true);
	assert_true(lt_http_resp_done(&r.p));
	assert_true(lt_http_resp_reusable(&r.p));
	/* the same bytes without head: a close-delimited body */
	run_step(&r, head_eof, strlen(head_eof), 0, 1024, 10, false);
	assert_false(lt_http_resp_done(&r.p));
}

static const char *const split_inputs[] = {
	openai_json,
	chunked_ext,
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
	"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 20\r\nContent-Type: application/json\r\n"
	"Content-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	"17\r\ndata: {\"choices\":[1]}\n\n\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
	"HTTP/1.1 200 OK\r\n\r\nclose delimited body",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
	/* errors must come out the same too */
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZ\r\n",
	"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 9999999\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\n0123456789012345678901234567890123456789",
};

static void test_split_equals_whole(void **state)
{
	(void)state;
	static struct run a, b;
	for (size_t t = 0; t < sizeof split_inputs / sizeof split_inputs[0]; t++) {
		const char *in = split_inputs[t];
		size_t len = strlen(in);
		/* small max_body so the close-delimited one trips it */
		run_step(&a, in, len, 0, 4096, 30, false);
		for (size_t k = 0; k <= len; k++) {
			run_split(&b, in, len, k, 4096, 30, false);
			assert_same(&a, &b, in, k);
		}
		for (size_t step = 1; step <= 3; step++) {
			run_step(&b, in, len, step, 4096, 30, false);
			assert_same(&a, &b, in, step);
		}
	}
}

static void test_keep_alive(void **state)
{
	(void)state;
	struct run r;
	static const struct {
		const char *in;
		bool close, reusable;
	} cases[] = {
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", true, false},
		{"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n",
		 true, false},
		{"HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n",
		 true, false},
		{"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", false, true},
		{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", true, false},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false,
		 false},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n",
		 true, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: "
		 "chunked\r\n\r\n0\r\n\r\n",
		 true, false},
		{"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", true, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		whole(&r, cases[i].in);
		if (r.err != LT_OK || !lt_http_resp_done(&r.p) || r.p.close != cases[i].close ||
		    lt_http_resp_reusable(&r.p) != cases[i].reusable)
			fail_msg("case %zu: err %d done %d close %d reusable %d", i, (int)r.err,
				 lt_http_resp_done(&r.p), r.p.close, lt_http_resp_reusable(&r.p));
	}
	/* not reusable before it is done */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab");
	assert_false(lt_http_resp_reusable(&r.p));
	/* nor after an error */
	whole(&r, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
	assert_int_equal(r.err, LT_EPROTO);
	assert_false(lt_http_resp_reusable(&r.p));
	assert_false(lt_http_resp_done(&r.p));
}

static void test_header_fields(void **state)
{
	(void)state;
	struct run r;
	whole(&r, "HTTP/1.1 429 Too Many Requests\r\n"
		  "RETRY-AFTER:  17 \r\n"
		  "CONTENT-TYPE: application/json; charset=utf-8\r\n"
		  "X-Request-ID: abc-123\r\n"
		  "CONTENT-LENGTH: 2\r\n\r\n{}");
	assert_int_equal(r.err, LT_OK);
	assert_int_equal(r.p.status, 429);
	assert_int_equal(r.p.retry_after_s, 17);
	assert_string_equal(r.p.content_type, "application/json; charset=utf-8");
	assert_string_equal(r.p.request_id, "abc-123");
	assert_body(&r, "{}");

	static const struct {
		const char *value;
		int64_t want;
	} ra[] = {
		{"0", 0},   {"120", 120}, {"Wed, 21 Oct 2015 07:28:00 GMT", -1},  {"1.5", -1},
		{"-3", -1}, {"", -1},	  {"99999999999999999999999", INT64_MAX},
	};
	for (size_t i = 0; i < sizeof ra / sizeof ra[0]; i++) {
		char in[256];
		snprintf(in, sizeof in, "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\n\r\n",
			 ra[i].value);
		whole(&r, in);
		assert_int_equal(r.err, LT_OK);
		if (r.p.retry_after_s != ra[i].want)
			fail_msg("Retry-After '%s': got %lld", ra[i].value,
				 (long long)r.p.retry_after_s);
	}

	/* a header line far longer than the line buffer is fine; copies truncate */
	static char in[8192];
	char ct[1500];
	memset(ct, 'x', sizeof ct - 1);
	ct[sizeof ct - 1] = '\0';
	snprintf(in, sizeof in,
		 "HTTP/1.1 200 OK\r\nSet-Cookie: %s\r\nContent-Type: %s\r\nx-request-id: %s\r\n"
		 "Content-Length: 1\r\n\r\nz",
		 ct, ct, ct);
	whole(&r, in);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	assert_int_equal(strlen(r.p.content_type), sizeof r.p.content_type - 1);
	assert_int_equal(strlen(r.p.request_id), sizeof r.p.request_id - 1);
	assert_body(&r, "z");

	/* but a framing header that does not fit cannot be trusted */
	char pad[1200];
	memset(pad, ' ', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	snprintf(in, sizeof in, "HTTP/1.1 200 OK\r\nContent-Length: 1%s\r\n\r\nz", pad);
	whole(&r, in);
	assert_int_equal(r.err, LT_EPROTO);

	/* an empty reason phrase, with and without its space */
	whole(&r, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_int_equal(r.p.status, 200);
	whole(&r, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
}

static void test_limits(void **state)
{
	(void)state;
	struct run r;
	static const char hdr[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
	size_t hlen = strlen(hdr) - 3;
	/* the header block exactly at max_header passes; one byte less fails */
	run_step(&r, hdr, strlen(hdr), 0, hlen, 100, false);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));
	run_step(&r, hdr, strlen(hdr), 0, hlen - 1, 100, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	assert_false(r.p.headers_done);
	/* 1xx blocks count towards it */
	static const char interim[] =
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
	run_step(&r, interim, strlen(interim), 0, hlen, 100, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	/* so do trailers */
	static const char trailers[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				       "0\r\nX-Long-Trailer: 0123456789\r\n\r\n";
	run_step(&r, trailers, strlen(trailers), 0, 60, 100, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	run_step(&r, trailers, strlen(trailers), 0, 80, 100, false);
	assert_int_equal(r.err, LT_OK);
	assert_true(lt_http_resp_done(&r.p));

	/* max_body: Content-Length is judged up front */
	run_step(&r, hdr, strlen(hdr), 0, 1024, 3, false);
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "abc");
	run_step(&r, hdr, strlen(hdr), 0, 1024, 2, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	assert_int_equal(r.sink.len, 0);
	/* chunked: per chunk, before delivering it */
	static const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				 "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
	run_step(&r, ch, strlen(ch), 0, 1024, 6, false);
	assert_int_equal(r.err, LT_OK);
	assert_body(&r, "abcdef");
	run_step(&r, ch, strlen(ch), 1, 1024, 5, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	assert_body(&r, "abc");
	/* close-delimited: what fits, then the error */
	static const char eof[] = "HTTP/1.1 200 OK\r\n\r\nabcdefgh";
	run_step(&r, eof, strlen(eof), 0, 1024, 5, false);
	assert_int_equal(r.err, LT_ETOOBIG);
	assert_body(&r, "abcde");
	assert_int_equal(lt_http_resp_eof(&r.p), LT_ETOOBIG);
	/* a chunk size line (extensions included) is bounded */
	static char longext[2048];
	int n = snprintf(longext, sizeof longext,
			 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=");
	memset(longext + n, 'a', 1100);
	memcpy(longext + n + 1100, "\r\nz\r\n0\r\n\r\n", 11);
	whole(&r, longext);
	assert_int_equal(r.err, LT_ETOOBIG);
}

static void test_malformed(void **state)
{
	(void)state;
	/* clang-format off */
	static const char *const bad[] = {
		/* status line */
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.x 200 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 600 High\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 O\x01K\r\n\r\n",
		"<html>\r\n",
		/* header lines */
		"HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\n: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\tX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\x7f\r\n\r\n",
		/* Content-Length */
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\nhello",
		/* Transfer-Encoding */
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		/* chunk sizes */
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n ;x\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
		/* bare CR */
		"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX\r\n",
		/* NUL in a header */
		"HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
	};
	/* clang-format on */
	static const size_t lens[] = {[sizeof bad / sizeof bad[0] - 1] =
					      sizeof "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n" - 1};
	static struct run r, b;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = lens[i] ? lens[i] : strlen(bad[i]);
		run_step(&r, bad[i], len, 0, 16384, 1000, false);
		if (r.err != LT_EPROTO)
			fail_msg("case %zu (%.*s): got %d, want LT_EPROTO", i, (int)len, bad[i],
				 (int)r.err);
		assert_int_equal(r.p.state, LT_HR_ERROR);
		/* byte at a time, the same */
		run_step(&b, bad[i], len, 1, 16384, 1000, false);
		assert_same(&r, &b, bad[i], 1);
		/* the error sticks */
		size_t c = 7;
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
		assert_int_equal(lt_http_resp_feed(&r.p, ok, strlen(ok), &c, on_body, &r.sink),
				 LT_EPROTO);
		assert_int_equal(c, 0);
		assert_int_equal(lt_http_resp_eof(&r.p), LT_EPROTO);
		assert_false(lt_http_resp_done(&r.p));
	}
}

static void test_callback_error(void **state)
{
	(void)state;
	struct lt_http_resp p;
	struct sink s;
	memset(&s, 0, sizeof s);
	s.fail_with = LT_ESTOPPED;
	lt_http_resp_init(&p, 1024, 1024, false);
	static const char in[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
				 "chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
	size_t c = 0;
	assert_int_equal(lt_http_resp_feed(&p, in, strlen(in), &c, on_body, &s), LT_ESTOPPED);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.len, 3);
	assert_true(c < strlen(in));
	assert_false(lt_http_resp_done(&p));
	assert_int_equal(lt_http_resp_feed(&p, in, strlen(in), &c, on_body, &s), LT_ESTOPPED);
	assert_int_equal(c, 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(lt_http_resp_eof(&p), LT_ESTOPPED);

	/* the same for a Content-Length and a close-delimited body */
	static const char *const more[] = {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
					   "HTTP/1.1 200 OK\r\n\r\nabc"};
	for (size_t i = 0; i < 2; i++) {
		memset(&s, 0, sizeof s);
		s.fail_with = LT_ENOMEM;
		lt_http_resp_init(&p, 1024, 1024, false);
		assert_int_equal(lt_http_resp_feed(&p, more[i], strlen(more[i]), NULL, on_body, &s),
				 LT_ENOMEM);
		assert_int_equal(s.calls, 1);
		assert_int_equal(lt_http_resp_eof(&p), LT_ENOMEM);
	}

	/* a NULL callback discards the body */
	lt_http_resp_init(&p, 1024, 1024, false);
	assert_int_equal(lt_http_resp_feed(&p, more[0], strlen(more[0]), NULL, NULL, NULL), LT_OK);
	assert_true(lt_http_resp_done(&p));
	assert_int_equal(p.body_bytes, 3);
}

static void test_consumed_pipelined(void **state)
{
	(void)state;
	static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
				  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "5\r\nworld\r\n0\r\n\r\n"
				  "HTTP/1.1 204 No Content\r\n\r\n"
				  "garbage";
	static const char *const bodies[] = {"hello", "world", ""};
	const char *at = two;
	size_t left = strlen(two);
	for (int i = 0; i < 3; i++) {
		struct lt_http_resp p;
		struct sink s;
		memset(&s, 0, sizeof s);
		lt_http_resp_init(&p, 1024, 1024, false);
		size_t c = 0;
		assert_int_equal(lt_http_resp_feed(&p, at, left, &c, on_body, &s), LT_OK);
		assert_true(lt_http_resp_done(&p));
		assert_true(c < left);
		assert_int_equal(s.len, strlen(bodies[i]));
		assert_memory_equal(s.body, bodies[i], s.len);
		/* once done, nothing more is taken */
		size_t c2 = 99;
		assert_int_equal(lt_http_resp_feed(&p, at + c, left - c, &c2, on_body, &s), LT_OK);
		assert_int_equal(c2, 0);
		at += c;
		left -= c;
	}
	assert_int_equal(left, strlen("garbage"));
	assert_memory_equal(at, "garbage", left);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),	cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_close_delimited), cmocka_unit_test(test_interim),
		cmocka_unit_test(test_no_body),		cmocka_unit_test(test_split_equals_whole),
		cmocka_unit_test(test_keep_alive),	cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_limits),		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_callback_error),	cmocka_unit_test(test_consumed_pipelined),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
