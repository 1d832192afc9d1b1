/*
 * listener.c — civetweb setup and the request pipeline.  See listener.h.
 *
 * Threads: civetweb's workers call begin_request; everything here is
 * re-entrant and reads shared state only through atomics and the config
 * snapshot taken at the start of each request.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "http/civet.h"
#include "http/request.h"
#include "http/router.h"
#include "api/spend.h"
#include "http/listener.h"
#include "server.h"
#include "util/json.h"
#include "util/json_check.h"
#include "util/uuid.h"

static const char *metric_method(const char *m)
{
	static const char *const known[] = {"GET",   "HEAD",   "POST",	 "PUT",
					    "PATCH", "DELETE", "OPTIONS"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "OTHER";
}

/* Echo a sane X-Correlation-Id (1-128 printable characters after trimming
 * blanks), else make a UUID. */
static void correlation_id(struct mg_connection *conn, char out[LT_CORRELATION_MAX + 1])
{
	const char *h = conn ? mg_get_header(conn, "X-Correlation-Id") : NULL;
	if (h) {
		while (*h == ' ' || *h == '\t')
			h++;
		size_t n = strlen(h);
		while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
			n--;
		bool ok = n > 0 && n <= LT_CORRELATION_MAX;
		for (size_t i = 0; ok && i < n; i++)
			ok = h[i] >= 0x20 && h[i] < 0x7F;
		if (ok) {
			memcpy(out, h, n);
			out[n] = '\0';
			return;
		}
	}
	lt_uuid_v4(out);
}

static bool client_keeps_alive(struct mg_connection *conn, const struct mg_request_info *ri)
{
	const char *c = mg_get_header(conn, "Connection");
	if (ri->http_version && strcmp(ri->http_version, "1.1") == 0)
		return !(c && strcasecmp(c, "close") == 0);
	return c && strcasecmp(c, "keep-alive") == 0;
}

static bool is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	       strncmp(addr, "::ffff:127.", 11) == 0;
}

static bool json_content_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	size_t n = strcspn(ct, "; ");
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	/* application/<something>+json */
	return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Read the body into req->body.  Returns 0 or the HTTP status to answer. */
static int read_body(struct lt_req *req, int64_t max_body)
{
	long long declared = req->ri->content_length;
	const char *te = mg_get_header(req->conn, "Transfer-Encoding");
	bool chunked = te && strcasecmp(te, "chunked") == 0;
	if (declared <= 0 && !chunked)
		return 0;
	if (declared > max_body)
		return 413;
	/* A client that waits for permission before sending its body (curl
	 * does for larger bodies) gets it now that the limits passed;
	 * civetweb does not answer Expect for callback handlers. */
	const char *expect = mg_get_header(req->conn, "Expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 &&
	    strcmp(req->ri->http_version, "1.1") == 0)
		mg_write(req->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	size_t cap = chunked ? 4096 : (size_t)declared;
	char *buf = malloc(cap + 1);
	if (!buf)
		return 503;
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			if (!chunked)
				break;
			if (cap > (size_t)max_body) {
				free(buf);
				return 413;
			}
			size_t ncap =
				cap * 2 > (size_t)max_body + 1 ? (size_t)max_body + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				return 503;
			}
			buf = nb;
			cap = ncap;
		}
		int r = mg_read(req->conn, buf + len, cap - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	if (len > (size_t)max_body) {
		free(buf);
		return 413;
	}
	if (!chunked && len < (size_t)declared) {
		free(buf);
		return 400;
	}
	buf[len] = '\0';
	req->body = buf;
	req->body_len = len;
	return 0;
}

static void observe(struct lt_req *req, const char *route_name)
{
	struct lt_server *srv = req->srv;
	char status[8];
	snprintf(status, sizeof status, "%d", req->status);
	const char *labels[] = {route_name, metric_method(req->method), status};
	lt_counter_add(lt_metric_series(&srv->metrics, srv->m.requests, labels), 1);
	int64_t dur = lt_clock_mono_ns() - req->t0_mono;
	lt_histogram_observe(srv->m.duration,
			     lt_metric_series(&srv->metrics, srv->m.duration, labels),
			     (double)dur / 1e9);
	lt_log_request(&srv->log, req->correlation_id, route_name, req->method, req->path,
		       req->status, dur);
}

static void reject(struct lt_server *srv, const char *reason)
{
	const char *labels[] = {reason};
	lt_counter_add(lt_metric_series(&srv->metrics, srv->m.rejected, labels), 1);
}

/* Establish req->principal; on failure answer 401 (403 for a principal
 * without the ADMIN role on an admin route) and return false. */
static bool authenticate(struct lt_req *req)
{
	struct lt_server *srv = req->srv;
	enum lt_auth_fail why = LT_AUTH_FAIL_NONE;
	enum lt_err e =
		lt_auth_authenticate(&srv->auth, mg_get_header(req->conn, "Authorization"),
				     mg_get_header(req->conn, "X-Api-Key"), &req->principal, &why);
	if (e == LT_EDENIED) {
		const char *msg = why == LT_AUTH_FAIL_MISSING	    ? "authentication required"
				  : why == LT_AUTH_FAIL_BAD_KEY	    ? "invalid api key"
				  : why == LT_AUTH_FAIL_KEY_EXPIRED ? "api key expired"
				  : why == LT_AUTH_FAIL_DISABLED    ? "account disabled"
								    : "invalid token";
		if (req->openai)
			lt_reply_openai_error(req, 401, "invalid_request_error", "invalid_api_key",
					      NULL, msg, "WWW-Authenticate: Bearer\r\n");
		else
			lt_reply_error_h(req, 401, msg, "WWW-Authenticate: Bearer\r\n");
		return false;
	}
	if (e) {
		lt_reply_error_h(req, 503, "authentication is temporarily unavailable",
				 "Retry-After: 1\r\n");
		return false;
	}
	req->authed = true;
	if (req->match.route->auth == LT_AUTH_ADMIN && !(req->principal.roles & LT_ROLE_ADMIN)) {
		lt_reply_error(req, 403, "admin role required");
		return false;
	}
	return true;
}

/* `inflight` is this request's own count (it included): reading the shared
 * counter again here would let two racing requests both see the other and
 * both be refused under the limit. */
static void dispatch(struct lt_req *req, int inflight)
{
	struct lt_server *srv = req->srv;
	const struct lt_config *cfg = req->cfg;
	unsigned ready = atomic_load(&srv->ready);

	enum lt_err e =
		lt_router_match(srv->routes, srv->nroutes, req->method, req->path, &req->match);
	if (ready & LT_READY_DRAINING) {
		req->close_after = true;
		if (e != LT_OK || !req->match.route->during_drain) {
			reject(srv, "draining");
			lt_reply_error_h(req, 503, "server is shutting down", "Retry-After: 1\r\n");
			return;
		}
	}
	if (inflight > cfg->http_max_inflight) {
		reject(srv, "inflight");
		lt_reply_error_h(req, 503,
				 "server is at its in-flight request limit; retry shortly",
				 "Retry-After: 1\r\n");
		return;
	}
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "no such endpoint");
		return;
	}
	if (e == LT_EDENIED) {
		char hdr[LT_ROUTE_ALLOW_MAX + 16];
		char msg[LT_ROUTE_ALLOW_MAX + 48];
		snprintf(hdr, sizeof hdr, "Allow: %s\r\n", req->match.allow);
		snprintf(msg, sizeof msg, "method %s not allowed; allowed: %s", req->method,
			 req->match.allow);
		lt_reply_error_h(req, 405, msg, hdr);
		return;
	}
	const struct lt_route *r = req->match.route;
	if (r->auth == LT_AUTH_DEBUG && !is_loopback(req->ri->remote_addr)) {
		lt_reply_error(req, 403, "debug endpoints are served to loopback clients only");
		return;
	}
	if ((r->needs_ready || r->auth >= LT_AUTH_USER) && (ready & LT_READY_ALL) != LT_READY_ALL) {
		lt_reply_error_h(req, 503, "not ready: storage is still opening",
				 "Retry-After: 1\r\n");
		return;
	}
	if (r->auth >= LT_AUTH_USER && !authenticate(req))
		return;
	/* The request limit, before the body is read; routes that spend
	 * tokens admit it together with their token buckets (spend.h), the
	 * test hooks are exempt. */
	if (!r->admits && r->auth != LT_AUTH_DEBUG && !lt_spend_admit_request(req))
		return;
	/* Body limits apply to every route: an oversized body is refused
	 * before it is read, whatever the route does with bodies. */
	long long declared = req->ri->content_length;
	if (declared > cfg->http_max_body) {
		char msg[96];
		req->close_after = true; /* the unread body is still on the wire */
		snprintf(msg, sizeof msg, "request body exceeds the limit of %lld bytes",
			 (long long)cfg->http_max_body);
		lt_reply_error(req, 413, msg);
		return;
	}
	const char *ct = mg_get_header(req->conn, "Content-Type");
	bool has_body = declared > 0 || mg_get_header(req->conn, "Transfer-Encoding");
	if (r->body == LT_BODY_JSON && has_body && !json_content_type(ct)) {
		req->close_after = true;
		lt_reply_error(req, 415, "Content-Type must be application/json");
		return;
	}
	int st = read_body(req, cfg->http_max_body);
	if (st) {
		char msg[96];
		req->close_after = true;
		if (st == 413)
			snprintf(msg, sizeof msg, "request body exceeds the limit of %lld bytes",
				 (long long)cfg->http_max_body);
		else if (st == 400)
			snprintf(msg, sizeof msg, "request body shorter than its Content-Length");
		else
			snprintf(msg, sizeof msg, "out of memory reading the request body");
		lt_reply_error(req, st, msg);
		return;
	}
	if (r->body == LT_BODY_JSON) {
		if (!req->body_len) {
			lt_reply_error(req, 400, "request body is required");
			return;
		}
		size_t pos;
		e = lt_json_parse(req->body, req->body_len, &req->json, &pos);
		if (e) {
			char msg[96];
			if (e == LT_ENOMEM)
				snprintf(msg, sizeof msg, "out of memory parsing the request body");
			else if (e == LT_ETOOBIG)
				snprintf(msg, sizeof msg,
					 "JSON nested deeper than %d levels at byte %zu",
					 LT_JSON_MAX_DEPTH, pos);
			else
				snprintf(msg, sizeof msg, "malformed JSON at byte %zu", pos);
			lt_reply_error(req, e == LT_ENOMEM ? 503 : 400, msg);
			return;
		}
	}
	r->handler(req);
	if (!req->replied)
		lt_reply_error(req, 500, "handler produced no response");
}

static int begin_request(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct lt_server *srv = mg_get_user_data(mg_get_context(conn));
	struct lt_req req;
	memset(&req, 0, sizeof req);
	req.t0_mono = lt_clock_mono_ns();
	req.srv = srv;
	req.conn = conn;
	req.ri = ri;
	req.method = ri->request_method ? ri->request_method : "";
	req.path = ri->local_uri ? ri->local_uri : (ri->request_uri ? ri->request_uri : "");
	req.query = ri->query_string;
	req.head = strcmp(req.method, "HEAD") == 0;
	req.openai = strncmp(req.path, "/v1/", 4) == 0 || strcmp(req.path, "/v1") == 0;
	correlation_id(conn, req.correlation_id);
	req.cfg = lt_server_config_acquire(srv);
	req.keep_alive = req.cfg->http_keep_alive && client_keeps_alive(conn, ri);

	int n = atomic_fetch_add(&srv->inflight, 1) + 1;
	lt_gauge_set(srv->m.inflight_s, n);
	if (!ri->local_uri) {
		req.close_after = true;
		lt_reply_error(&req, 400, "request target must be a path on this server");
	} else {
		dispatch(&req, n);
	}
	n = atomic_fetch_sub(&srv->inflight, 1) - 1;
	lt_gauge_set(srv->m.inflight_s, n);

	observe(&req, req.match.route ? req.match.route->pattern : "unmatched");
	cJSON_Delete(req.json);
	free(req.body);
	lt_server_config_release(srv, req.cfg);
	return req.status ? req.status : 500;
}

/* Errors civetweb detects before begin_request (bad request line, headers
 * over max_request_size, ...): answer with our JSON envelope. */
static int http_error(struct mg_connection *conn, int status, const char *errmsg)
{
	struct lt_server *srv = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct lt_req req;
	memset(&req, 0, sizeof req);
	req.srv = srv;
	req.conn = conn;
	req.t0_mono = lt_clock_mono_ns();
	req.method = ri && ri->request_method ? ri->request_method : "";
	req.path = ri && ri->local_uri ? ri->local_uri : "";
	req.close_after = true;
	lt_uuid_v4(req.correlation_id);
	const char *msg = errmsg && *errmsg ? errmsg : lt_http_reason(status);
	char clean[256];
	size_t n = 0;
	for (const char *p = msg; *p && n + 1 < sizeof clean; p++) /* one line */
		if (*p != '\r' && *p != '\n')
			clean[n++] = *p;
	while (n && clean[n - 1] == ' ')
		n--;
	clean[n] = '\0';
	/* civetweb reports headers that overflow max_request_size as 413
	 * "Message too large" or, when the buffer fills mid-header, as 400
	 * "Malformed message"; both mean the head did not fit. */
	if (status == 413 || (status == 400 && strcmp(clean, "Malformed message") == 0)) {
		const struct lt_config *cfg = lt_server_config_acquire(srv);
		snprintf(clean, sizeof clean,
			 "request headers are malformed or larger than the limit of %lld bytes",
			 (long long)cfg->http_max_header);
		lt_server_config_release(srv, cfg);
		status = 431;
	}
	lt_reply_error(&req, status, clean);
	observe(&req, "unmatched");
	return 0;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
	struct lt_server *srv = mg_get_user_data(mg_get_context(conn));
	lt_log_warn(&srv->log, "civetweb: %s", message);
	return 1;
}

enum lt_err lt_http_start(struct lt_server *srv, char *err)
{
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	char threads[24], timeout[24], ka_timeout[24], max_header[24];
	snprintf(threads, sizeof threads, "%lld", (long long)cfg->http_threads);
	snprintf(timeout, sizeof timeout, "%lld", (long long)cfg->http_request_timeout_ms);
	snprintf(ka_timeout, sizeof ka_timeout, "%lld", (long long)cfg->http_keep_alive_timeout_ms);
	snprintf(max_header, sizeof max_header, "%lld", (long long)cfg->http_max_header);
	const char *options[] = {
		"listening_ports",
		cfg->http_listen,
		"num_threads",
		threads,
		"request_timeout_ms",
		timeout,
		"enable_keep_alive",
		cfg->http_keep_alive ? "yes" : "no",
		"keep_alive_timeout_ms",
		ka_timeout,
		"max_request_size",
		max_header,
		"tcp_nodelay",
		"1",
		"enable_auth_domain_check",
		"no",
		"decode_url",
		"yes",
		NULL,
	};
	struct mg_callbacks cb;
	memset(&cb, 0, sizeof cb);
	cb.begin_request = begin_request;
	cb.http_error = http_error;
	cb.log_message = log_message;
	if (lt_civet_start("cannot listen on", cfg->http_listen, options, &cb, srv, &srv->http,
			   &srv->http_port, err, LT_HTTP_ERR_MAX)) {
		lt_server_config_release(srv, cfg);
		return LT_EIO;
	}
	lt_server_config_release(srv, cfg);
	return LT_OK;
}

void lt_http_stop(struct lt_server *srv)
{
	if (!srv->http)
		return;
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	char listen[LT_CFG_STR_MAX];
	snprintf(listen, sizeof listen, "%s", cfg->http_listen);
	lt_server_config_release(srv, cfg);
	lt_civet_stop(srv->http, listen, srv->http_port);
	srv->http = NULL;
}
