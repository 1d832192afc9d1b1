/*
 * upstream.c — the HTTP/1.1 client of leakyd: connection pool, connect with
 * a deadline, one request written in one buffer, the response read through
 * provider/http_parse.h.  See upstream.h for the contract.
 *
 * Owns: struct lt_upstream (its pool of idle connections) and, during one
 * lt_upstream_do, the connection that call took or opened.  A connection is
 * a socket (non-blocking, TCP_NODELAY, close-on-exec) plus, for https://, a
 * struct lt_tls_conn (tls.h).  It belongs either to the pool or to exactly
 * one call; it goes back to the pool only after a complete response that
 * allows reuse, and is closed after any error.
 *
 * Locking: u->mu guards the pool array and nothing else; no I/O happens
 * under it except closing connections evicted from the pool.
 *
 * Pool: an array of at most pool_max connections ordered oldest first.  A
 * call takes the newest; before use it must not have outlived idle_timeout
 * (<= 0: no limit) and must not be readable (poll with zero timeout: a
 * readable idle connection was closed by the server or holds junk).  A full
 * pool closes its oldest connection to make room.
 *
 * Deadlines are absolute lt_clock_mono_ns() values; 0 means "none".  The
 * connect deadline (capped by the total one) covers TCP connect, trying
 * each resolved address in order, and the TLS handshake; the first-byte
 * deadline (capped by the total one) covers sending the request and waiting
 * for the first response byte; after that only the total deadline applies.
 * getaddrinfo() itself cannot be interrupted and is not bounded by them.
 *
 * Requests: one buffer, written at once: request line, Host (port only when
 * not the default), User-Agent: leakyd, Content-Length (always), Connection
 * (keep-alive, or close when pool_max is 0), the caller's lines, the body.
 * rq->path is sent as given: the caller joins the base URL's path to it.
 *
 * Error mapping: resolve and connect failures, and handshake timeouts or
 * socket errors → LT_ECONNECT (nothing was sent: safe to retry); TLS
 * failures (certificate, alert, protocol, the peer hanging up mid-handshake)
 * → LT_ETLS;
 * socket errors or EOF after the connection is up → LT_ECLOSED (or success
 * when EOF ends a close-delimited body); deadlines after connect →
 * LT_ETIMEOUT; the parser's LT_EPROTO / LT_ETOOBIG and on_body's own error
 * pass through.  A pooled connection that fails with LT_ECLOSED before any
 * response byte is the keep-alive close race: the request is sent once more
 * on a new connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "provider/tls.h"
#include "provider/upstream.h"
#include "util/buf.h"
#include "util/clock.h"

#define LT_UPSTREAM_POOL_CAP 4096      /* largest pool_max accepted */
#define LT_UPSTREAM_REQ_HEAD_MAX 65536 /* request line + headers */
#define LT_UPSTREAM_READ_CHUNK 16384

struct conn {
	int fd;
	struct lt_tls_conn *tls; /* NULL for http:// */
	int64_t idle_since;	 /* mono ns when it entered the pool */
};

struct lt_upstream {
	struct lt_url url;
	const struct lt_tls_anchors *anchors; /* borrowed */
	size_t pool_max;
	int64_t idle_timeout_ns;
	char port_str[8];
	char hostport[272]; /* "host:port", for messages */
	char host_hdr[272]; /* Host header value: port only when not the default */

	pthread_mutex_t mu;
	struct conn *pool; /* pool_max slots, oldest first */
	size_t npool;
};

/* snprintf for explanations: truncation of a long host name is fine. */
static void whyf(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void whyf(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	if (c->tls)
		lt_tls_conn_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* An idle connection may be used: the server has sent nothing (no EOF, no
 * junk) and the TLS engine is still open with nothing unread. */
static bool conn_idle_alive(struct conn *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	if (poll(&pfd, 1, 0) != 0)
		return false;
	return !c->tls || lt_tls_idle_ok(c->tls);
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Write all of p[0..n).  LT_ETIMEOUT, LT_ECLOSED, LT_EIO, LT_ETLS; why
 * gets a bare reason. */
static enum lt_err conn_write_all(struct conn *c, const char *p, size_t n, int64_t deadline_ns,
				  char *why, size_t why_cap)
{
	if (c->tls)
		return lt_tls_write(c->tls, c->fd, p, n, deadline_ns, why, why_cap);
	while (n > 0) {
		size_t w;
		enum lt_err e = lt_sock_send(c->fd, p, n, deadline_ns, &w, why, why_cap);
		if (e)
			return e;
		p += w;
		n -= w;
	}
	return LT_OK;
}

/* Read at least one byte.  LT_ECLOSED on EOF or reset; otherwise as
 * conn_write_all. */
static enum lt_err conn_read(struct conn *c, char *buf, size_t cap, size_t *got,
			     int64_t deadline_ns, char *why, size_t why_cap)
{
	*got = 0;
	if (c->tls)
		return lt_tls_read(c->tls, c->fd, buf, cap, got, deadline_ns, why, why_cap);
	for (;;) {
		ssize_t r = recv(c->fd, buf, cap, 0);
		if (r > 0) {
			*got = (size_t)r;
			return LT_OK;
		}
		if (r == 0) {
			why[0] = '\0'; /* a plain EOF needs no explanation */
			return LT_ECLOSED;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (lt_sock_wait(c->fd, POLLIN, deadline_ns) == LT_ETIMEOUT) {
				whyf(why, why_cap, "timed out");
				return LT_ETIMEOUT;
			}
			continue;
		}
		int e = errno;
		whyf(why, why_cap, "%s", strerror(e));
		return e == ECONNRESET ? LT_ECLOSED : LT_EIO;
	}
}

/* Connect one socket to ai before the deadline.  LT_OK with *fd, or
 * LT_ETIMEOUT, or LT_ECONNECT with *sock_err set to the errno. */
static enum lt_err connect_addr(const struct addrinfo *ai, int64_t deadline_ns, int *fd_out,
				int *sock_err)
{
	*fd_out = -1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		*sock_err = errno;
		return LT_ECONNECT;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			*sock_err = errno;
			close(fd);
			return LT_ECONNECT;
		}
		enum lt_err err = lt_sock_wait(fd, POLLOUT, deadline_ns);
		if (err) {
			*sock_err = errno;
			close(fd);
			return err == LT_ETIMEOUT ? LT_ETIMEOUT : LT_ECONNECT;
		}
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr) {
			*sock_err = soerr;
			close(fd);
			return LT_ECONNECT;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	*fd_out = fd;
	return LT_OK;
}

static void addr_str(const struct addrinfo *ai, char *out, size_t cap)
{
	out[0] = '\0';
	if (ai->ai_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, out,
			  (socklen_t)cap);
	else if (ai->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, out,
			  (socklen_t)cap);
}

/* Resolve and connect (every address in order) and, for https, handshake. */
static enum lt_err conn_open(struct lt_upstream *u, int64_t deadline_ns, struct conn *c, char *why,
			     size_t why_cap)
{
	c->fd = -1;
	c->tls = NULL;
	c->idle_since = 0;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(u->url.host, u->port_str, &hints, &res);
	if (gai) {
		whyf(why, why_cap, "cannot resolve %s: %s", u->url.host,
		     gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		return LT_ECONNECT;
	}
	enum lt_err err = LT_ECONNECT;
	int sock_err = 0, tried = 0;
	char addr[INET6_ADDRSTRLEN] = "";
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		tried++;
		addr_str(ai, addr, sizeof addr);
		err = connect_addr(ai, deadline_ns, &c->fd, &sock_err);
		if (err != LT_ECONNECT)
			break; /* connected, or out of time for every address */
	}
	freeaddrinfo(res);
	if (err == LT_ETIMEOUT) {
		whyf(why, why_cap, "connect to %s timed out", u->hostport);
		return LT_ECONNECT;
	}
	if (err) {
		bool named = strcmp(addr, u->url.host) != 0;
		whyf(why, why_cap, "connect to %s%s%s%s failed: %s%s", u->hostport,
		     named ? " (" : "", named ? addr : "", named ? ")" : "", strerror(sock_err),
		     tried > 1 ? " (every address tried)" : "");
		return LT_ECONNECT;
	}
	if (!u->url.tls)
		return LT_OK;
	err = lt_tls_conn_new(u->anchors, u->url.host, &c->tls);
	if (err) {
		whyf(why, why_cap, "TLS setup for %s failed: %s", u->url.host, lt_strerror(err));
		conn_close(c);
		return err;
	}
	err = lt_tls_handshake(c->tls, c->fd, deadline_ns, why, why_cap);
	if (err) {
		conn_close(c);
		return err == LT_ETLS ? LT_ETLS : LT_ECONNECT;
	}
	return LT_OK;
}

/* ---- pool ---- */

/* Take the newest usable idle connection, closing stale ones. */
static bool pool_take(struct lt_upstream *u, struct conn *out)
{
	for (;;) {
		pthread_mutex_lock(&u->mu);
		if (u->npool == 0) {
			pthread_mutex_unlock(&u->mu);
			return false;
		}
		struct conn c = u->pool[--u->npool];
		pthread_mutex_unlock(&u->mu);
		bool expired = u->idle_timeout_ns > 0 &&
			       lt_clock_mono_ns() - c.idle_since > u->idle_timeout_ns;
		if (expired || !conn_idle_alive(&c)) {
			conn_close(&c);
			continue;
		}
		*out = c;
		return true;
	}
}

static void pool_put(struct lt_upstream *u, struct conn *c)
{
	if (u->pool_max == 0) {
		conn_close(c);
		return;
	}
	int64_t now = lt_clock_mono_ns();
	c->idle_since = now;
	pthread_mutex_lock(&u->mu);
	/* Evict the expired and, when full, the oldest. */
	size_t drop = 0;
	while (drop < u->npool && u->idle_timeout_ns > 0 &&
	       now - u->pool[drop].idle_since > u->idle_timeout_ns)
		drop++;
	if (u->npool - drop == u->pool_max)
		drop++;
	for (size_t i = 0; i < drop; i++)
		conn_close(&u->pool[i]);
	if (drop) {
		memmove(u->pool, u->pool + drop, (u->npool - drop) * sizeof *u->pool);
		u->npool -= drop;
	}
	u->pool[u->npool++] = *c;
	pthread_mutex_unlock(&u->mu);
	c->fd = -1;
	c->tls = NULL;
}

/* ---- lifecycle ---- */

enum lt_err lt_upstream_new(const struct lt_upstream_opts *opts, struct lt_upstream **out)
{
	*out = NULL;
	if (!opts->url.host[0] || !opts->url.port || (opts->url.tls && !opts->anchors) ||
	    opts->pool_max > LT_UPSTREAM_POOL_CAP)
		return LT_EINVAL;
	struct lt_upstream *u = calloc(1, sizeof *u);
	if (!u)
		return LT_ENOMEM;
	u->url = opts->url;
	u->url.host[sizeof u->url.host - 1] = '\0';
	u->anchors = opts->anchors;
	u->pool_max = opts->pool_max;
	u->idle_timeout_ns = opts->idle_timeout_ns;
	snprintf(u->port_str, sizeof u->port_str, "%u", (unsigned)u->url.port);
	snprintf(u->hostport, sizeof u->hostport, "%s:%u", u->url.host, (unsigned)u->url.port);
	bool dflt = u->url.port == (u->url.tls ? 443 : 80);
	snprintf(u->host_hdr, sizeof u->host_hdr, "%s", dflt ? u->url.host : u->hostport);
	if (u->pool_max) {
		u->pool = calloc(u->pool_max, sizeof *u->pool);
		if (!u->pool) {
			free(u);
			return LT_ENOMEM;
		}
	}
	if (pthread_mutex_init(&u->mu, NULL) != 0) {
		free(u->pool);
		free(u);
		return LT_ENOMEM;
	}
	*out = u;
	return LT_OK;
}

void lt_upstream_free(struct lt_upstream *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->npool; i++)
		conn_close(&u->pool[i]);
	pthread_mutex_destroy(&u->mu);
	free(u->pool);
	free(u);
}

size_t lt_upstream_idle(struct lt_upstream *u)
{
	pthread_mutex_lock(&u->mu);
	size_t n = u->npool;
	pthread_mutex_unlock(&u->mu);
	return n;
}

void lt_upstream_resp_free(struct lt_upstream_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

/* ---- one exchange ---- */

/* Where body bytes go: on_body, or the buffer (no on_body, or a non-2xx
 * response when stream_2xx_only). */
struct sink {
	struct lt_http_resp p; /* the response parser of the current attempt */
	lt_http_body_fn on_body;
	void *arg;
	bool stream_2xx_only;
	bool buffering; /* resp->body is to be filled */
	struct lt_buf body;
	enum lt_err cb_err; /* on_body's error, if it stopped the parse */
};

static enum lt_err sink_body(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;
	bool ok2xx = s->p.status >= 200 && s->p.status < 300;
	if (s->on_body && (!s->stream_2xx_only || ok2xx)) {
		enum lt_err err = s->on_body(s->arg, data, len);
		if (err)
			s->cb_err = err;
		return err;
	}
	s->buffering = true;
	return lt_buf_append(&s->body, data, len);
}

static void take_headers(struct lt_upstream_resp *resp, const struct lt_http_resp *p)
{
	resp->headers_ns = lt_clock_mono_ns();
	resp->status = p->status;
	resp->retry_after_s = p->retry_after_s;
	snprintf(resp->content_type, sizeof resp->content_type, "%s", p->content_type);
	snprintf(resp->request_id, sizeof resp->request_id, "%s", p->request_id);
}

/* Send the request on c and read the whole response.  *keep: c may go
 * back to the pool.  *retry: the failure happened before any response byte
 * and the peer closed (the caller may resend on a new connection). */
static enum lt_err exchange(struct lt_upstream *u, struct conn *c, const struct lt_upstream_req *rq,
			    const struct lt_buf *req, struct lt_upstream_resp *resp, struct sink *s,
			    bool *keep, bool *retry)
{
	*keep = false;
	*retry = false;
	char reason[160] = "";
	int64_t fb_deadline = earliest(rq->first_byte_deadline_ns, rq->deadline_ns);
	enum lt_err err =
		conn_write_all(c, req->data, req->len, fb_deadline, reason, sizeof reason);
	if (err == LT_ETIMEOUT) {
		whyf(resp->why, sizeof resp->why, "sending the request to %s timed out",
		     u->hostport);
		return LT_ETIMEOUT;
	}
	if (err == LT_ETLS) {
		whyf(resp->why, sizeof resp->why, "TLS error sending to %s: %s", u->hostport,
		     reason);
		return LT_ETLS;
	}
	if (err) {
		*retry = true;
		whyf(resp->why, sizeof resp->why, "sending the request to %s failed: %s",
		     u->hostport, reason);
		return LT_ECLOSED;
	}

	struct lt_http_resp *p = &s->p;
	lt_http_resp_init(p, rq->max_header, rq->max_body, !strcmp(rq->method, "HEAD"));
	char buf[LT_UPSTREAM_READ_CHUNK];
	for (;;) {
		int64_t dl = resp->first_byte_ns ? rq->deadline_ns : fb_deadline;
		size_t got = 0;
		err = conn_read(c, buf, sizeof buf, &got, dl, reason, sizeof reason);
		if (err == LT_ETIMEOUT) {
			if (!resp->first_byte_ns)
				whyf(resp->why, sizeof resp->why,
				     "no response from %s before the %s deadline", u->hostport,
				     fb_deadline == rq->first_byte_deadline_ns ? "first-byte"
									       : "total");
			else
				whyf(resp->why, sizeof resp->why,
				     "response from %s not complete before the deadline "
				     "(%llu bytes read)",
				     u->hostport, (unsigned long long)resp->bytes_in);
			return LT_ETIMEOUT;
		}
		if (err == LT_ETLS) {
			whyf(resp->why, sizeof resp->why, "TLS error reading from %s: %s",
			     u->hostport, reason);
			return LT_ETLS;
		}
		if (err) { /* LT_ECLOSED or LT_EIO */
			if (!resp->first_byte_ns) {
				*retry = true;
				whyf(resp->why, sizeof resp->why,
				     "%s closed the connection before responding%s%s", u->hostport,
				     reason[0] ? ": " : "", reason);
				return LT_ECLOSED;
			}
			if (err == LT_ECLOSED && lt_http_resp_eof(p) == LT_OK)
				break; /* a close-delimited body ended */
			whyf(resp->why, sizeof resp->why,
			     "%s closed the connection mid-response after %llu bytes%s%s",
			     u->hostport, (unsigned long long)resp->bytes_in, reason[0] ? ": " : "",
			     reason);
			return LT_ECLOSED;
		}
		if (!resp->first_byte_ns)
			resp->first_byte_ns = lt_clock_mono_ns();
		resp->bytes_in += got;
		size_t used = got;
		bool had_headers = p->headers_done;
		err = lt_http_resp_feed(p, buf, got, &used, sink_body, s);
		if (p->headers_done && !had_headers)
			take_headers(resp, p);
		if (err) {
			if (s->cb_err)
				whyf(resp->why, sizeof resp->why,
				     "the body consumer stopped the response from %s: %s",
				     u->hostport, lt_strerror(err));
			else if (err == LT_ETOOBIG && p->headers_done)
				whyf(resp->why, sizeof resp->why,
				     "response body from %s is larger than %zu bytes", u->hostport,
				     rq->max_body);
			else if (err == LT_ETOOBIG)
				whyf(resp->why, sizeof resp->why,
				     "response headers from %s are larger than %zu bytes",
				     u->hostport, rq->max_header);
			else if (err == LT_EPROTO)
				whyf(resp->why, sizeof resp->why,
				     "malformed HTTP response from %s%s", u->hostport,
				     p->headers_done ? " (in the body framing)" : "");
			else
				whyf(resp->why, sizeof resp->why,
				     "reading the response from %s: %s", u->hostport,
				     lt_strerror(err));
			return err;
		}
		if (lt_http_resp_done(p)) {
			if (used < got) {
				whyf(resp->why, sizeof resp->why,
				     "%s sent %zu bytes after the end of the response", u->hostport,
				     got - used);
				return LT_EPROTO;
			}
			break;
		}
	}
	*keep = lt_http_resp_reusable(p) && (!c->tls || lt_tls_idle_ok(c->tls));
	return LT_OK;
}

/* True if s holds no CR, LF, space or control character and is non-empty. */
static bool token_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7F)
			return false;
	return true;
}

/* What is wrong with rq, or NULL.  Only our own code builds requests, so
 * this guards against bugs (header injection), not hostile input. */
static const char *request_problem(const struct lt_upstream_req *rq)
{
	if (!token_ok(rq->method))
		return "the method must be a non-empty token";
	if (!token_ok(rq->path) || rq->path[0] != '/')
		return "the path must start with '/' and hold no space or control character";
	size_t hl = rq->headers ? strlen(rq->headers) : 0;
	if (hl && (hl < 2 || memcmp(rq->headers + hl - 2, "\r\n", 2) != 0 ||
		   !memcmp(rq->headers, "\r\n", 2) || strstr(rq->headers, "\r\n\r\n")))
		return "extra headers must be lines each ending in CRLF, with no empty line";
	if (rq->body_len && !rq->body)
		return "body_len without a body";
	if (!rq->max_header || !rq->max_body)
		return "max_header and max_body must be > 0";
	return NULL;
}

static enum lt_err build_request(const struct lt_upstream *u, const struct lt_upstream_req *rq,
				 struct lt_buf *b)
{
	size_t hl = rq->headers ? strlen(rq->headers) : 0;
	lt_buf_init(b, NULL, 0, 0);
	if (hl > LT_UPSTREAM_REQ_HEAD_MAX || rq->body_len > SIZE_MAX / 4)
		return LT_ETOOBIG;
	b->max = 2 * LT_UPSTREAM_REQ_HEAD_MAX + hl + rq->body_len;
	lt_buf_printf(b,
		      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: leakyd\r\n"
		      "Content-Length: %zu\r\nConnection: %s\r\n",
		      rq->method, rq->path, u->host_hdr, rq->body_len,
		      u->pool_max ? "keep-alive" : "close");
	if (hl)
		lt_buf_append(b, rq->headers, hl);
	lt_buf_append(b, "\r\n", 2);
	if (rq->body_len)
		lt_buf_append(b, rq->body, rq->body_len);
	return b->err;
}

enum lt_err lt_upstream_do(struct lt_upstream *u, const struct lt_upstream_req *rq,
			   struct lt_upstream_resp *resp, lt_http_body_fn on_body, void *arg)
{
	memset(resp, 0, sizeof *resp);
	resp->retry_after_s = -1;
	const char *bad = request_problem(rq);
	if (bad) {
		whyf(resp->why, sizeof resp->why, "invalid upstream request: %s", bad);
		return LT_EINVAL;
	}
	struct lt_buf req;
	enum lt_err err = build_request(u, rq, &req);
	if (err) {
		whyf(resp->why, sizeof resp->why, "cannot build the request: %s", lt_strerror(err));
		lt_buf_release(&req);
		return err;
	}
	struct sink s = {.on_body = on_body, .arg = arg, .stream_2xx_only = rq->stream_2xx_only};
	lt_buf_init(&s.body, NULL, 0, rq->max_body);
	char sent_why[sizeof resp->why] = ""; /* why the first copy got no answer */
	for (int attempt = 0;; attempt++) {
		struct conn c;
		bool reused = attempt == 0 && pool_take(u, &c);
		if (!reused) {
			err = conn_open(u, earliest(rq->connect_deadline_ns, rq->deadline_ns), &c,
					resp->why, sizeof resp->why);
			if (err && attempt > 0) {
				/* The resend could not connect, but the first copy went
				 * out on the reused connection and may have reached the
				 * server: report that ("sent, no answer"), not a connect
				 * error (which says nothing was sent). */
				char cwhy[sizeof resp->why];
				snprintf(cwhy, sizeof cwhy, "%s", resp->why);
				whyf(resp->why, sizeof resp->why, "%s; the resend failed: %s",
				     sent_why, cwhy);
				err = LT_ECLOSED;
			}
			if (err)
				break;
		}
		resp->reused = reused;
		bool keep, retry;
		err = exchange(u, &c, rq, &req, resp, &s, &keep, &retry);
		if (!err && keep)
			pool_put(u, &c);
		else
			conn_close(&c);
		if (err && reused && retry) {
			/* The keep-alive close race: nothing was received, resend. */
			snprintf(sent_why, sizeof sent_why, "%s", resp->why);
			memset(resp, 0, sizeof *resp);
			resp->retry_after_s = -1;
			lt_buf_reset(&s.body);
			s.buffering = false;
			s.cb_err = LT_OK;
			continue;
		}
		break;
	}
	if (!err && !on_body)
		s.buffering = true; /* a buffered call always gets a body, maybe "" */
	if (s.buffering && !s.body.err) {
		enum lt_err derr = lt_buf_detach(&s.body, &resp->body, &resp->body_len);
		if (derr && !err) {
			err = derr;
			whyf(resp->why, sizeof resp->why, "out of memory for the response body");
		}
	}
	lt_buf_release(&s.body);
	lt_buf_release(&req);
	return err;
}
