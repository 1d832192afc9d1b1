/*
 * reply.c — building and writing responses; error envelopes; the lt_err to
 * HTTP status mapping.  See request.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <civetweb.h>
#include <stdio.h>
#include <string.h>

#include "http/request.h"
#include "server.h"
#include "util/clock.h"
#include "util/timefmt.h"

#define REPLY_STACK 4096
#define REPLY_MAX (64u << 20)

const char *lt_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
}

int lt_err_http_status(enum lt_err err)
{
	switch (err) {
	case LT_OK: return 200;
	case LT_EINVAL:
	case LT_ERANGE:
	case LT_ESYNTAX: return 400;
	case LT_EDENIED: return 403;
	case LT_ENOTFOUND: return 404;
	case LT_EEXIST: return 409;
	case LT_ETOOBIG: return 413;
	case LT_EBUSY:
	case LT_ESTOPPED: return 503;
	case LT_ETIMEOUT: return 504;
	case LT_ECONNECT:
	case LT_ETLS:
	case LT_EPROTO:
	case LT_ECLOSED: return 502;
	case LT_EUNAVAIL: return 503;
	case LT_ENOMEM:
	case LT_EIO:
	case LT_ESCHEMA:
	case LT_ECORRUPT:
	case LT_EAGAIN:
	case LT_ECONFIG: return 500;
	}
	return 500;
}

static const char security_headers[] =
	"X-Content-Type-Options: nosniff\r\n"
	"X-Frame-Options: DENY\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"Permissions-Policy: geolocation=(), microphone=(), camera=()\r\n"
	"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
	"Cache-Control: no-store\r\n";

/* Write v (0..99) as two digits. */
static char *put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

static char *put3(char *p, const char *s)
{
	memcpy(p, s, 3);
	return p + 3;
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 IMF-fixdate).  Done
 * by hand, not with gmtime_r and printf: this runs for every response, and
 * vsnprintf was 42% of leakyd's user-space instructions per GET /healthz
 * (callgrind; see bench/RESULTS.md). */
static void put_date(struct lt_buf *out, int64_t now_ns)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int64_t t = now_ns / LT_NS_PER_S; /* truncated, like the time_t it replaced */
	int64_t day = t / 86400, sod = t % 86400;
	if (sod < 0) {
		sod += 86400;
		day--;
	}
	int64_t y; /* int64 nanoseconds span 1677..2262: always four digits */
	unsigned m, d;
	lt_civil_from_days(day, &y, &m, &d);
	int64_t wday = (day + 4) % 7; /* 1970-01-01 was a Thursday */
	if (wday < 0)
		wday += 7;
	char line[40], *p = line;
	memcpy(p, "Date: ", 6);
	p = put3(p + 6, days + 3 * wday);
	*p++ = ',';
	*p++ = ' ';
	p = put2(p, d);
	*p++ = ' ';
	p = put3(p, months + 3 * (m - 1));
	*p++ = ' ';
	p = put2(p, (unsigned)(y / 100));
	p = put2(p, (unsigned)(y % 100));
	*p++ = ' ';
	p = put2(p, (unsigned)(sod / 3600));
	*p++ = ':';
	p = put2(p, (unsigned)(sod / 60 % 60));
	*p++ = ':';
	p = put2(p, (unsigned)(sod % 60));
	memcpy(p, " GMT\r\n", 6);
	p += 6;
	lt_buf_append(out, line, (size_t)(p - line));
}

void lt_reply_render(struct lt_buf *out, int status, const char *correlation_id, bool keep_alive,
		     const char *content_type, const char *extra_headers, size_t body_len,
		     int64_t now_ns)
{
	lt_buf_puts(out, "HTTP/1.1 ");
	lt_buf_put_i64(out, status);
	lt_buf_putc(out, ' ');
	lt_buf_puts(out, lt_http_reason(status));
	lt_buf_puts(out, "\r\n");
	put_date(out, now_ns);
	if (content_type) {
		lt_buf_puts(out, "Content-Type: ");
		lt_buf_puts(out, content_type);
		lt_buf_puts(out, "\r\n");
	}
	if (body_len == LT_REPLY_CHUNKED) {
		lt_buf_puts(out, "Transfer-Encoding: chunked");
	} else {
		lt_buf_puts(out, "Content-Length: ");
		lt_buf_put_u64(out, body_len);
	}
	lt_buf_puts(out,
		    keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
	if (correlation_id && *correlation_id) {
		lt_buf_puts(out, "X-Correlation-Id: ");
		lt_buf_puts(out, correlation_id);
		lt_buf_puts(out, "\r\n");
	}
	lt_buf_append(out, security_headers, sizeof security_headers - 1);
	if (extra_headers)
		lt_buf_puts(out, extra_headers);
	lt_buf_puts(out, "\r\n");
}

void lt_req_set_rl_headers(struct lt_req *req, const char *lines)
{
	size_t n = lines ? strlen(lines) : 0;
	if (n >= sizeof req->rl_headers)
		n = 0;
	memcpy(req->rl_headers, lines ? lines : "", n);
	req->rl_headers[n] = '\0';
}

/* extra_headers followed by the request's rate-limit headers, in tmp when
 * both are present. */
static const char *all_headers(const struct lt_req *req, const char *extra, char *tmp, size_t cap)
{
	if (!req->rl_headers[0])
		return extra;
	if (!extra || !extra[0])
		return req->rl_headers;
	snprintf(tmp, cap, "%s%s", extra, req->rl_headers);
	return tmp;
}

void lt_reply(struct lt_req *req, int status, const char *content_type, const char *extra_headers,
	      const char *body, size_t body_len)
{
	assert(!req->replied);
	if (req->replied)
		return;
	req->replied = true;
	req->status = status;
	if (status == 204 || status == 304)
		body_len = 0;
	char stack[REPLY_STACK];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, REPLY_MAX);
	bool ka = req->keep_alive && !req->close_after;
	char hdr[LT_RL_HEADERS_MAX + 8192];
	lt_reply_render(
		&b, status, req->correlation_id, ka, body_len || content_type ? content_type : NULL,
		all_headers(req, extra_headers, hdr, sizeof hdr), body_len, lt_clock_real_ns());
	if (!req->head && body_len)
		lt_buf_append(&b, body, body_len);
	if (!ka && req->conn)
		mg_disable_keep_alive(req->conn);
	if (!b.err && req->conn)
		mg_write(req->conn, b.data, b.len);
	lt_buf_release(&b);
}

enum lt_err lt_reply_stream_begin(struct lt_req *req, int status, const char *content_type,
				  const char *extra_headers)
{
	assert(!req->replied);
	if (req->replied)
		return LT_EINVAL;
	req->replied = true;
	req->streaming = true;
	req->status = status;
	char stack[2048];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, REPLY_MAX);
	bool ka = req->keep_alive && !req->close_after;
	char hdr[LT_RL_HEADERS_MAX + 8192];
	lt_reply_render(&b, status, req->correlation_id, ka, content_type,
			all_headers(req, extra_headers, hdr, sizeof hdr), LT_REPLY_CHUNKED,
			lt_clock_real_ns());
	if (!ka && req->conn)
		mg_disable_keep_alive(req->conn);
	enum lt_err e = b.err ? LT_ETOOBIG : LT_OK;
	if (!e && req->conn && mg_write(req->conn, b.data, b.len) != (int)b.len)
		e = LT_ECLOSED;
	lt_buf_release(&b);
	if (e)
		req->stream_broken = true;
	return e;
}

enum lt_err lt_reply_stream_write(struct lt_req *req, const char *data, size_t len)
{
	assert(req->streaming);
	if (req->stream_broken)
		return LT_ECLOSED;
	if (!len)
		return LT_OK;
	char stack[4096];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, len + 64);
	lt_buf_printf(&b, "%zx\r\n", len);
	lt_buf_append(&b, data, len);
	lt_buf_puts(&b, "\r\n");
	enum lt_err e = b.err ? LT_ENOMEM : LT_OK;
	if (!e && req->conn && mg_write(req->conn, b.data, b.len) != (int)b.len)
		e = LT_ECLOSED;
	lt_buf_release(&b);
	if (e)
		req->stream_broken = true;
	return e;
}

void lt_reply_stream_end(struct lt_req *req)
{
	assert(req->streaming);
	if (req->stream_broken || !req->conn)
		return;
	if (mg_write(req->conn, "0\r\n\r\n", 5) != 5)
		req->stream_broken = true;
}

void lt_reply_json(struct lt_req *req, int status, const struct lt_buf *body,
		   const char *extra_headers)
{
	if (body->err) {
		lt_reply_error(req, 500, "response too large to render");
		return;
	}
	lt_reply(req, status, "application/json", extra_headers, body->data, body->len);
}

void lt_reply_cjson(struct lt_req *req, int status, const cJSON *body, const char *extra_headers)
{
	char *text = cJSON_PrintUnformatted(body);
	if (!text) {
		lt_reply_error(req, 500, "out of memory");
		return;
	}
	lt_reply(req, status, "application/json", extra_headers, text, strlen(text));
	cJSON_free(text);
}

void lt_reply_openai_error(struct lt_req *req, int status, const char *type, const char *code,
			   const char *param, const char *message, const char *extra_headers)
{
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	lt_buf_puts(&b, "{\"error\":{\"message\":");
	lt_buf_put_json_str(&b, message, strlen(message));
	lt_buf_puts(&b, ",\"type\":");
	lt_buf_put_json_str(&b, type, strlen(type));
	lt_buf_puts(&b, ",\"param\":");
	if (param)
		lt_buf_put_json_str(&b, param, strlen(param));
	else
		lt_buf_puts(&b, "null");
	lt_buf_puts(&b, ",\"code\":");
	if (code)
		lt_buf_put_json_str(&b, code, strlen(code));
	else
		lt_buf_puts(&b, "null");
	lt_buf_puts(&b, "}}");
	char hdr[256 + LT_CORRELATION_MAX];
	snprintf(hdr, sizeof hdr, "x-request-id: %s\r\n%s", req->correlation_id,
		 extra_headers ? extra_headers : "");
	lt_reply(req, status, "application/json", hdr, b.data, b.len);
	lt_buf_release(&b);
}

static const char *openai_type(int status)
{
	switch (status) {
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 429: return "rate_limit_error";
	default: return status >= 500 ? "server_error" : "invalid_request_error";
	}
}

void lt_reply_error_h(struct lt_req *req, int status, const char *message,
		      const char *extra_headers)
{
	if (req->openai) {
		lt_reply_openai_error(req, status, openai_type(status), NULL, NULL, message,
				      extra_headers);
		return;
	}
	char stack[1024], ts[LT_ISO_LEN];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	lt_time_iso(req->srv ? lt_clock_now_ns(&req->srv->clock) : lt_clock_real_ns(), ts);
	lt_buf_puts(&b, "{\"message\":");
	lt_buf_put_json_str(&b, message, strlen(message));
	lt_buf_printf(&b, ",\"timestamp\":\"%s\",\"status\":%d,\"path\":", ts, status);
	lt_buf_put_json_str(&b, req->path, strlen(req->path));
	lt_buf_puts(&b, ",\"correlationId\":");
	lt_buf_put_json_str(&b, req->correlation_id, strlen(req->correlation_id));
	lt_buf_puts(&b, "}");
	lt_reply(req, status, "application/json", extra_headers, b.data, b.len);
	lt_buf_release(&b);
}

void lt_reply_error(struct lt_req *req, int status, const char *message)
{
	lt_reply_error_h(req, status, message, NULL);
}

const char *lt_req_remote_addr(const struct lt_req *req)
{
	return req->ri ? req->ri->remote_addr : "";
}

const char *lt_req_header(const struct lt_req *req, const char *name)
{
	return req->conn ? mg_get_header(req->conn, name) : NULL;
}

enum lt_err lt_req_query(const struct lt_req *req, const char *name, char *out, size_t cap)
{
	if (!req->query)
		return LT_ENOTFOUND;
	int n = mg_get_var(req->query, strlen(req->query), name, out, cap);
	if (n == -1)
		return LT_ENOTFOUND;
	if (n < 0)
		return LT_ETOOBIG;
	return LT_OK;
}

enum lt_err lt_req_param(const struct lt_req *req, const char *name, const char **val, size_t *len)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < req->match.nparams; i++) {
		const struct lt_route_param *p = &req->match.params[i];
		if (p->name_len == nl && memcmp(p->name, name, nl) == 0) {
			*val = p->value;
			*len = p->len;
			return LT_OK;
		}
	}
	return LT_ENOTFOUND;
}
