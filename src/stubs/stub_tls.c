/*
 * stub_tls.c — the stubs' HTTPS listener: a BearSSL TLS terminator in front
 * of the stubs' own plain listener.
 *
 * Why not civetweb's TLS: civetweb dlopens libssl.so and the Debian 12
 * build (1.15, made for the OpenSSL 1.1 API) needs SSL_get_peer_certificate,
 * which OpenSSL 3 no longer exports (civetweb issue #1334): its TLS init
 * fails, and a context started with an "s" port anyway crashes on the first
 * connection.  So HTTPS is served here, with the TLS library the project
 * already uses for outbound calls.
 *
 * Each accepted connection gets a thread that runs a BearSSL server engine
 * over the client socket and a plain TCP connection to the stubs' plain
 * port, moving bytes both ways (poll() on both sockets, non-blocking I/O).
 * HTTP framing is untouched: chunked streams pass frame by frame (each read
 * from the backend is flushed as its own records), and when the backend
 * closes — a dropped-connection fault included — the client gets
 * close_notify and EOF right after the bytes sent so far.
 *
 * Certificate file: PEM, the certificate chain (leaf first) and the private
 * key (RSA or EC; PKCS#8, PKCS#1 or SEC1).  TLS 1.0-1.2 (BearSSL's maximum).
 *
 * Limits and threads: at most max_conns connections at once (extra ones are
 * closed at accept); the accept thread and the connection threads wake at
 * least every LT_STUB_SLEEP_SLICE_MS to notice stop.  lt_stub_tls_stop
 * waits for all of them.  Ownership: lt_stub_tls_start allocates, stop
 * frees; the loaded chain and key are read-only while connections run.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stubs/stub_int.h"

#define CERT_FILE_MAX (1024 * 1024)
#define CHAIN_MAX 8

struct lt_stub_tls {
	int lfd;
	int port;
	struct sockaddr_storage backend;
	socklen_t backend_len;
	struct lt_log *log; /* borrowed */
	int max_conns;
	atomic_bool stopping;
	pthread_t accept_th;
	bool accept_started;
	pthread_mutex_t mu; /* guards active */
	pthread_cond_t idle;
	int active;
	/* credentials, read-only once loaded */
	br_x509_certificate chain[CHAIN_MAX];
	size_t nchain;
	br_skey_decoder_context skey;
	int key_type;	     /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
	int issuer_key_type; /* key type of the CA that signed the leaf */
};

struct tls_conn {
	struct lt_stub_tls *t;
	int cfd; /* client, TLS */
	int bfd; /* backend, plain */
	br_ssl_server_context sc;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* ---- loading the certificate file ---- */

struct pem_obj {
	struct lt_buf der;
};

static void der_sink(void *ctx, const void *p, size_t n)
{
	lt_buf_append(ctx, p, n);
}

static bool is_key_name(const char *name)
{
	return strcmp(name, "PRIVATE KEY") == 0 || strcmp(name, "RSA PRIVATE KEY") == 0 ||
	       strcmp(name, "EC PRIVATE KEY") == 0;
}

static enum lt_err load_credentials(struct lt_stub_tls *t, const char *path, char *why,
				    size_t why_cap)
{
	enum lt_err e = LT_EIO;
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	struct lt_buf der;
	lt_buf_init(&der, NULL, 0, CERT_FILE_MAX);
	bool have_key = false;
	if (!f) {
		snprintf(why, why_cap, "stubs tls_cert %s: %s", path, strerror(errno));
		return LT_EIO;
	}
	text = malloc(CERT_FILE_MAX + 2);
	size_t len = text ? fread(text, 1, CERT_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!text) {
		snprintf(why, why_cap, "out of memory reading %s", path);
		return LT_ENOMEM;
	}
	if (len > CERT_FILE_MAX) {
		snprintf(why, why_cap, "stubs tls_cert %s: larger than %d bytes", path,
			 CERT_FILE_MAX);
		goto out;
	}
	text[len++] = '\n'; /* the decoder needs the last line ended */
	br_pem_decoder_context pc;
	br_pem_decoder_init(&pc);
	bool in_obj = false;
	char name[130] = "";
	for (size_t off = 0; off < len;) {
		off += br_pem_decoder_push(&pc, text + off, len - off);
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			snprintf(name, sizeof name, "%s", br_pem_decoder_name(&pc));
			lt_buf_reset(&der);
			br_pem_decoder_setdest(&pc, der_sink, &der);
			in_obj = true;
			break;
		case BR_PEM_END_OBJ:
			if (!in_obj)
				break;
			in_obj = false;
			if (der.err) {
				snprintf(why, why_cap,
					 "stubs tls_cert %s: a PEM object is too large", path);
				goto out;
			}
			if (strcmp(name, "CERTIFICATE") == 0) {
				if (t->nchain == CHAIN_MAX) {
					snprintf(why, why_cap,
						 "stubs tls_cert %s: more than %d certificates",
						 path, CHAIN_MAX);
					goto out;
				}
				unsigned char *copy = malloc(der.len);
				if (!copy) {
					e = LT_ENOMEM;
					snprintf(why, why_cap, "out of memory reading %s", path);
					goto out;
				}
				memcpy(copy, der.data, der.len);
				t->chain[t->nchain].data = copy;
				t->chain[t->nchain].data_len = der.len;
				t->nchain++;
			} else if (is_key_name(name) && !have_key) {
				br_skey_decoder_init(&t->skey);
				br_skey_decoder_push(&t->skey, der.data, der.len);
				int err = br_skey_decoder_last_error(&t->skey);
				t->key_type = br_skey_decoder_key_type(&t->skey);
				if (err || (t->key_type != BR_KEYTYPE_RSA &&
					    t->key_type != BR_KEYTYPE_EC)) {
					snprintf(why, why_cap,
						 "stubs tls_cert %s: cannot decode the private key "
						 "(BearSSL error %d); RSA or EC keys only",
						 path, err);
					goto out;
				}
				have_key = true;
			}
			break;
		case BR_PEM_ERROR:
			snprintf(why, why_cap, "stubs tls_cert %s: malformed PEM", path);
			goto out;
		default: break;
		}
	}
	if (!t->nchain || !have_key) {
		snprintf(why, why_cap,
			 "stubs tls_cert %s: needs a CERTIFICATE and a PRIVATE KEY in PEM (found "
			 "%zu "
			 "certificate(s), %s key)",
			 path, t->nchain, have_key ? "a" : "no");
		goto out;
	}
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, t->chain[0].data, t->chain[0].data_len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || br_x509_decoder_last_error(&xd)) {
		snprintf(why, why_cap, "stubs tls_cert %s: cannot decode the first certificate",
			 path);
		goto out;
	}
	if (pk->key_type != t->key_type) {
		snprintf(why, why_cap,
			 "stubs tls_cert %s: the private key is %s but the certificate's key is %s",
			 path, t->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC",
			 pk->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC");
		goto out;
	}
	t->issuer_key_type = br_x509_decoder_get_signer_key_type(&xd);
	if (t->issuer_key_type != BR_KEYTYPE_RSA && t->issuer_key_type != BR_KEYTYPE_EC)
		t->issuer_key_type = t->key_type;
	e = LT_OK;
out:
	lt_buf_release(&der);
	free(text);
	return e;
}

/* ---- one connection ---- */

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL, 0);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* -1 error, 0 would block, else bytes. */
static ssize_t try_send(int fd, const void *p, size_t n)
{
	if (!n)
		return 0;
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return w <= 0 ? -1 : w;
}

/* -1 error or EOF (*eof set), 0 would block, else bytes. */
static ssize_t try_recv(int fd, void *p, size_t n, bool *eof)
{
	if (!n)
		return 0;
	ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (r == 0)
		*eof = true;
	return r <= 0 ? -1 : r;
}

/* Move bytes until either side closes or the listener stops. */
static void pump(struct tls_conn *c)
{
	br_ssl_engine_context *eng = &c->sc.eng;
	bool backend_eof = false, closing = false;
	for (;;) {
		if (atomic_load(&c->t->stopping))
			return;
		unsigned st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_CLOSED) {
			int err = br_ssl_engine_last_error(eng);
			if (err)
				lt_log_debug(c->t->log,
					     "stubs tls: connection ended (BearSSL error %d)", err);
			return;
		}
		bool progress = false;
		size_t len;
		if (st & BR_SSL_SENDREC) {
			unsigned char *buf = br_ssl_engine_sendrec_buf(eng, &len);
			ssize_t w = try_send(c->cfd, buf, len);
			if (w < 0)
				return;
			if (w > 0) {
				br_ssl_engine_sendrec_ack(eng, (size_t)w);
				progress = true;
			}
		} else if (closing) {
			return; /* close_notify is out: done */
		}
		/* Each step reads the state afresh: the one before may have
		 * changed it (an engine closed above has no buffers left). */
		st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_RECVAPP) {
			unsigned char *buf = br_ssl_engine_recvapp_buf(eng, &len);
			ssize_t w = try_send(c->bfd, buf, len);
			if (w < 0)
				return;
			if (w > 0) {
				br_ssl_engine_recvapp_ack(eng, (size_t)w);
				progress = true;
			}
		}
		st = br_ssl_engine_current_state(eng);
		if ((st & BR_SSL_SENDAPP) && !backend_eof) {
			unsigned char *buf = br_ssl_engine_sendapp_buf(eng, &len);
			ssize_t r = try_recv(c->bfd, buf, len, &backend_eof);
			if (r > 0) {
				br_ssl_engine_sendapp_ack(eng, (size_t)r);
				br_ssl_engine_flush(eng, 0);
				progress = true;
			} else if (r < 0) {
				backend_eof = true;
				closing = true;
				br_ssl_engine_close(eng);
				progress = true;
			}
		}
		st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_RECVREC) {
			unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &len);
			bool eof = false;
			ssize_t r = try_recv(c->cfd, buf, len, &eof);
			if (r < 0)
				return;
			if (r > 0) {
				br_ssl_engine_recvrec_ack(eng, (size_t)r);
				progress = true;
			}
		}
		if (progress)
			continue;
		struct pollfd pfd[2] = {{.fd = c->cfd}, {.fd = c->bfd}};
		st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_SENDREC)
			pfd[0].events |= POLLOUT;
		if (st & BR_SSL_RECVREC)
			pfd[0].events |= POLLIN;
		if (st & BR_SSL_RECVAPP)
			pfd[1].events |= POLLOUT;
		if ((st & BR_SSL_SENDAPP) && !backend_eof)
			pfd[1].events |= POLLIN;
		/* A socket we wait nothing from is left out: its hang-up would
		 * wake poll() at once, again and again. */
		for (int i = 0; i < 2; i++)
			if (!pfd[i].events)
				pfd[i].fd = -1;
		if (poll(pfd, 2, LT_STUB_SLEEP_SLICE_MS) < 0 && errno != EINTR)
			return;
		if ((pfd[0].revents & (POLLERR | POLLNVAL)) || (pfd[1].revents & POLLNVAL))
			return;
	}
}

static void *conn_main(void *arg)
{
	struct tls_conn *c = arg;
	struct lt_stub_tls *t = c->t;
	c->bfd = socket(t->backend.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->bfd >= 0 && connect(c->bfd, (struct sockaddr *)&t->backend, t->backend_len) == 0) {
		set_nonblock(c->cfd);
		set_nonblock(c->bfd);
		if (t->key_type == BR_KEYTYPE_RSA)
			br_ssl_server_init_full_rsa(&c->sc, t->chain, t->nchain,
						    br_skey_decoder_get_rsa(&t->skey));
		else
			br_ssl_server_init_full_ec(&c->sc, t->chain, t->nchain,
						   (unsigned)t->issuer_key_type,
						   br_skey_decoder_get_ec(&t->skey));
		br_ssl_engine_set_buffer(&c->sc.eng, c->iobuf, sizeof c->iobuf, 1);
		if (br_ssl_server_reset(&c->sc))
			pump(c);
	} else {
		lt_log_warn(t->log, "stubs tls: cannot reach the plain stubs listener: %s",
			    strerror(errno));
	}
	if (c->bfd >= 0)
		close(c->bfd);
	close(c->cfd);
	free(c);
	pthread_mutex_lock(&t->mu);
	if (--t->active == 0)
		pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct lt_stub_tls *t = arg;
	while (!atomic_load(&t->stopping)) {
		struct pollfd pfd = {.fd = t->lfd, .events = POLLIN};
		int n = poll(&pfd, 1, LT_STUB_SLEEP_SLICE_MS);
		if (n <= 0)
			continue;
		int fd = accept(t->lfd, NULL, NULL);
		if (fd >= 0)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&t->mu);
		bool room = t->active < t->max_conns;
		if (room)
			t->active++;
		pthread_mutex_unlock(&t->mu);
		struct tls_conn *c = room ? malloc(sizeof *c) : NULL;
		pthread_attr_t attr;
		pthread_t th;
		bool started = false;
		if (c) {
			memset(c, 0, sizeof *c);
			c->t = t;
			c->cfd = fd;
			c->bfd = -1;
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			started = pthread_create(&th, &attr, conn_main, c) == 0;
			pthread_attr_destroy(&attr);
		}
		if (!started) {
			free(c);
			close(fd);
			if (room) {
				pthread_mutex_lock(&t->mu);
				if (--t->active == 0)
					pthread_cond_broadcast(&t->idle);
				pthread_mutex_unlock(&t->mu);
			}
		}
	}
	return NULL;
}

/* ---- start and stop ---- */

static enum lt_err open_listener(struct lt_stub_tls *t, const char *addr, char *why, size_t why_cap)
{
	char host[LT_CFG_STR_MAX];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof host) {
		snprintf(why, why_cap, "stubs tls_listen %s: expected HOST:PORT", addr);
		return LT_EIO;
	}
	size_t hl = (size_t)(colon - addr);
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (gai) {
		snprintf(why, why_cap, "stubs tls_listen %s: %s", addr, gai_strerror(gai));
		return LT_EIO;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		snprintf(why, why_cap, "cannot listen on %s (stubs tls_listen): %s", addr,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return LT_EIO;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	t->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	t->lfd = fd;
	return LT_OK;
}

enum lt_err lt_stub_tls_start(const char *addr, const char *cert_path,
			      const struct sockaddr_storage *backend, socklen_t backend_len,
			      int max_conns, struct lt_log *log, struct lt_stub_tls **out,
			      char *why, size_t why_cap)
{
	*out = NULL;
	struct lt_stub_tls *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(why, why_cap, "out of memory starting the stubs' TLS listener");
		return LT_ENOMEM;
	}
	t->lfd = -1;
	t->log = log;
	t->max_conns = max_conns;
	t->backend = *backend;
	t->backend_len = backend_len;
	atomic_init(&t->stopping, false);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->idle, NULL);
	enum lt_err e = load_credentials(t, cert_path, why, why_cap);
	if (!e)
		e = open_listener(t, addr, why, why_cap);
	if (!e) {
		if (pthread_create(&t->accept_th, NULL, accept_main, t) != 0) {
			snprintf(why, why_cap, "cannot start the stubs' TLS accept thread");
			e = LT_EIO;
		} else {
			t->accept_started = true;
		}
	}
	if (e) {
		lt_stub_tls_stop(t);
		return e;
	}
	*out = t;
	return LT_OK;
}

int lt_stub_tls_port(const struct lt_stub_tls *t)
{
	return t ? t->port : 0;
}

void lt_stub_tls_stop(struct lt_stub_tls *t)
{
	if (!t)
		return;
	atomic_store(&t->stopping, true);
	if (t->accept_started)
		pthread_join(t->accept_th, NULL);
	if (t->lfd >= 0)
		close(t->lfd);
	pthread_mutex_lock(&t->mu);
	while (t->active > 0)
		pthread_cond_wait(&t->idle, &t->mu);
	pthread_mutex_unlock(&t->mu);
	for (size_t i = 0; i < t->nchain; i++)
		free(t->chain[i].data);
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
