/*
 * request.h — the per-request context and the response writers.
 *
 * struct lt_req lives on the civetweb worker's stack for one request.  It
 * holds a configuration snapshot (released when the request ends), the
 * correlation id, the matched route and params, and the parsed JSON body.
 * Every response goes through lt_reply(): it builds the status line, the
 * common headers (Date, Content-Length, Connection, X-Correlation-Id,
 * security headers, Cache-Control) and the body in one buffer and writes it
 * with one mg_write (STYLE.md: one write is 3x faster than civetweb's header
 * helpers).  A request gets exactly one reply; a second is a bug (asserted).
 *
 * Errors: lt_reply_error() renders the envelope of the request's surface —
 * {"message","timestamp","status","path","correlationId"} on /api/v1,
 * /oauth2, /admin/v1 and ops paths; OpenAI's {"error":{...}} on /v1.
 *
 * Ownership: json and body are owned by the request and freed at its end;
 * strings returned by the accessors live as long as the request.
 */
#ifndef LT_HTTP_REQUEST_H
#define LT_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "http/router.h"
#include "util/buf.h"
#include "util/err.h"

struct lt_server;
struct lt_config;
struct mg_connection;
struct mg_request_info;

#define LT_CORRELATION_MAX 128

#define LT_RL_HEADERS_MAX 768

struct lt_req {
	struct lt_server *srv;
	const struct lt_config *cfg; /* snapshot held for the request */
	struct mg_connection *conn;  /* NULL in unit tests */
	const struct mg_request_info *ri;
	const char *method;
	const char *path;
	const char *query; /* raw query string or NULL */
	struct lt_route_match match;
	char correlation_id[LT_CORRELATION_MAX + 1];
	char *body; /* owned; NUL-terminated */
	size_t body_len;
	cJSON *json;	  /* owned parsed body, or NULL */
	bool openai;	  /* /v1 surface: OpenAI error envelope */
	bool head;	  /* HEAD: headers only */
	bool keep_alive;  /* the client allows reuse */
	bool close_after; /* answer with Connection: close */
	bool replied;
	bool streaming;	    /* the reply is a chunked stream (lt_reply_stream_*) */
	bool stream_broken; /* a stream write failed: the client is gone */
	bool authed;	    /* principal is set */
	struct lt_principal principal;
	/* Rate-limit headers of the request's admission (complete lines ending
	 * "\r\n", or ""): every reply of the request carries them, errors and
	 * streams included (API.md §4, §6).  Set with lt_req_set_rl_headers. */
	char rl_headers[LT_RL_HEADERS_MAX];
	int status;
	int64_t t0_mono;
};

/* Write the whole response.  extra_headers is NULL or complete header
 * lines, each ending in "\r\n".  content_type NULL means no body headers
 * beyond Content-Length. */
void lt_reply(struct lt_req *req, int status, const char *content_type, const char *extra_headers,
	      const char *body, size_t body_len);

/* A streamed reply (SSE): the headers with Transfer-Encoding: chunked, then
 * one chunk per write, then the terminating chunk.  Writes after a failure
 * return LT_ECLOSED at once (the client went away); the request then ends
 * without keep-alive. */
#define LT_REPLY_CHUNKED ((size_t)-1)
enum lt_err lt_reply_stream_begin(struct lt_req *req, int status, const char *content_type,
				  const char *extra_headers);
enum lt_err lt_reply_stream_write(struct lt_req *req, const char *data, size_t len);
void lt_reply_stream_end(struct lt_req *req);

/* JSON body from a buffer (its error, if any, becomes a 500). */
void lt_reply_json(struct lt_req *req, int status, const struct lt_buf *body,
		   const char *extra_headers);

/* JSON body from a cJSON tree (not freed here). */
void lt_reply_cjson(struct lt_req *req, int status, const cJSON *body, const char *extra_headers);

/* An error in the envelope of the request's surface. */
void lt_reply_error(struct lt_req *req, int status, const char *message);
void lt_reply_error_h(struct lt_req *req, int status, const char *message,
		      const char *extra_headers);

/* An error in OpenAI's envelope, whatever the surface. */
void lt_reply_openai_error(struct lt_req *req, int status, const char *type, const char *code,
			   const char *param, const char *message, const char *extra_headers);

/* The HTTP status an lt_err stands for (the one place this mapping lives). */
int lt_err_http_status(enum lt_err err);

/* Standard reason phrase for a status code. */
const char *lt_http_reason(int status);

/* The client's address as text ("" when unknown). */
const char *lt_req_remote_addr(const struct lt_req *req);

/* Make `lines` (complete header lines, or NULL to clear) the rate-limit
 * headers of every later reply of req; lines longer than the field are
 * dropped whole (they are bounded well below it). */
void lt_req_set_rl_headers(struct lt_req *req, const char *lines);

/* Value of request header `name` or NULL. */
const char *lt_req_header(const struct lt_req *req, const char *name);

/* Query parameter, URL-decoded into out (cap bytes).  LT_ENOTFOUND if
 * absent, LT_ETOOBIG if it does not fit. */
enum lt_err lt_req_query(const struct lt_req *req, const char *name, char *out, size_t cap);

/* A path parameter by name; LT_ENOTFOUND if the route has none such. */
enum lt_err lt_req_param(const struct lt_req *req, const char *name, const char **val, size_t *len);

/* Render the common headers and body into `out` (exposed for tests and for
 * the civetweb error callback).  body_len LT_REPLY_CHUNKED renders
 * Transfer-Encoding: chunked instead of Content-Length. */
void lt_reply_render(struct lt_buf *out, int status, const char *correlation_id, bool keep_alive,
		     const char *content_type, const char *extra_headers, size_t body_len,
		     int64_t now_ns);

#endif
