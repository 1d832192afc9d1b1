/*
 * stub_reply.c — how the stubs answer: whole responses built in one buffer
 * and written with one mg_write, the providers' error envelopes, chunked
 * SSE streams (one write per frame, so each frame leaves at once with
 * tcp_nodelay), and sleeps that end when the stubs stop.
 *
 * Faults applied here (the fault was chosen in stubs.c):
 *   malformed  a 200 body is cut to half its length (Content-Length says
 *              the cut length: the HTTP is fine, the JSON is not); in a
 *              stream, frame r->malformed_frame carries half its JSON.
 *   drop       a 200 body: the head promises the full Content-Length, half
 *              the body is written, the connection is closed.  A stream:
 *              after drop_after frames the connection is closed with no
 *              terminating chunk.  Either way the client sees EOF early.
 * Error answers (lt_stub_reply_error) are never faulted.
 *
 * Every answer carries Content-Type and x-request-id.
 */
#define _POSIX_C_SOURCE 200809L
#include <civetweb.h>
#include <string.h>
#include <time.h>

#include "http/request.h"
#include "stubs/stub_int.h"
#include "util/clock.h"

#define HEAD_STACK 1024
#define REPLY_STACK 8192

int64_t lt_stub_now_s(void)
{
	return lt_clock_real_ns() / LT_NS_PER_S;
}

int64_t lt_stub_now_ms(void)
{
	return lt_clock_real_ns() / LT_NS_PER_MS;
}

bool lt_stub_sleep(struct lt_stubs *s, int64_t ms)
{
	while (ms > 0) {
		if (atomic_load(&s->stopping))
			return false;
		int64_t slice = ms < LT_STUB_SLEEP_SLICE_MS ? ms : LT_STUB_SLEEP_SLICE_MS;
		struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return !atomic_load(&s->stopping);
}

static void put_head(struct lt_buf *b, const struct lt_stub_req *r, int status,
		     const char *content_type, const char *extra_headers, bool keep_alive)
{
	lt_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, lt_http_reason(status));
	if (content_type)
		lt_buf_printf(b, "Content-Type: %s\r\n", content_type);
	lt_buf_printf(b, "x-request-id: %s\r\n", r->request_id);
	lt_buf_puts(b, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
	if (extra_headers)
		lt_buf_puts(b, extra_headers);
}

/* Mark the connection for closing once the request returns. */
static void close_after(struct lt_stub_req *r)
{
	r->closed = true;
	r->keep_alive = false;
	if (r->conn)
		mg_disable_keep_alive(r->conn);
}

static bool write_all(struct lt_stub_req *r, const char *p, size_t n)
{
	if (!r->conn || !n)
		return true;
	int w = mg_write(r->conn, p, n);
	if (w < 0 || (size_t)w != n) {
		close_after(r);
		return false;
	}
	return true;
}

static void reply(struct lt_stub_req *r, int status, const char *content_type,
		  const char *extra_headers, const char *body, size_t len, bool faults)
{
	if (r->replied)
		return;
	r->replied = true;
	size_t send = len;
	bool drop = false;
	if (faults && status == 200) {
		if (r->fault.malformed && len > 1)
			len = send = len / 2;
		if (r->fault.drop_after >= 0 && len > 1) {
			send = len / 2;
			drop = true;
		}
	}
	r->status = status;
	char stack[REPLY_STACK];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	/* A dropped answer still says keep-alive when the client asked: the
	 * client must learn from the early EOF, not from the header. */
	bool said_ka = r->keep_alive && !atomic_load(&r->s->stopping);
	bool ka = said_ka && !drop;
	put_head(&b, r, status, content_type, extra_headers, said_ka);
	lt_buf_printf(&b, "Content-Length: %zu\r\n\r\n", len);
	if (!r->head)
		lt_buf_append(&b, body, send);
	if (!ka)
		close_after(r);
	if (!b.err)
		write_all(r, b.data, b.len);
	else
		close_after(r);
	lt_buf_release(&b);
}

void lt_stub_reply(struct lt_stub_req *r, int status, const char *content_type,
		   const char *extra_headers, const char *body, size_t len)
{
	reply(r, status, content_type, extra_headers, body, len, true);
}

void lt_stub_reply_json(struct lt_stub_req *r, int status, const struct lt_buf *body,
			const char *extra_headers)
{
	if (body->err) {
		lt_stub_reply_error(r, 500,
				    body->err == LT_ENOMEM ? "out of memory building the answer"
							   : "answer too large",
				    NULL);
		return;
	}
	lt_stub_reply(r, status, "application/json", extra_headers, body->data, body->len);
}

static const char *gemini_status(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ABORTED";
	case 413: return "INVALID_ARGUMENT";
	case 429: return "RESOURCE_EXHAUSTED";
	case 499: return "CANCELLED";
	case 500: return "INTERNAL";
	case 501: return "UNIMPLEMENTED";
	case 503: return "UNAVAILABLE";
	case 504: return "DEADLINE_EXCEEDED";
	}
	return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
}

void lt_stub_reply_error(struct lt_stub_req *r, int status, const char *message,
			 const char *extra_headers)
{
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	switch (r->shape) {
	case LT_STUB_SHAPE_OPENAI: {
		const char *type = "invalid_request_error", *code = NULL;
		if (status == 429) {
			type = "requests";
			code = "rate_limit_exceeded";
		} else if (status == 401) {
			code = "invalid_api_key";
		} else if (status >= 500) {
			type = "server_error";
		}
		lt_buf_puts(&b, "{\"error\":{\"message\":");
		lt_buf_put_json_str(&b, message, strlen(message));
		lt_buf_puts(&b, ",\"type\":");
		lt_buf_put_json_str(&b, type, strlen(type));
		lt_buf_puts(&b, ",\"param\":null,\"code\":");
		if (code)
			lt_buf_put_json_str(&b, code, strlen(code));
		else
			lt_buf_puts(&b, "null");
		lt_buf_puts(&b, "}}");
		break;
	}
	case LT_STUB_SHAPE_GEMINI:
		lt_buf_printf(&b, "{\"error\":{\"code\":%d,\"message\":", status);
		lt_buf_put_json_str(&b, message, strlen(message));
		lt_buf_printf(&b, ",\"status\":\"%s\"}}", gemini_status(status));
		break;
	case LT_STUB_SHAPE_PLAIN:
		lt_buf_puts(&b, "{\"message\":");
		lt_buf_put_json_str(&b, message, strlen(message));
		lt_buf_printf(&b, ",\"status\":%d}", status);
		break;
	}
	if (b.err) {
		lt_buf_reset(&b);
		lt_buf_printf(&b, "{\"message\":\"error\",\"status\":%d}", status);
	}
	reply(r, status, "application/json", extra_headers, b.data, b.len, false);
	lt_buf_release(&b);
}

bool lt_stub_stream_begin(struct lt_stub_req *r)
{
	r->replied = true;
	r->streaming = true;
	r->status = 200;
	char stack[HEAD_STACK];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	put_head(&b, r, 200, "text/event-stream", "Cache-Control: no-cache\r\n", r->keep_alive);
	lt_buf_puts(&b, "Transfer-Encoding: chunked\r\n\r\n");
	bool ok = !b.err && write_all(r, b.data, b.len);
	lt_buf_release(&b);
	if (!ok)
		return false;
	if (r->fault.drop_after == 0) {
		close_after(r);
		return false;
	}
	return true;
}

bool lt_stub_stream_event(struct lt_stub_req *r, const char *payload, size_t len, const char *term)
{
	if (r->closed)
		return false;
	if (atomic_load(&r->s->stopping)) {
		close_after(r);
		return false;
	}
	if (r->fault.malformed && r->frames == r->malformed_frame && len > 1)
		len /= 2;
	size_t tl = strlen(term);
	char stack[REPLY_STACK];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	lt_buf_printf(&b, "%zx\r\ndata: ", 6 + len + tl);
	lt_buf_append(&b, payload, len);
	lt_buf_puts(&b, term);
	lt_buf_puts(&b, "\r\n");
	bool ok = !b.err && write_all(r, b.data, b.len);
	lt_buf_release(&b);
	if (!ok) {
		close_after(r);
		return false;
	}
	r->frames++;
	if (r->fault.drop_after >= 0 && r->frames >= r->fault.drop_after) {
		close_after(r);
		return false;
	}
	return true;
}

void lt_stub_stream_abort(struct lt_stub_req *r)
{
	close_after(r);
}

void lt_stub_stream_end(struct lt_stub_req *r)
{
	if (r->closed)
		return;
	write_all(r, "0\r\n\r\n", 5);
	if (!r->keep_alive)
		close_after(r);
}
