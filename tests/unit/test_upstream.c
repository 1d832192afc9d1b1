/*
 * test_upstream.c — src/provider/upstream.c over plain HTTP against a real
 * server: a poll() loop in a thread on 127.0.0.1 (ephemeral port) written
 * here, whose answer depends on the request path.  Checks framing
 * (Content-Length, chunked, close-delimited, HEAD), body delivery (buffered,
 * streamed in pieces, stream_2xx_only), the request bytes on the wire, the
 * pool (reuse, idle close by the server, the keep-alive close race, idle
 * timeout, Connection: close, pool_max 0), and every error: connect refused,
 * connect deadline, first-byte deadline, max_body, malformed, peer close
 * mid-body, on_body stopping the call.  No timing is asserted: deadlines are
 * only used where the server never answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "provider/upstream.h"
#include "testutil.h"
#include "util/clock.h"

/* ---- the test server ---- */

#define SRV_MAXC 16
#define SRV_BUF 65536

struct sconn {
	int fd;
	int nreq; /* requests seen on this connection */
	size_t len;
	char buf[SRV_BUF];
};

struct srv {
	int lfd;
	uint16_t port;
	int stop[2];
	pthread_t th;
	atomic_int accepts;
	atomic_int requests;
	atomic_int closes;
	int pair_wait; /* slot of a /pair request waiting for its partner, -1 */
	pthread_mutex_t mu;
	char last_req[4096]; /* the last request, NUL-terminated (under mu) */
	struct sconn c[SRV_MAXC];
};

static void srv_send(struct sconn *c, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void srv_close(struct srv *s, struct sconn *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->nreq = 0;
	atomic_fetch_add(&s->closes, 1);
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};
	nanosleep(&ts, NULL);
}

/* Length of the first complete request in buf, 0 if not complete yet. */
static size_t request_len(const char *buf, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++) {
		if (memcmp(buf + i, "\r\n\r\n", 4) != 0)
			continue;
		size_t head = i + 4;
		size_t clen = 0;
		static const char cl[] = "\r\nContent-Length: ";
		for (size_t j = 0; j + sizeof cl - 1 < i; j++) {
			if (strncasecmp(buf + j, cl, sizeof cl - 1) == 0) {
				clen = strtoul(buf + j + sizeof cl - 1, NULL, 10);
				break;
			}
		}
		return len - head >= clen ? head + clen : 0;
	}
	return 0;
}

/* Answer one request according to its path. */
static void srv_handle(struct srv *s, struct sconn *c, const char *req, size_t len)
{
	char method[16] = "", path[256] = "";
	sscanf(req, "%15s %255s", method, path);
	const char *body = strstr(req, "\r\n\r\n") + 4;
	size_t body_len = len - (size_t)(body - req);
	char out[8192];

	if (!strcmp(path, "/cl")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			    "X-Request-Id: rid-1\r\nContent-Length: 5\r\n\r\n");
		if (strcmp(method, "HEAD") != 0)
			srv_send(c, "hello");
	} else if (!strcmp(path, "/echo")) {
		snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%.*s",
			 body_len, (int)body_len, body);
		srv_send(c, out);
	} else if (!strcmp(path, "/chunked") || !strcmp(path, "/chunked-long")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n");
		int n = !strcmp(path, "/chunked") ? 3 : 20;
		for (int i = 0; i < n; i++) {
			pause_ms(2);
			snprintf(out, sizeof out, "7\r\ndata:%02d\r\n", i);
			srv_send(c, out);
		}
		srv_send(c, "0\r\n\r\n");
	} else if (!strcmp(path, "/err")) {
		srv_send(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
			    "Content-Length: 13\r\n\r\n{\"error\":\"x\"}");
	} else if (!strcmp(path, "/close")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
		srv_close(s, c);
	} else if (!strcmp(path, "/eof-body")) {
		srv_send(c, "HTTP/1.1 200 OK\r\n\r\nuntil close");
		srv_close(s, c);
	} else if (!strcmp(path, "/bye")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
		srv_close(s, c); /* the response allowed reuse: the client pools it */
	} else if (!strcmp(path, "/drop")) {
		srv_close(s, c);
	} else if (!strcmp(path, "/drop-reused")) {
		if (c->nreq > 1)
			srv_close(s, c);
		else
			srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	} else if (!strcmp(path, "/poke")) {
		/* Junk on every other open connection (idle pooled ones). */
		for (int i = 0; i < SRV_MAXC; i++)
			if (s->c[i].fd >= 0 && &s->c[i] != c)
				srv_send(&s->c[i], "JUNK");
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	} else if (!strcmp(path, "/pair")) {
		/* Answer only once two requests are open at the same time. */
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		if (s->pair_wait < 0) {
			s->pair_wait = (int)(c - s->c);
		} else {
			srv_send(&s->c[s->pair_wait], ok);
			srv_send(c, ok);
			s->pair_wait = -1;
		}
	} else if (!strcmp(path, "/hang")) {
		/* never answer */
	} else if (!strcmp(path, "/big")) {
		char big[1001];
		memset(big, 'x', 1000);
		big[1000] = '\0';
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
		srv_send(c, big);
	} else if (!strcmp(path, "/bad")) {
		srv_send(c, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n");
	} else if (!strcmp(path, "/cut")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
		srv_close(s, c);
	} else if (!strcmp(path, "/extra")) {
		srv_send(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK");
	} else {
		srv_send(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	}
}

static void srv_read(struct srv *s, struct sconn *c)
{
	ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
	if (r <= 0) {
		srv_close(s, c);
		return;
	}
	c->len += (size_t)r;
	size_t n;
	while (c->fd >= 0 && (n = request_len(c->buf, c->len)) > 0) {
		char save = c->buf[n];
		c->buf[n] = '\0';
		pthread_mutex_lock(&s->mu);
		snprintf(s->last_req, sizeof s->last_req, "%s", c->buf);
		pthread_mutex_unlock(&s->mu);
		c->nreq++;
		atomic_fetch_add(&s->requests, 1);
		srv_handle(s, c, c->buf, n);
		if (c->fd < 0)
			break;
		c->buf[n] = save;
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
	}
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	for (;;) {
		struct pollfd pf[2 + SRV_MAXC];
		int who[2 + SRV_MAXC];
		nfds_t n = 0;
		pf[n] = (struct pollfd){.fd = s->stop[0], .events = POLLIN};
		who[n++] = -1;
		pf[n] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
		who[n++] = -2;
		for (int i = 0; i < SRV_MAXC; i++) {
			if (s->c[i].fd < 0)
				continue;
			pf[n] = (struct pollfd){.fd = s->c[i].fd, .events = POLLIN};
			who[n++] = i;
		}
		if (poll(pf, n, -1) < 0)
			continue;
		if (pf[0].revents)
			break;
		for (nfds_t k = 1; k < n; k++) {
			if (!pf[k].revents)
				continue;
			if (who[k] == -2) {
				int fd = accept(s->lfd, NULL, NULL);
				if (fd < 0)
					continue;
				atomic_fetch_add(&s->accepts, 1);
				int slot = -1;
				for (int i = 0; i < SRV_MAXC && slot < 0; i++)
					if (s->c[i].fd < 0)
						slot = i;
				if (slot < 0) {
					close(fd);
					continue;
				}
				s->c[slot].fd = fd;
				s->c[slot].len = 0;
				s->c[slot].nreq = 0;
			} else {
				srv_read(s, &s->c[who[k]]);
			}
		}
	}
	for (int i = 0; i < SRV_MAXC; i++)
		if (s->c[i].fd >= 0)
			close(s->c[i].fd);
	return NULL;
}

static int listen_local(int backlog, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, backlog), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static struct srv *srv_start(void)
{
	struct srv *s = calloc(1, sizeof *s);
	assert_non_null(s);
	for (int i = 0; i < SRV_MAXC; i++)
		s->c[i].fd = -1;
	s->pair_wait = -1;
	s->lfd = listen_local(64, &s->port);
	assert_int_equal(pipe(s->stop), 0);
	pthread_mutex_init(&s->mu, NULL);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	assert_int_equal(write(s->stop[1], "x", 1), 1);
	pthread_join(s->th, NULL);
	close(s->stop[0]);
	close(s->stop[1]);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static bool srv_closed_one(void *arg)
{
	return atomic_load(&((struct srv *)arg)->closes) >= 1;
}

/* ---- client helpers ---- */

static struct lt_upstream *mk(const char *url, size_t pool_max, int64_t idle_ns)
{
	struct lt_upstream_opts o = {.pool_max = pool_max, .idle_timeout_ns = idle_ns};
	char why[256];
	assert_int_equal(lt_url_parse(url, &o.url, why, sizeof why), LT_OK);
	struct lt_upstream *u = NULL;
	assert_int_equal(lt_upstream_new(&o, &u), LT_OK);
	return u;
}

static struct lt_upstream *mk_srv(const struct srv *s, size_t pool_max)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)s->port);
	return mk(url, pool_max, 60 * LT_NS_PER_S);
}

static struct lt_upstream_req req(const char *method, const char *path)
{
	int64_t now = lt_clock_mono_ns();
	return (struct lt_upstream_req){
		.method = method,
		.path = path,
		.connect_deadline_ns = now + 10 * LT_NS_PER_S,
		.first_byte_deadline_ns = now + 20 * LT_NS_PER_S,
		.deadline_ns = now + 30 * LT_NS_PER_S,
		.max_header = 8192,
		.max_body = 65536,
	};
}

static enum lt_err get(struct lt_upstream *u, const char *path, struct lt_upstream_resp *r)
{
	struct lt_upstream_req rq = req("GET", path);
	return lt_upstream_do(u, &rq, r, NULL, NULL);
}

struct coll {
	char data[8192];
	size_t len;
	int calls;
	int stop_at; /* return LT_ESTOPPED on this call (0 = never) */
};

static enum lt_err collect(void *arg, const char *d, size_t n)
{
	struct coll *c = arg;
	c->calls++;
	if (c->stop_at && c->calls == c->stop_at)
		return LT_ESTOPPED;
	assert_true(n <= sizeof c->data - c->len);
	memcpy(c->data + c->len, d, n);
	c->len += n;
	return LT_OK;
}

/* ---- tests ---- */

static void test_content_length(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_int_equal(r.body_len, 5);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.request_id, "rid-1");
	assert_int_equal(r.retry_after_s, -1);
	assert_false(r.reused);
	assert_true(r.bytes_in > 5);
	assert_true(r.first_byte_ns > 0 && r.headers_ns >= r.first_byte_ns);
	assert_int_equal(lt_upstream_idle(u), 1);
	lt_upstream_resp_free(&r);
	assert_null(r.body);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_request_bytes(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("POST", "/echo");
	rq.headers = "Authorization: Bearer k\r\nX-Test: 1\r\n";
	rq.body = "{\"a\":1}";
	rq.body_len = 7;
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_string_equal(r.body, "{\"a\":1}");
	char want[512];
	snprintf(want, sizeof want,
		 "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: leakyd\r\n"
		 "Content-Length: 7\r\nConnection: keep-alive\r\nAuthorization: Bearer k\r\n"
		 "X-Test: 1\r\n\r\n{\"a\":1}",
		 (unsigned)s->port);
	pthread_mutex_lock(&s->mu);
	assert_string_equal(s->last_req, want);
	pthread_mutex_unlock(&s->mu);
	lt_upstream_resp_free(&r);

	/* Bad requests are refused before any I/O. */
	rq = req("POST", "no-slash");
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_EINVAL);
	assert_true(r.why[0] != '\0');
	rq = req("POST", "/x\r\nEvil: 1");
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_EINVAL);
	rq = req("POST", "/x");
	rq.headers = "X-No-Crlf: 1";
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_EINVAL);
	rq = req("POST", "/x");
	rq.max_body = 0;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_EINVAL);
	assert_null(r.body);
	assert_int_equal(atomic_load(&s->requests), 1);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_head(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("HEAD", "/cl");
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	lt_upstream_resp_free(&r);
	/* The body the headers announced was not expected: the connection is
	 * clean and reused. */
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_true(r.reused);
	assert_string_equal(r.body, "hello");
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 1);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_chunked_streamed(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("POST", "/chunked");
	struct coll c = {0};
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, collect, &c), LT_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/event-stream");
	assert_null(r.body);
	assert_true(c.calls >= 2);
	assert_int_equal(c.len, 21);
	assert_memory_equal(c.data, "data:00data:01data:02", 21);
	lt_upstream_resp_free(&r);
	/* A chunked response is reusable. */
	assert_int_equal(lt_upstream_idle(u), 1);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_chunked_buffered(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/chunked-long", &r), LT_OK);
	assert_int_equal(r.body_len, 20 * 7);
	assert_memory_equal(r.body, "data:00data:01", 14);
	assert_memory_equal(r.body + 19 * 7, "data:19", 7);
	assert_int_equal(r.body[r.body_len], '\0');
	lt_upstream_resp_free(&r);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_stream_2xx_only(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("POST", "/err");
	rq.stream_2xx_only = true;
	struct coll c = {0};
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, collect, &c), LT_OK);
	assert_int_equal(r.status, 503);
	assert_int_equal(r.retry_after_s, 7);
	assert_int_equal(c.calls, 0);
	assert_string_equal(r.body, "{\"error\":\"x\"}");
	lt_upstream_resp_free(&r);

	/* A 2xx still streams. */
	rq = req("POST", "/chunked");
	rq.stream_2xx_only = true;
	assert_int_equal(lt_upstream_do(u, &rq, &r, collect, &c), LT_OK);
	assert_true(c.calls >= 2);
	assert_null(r.body);
	lt_upstream_resp_free(&r);

	/* Without the flag, the error body goes to on_body too. */
	struct coll c2 = {0};
	rq = req("POST", "/err");
	assert_int_equal(lt_upstream_do(u, &rq, &r, collect, &c2), LT_OK);
	assert_int_equal(r.status, 503);
	assert_int_equal(c2.len, 13);
	assert_null(r.body);
	lt_upstream_resp_free(&r);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_keepalive_reuse(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(get(u, "/cl", &r), LT_OK);
		assert_int_equal(r.reused, i > 0);
		assert_string_equal(r.body, "hello");
		lt_upstream_resp_free(&r);
	}
	assert_int_equal(atomic_load(&s->accepts), 1);
	assert_int_equal(atomic_load(&s->requests), 5);
	assert_int_equal(lt_upstream_idle(u), 1);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_localhost_name(void **state)
{
	(void)state;
	/* The server listens on 127.0.0.1 only: if localhost resolves to ::1
	 * first, that address is refused and the next one is tried. */
	struct srv *s = srv_start();
	char url[64];
	snprintf(url, sizeof url, "http://localhost:%u", (unsigned)s->port);
	struct lt_upstream *u = mk(url, 4, 0);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_string_equal(r.body, "hello");
	lt_upstream_resp_free(&r);
	pthread_mutex_lock(&s->mu);
	char want[64];
	snprintf(want, sizeof want, "\r\nHost: localhost:%u\r\n", (unsigned)s->port);
	assert_non_null(strstr(s->last_req, want));
	pthread_mutex_unlock(&s->mu);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_server_closes_idle(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/bye", &r), LT_OK);
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 1); /* pooled: the response allowed it */
	assert_true(tu_wait_until(srv_closed_one, s));
	/* The pooled connection is dead: the next request still succeeds. */
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_false(r.reused);
	assert_string_equal(r.body, "hello");
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 2);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_keepalive_race_resend(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	lt_upstream_resp_free(&r);
	/* The server hangs up on the reused connection without answering (it
	 * passed the idle check): the request is sent again on a new one. */
	assert_int_equal(get(u, "/drop-reused", &r), LT_OK);
	assert_int_equal(r.status, 200);
	assert_false(r.reused);
	assert_string_equal(r.body, "ok");
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 2);
	assert_int_equal(atomic_load(&s->requests), 3);

	/* Only once: a server that always hangs up gives LT_ECLOSED after one
	 * resend (the reused connection, then one new one). */
	assert_int_equal(get(u, "/drop", &r), LT_ECLOSED);
	assert_non_null(strstr(r.why, "closed the connection before responding"));
	assert_int_equal(r.status, 0);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 3);
	assert_int_equal(atomic_load(&s->requests), 5);

	/* A new connection is never resent. */
	assert_int_equal(lt_upstream_idle(u), 0);
	assert_int_equal(get(u, "/drop", &r), LT_ECLOSED);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 4);
	assert_int_equal(atomic_load(&s->requests), 6);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_idle_junk_discarded(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream *u2 = mk_srv(s, 4);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	lt_upstream_resp_free(&r);
	/* Another client makes the server write junk on u's idle connection
	 * (the write is queued on loopback before /poke is answered). */
	assert_int_equal(get(u2, "/poke", &r), LT_OK);
	lt_upstream_resp_free(&r);
	/* The readable idle connection is discarded, not read. */
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_false(r.reused);
	assert_string_equal(r.body, "hello");
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 3);
	lt_upstream_free(u);
	lt_upstream_free(u2);
	srv_stop(s);
}

struct pair_call {
	struct lt_upstream *u;
	enum lt_err err;
};

static void *pair_thread(void *arg)
{
	struct pair_call *pc = arg;
	struct lt_upstream_resp r;
	struct lt_upstream_req rq = req("GET", "/pair");
	pc->err = lt_upstream_do(pc->u, &rq, &r, NULL, NULL);
	lt_upstream_resp_free(&r);
	return NULL;
}

static void test_pool_max(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 1);
	/* Two calls at once need two connections; both responses allow reuse
	 * but the pool keeps one and closes the other. */
	struct pair_call a = {u, LT_EIO}, b = {u, LT_EIO};
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, pair_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, pair_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.err, LT_OK);
	assert_int_equal(b.err, LT_OK);
	assert_int_equal(atomic_load(&s->accepts), 2);
	assert_int_equal(lt_upstream_idle(u), 1);
	assert_true(tu_wait_until(srv_closed_one, s));
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_true(r.reused);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 2);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_not_pooled(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_resp r;
	/* Connection: close */
	assert_int_equal(get(u, "/close", &r), LT_OK);
	assert_string_equal(r.body, "ok");
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);
	/* A close-delimited body ends with the connection. */
	assert_int_equal(get(u, "/eof-body", &r), LT_OK);
	assert_string_equal(r.body, "until close");
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_false(r.reused);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 3);
	lt_upstream_free(u);

	/* pool_max 0: nothing is kept, and the request says so. */
	u = mk_srv(s, 0);
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);
	pthread_mutex_lock(&s->mu);
	assert_non_null(strstr(s->last_req, "\r\nConnection: close\r\n"));
	pthread_mutex_unlock(&s->mu);
	lt_upstream_free(u);

	/* An idle timeout that has passed: the pooled connection is dropped. */
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)s->port);
	u = mk(url, 4, 1);
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	lt_upstream_resp_free(&r);
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_false(r.reused);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 6);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_connect_refused(void **state)
{
	(void)state;
	uint16_t port;
	int fd = listen_local(1, &port);
	close(fd); /* nothing listens there now */
	char url[64], want[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)port);
	struct lt_upstream *u = mk(url, 4, 0);
	struct lt_upstream_resp r;
	assert_int_equal(get(u, "/cl", &r), LT_ECONNECT);
	snprintf(want, sizeof want, "connect to 127.0.0.1:%u failed: ", (unsigned)port);
	assert_non_null(strstr(r.why, want));
	assert_non_null(strstr(r.why, strerror(ECONNREFUSED)));
	assert_int_equal(r.status, 0);
	assert_null(r.body);
	lt_upstream_free(u);

	u = mk("http://no-such-host.invalid", 4, 0);
	assert_int_equal(get(u, "/cl", &r), LT_ECONNECT);
	assert_non_null(strstr(r.why, "cannot resolve no-such-host.invalid"));
	lt_upstream_free(u);
}

static void test_connect_deadline(void **state)
{
	(void)state;
	/* A listener whose accept queue is full drops new SYNs: connect hangs
	 * until the deadline. */
	uint16_t port;
	int lfd = listen_local(0, &port);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fill[i] >= 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
	}
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)port);
	struct lt_upstream *u = mk(url, 4, 0);
	struct lt_upstream_req rq = req("GET", "/cl");
	rq.connect_deadline_ns = lt_clock_mono_ns() + 300 * LT_NS_PER_MS;
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ECONNECT);
	assert_non_null(strstr(r.why, "timed out"));
	lt_upstream_free(u);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

static void test_first_byte_deadline(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("POST", "/hang");
	rq.first_byte_deadline_ns = lt_clock_mono_ns() + 200 * LT_NS_PER_MS;
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETIMEOUT);
	assert_non_null(strstr(r.why, "first-byte deadline"));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.first_byte_ns, 0);
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);

	/* The total deadline bounds the wait too. */
	rq = req("POST", "/hang");
	rq.deadline_ns = lt_clock_mono_ns() + 200 * LT_NS_PER_MS;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETIMEOUT);
	lt_upstream_resp_free(&r);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_errors(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("GET", "/big");
	rq.max_body = 100;
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETOOBIG);
	assert_non_null(strstr(r.why, "larger than 100 bytes"));
	assert_int_equal(r.status, 200);
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);

	rq = req("GET", "/cl");
	rq.max_header = 20;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETOOBIG);
	assert_non_null(strstr(r.why, "headers"));
	lt_upstream_resp_free(&r);

	assert_int_equal(get(u, "/bad", &r), LT_EPROTO);
	assert_non_null(strstr(r.why, "malformed HTTP response"));
	lt_upstream_resp_free(&r);

	assert_int_equal(get(u, "/cut", &r), LT_ECLOSED);
	assert_non_null(strstr(r.why, "mid-response"));
	assert_int_equal(r.status, 200);
	lt_upstream_resp_free(&r);

	assert_int_equal(get(u, "/extra", &r), LT_EPROTO);
	assert_non_null(strstr(r.why, "after the end of the response"));
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_on_body_error(void **state)
{
	(void)state;
	struct srv *s = srv_start();
	struct lt_upstream *u = mk_srv(s, 4);
	struct lt_upstream_req rq = req("POST", "/chunked-long");
	struct coll c = {.stop_at = 2};
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, collect, &c), LT_ESTOPPED);
	assert_int_equal(c.calls, 2);
	assert_non_null(strstr(r.why, "body consumer"));
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 0);
	assert_int_equal(get(u, "/cl", &r), LT_OK);
	assert_false(r.reused);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->accepts), 2);
	lt_upstream_free(u);
	srv_stop(s);
}

static void test_new_args(void **state)
{
	(void)state;
	struct lt_upstream_opts o = {.pool_max = 1};
	char why[256];
	struct lt_upstream *u = NULL;
	assert_int_equal(lt_url_parse("https://example.com", &o.url, why, sizeof why), LT_OK);
	assert_int_equal(lt_upstream_new(&o, &u), LT_EINVAL); /* https needs anchors */
	assert_null(u);
	assert_int_equal(lt_url_parse("http://example.com", &o.url, why, sizeof why), LT_OK);
	o.pool_max = 1000000;
	assert_int_equal(lt_upstream_new(&o, &u), LT_EINVAL);
	lt_upstream_free(NULL);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_chunked_streamed),
		cmocka_unit_test(test_chunked_buffered),
		cmocka_unit_test(test_stream_2xx_only),
		cmocka_unit_test(test_keepalive_reuse),
		cmocka_unit_test(test_localhost_name),
		cmocka_unit_test(test_server_closes_idle),
		cmocka_unit_test(test_keepalive_race_resend),
		cmocka_unit_test(test_idle_junk_discarded),
		cmocka_unit_test(test_pool_max),
		cmocka_unit_test(test_not_pooled),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_deadline),
		cmocka_unit_test(test_first_byte_deadline),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_on_body_error),
		cmocka_unit_test(test_new_args),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
