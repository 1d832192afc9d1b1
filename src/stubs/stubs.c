/*
 * stubs.c — the provider stubs' listener: a civetweb context of its own
 * (plain HTTP on [stubs] listen, HTTPS on tls_listen when set), the route
 * table, and the request pipeline.  See stubs.h and stub_int.h.
 *
 * Pipeline of one request (begin_request):
 *   route (404 / 405) → body, at most 1 MiB (413) → control API requests
 *   are answered now, never faulted → the fault (X-Stub-Fault header, else
 *   a queued plan, else the configured rates; a bad header is a 400) → the
 *   request log → latency_ms + jitter + spike + fault delay (cut short by
 *   stop) → an injected error status, if any → JSON body (400 in the
 *   provider's shape) → the handler, whose 200 may be dropped or malformed.
 *
 * Threads: civetweb workers call begin_request concurrently.  Shared state
 * lives in struct lt_stubs (knobs, plans, request log, payments: one mutex
 * each).  Each request seeds its own PRNG from an atomic counter mixed with
 * a start-time seed, so no PRNG state is shared.
 *
 * TLS: when tls_listen is set, stub_tls.c serves HTTPS there with BearSSL
 * and forwards each connection to the plain listener (civetweb's own TLS
 * cannot work with OpenSSL 3: see stub_tls.c).  A certificate file that
 * cannot be read or used fails the start with a reason.
 *
 * Stop: the stopping flag cuts sleeps and streams short; stop waits for
 * requests in flight to answer (bounded) before mg_stop, because civetweb
 * writes nothing once its own stop flag is up.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/civet.h"
#include "stubs/stub_int.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/json_check.h"

enum kind {
	K_OPENAI_CHAT,
	K_QWEN_CHAT,
	K_OPENAI_EMBED,
	K_QWEN_EMBED,
	K_GEMINI_GENERATE,
	K_GEMINI_STREAM,
	K_REFERENCE,
	K_PAY_AUTHORIZE,
	K_PAY_CAPTURE,
	K_PAY_RELEASE,
	K_PAY_GET,
	K_CTL_FAULTS_ADD,
	K_CTL_FAULTS_LIST,
	K_CTL_FAULTS_CLEAR,
	K_CTL_REQUESTS_LIST,
	K_CTL_REQUESTS_CLEAR,
	K_CTL_HEALTH,
};

/* The matcher reads method and pattern; `body` says a JSON body is
 * required.  kinds[] runs parallel to routes[]. */
static const struct lt_route routes[] = {
	{"POST", "/openai/v1/chat/completions", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/qwen/compatible-mode/v1/chat/completions", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/openai/v1/embeddings", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/qwen/compatible-mode/v1/embeddings", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/gemini/v1beta/models/{model}:generateContent", NULL, LT_AUTH_PUBLIC,
	 LT_BODY_JSON},
	{"POST", "/gemini/v1beta/models/{model}:streamGenerateContent", NULL, LT_AUTH_PUBLIC,
	 LT_BODY_JSON},
	{"POST", "/api/v1/{provider}/chat", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/payment/v1/authorize", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/payment/v1/capture", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"POST", "/payment/v1/release", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"GET", "/payment/v1/payments/{paymentId}", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
	{"POST", "/_stub/faults", NULL, LT_AUTH_PUBLIC, LT_BODY_JSON},
	{"GET", "/_stub/faults", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
	{"DELETE", "/_stub/faults", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
	{"GET", "/_stub/requests", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
	{"DELETE", "/_stub/requests", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
	{"GET", "/_stub/health", NULL, LT_AUTH_PUBLIC, LT_BODY_NONE},
};
static const enum kind kinds[] = {
	K_OPENAI_CHAT,	   K_QWEN_CHAT,	       K_OPENAI_EMBED,	    K_QWEN_EMBED,
	K_GEMINI_GENERATE, K_GEMINI_STREAM,    K_REFERENCE,	    K_PAY_AUTHORIZE,
	K_PAY_CAPTURE,	   K_PAY_RELEASE,      K_PAY_GET,	    K_CTL_FAULTS_ADD,
	K_CTL_FAULTS_LIST, K_CTL_FAULTS_CLEAR, K_CTL_REQUESTS_LIST, K_CTL_REQUESTS_CLEAR,
	K_CTL_HEALTH,
};
#define NROUTES (sizeof routes / sizeof routes[0])
_Static_assert(sizeof kinds / sizeof kinds[0] == NROUTES, "kinds[] parallels routes[]");

const char *lt_stub_header(const struct lt_stub_req *r, const char *name)
{
	return r->conn ? mg_get_header(r->conn, name) : NULL;
}

enum lt_err lt_stub_param(const struct lt_stub_req *r, const char *name, char *out, size_t cap)
{
	for (size_t i = 0; i < r->m.nparams; i++) {
		const struct lt_route_param *p = &r->m.params[i];
		if (p->name_len != strlen(name) || memcmp(p->name, name, p->name_len) != 0)
			continue;
		if (p->len >= cap)
			return LT_ETOOBIG;
		memcpy(out, p->value, p->len);
		out[p->len] = '\0';
		return LT_OK;
	}
	return LT_ENOTFOUND;
}

static void knobs_from(struct lt_stub_knobs *k, const struct lt_config *cfg)
{
	k->latency_ms = cfg->stubs_latency_ms;
	k->jitter_ms = cfg->stubs_jitter_ms;
	k->token_delay_ms = cfg->stubs_token_delay_ms;
	k->error_rate_pct = cfg->stubs_error_rate_pct;
	k->error_status = cfg->stubs_error_status;
	k->retry_after_s = cfg->stubs_retry_after_s;
	k->spike_rate_pct = cfg->stubs_spike_rate_pct;
	k->spike_ms = cfg->stubs_spike_ms;
	k->drop_rate_pct = cfg->stubs_drop_rate_pct;
	k->malformed_rate_pct = cfg->stubs_malformed_rate_pct;
}

static enum lt_stub_shape shape_for(const char *path)
{
	if (strncmp(path, "/openai/", 8) == 0 || strncmp(path, "/qwen/", 6) == 0)
		return LT_STUB_SHAPE_OPENAI;
	if (strncmp(path, "/gemini/", 8) == 0)
		return LT_STUB_SHAPE_GEMINI;
	return LT_STUB_SHAPE_PLAIN;
}

static bool client_keeps_alive(struct mg_connection *conn, const struct mg_request_info *ri)
{
	const char *c = mg_get_header(conn, "Connection");
	if (ri->http_version && strcmp(ri->http_version, "1.1") == 0)
		return !(c && strcasecmp(c, "close") == 0);
	return c && strcasecmp(c, "keep-alive") == 0;
}

/* Read the body into r->body.  0, or the status to answer. */
static int read_body(struct lt_stub_req *r)
{
	long long declared = r->ri->content_length;
	const char *te = mg_get_header(r->conn, "Transfer-Encoding");
	bool chunked = te && strcasecmp(te, "chunked") == 0;
	if (declared > LT_STUB_MAX_BODY)
		return 413;
	if (declared <= 0 && !chunked)
		return 0;
	/* civetweb does not answer Expect: 100-continue for callback handlers:
	 * without this a client waits (curl: one second) before sending. */
	const char *expect = mg_get_header(r->conn, "Expect");
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	if (expect && strcasecmp(expect, "100-continue") == 0)
		mg_write(r->conn, cont, sizeof cont - 1);
	size_t cap = chunked ? 4096 : (size_t)declared;
	char *buf = malloc(cap + 1);
	if (!buf)
		return 503;
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			if (!chunked)
				break;
			if (cap > LT_STUB_MAX_BODY) {
				free(buf);
				return 413;
			}
			size_t ncap = cap * 2 > (size_t)LT_STUB_MAX_BODY + 1
					      ? (size_t)LT_STUB_MAX_BODY + 1
					      : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				return 503;
			}
			buf = nb;
			cap = ncap;
		}
		int n = mg_read(r->conn, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (len > LT_STUB_MAX_BODY) {
		free(buf);
		return 413;
	}
	if (!chunked && len < (size_t)declared) {
		free(buf);
		return 400;
	}
	buf[len] = '\0';
	r->body = buf;
	r->body_len = len;
	return 0;
}

/* The credential the caller sent: Authorization, else x-goog-api-key,
 * else Gemini's ?key=; "" if none. */
static void credential(const struct lt_stub_req *r, char *out, size_t cap)
{
	const char *h = lt_stub_header(r, "Authorization");
	if (!h)
		h = lt_stub_header(r, "x-goog-api-key");
	out[0] = '\0';
	if (h) {
		snprintf(out, cap, "%s", h);
		return;
	}
	if (r->query && mg_get_var(r->query, strlen(r->query), "key", out, cap) < 0)
		out[0] = '\0';
}

static void record(struct lt_stub_req *r)
{
	struct lt_stub_reqlog_entry e;
	memset(&e, 0, sizeof e);
	e.received_ms = lt_stub_now_ms();
	e.body_bytes = (int64_t)r->body_len;
	snprintf(e.method, sizeof e.method, "%s", r->method);
	snprintf(e.path, sizeof e.path, "%s", r->path);
	lt_stub_fault_describe(&r->fault, e.fault, sizeof e.fault);
	credential(r, e.credential, sizeof e.credential);
	lt_stub_reqlog_add(&r->s->reqlog, &e);
}

static void injected_error(struct lt_stub_req *r)
{
	int st = r->fault.status;
	char hdr[64] = "";
	if (st == 429 || st == 503) {
		int ra = r->fault.retry_after_s >= 0 ? r->fault.retry_after_s
						     : (int)r->knobs.retry_after_s;
		snprintf(hdr, sizeof hdr, "Retry-After: %d\r\n", ra);
	}
	const char *msg = st == 429   ? "Rate limit reached (injected by the stub)"
			  : st == 503 ? "The server is overloaded (injected by the stub)"
			  : st >= 500 ? "The server had an error (injected by the stub)"
				      : "Request refused (injected by the stub)";
	lt_stub_reply_error(r, st, msg, hdr[0] ? hdr : NULL);
}

static bool parse_json(struct lt_stub_req *r)
{
	char msg[128];
	if (!r->body_len) {
		lt_stub_reply_error(r, 400, "request body is required", NULL);
		return false;
	}
	size_t pos = 0;
	enum lt_err e = lt_json_parse(r->body, r->body_len, &r->json, &pos);
	if (e == LT_ENOMEM) {
		lt_stub_reply_error(r, 503, "out of memory parsing the request body", NULL);
		return false;
	}
	if (e == LT_ETOOBIG) {
		snprintf(msg, sizeof msg, "JSON nested deeper than %d levels at byte %zu",
			 LT_JSON_MAX_DEPTH, pos);
		lt_stub_reply_error(r, 400, msg, NULL);
		return false;
	}
	if (e) {
		snprintf(msg, sizeof msg,
			 "We could not parse the JSON body of your request (malformed JSON at "
			 "byte %zu).",
			 pos);
		lt_stub_reply_error(r, 400, msg, NULL);
		return false;
	}
	return true;
}

static void serve(struct lt_stub_req *r)
{
	char msg[LT_STUB_PATH_MAX + 64];
	if (!r->ri->local_uri) {
		r->keep_alive = false;
		lt_stub_reply_error(r, 400, "request target must be a path", NULL);
		return;
	}
	enum lt_err e = lt_router_match(routes, NROUTES, r->method, r->path, &r->m);
	if (e == LT_ENOTFOUND) {
		snprintf(msg, sizeof msg, "no such stub endpoint: %.*s", LT_STUB_PATH_MAX, r->path);
		lt_stub_reply_error(r, 404, msg, NULL);
		return;
	}
	if (e == LT_EDENIED) {
		char hdr[LT_ROUTE_ALLOW_MAX + 16];
		snprintf(hdr, sizeof hdr, "Allow: %s\r\n", r->m.allow);
		snprintf(msg, sizeof msg, "method %s not allowed; allowed: %s", r->method,
			 r->m.allow);
		lt_stub_reply_error(r, 405, msg, hdr);
		return;
	}
	const struct lt_route *rt = r->m.route;
	enum kind k = kinds[rt - routes];
	int st = read_body(r);
	if (st) {
		r->keep_alive = false; /* an unread body may still be on the wire */
		if (st == 413)
			snprintf(msg, sizeof msg, "request body exceeds the limit of %d bytes",
				 LT_STUB_MAX_BODY);
		else if (st == 400)
			snprintf(msg, sizeof msg, "request body shorter than its Content-Length");
		else
			snprintf(msg, sizeof msg, "out of memory reading the request body");
		lt_stub_reply_error(r, st, msg, NULL);
		return;
	}
	if (k >= K_CTL_FAULTS_ADD) {
		if (rt->body == LT_BODY_JSON && !parse_json(r))
			return;
		static const enum lt_stub_ctl ctl[] = {
			[K_CTL_FAULTS_ADD] = LT_STUB_CTL_FAULTS_ADD,
			[K_CTL_FAULTS_LIST] = LT_STUB_CTL_FAULTS_LIST,
			[K_CTL_FAULTS_CLEAR] = LT_STUB_CTL_FAULTS_CLEAR,
			[K_CTL_REQUESTS_LIST] = LT_STUB_CTL_REQUESTS_LIST,
			[K_CTL_REQUESTS_CLEAR] = LT_STUB_CTL_REQUESTS_CLEAR,
			[K_CTL_HEALTH] = LT_STUB_CTL_HEALTH,
		};
		lt_stub_control(r, ctl[k]);
		return;
	}

	const char *fh = lt_stub_header(r, "X-Stub-Fault");
	if (fh) {
		if (lt_stub_fault_parse(fh, &r->fault, msg, sizeof msg)) {
			lt_stub_reply_error(r, 400, msg, NULL);
			return;
		}
	} else if (!lt_stub_plans_take(&r->s->plans, r->path, &r->fault)) {
		lt_stub_fault_roll(&r->knobs, &r->rng, &r->fault);
	}
	record(r);

	int64_t delay = r->knobs.latency_ms + r->fault.delay_ms;
	if (r->knobs.jitter_ms > 0)
		delay += (int64_t)lt_stub_rng_below(&r->rng, (uint64_t)r->knobs.jitter_ms + 1);
	if (!lt_stub_sleep(r->s, delay)) {
		r->keep_alive = false;
		lt_stub_reply_error(r, 503, "the stubs are shutting down", "Retry-After: 1\r\n");
		return;
	}
	if (r->fault.status) {
		injected_error(r);
		return;
	}
	if (rt->body == LT_BODY_JSON && !parse_json(r))
		return;
	switch (k) {
	case K_OPENAI_CHAT: lt_stub_openai_chat(r, LT_STUB_OPENAI); break;
	case K_QWEN_CHAT: lt_stub_openai_chat(r, LT_STUB_QWEN); break;
	case K_OPENAI_EMBED: lt_stub_openai_embeddings(r, LT_STUB_OPENAI); break;
	case K_QWEN_EMBED: lt_stub_openai_embeddings(r, LT_STUB_QWEN); break;
	case K_GEMINI_GENERATE: lt_stub_gemini_generate(r, false); break;
	case K_GEMINI_STREAM: lt_stub_gemini_generate(r, true); break;
	case K_REFERENCE: lt_stub_reference_chat(r); break;
	case K_PAY_AUTHORIZE: lt_stub_payment(r, LT_STUB_PAY_AUTHORIZE); break;
	case K_PAY_CAPTURE: lt_stub_payment(r, LT_STUB_PAY_CAPTURE); break;
	case K_PAY_RELEASE: lt_stub_payment(r, LT_STUB_PAY_RELEASE); break;
	case K_PAY_GET: lt_stub_payment(r, LT_STUB_PAY_GET); break;
	default: break;
	}
}

static void request_id(struct lt_stub_req *r)
{
	uint64_t a = lt_stub_rng_next(&r->rng), b = lt_stub_rng_next(&r->rng);
	snprintf(r->request_id, sizeof r->request_id, "req_%016llx%016llx", (unsigned long long)a,
		 (unsigned long long)b);
}

static void init_req(struct lt_stub_req *r, struct lt_stubs *s, struct mg_connection *conn,
		     const struct mg_request_info *ri)
{
	memset(r, 0, sizeof *r);
	r->s = s;
	r->conn = conn;
	r->ri = ri;
	r->method = ri && ri->request_method ? ri->request_method : "";
	r->path = ri && ri->local_uri ? ri->local_uri : "";
	r->query = ri ? ri->query_string : NULL;
	r->head = strcmp(r->method, "HEAD") == 0;
	r->shape = shape_for(r->path);
	uint64_t n = atomic_fetch_add(&s->seed_ctr, 1);
	lt_stub_rng_seed(&r->rng, s->seed0 ^ (n * UINT64_C(0x9e3779b97f4a7c15)) ^
					  (uint64_t)lt_clock_mono_ns());
	request_id(r);
	lt_stub_fault_none(&r->fault);
	pthread_mutex_lock(&s->knobs_mu);
	r->knobs = s->knobs;
	pthread_mutex_unlock(&s->knobs_mu);
}

static int begin_request(struct mg_connection *conn)
{
	struct lt_stubs *s = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	int64_t t0 = lt_clock_mono_ns();
	struct lt_stub_req r;
	atomic_fetch_add(&s->inflight, 1);
	init_req(&r, s, conn, ri);
	r.keep_alive = client_keeps_alive(conn, ri);
	serve(&r);
	if (!r.replied)
		lt_stub_reply_error(&r, 500, "the stub produced no answer", NULL);
	lt_log_request(s->log, r.request_id, r.m.route ? r.m.route->pattern : "unmatched", r.method,
		       r.path, r.status, lt_clock_mono_ns() - t0);
	cJSON_Delete(r.json);
	free(r.body);
	atomic_fetch_sub(&s->inflight, 1);
	return r.status ? r.status : 500;
}

/* Errors civetweb finds before begin_request (bad request line, headers
 * too large): a JSON answer too. */
static int http_error(struct mg_connection *conn, int status, const char *errmsg)
{
	struct lt_stubs *s = mg_get_user_data(mg_get_context(conn));
	struct lt_stub_req r;
	init_req(&r, s, conn, mg_get_request_info(conn));
	r.shape = LT_STUB_SHAPE_PLAIN;
	r.keep_alive = false;
	char clean[256];
	size_t n = 0;
	const char *msg = errmsg && *errmsg ? errmsg : "bad request";
	for (const char *p = msg; *p && n + 1 < sizeof clean; p++)
		if (*p != '\r' && *p != '\n')
			clean[n++] = *p;
	clean[n] = '\0';
	lt_stub_reply_error(&r, status, clean, NULL);
	return 0;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
	struct lt_stubs *s = mg_get_user_data(mg_get_context(conn));
	if (s)
		lt_log_warn(s->log, "stubs civetweb: %s", message);
	return 1;
}

int lt_stubs_port(const struct lt_stubs *s)
{
	return s ? s->port : 0;
}

int lt_stubs_tls_port(const struct lt_stubs *s)
{
	return s ? s->tls_port : 0;
}

void lt_stubs_reload(struct lt_stubs *s, const struct lt_config *cfg)
{
	struct lt_stub_knobs k;
	knobs_from(&k, cfg);
	pthread_mutex_lock(&s->knobs_mu);
	s->knobs = k;
	pthread_mutex_unlock(&s->knobs_mu);
}

static void free_stubs(struct lt_stubs *s)
{
	lt_stub_tls_stop(s->tls);
	lt_stub_payments_free(s->pay);
	lt_stub_reqlog_release(&s->reqlog);
	lt_stub_plans_release(&s->plans);
	pthread_mutex_destroy(&s->knobs_mu);
	free(s);
}

static void stop_civetweb(struct lt_stubs *s);

enum lt_err lt_stubs_start(const struct lt_config *cfg, struct lt_log *log, struct lt_stubs **out,
			   char *why, size_t why_cap)
{
	*out = NULL;
	if (why_cap)
		why[0] = '\0';
	struct lt_stubs *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(why, why_cap, "out of memory starting the stubs");
		return LT_ENOMEM;
	}
	s->log = log;
	atomic_init(&s->stopping, false);
	atomic_init(&s->inflight, 0);
	atomic_init(&s->seed_ctr, 0);
	s->seed0 =
		(uint64_t)lt_clock_real_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
	pthread_mutex_init(&s->knobs_mu, NULL);
	knobs_from(&s->knobs, cfg);
	if (lt_stub_plans_init(&s->plans) || lt_stub_reqlog_init(&s->reqlog) ||
	    lt_stub_payments_new(100000, &s->pay)) {
		free_stubs(s);
		snprintf(why, why_cap, "out of memory starting the stubs");
		return LT_ENOMEM;
	}
	snprintf(s->listen, sizeof s->listen, "%s", cfg->stubs_listen);
	snprintf(s->tls_listen, sizeof s->tls_listen, "%s", cfg->stubs_tls_listen);

	bool tls = cfg->stubs_tls_listen[0] != '\0';
	if (tls && !cfg->stubs_tls_cert[0]) {
		snprintf(why, why_cap,
			 "stubs tls_listen %s is set but tls_cert is empty: the HTTPS listener "
			 "needs a PEM file with the certificate and its private key",
			 cfg->stubs_tls_listen);
		free_stubs(s);
		return LT_EIO;
	}
	const char *ports = cfg->stubs_listen;
	char threads[24];
	snprintf(threads, sizeof threads, "%lld", (long long)cfg->stubs_threads);
	const char *options[] = {
		"listening_ports",
		ports,
		"num_threads",
		threads,
		"request_timeout_ms",
		"60000",
		"enable_keep_alive",
		"yes",
		"keep_alive_timeout_ms",
		"5000",
		"max_request_size",
		"16384",
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
	char err[512];
	if (lt_civet_start("cannot start the stubs listener on", ports, options, &cb, s, &s->ctx,
			   &s->port, err, sizeof err)) {
		snprintf(why, why_cap, "%s", err);
		free_stubs(s);
		return LT_EIO;
	}
	if (tls) {
		struct sockaddr_storage backend;
		socklen_t blen;
		lt_civet_local_addr(s->listen, s->port, &backend, &blen);
		enum lt_err e =
			lt_stub_tls_start(s->tls_listen, cfg->stubs_tls_cert, &backend, blen,
					  (int)cfg->stubs_threads, log, &s->tls, why, why_cap);
		if (e) {
			stop_civetweb(s);
			free_stubs(s);
			return e;
		}
		s->tls_port = lt_stub_tls_port(s->tls);
	}
	*out = s;
	return LT_OK;
}

static void stop_civetweb(struct lt_stubs *s)
{
	lt_civet_stop(s->ctx, s->listen, s->port);
	s->ctx = NULL;
}

void lt_stubs_stop(struct lt_stubs *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	lt_stub_tls_stop(s->tls); /* first: it forwards to the plain listener */
	s->tls = NULL;
	/* Let requests in flight see the flag and answer (a cut delay gets its
	 * 503, a stream its end) before mg_stop, after which civetweb writes
	 * nothing more.  Sleeps wake every LT_STUB_SLEEP_SLICE_MS, so this is
	 * short; the cap covers a client stuck sending its body. */
	for (int i = 0; i < 400 && atomic_load(&s->inflight) > 0; i++) {
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	stop_civetweb(s);
	free_stubs(s);
}
