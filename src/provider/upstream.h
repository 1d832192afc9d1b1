/*
 * upstream.h — the HTTP/1.1 client leakyd uses to reach LLM providers.
 *
 * One struct lt_upstream per provider: its parsed base URL, a pool of idle
 * keep-alive connections, and (for https://) the trust anchors to verify the
 * server with.  lt_upstream_do sends one request and reads its response
 * with three deadlines (absolute, on lt_clock_mono_ns): connect (TCP and TLS
 * handshake), first byte of the response, and the whole exchange.  The body
 * is either buffered (bounded by max_body) or handed to a callback as it
 * arrives, de-chunked (SSE streams).
 *
 * TLS is BearSSL: trust anchors are loaded once per CA bundle (PEM file,
 * e.g. /etc/ssl/certs/ca-certificates.crt) by lt_tls_anchors_load; the
 * client sends SNI and verifies the certificate chain and the host name.
 *
 * Connection reuse: after a complete response that allows it, the
 * connection returns to the pool (at most pool_max idle; older ones are
 * closed).  An idle connection is checked before reuse (readable or past
 * idle_timeout → closed).  If a reused connection fails before any response
 * byte arrives, the request is sent once more on a new connection (the
 * keep-alive close race); otherwise failures are reported, never retried
 * here — retry policy lives in provider/call.c.
 *
 * Errors: LT_ECONNECT (resolve or connect failed or timed out), LT_ETLS
 * (handshake or certificate), LT_ETIMEOUT (first byte or total deadline),
 * LT_EPROTO (malformed response), LT_ETOOBIG (response over its limit),
 * LT_ECLOSED (peer closed mid-response, or a request sent on a reused
 * connection got no answer and its resend could not connect: the first copy
 * may have reached the server), or whatever on_body returned.
 * resp->why holds a one-line human explanation for logs and error bodies.
 *
 * Threads: an lt_upstream is shared by all workers; the pool is guarded by
 * its own mutex and a connection is used by one thread at a time.
 */
#ifndef LT_PROVIDER_UPSTREAM_H
#define LT_PROVIDER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider/http_parse.h"
#include "util/err.h"

struct lt_url {
	bool tls;	/* https */
	char host[256]; /* name or IPv4 literal */
	uint16_t port;	/* default 80 / 443 */
	char path[512]; /* base path, no trailing '/', "" for the root */
};

/* Parse "http[s]://host[:port][/path]".  No userinfo, query or fragment;
 * IPv6 literals are refused.  LT_EINVAL with `why` on anything else. */
enum lt_err lt_url_parse(const char *url, struct lt_url *out, char *why, size_t why_cap);

/* Trust anchors from a PEM bundle.  Owned by the caller; immutable once
 * loaded, so shared by every upstream that names the same file.
 * LT_EIO if the file cannot be read, LT_EINVAL (why) if it holds no usable
 * certificate. */
struct lt_tls_anchors;
enum lt_err lt_tls_anchors_load(const char *pem_path, struct lt_tls_anchors **out, char *why,
				size_t why_cap);
size_t lt_tls_anchors_count(const struct lt_tls_anchors *a);
void lt_tls_anchors_free(struct lt_tls_anchors *a);

struct lt_upstream_opts {
	struct lt_url url;
	const struct lt_tls_anchors *anchors; /* required when url.tls; borrowed */
	size_t pool_max;		      /* idle connections kept (0 = no reuse) */
	int64_t idle_timeout_ns;	      /* idle connections older than this are closed */
};

struct lt_upstream;
enum lt_err lt_upstream_new(const struct lt_upstream_opts *opts, struct lt_upstream **out);
/* Closes every pooled connection.  No call may be in progress. */
void lt_upstream_free(struct lt_upstream *u);

/* Idle connections now in the pool (for metrics and tests). */
size_t lt_upstream_idle(struct lt_upstream *u);

struct lt_upstream_req {
	const char *method;  /* "POST" */
	const char *path;    /* absolute path with query, e.g. "/v1/chat/completions" */
	const char *headers; /* extra header lines, each ending "\r\n" (may be NULL);
				Host, Content-Length, Connection and User-Agent are added */
	const char *body;
	size_t body_len;
	int64_t connect_deadline_ns; /* absolute, lt_clock_mono_ns() */
	int64_t first_byte_deadline_ns;
	int64_t deadline_ns;
	size_t max_header; /* response status line + headers */
	size_t max_body;   /* response body */
	/* With on_body: deliver only 2xx bodies to on_body; other bodies are
	 * buffered into resp->body (so the caller can read the error). */
	bool stream_2xx_only;
};

struct lt_upstream_resp {
	int status;	       /* 0 if no response was read */
	int64_t retry_after_s; /* -1 if absent */
	char content_type[128];
	char request_id[128];
	bool reused;	       /* sent on a pooled connection */
	uint64_t bytes_in;     /* response bytes read, headers included */
	int64_t first_byte_ns; /* mono time the first response byte arrived, 0 if none */
	int64_t headers_ns;    /* mono time the headers were complete, 0 if not */
	char *body;	       /* buffered body (malloc'd, NUL-terminated) or NULL */
	size_t body_len;
	char why[256];
};

/* Send rq and read the response.  With on_body NULL the body is buffered in
 * resp->body.  resp is initialised here; the caller frees resp->body with
 * lt_upstream_resp_free whatever the result. */
enum lt_err lt_upstream_do(struct lt_upstream *u, const struct lt_upstream_req *rq,
			   struct lt_upstream_resp *resp, lt_http_body_fn on_body, void *arg);
void lt_upstream_resp_free(struct lt_upstream_resp *resp);

#endif
