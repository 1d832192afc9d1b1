/*
 * test_tls.c — src/provider/tls.c through the upstream client: trust
 * anchors from PEM bundles (a generated CA, the system bundle, files with no
 * certificate) and HTTPS against an in-process BearSSL server.
 *
 * At test time the `openssl` CLI makes, in a temporary directory, a CA, a
 * second unrelated CA and a server certificate for "localhost" (SAN
 * DNS:localhost) signed by the first, all EC P-256.  The server is
 * br_ssl_server_init_full_ec with that key, one thread per connection,
 * driven with br_sslio over blocking sockets on 127.0.0.1.  Checks: a
 * request succeeds and its connection is reused; the wrong CA gives LT_ETLS
 * "not trusted"; a host name the certificate does not carry gives LT_ETLS;
 * a peer that never speaks TLS times the handshake out (LT_ECONNECT); large
 * bodies cross many TLS records both ways.
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
#include <unistd.h>

#include <bearssl.h>

#include "provider/upstream.h"
#include "testutil.h"
#include "util/clock.h"

/* ---- fixtures: certificates made with the openssl CLI ---- */

struct fix {
	char dir[TU_PATH_MAX];
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && "
		 "openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
		 "openssl req -x509 -new -key ca.key -sha256 -days 2 -subj '/CN=leakyd test CA' "
		 "-out ca.pem && "
		 "openssl ecparam -name prime256v1 -genkey -noout -out ca2.key && "
		 "openssl req -x509 -new -key ca2.key -sha256 -days 2 -subj '/CN=other CA' "
		 "-out ca2.pem && "
		 "openssl ecparam -name prime256v1 -genkey -noout -out srv.key && "
		 "openssl req -new -key srv.key -subj '/CN=localhost' -out srv.csr && "
		 "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n"
		 "keyUsage=critical,digitalSignature,keyAgreement\\n"
		 "extendedKeyUsage=serverAuth\\n' > srv.ext && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 "
		 "-sha256 -extfile srv.ext -out srv.pem && "
		 "printf 'no certificate here\\n' > empty.pem",
		 f->dir);
	char quiet[8300];
	snprintf(quiet, sizeof quiet, "(%s) >/dev/null 2>&1", cmd);
	if (system(quiet) != 0) {
		fprintf(stderr, "openssl failed: %s\n", cmd);
		tu_rmtree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* The DER of the first PEM object named like `want` (prefix match) in
 * file; malloc'd, the caller frees. */
struct der {
	unsigned char *p;
	size_t len, cap;
};

static void der_push(void *ctx, const void *src, size_t len)
{
	struct der *d = ctx;
	if (d->len + len > d->cap) {
		d->cap = (d->len + len) * 2;
		d->p = realloc(d->p, d->cap);
		assert_non_null(d->p);
	}
	memcpy(d->p + d->len, src, len);
	d->len += len;
}

static struct der pem_first(const char *path, const char *want)
{
	size_t n = 0;
	char *text = tu_read_file(path, &n);
	assert_non_null(text);
	br_pem_decoder_context pc;
	br_pem_decoder_init(&pc);
	struct der d = {0};
	bool in = false, done = false;
	const char *p = text;
	size_t left = n + 1; /* the NUL acts as the final line end */
	text[n] = '\n';
	while (left && !done) {
		size_t used = br_pem_decoder_push(&pc, p, left);
		p += used;
		left -= used;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			in = strstr(br_pem_decoder_name(&pc), want) != NULL;
			br_pem_decoder_setdest(&pc, in ? der_push : NULL, in ? &d : NULL);
			break;
		case BR_PEM_END_OBJ: done = in; break;
		case BR_PEM_ERROR: fail_msg("bad PEM in %s", path); break;
		default: break;
		}
	}
	free(text);
	assert_true(done);
	return d;
}

/* ---- the BearSSL test server ---- */

#define TS_MAXC 16

struct tsrv {
	int lfd;
	uint16_t port;
	atomic_bool stop;
	atomic_int accepts;
	atomic_int requests;
	pthread_t th;
	pthread_t conn_th[TS_MAXC];
	int nconn;
	struct der cert;
	br_x509_certificate chain[1];
	br_skey_decoder_context skey;
};

struct tconn {
	struct tsrv *s;
	int fd;
	br_ssl_server_context sc;
	br_sslio_context io;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
	char req[131072];
};

static int sock_read(void *ctx, unsigned char *buf, size_t len)
{
	for (;;) {
		ssize_t r = read(*(int *)ctx, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		return r <= 0 ? -1 : (int)r;
	}
}

static int sock_write(void *ctx, const unsigned char *buf, size_t len)
{
	for (;;) {
		ssize_t w = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		return w <= 0 ? -1 : (int)w;
	}
}

/* Length of the first complete request in buf, 0 if not complete yet. */
static size_t request_len(const char *buf, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++) {
		if (memcmp(buf + i, "\r\n\r\n", 4) != 0)
			continue;
		size_t clen = 0;
		static const char cl[] = "\r\nContent-Length: ";
		for (size_t j = 0; j + sizeof cl - 1 < i; j++) {
			if (strncasecmp(buf + j, cl, sizeof cl - 1) == 0) {
				clen = strtoul(buf + j + sizeof cl - 1, NULL, 10);
				break;
			}
		}
		return len - (i + 4) >= clen ? i + 4 + clen : 0;
	}
	return 0;
}

static void *tconn_main(void *arg)
{
	struct tconn *c = arg;
	struct tsrv *s = c->s;
	br_ssl_server_init_full_ec(&c->sc, s->chain, 1, BR_KEYTYPE_EC,
				   br_skey_decoder_get_ec(&s->skey));
	br_ssl_engine_set_buffer(&c->sc.eng, c->iobuf, sizeof c->iobuf, 1);
	br_ssl_server_reset(&c->sc);
	br_sslio_init(&c->io, &c->sc.eng, sock_read, &c->fd, sock_write, &c->fd);
	size_t len = 0;
	for (;;) {
		size_t n = request_len(c->req, len);
		if (!n) {
			if (len == sizeof c->req)
				break;
			int r = br_sslio_read(&c->io, c->req + len, sizeof c->req - len);
			if (r <= 0)
				break;
			len += (size_t)r;
			continue;
		}
		atomic_fetch_add(&s->requests, 1);
		char path[64] = "";
		sscanf(c->req, "%*s %63s", path);
		char head[256];
		if (!strcmp(path, "/big")) {
			size_t nbig = 100000;
			char *big = malloc(nbig);
			if (!big)
				abort();
			memset(big, 'b', nbig);
			snprintf(head, sizeof head,
				 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", nbig);
			br_sslio_write_all(&c->io, head, strlen(head));
			br_sslio_write_all(&c->io, big, nbig);
			free(big);
		} else {
			/* Answer with the number of request bytes seen. */
			char body[32];
			snprintf(body, sizeof body, "%zu", n);
			snprintf(head, sizeof head,
				 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body),
				 body);
			br_sslio_write_all(&c->io, head, strlen(head));
		}
		if (br_sslio_flush(&c->io) < 0)
			break;
		memmove(c->req, c->req + n, len - n);
		len -= n;
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void *tsrv_main(void *arg)
{
	struct tsrv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
		if (poll(&pf, 1, 20) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->accepts, 1);
		if (s->nconn == TS_MAXC) {
			close(fd);
			continue;
		}
		struct tconn *c = calloc(1, sizeof *c);
		if (!c)
			abort();
		c->s = s;
		c->fd = fd;
		if (pthread_create(&s->conn_th[s->nconn], NULL, tconn_main, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		s->nconn++;
	}
	return NULL;
}

static int listen_local(int backlog, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, backlog), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static struct tsrv *tsrv_start(const struct fix *f)
{
	struct tsrv *s = calloc(1, sizeof *s);
	assert_non_null(s);
	char path[TU_PATH_MAX];
	s->cert = pem_first(tu_path(path, f->dir, "srv.pem"), "CERTIFICATE");
	s->chain[0].data = s->cert.p;
	s->chain[0].data_len = s->cert.len;
	struct der key = pem_first(tu_path(path, f->dir, "srv.key"), "PRIVATE KEY");
	br_skey_decoder_init(&s->skey);
	br_skey_decoder_push(&s->skey, key.p, key.len);
	free(key.p);
	assert_int_equal(br_skey_decoder_last_error(&s->skey), 0);
	assert_int_equal(br_skey_decoder_key_type(&s->skey), BR_KEYTYPE_EC);
	s->lfd = listen_local(16, &s->port);
	assert_int_equal(pthread_create(&s->th, NULL, tsrv_main, s), 0);
	return s;
}

/* Every client connection must be closed first (free the upstreams). */
static void tsrv_stop(struct tsrv *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->th, NULL);
	for (int i = 0; i < s->nconn; i++)
		pthread_join(s->conn_th[i], NULL);
	close(s->lfd);
	free(s->cert.p);
	free(s);
}

/* ---- client helpers ---- */

static struct lt_tls_anchors *anchors(const struct fix *f, const char *name)
{
	char path[TU_PATH_MAX], why[256];
	struct lt_tls_anchors *a = NULL;
	enum lt_err err = lt_tls_anchors_load(tu_path(path, f->dir, name), &a, why, sizeof why);
	if (err)
		fail_msg("lt_tls_anchors_load(%s): %s", name, why);
	return a;
}

static struct lt_upstream *mk(const char *host, uint16_t port, const struct lt_tls_anchors *a)
{
	struct lt_upstream_opts o = {.anchors = a, .pool_max = 4};
	char url[128], why[256];
	snprintf(url, sizeof url, "https://%s:%u", host, (unsigned)port);
	assert_int_equal(lt_url_parse(url, &o.url, why, sizeof why), LT_OK);
	struct lt_upstream *u = NULL;
	assert_int_equal(lt_upstream_new(&o, &u), LT_OK);
	return u;
}

static struct lt_upstream_req req(const char *method, const char *path)
{
	int64_t now = lt_clock_mono_ns();
	return (struct lt_upstream_req){
		.method = method,
		.path = path,
		.connect_deadline_ns = now + 20 * LT_NS_PER_S,
		.first_byte_deadline_ns = now + 30 * LT_NS_PER_S,
		.deadline_ns = now + 40 * LT_NS_PER_S,
		.max_header = 8192,
		.max_body = 1 << 20,
	};
}

/* ---- tests ---- */

static void test_anchors(void **state)
{
	struct fix *f = *state;
	struct lt_tls_anchors *a = anchors(f, "ca.pem");
	assert_int_equal(lt_tls_anchors_count(a), 1);
	lt_tls_anchors_free(a);

	char why[256];
	const char *bundle = "/etc/ssl/certs/ca-certificates.crt";
	if (access(bundle, R_OK) == 0) {
		assert_int_equal(lt_tls_anchors_load(bundle, &a, why, sizeof why), LT_OK);
		assert_true(lt_tls_anchors_count(a) > 100);
		lt_tls_anchors_free(a);
	}

	char path[TU_PATH_MAX];
	a = (struct lt_tls_anchors *)1;
	assert_int_equal(
		lt_tls_anchors_load(tu_path(path, f->dir, "empty.pem"), &a, why, sizeof why),
		LT_EINVAL);
	assert_null(a);
	assert_non_null(strstr(why, "no usable certificate"));
	/* A PEM file holding only a private key has no certificate either. */
	assert_int_equal(lt_tls_anchors_load(tu_path(path, f->dir, "srv.key"), &a, why, sizeof why),
			 LT_EINVAL);
	assert_int_equal(
		lt_tls_anchors_load(tu_path(path, f->dir, "missing.pem"), &a, why, sizeof why),
		LT_EIO);
	assert_non_null(strstr(why, "missing.pem"));
	/* A directory opens but cannot be read. */
	assert_int_equal(lt_tls_anchors_load(f->dir, &a, why, sizeof why), LT_EIO);
	lt_tls_anchors_free(NULL);
}

static void test_request_and_reuse(void **state)
{
	struct fix *f = *state;
	struct tsrv *s = tsrv_start(f);
	struct lt_tls_anchors *a = anchors(f, "ca.pem");
	struct lt_upstream *u = mk("localhost", s->port, a);
	struct lt_upstream_req rq = req("GET", "/");
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_int_equal(r.status, 200);
	assert_false(r.reused);
	assert_non_null(r.body);
	lt_upstream_resp_free(&r);
	assert_int_equal(lt_upstream_idle(u), 1);

	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_true(r.reused);
	lt_upstream_resp_free(&r);

	/* A request body over many records, and a response over many. */
	static char body[70000];
	memset(body, 'a', sizeof body);
	rq = req("POST", "/");
	rq.body = body;
	rq.body_len = sizeof body;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_true(r.reused);
	assert_true(strtoul(r.body, NULL, 10) > sizeof body);
	lt_upstream_resp_free(&r);
	rq = req("GET", "/big");
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_int_equal(r.body_len, 100000);
	assert_int_equal(r.body[99999], 'b');
	lt_upstream_resp_free(&r);

	assert_int_equal(atomic_load(&s->accepts), 1);
	assert_int_equal(atomic_load(&s->requests), 4);
	lt_upstream_free(u);
	lt_tls_anchors_free(a);
	tsrv_stop(s);
}

static void test_wrong_ca(void **state)
{
	struct fix *f = *state;
	struct tsrv *s = tsrv_start(f);
	struct lt_tls_anchors *a = anchors(f, "ca2.pem");
	struct lt_upstream *u = mk("localhost", s->port, a);
	struct lt_upstream_req rq = req("GET", "/");
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETLS);
	assert_non_null(strstr(r.why, "TLS handshake with localhost failed"));
	assert_non_null(strstr(r.why, "not trusted"));
	assert_non_null(strstr(r.why, "BearSSL error 62"));
	assert_int_equal(r.status, 0);
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->requests), 0);
	lt_upstream_free(u);
	lt_tls_anchors_free(a);
	tsrv_stop(s);
}

static void test_wrong_host(void **state)
{
	struct fix *f = *state;
	struct tsrv *s = tsrv_start(f);
	struct lt_tls_anchors *a = anchors(f, "ca.pem");
	/* The certificate names localhost, not 127.0.0.1. */
	struct lt_upstream *u = mk("127.0.0.1", s->port, a);
	struct lt_upstream_req rq = req("GET", "/");
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ETLS);
	assert_non_null(strstr(r.why, "host name"));
	lt_upstream_resp_free(&r);
	assert_int_equal(atomic_load(&s->requests), 0);
	lt_upstream_free(u);
	lt_tls_anchors_free(a);
	tsrv_stop(s);
}

static void test_handshake_deadline(void **state)
{
	struct fix *f = *state;
	/* The kernel completes TCP connects to a listener nobody accepts on,
	 * so the ClientHello is never answered. */
	uint16_t port;
	int lfd = listen_local(8, &port);
	struct lt_tls_anchors *a = anchors(f, "ca.pem");
	struct lt_upstream *u = mk("localhost", port, a);
	struct lt_upstream_req rq = req("GET", "/");
	rq.connect_deadline_ns = lt_clock_mono_ns() + 200 * LT_NS_PER_MS;
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_ECONNECT);
	assert_non_null(strstr(r.why, "TLS handshake with localhost failed: timed out"));
	lt_upstream_resp_free(&r);
	lt_upstream_free(u);
	lt_tls_anchors_free(a);
	close(lfd);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anchors),
		cmocka_unit_test(test_request_and_reuse),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_wrong_host),
		cmocka_unit_test(test_handshake_deadline),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, setup, teardown);
}
