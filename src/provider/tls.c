/*
 * tls.c — BearSSL for the upstream client: trust anchors from a PEM bundle
 * (lt_tls_anchors_*, see upstream.h) and one client connection driven with
 * the engine's low-level API over a non-blocking socket (see tls.h).
 *
 * Anchors: BearSSL has no bundle loader, so this does what its
 * tools/certs.c does: each CERTIFICATE block of the PEM file is decoded with
 * br_x509_decoder and its subject DN and public key (RSA or EC) are copied
 * into a br_x509_trust_anchor, flagged BR_X509_TA_CA when the certificate
 * says it is a CA.  Certificates BearSSL cannot decode (unsupported key
 * types) are skipped and counted.  Bounds: 64 KiB per certificate, 16 KiB
 * per DN, LT_TLS_MAX_ANCHORS anchors.  The set is immutable once loaded and
 * owned by whoever loaded it (lt_tls_anchors_free frees every copy).
 *
 * Connections: br_ssl_client_init_full (every suite BearSSL has, TLS 1.2
 * only), br_ssl_client_reset with the host name (SNI and name check), an
 * I/O buffer of BR_SSL_BUFSIZE_BIDI inside struct lt_tls_conn.  run_until()
 * is br_sslio's loop with poll() and a deadline instead of blocking calls.
 * No state is shared between connections except the borrowed anchors.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <bearssl.h>

#include "provider/tls.h"
#include "provider/upstream.h"
#include "util/buf.h"
#include "util/clock.h"

#define LT_TLS_MAX_ANCHORS 4096
#define LT_TLS_MAX_CERT (64 * 1024)
#define LT_TLS_MAX_DN (16 * 1024)
#define LT_TLS_HOST_MAX 256

struct lt_tls_anchors {
	br_x509_trust_anchor *ta; /* n entries; every dn and key buffer malloc'd */
	size_t n;
};

struct lt_tls_conn {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	char host[LT_TLS_HOST_MAX];
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
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

/* ---- socket waiting (shared with upstream.c) ---- */

enum lt_err lt_sock_send(int fd, const void *buf, size_t len, int64_t deadline_ns, size_t *sent,
			 char *why, size_t why_cap)
{
	*sent = 0;
	for (;;) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
		if (w > 0) {
			*sent = (size_t)w;
			return LT_OK;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (lt_sock_wait(fd, POLLOUT, deadline_ns) == LT_ETIMEOUT) {
				whyf(why, why_cap, "timed out");
				return LT_ETIMEOUT;
			}
			continue;
		}
		int e = w < 0 ? errno : EPIPE;
		whyf(why, why_cap, "%s", strerror(e));
		return (e == EPIPE || e == ECONNRESET) ? LT_ECLOSED : LT_EIO;
	}
}

enum lt_err lt_sock_wait(int fd, short events, int64_t deadline_ns)
{
	for (;;) {
		int ms = -1;
		if (deadline_ns) {
			int64_t left = deadline_ns - lt_clock_mono_ns();
			if (left <= 0)
				return LT_ETIMEOUT;
			int64_t m = (left + LT_NS_PER_MS - 1) / LT_NS_PER_MS;
			ms = m > INT_MAX ? INT_MAX : (int)m;
		}
		struct pollfd pfd = {.fd = fd, .events = events};
		int r = poll(&pfd, 1, ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return LT_EIO;
		}
		if (r > 0)
			return LT_OK; /* ready, or POLLERR/POLLHUP: the next call says which */
	}
}

/* ---- error words ---- */

const char *lt_tls_error_str(int e)
{
	if (e >= BR_ERR_SEND_FATAL_ALERT)
		return "we sent a fatal alert";
	if (e >= BR_ERR_RECV_FATAL_ALERT) {
		switch (e - BR_ERR_RECV_FATAL_ALERT) {
		case 40: return "server sent alert handshake_failure";
		case 42: return "server sent alert bad_certificate";
		case 48: return "server sent alert unknown_ca";
		case 70: return "server sent alert protocol_version";
		case 80: return "server sent alert internal_error";
		case 112: return "server sent alert unrecognized_name";
		default: return "server sent a fatal alert";
		}
	}
	switch (e) {
	case BR_ERR_OK: return "no error";
	case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted";
	case BR_ERR_X509_BAD_SERVER_NAME: return "certificate does not match the host name";
	case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
	case BR_ERR_X509_NOT_CA: return "certificate issuer is not a CA";
	case BR_ERR_X509_BAD_SIGNATURE: return "bad certificate signature";
	case BR_ERR_X509_WEAK_PUBLIC_KEY: return "certificate key too weak";
	case BR_ERR_X509_FORBIDDEN_KEY_USAGE: return "certificate key usage forbids this use";
	case BR_ERR_X509_CRITICAL_EXTENSION: return "unsupported critical certificate extension";
	case BR_ERR_X509_DN_MISMATCH: return "certificate chain is broken (issuer name mismatch)";
	case BR_ERR_X509_EMPTY_CHAIN: return "server sent no certificate";
	case BR_ERR_X509_UNSUPPORTED: return "unsupported certificate feature";
	case BR_ERR_X509_WRONG_KEY_TYPE:
		return "certificate key type does not fit the cipher suite";
	case BR_ERR_X509_TIME_UNKNOWN: return "current time unknown";
	case BR_ERR_X509_LIMIT_EXCEEDED: return "certificate chain too long";
	case BR_ERR_UNSUPPORTED_VERSION: return "no TLS version in common (TLS 1.2 required)";
	case BR_ERR_BAD_VERSION: return "bad TLS version";
	case BR_ERR_BAD_MAC: return "bad record MAC";
	case BR_ERR_BAD_CIPHER_SUITE: return "no cipher suite in common";
	case BR_ERR_BAD_SIGNATURE: return "bad handshake signature";
	case BR_ERR_WRONG_KEY_USAGE: return "certificate key usage forbids this use";
	case BR_ERR_NO_RANDOM: return "no random source";
	case BR_ERR_TOO_LARGE: return "record too large";
	case BR_ERR_IO: return "I/O error";
	default: break;
	}
	if (e >= BR_ERR_X509_INVALID_VALUE && e <= BR_ERR_X509_OVERFLOW)
		return "malformed certificate";
	if (e >= BR_ERR_X509_BAD_DN && e <= BR_ERR_X509_BAD_TIME)
		return "malformed certificate";
	return "TLS protocol violation";
}

static void engine_why(br_ssl_engine_context *eng, char *why, size_t why_cap)
{
	int e = br_ssl_engine_last_error(eng);
	whyf(why, why_cap, "%s (BearSSL error %d)", lt_tls_error_str(e), e);
}

/* ---- connection ---- */

enum lt_err lt_tls_conn_new(const struct lt_tls_anchors *anchors, const char *host,
			    struct lt_tls_conn **out)
{
	*out = NULL;
	size_t hl = strlen(host);
	if (!anchors || hl == 0 || hl >= LT_TLS_HOST_MAX)
		return LT_EINVAL;
	struct lt_tls_conn *c = calloc(1, sizeof *c);
	if (!c)
		return LT_ENOMEM;
	memcpy(c->host, host, hl + 1);
	br_ssl_client_init_full(&c->cc, &c->xc, anchors->ta, anchors->n);
	br_ssl_engine_set_versions(&c->cc.eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_buffer(&c->cc.eng, c->iobuf, sizeof c->iobuf, 1);
	*out = c;
	return LT_OK;
}

void lt_tls_conn_free(struct lt_tls_conn *c)
{
	free(c);
}

/* Drive the engine until one of the `target` state bits is set, sending
 * and receiving records as it asks.  why gets a bare reason on failure. */
static enum lt_err run_until(struct lt_tls_conn *c, int fd, unsigned target, int64_t deadline_ns,
			     char *why, size_t why_cap)
{
	br_ssl_engine_context *eng = &c->cc.eng;
	for (;;) {
		unsigned st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_CLOSED) {
			if (br_ssl_engine_last_error(eng) == BR_ERR_OK) {
				whyf(why, why_cap, "connection closed by peer (close_notify)");
				return LT_ECLOSED;
			}
			engine_why(eng, why, why_cap);
			return LT_ETLS;
		}
		if (st & BR_SSL_SENDREC) {
			size_t len, w;
			unsigned char *buf = br_ssl_engine_sendrec_buf(eng, &len);
			enum lt_err e = lt_sock_send(fd, buf, len, deadline_ns, &w, why, why_cap);
			if (e)
				return e;
			br_ssl_engine_sendrec_ack(eng, w);
			continue;
		}
		if (st & target)
			return LT_OK;
		if (st & BR_SSL_RECVAPP) {
			/* Application data arrived while we wanted to send. */
			whyf(why, why_cap, "server sent data before the request was complete");
			return LT_EIO;
		}
		if (st & BR_SSL_RECVREC) {
			size_t len;
			unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &len);
			ssize_t r = recv(fd, buf, len, 0);
			if (r > 0) {
				br_ssl_engine_recvrec_ack(eng, (size_t)r);
				continue;
			}
			if (r == 0) {
				why[0] = '\0'; /* a plain EOF needs no explanation */
				return LT_ECLOSED;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (lt_sock_wait(fd, POLLIN, deadline_ns) == LT_ETIMEOUT) {
					whyf(why, why_cap, "timed out");
					return LT_ETIMEOUT;
				}
				continue;
			}
			int e = errno;
			whyf(why, why_cap, "%s", strerror(e));
			return e == ECONNRESET ? LT_ECLOSED : LT_EIO;
		}
		/* Nothing to do but push out buffered application data. */
		br_ssl_engine_flush(eng, 0);
		if (br_ssl_engine_current_state(eng) == st) {
			whyf(why, why_cap, "TLS engine stalled in state %#x", st);
			return LT_ETLS;
		}
	}
}

enum lt_err lt_tls_handshake(struct lt_tls_conn *c, int fd, int64_t deadline_ns, char *why,
			     size_t why_cap)
{
	char reason[160];
	enum lt_err err;
	if (!br_ssl_client_reset(&c->cc, c->host, 0)) {
		engine_why(&c->cc.eng, reason, sizeof reason);
		err = LT_ETLS;
	} else {
		err = run_until(c, fd, BR_SSL_SENDAPP, deadline_ns, reason, sizeof reason);
		if (err == LT_ECLOSED) {
			err = LT_ETLS; /* a server that hangs up mid-handshake refused us */
			if (!reason[0])
				whyf(reason, sizeof reason, "connection closed by peer");
		}
	}
	if (err)
		whyf(why, why_cap, "TLS handshake with %s failed: %s", c->host, reason);
	return err;
}

enum lt_err lt_tls_write(struct lt_tls_conn *c, int fd, const void *p, size_t n,
			 int64_t deadline_ns, char *why, size_t why_cap)
{
	br_ssl_engine_context *eng = &c->cc.eng;
	const unsigned char *src = p;
	while (n > 0) {
		enum lt_err err = run_until(c, fd, BR_SSL_SENDAPP, deadline_ns, why, why_cap);
		if (err)
			return err;
		size_t len;
		unsigned char *buf = br_ssl_engine_sendapp_buf(eng, &len);
		size_t m = len < n ? len : n;
		memcpy(buf, src, m);
		br_ssl_engine_sendapp_ack(eng, m);
		src += m;
		n -= m;
	}
	br_ssl_engine_flush(eng, 0);
	/* run_until sends every pending record before it looks at the target. */
	return run_until(c, fd, BR_SSL_SENDAPP, deadline_ns, why, why_cap);
}

enum lt_err lt_tls_read(struct lt_tls_conn *c, int fd, void *buf, size_t cap, size_t *got,
			int64_t deadline_ns, char *why, size_t why_cap)
{
	*got = 0;
	br_ssl_engine_context *eng = &c->cc.eng;
	enum lt_err err = run_until(c, fd, BR_SSL_RECVAPP, deadline_ns, why, why_cap);
	if (err)
		return err;
	size_t len;
	unsigned char *src = br_ssl_engine_recvapp_buf(eng, &len);
	size_t m = len < cap ? len : cap;
	memcpy(buf, src, m);
	br_ssl_engine_recvapp_ack(eng, m);
	*got = m;
	return LT_OK;
}

bool lt_tls_idle_ok(struct lt_tls_conn *c)
{
	unsigned st = br_ssl_engine_current_state(&c->cc.eng);
	return !(st & (BR_SSL_CLOSED | BR_SSL_RECVAPP));
}

/* ---- trust anchors ---- */

struct loader {
	br_pem_decoder_context pem;
	br_x509_decoder_context x509;
	struct lt_buf der; /* the certificate being read */
	struct lt_buf dn;  /* its subject DN */
	bool in_cert;
	size_t skipped;
	struct lt_tls_anchors *a;
	size_t cap; /* entries allocated in a->ta */
};

static void buf_sink(void *ctx, const void *src, size_t len)
{
	lt_buf_append(ctx, src, len); /* errors are sticky and checked later */
}

static void *dup_bytes(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);
	if (q && n)
		memcpy(q, p, n);
	return q;
}

static void anchor_release(br_x509_trust_anchor *ta)
{
	free(ta->dn.data);
	if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
		free(ta->pkey.key.rsa.n);
		free(ta->pkey.key.rsa.e);
	} else if (ta->pkey.key_type == BR_KEYTYPE_EC) {
		free(ta->pkey.key.ec.q);
	}
}

/* Decode the certificate in ld->der into the next anchor (or skip it). */
static enum lt_err add_anchor(struct loader *ld)
{
	lt_buf_reset(&ld->dn);
	br_x509_decoder_init(&ld->x509, buf_sink, &ld->dn);
	br_x509_decoder_push(&ld->x509, ld->der.data, ld->der.len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&ld->x509);
	if (ld->der.err || ld->dn.err || !pk || br_x509_decoder_last_error(&ld->x509) ||
	    (pk->key_type != BR_KEYTYPE_RSA && pk->key_type != BR_KEYTYPE_EC)) {
		ld->skipped++;
		return LT_OK;
	}
	struct lt_tls_anchors *a = ld->a;
	if (a->n == ld->cap) {
		if (ld->cap == LT_TLS_MAX_ANCHORS)
			return LT_ETOOBIG;
		size_t cap = ld->cap ? ld->cap * 2 : 64;
		if (cap > LT_TLS_MAX_ANCHORS)
			cap = LT_TLS_MAX_ANCHORS;
		br_x509_trust_anchor *ta = realloc(a->ta, cap * sizeof *ta);
		if (!ta)
			return LT_ENOMEM;
		a->ta = ta;
		ld->cap = cap;
	}
	br_x509_trust_anchor *ta = &a->ta[a->n];
	memset(ta, 0, sizeof *ta);
	ta->flags = br_x509_decoder_isCA(&ld->x509) ? BR_X509_TA_CA : 0;
	ta->pkey.key_type = pk->key_type;
	ta->dn.data = dup_bytes(ld->dn.data, ld->dn.len);
	ta->dn.len = ld->dn.len;
	bool ok = ta->dn.data != NULL;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		const br_rsa_public_key *k = &pk->key.rsa;
		ta->pkey.key.rsa.n = dup_bytes(k->n, k->nlen);
		ta->pkey.key.rsa.nlen = k->nlen;
		ta->pkey.key.rsa.e = dup_bytes(k->e, k->elen);
		ta->pkey.key.rsa.elen = k->elen;
		ok = ok && ta->pkey.key.rsa.n && ta->pkey.key.rsa.e;
	} else {
		const br_ec_public_key *k = &pk->key.ec;
		ta->pkey.key.ec.curve = k->curve;
		ta->pkey.key.ec.q = dup_bytes(k->q, k->qlen);
		ta->pkey.key.ec.qlen = k->qlen;
		ok = ok && ta->pkey.key.ec.q;
	}
	if (!ok) {
		anchor_release(ta);
		return LT_ENOMEM;
	}
	a->n++;
	return LT_OK;
}

/* Push p[0..n) through the PEM decoder, handling its events. */
static enum lt_err pem_feed(struct loader *ld, const char *p, size_t n)
{
	while (n > 0) {
		size_t used = br_pem_decoder_push(&ld->pem, p, n);
		p += used;
		n -= used;
		int ev = br_pem_decoder_event(&ld->pem);
		if (ev == BR_PEM_BEGIN_OBJ) {
			const char *name = br_pem_decoder_name(&ld->pem);
			ld->in_cert =
				!strcmp(name, "CERTIFICATE") || !strcmp(name, "X509 CERTIFICATE");
			lt_buf_reset(&ld->der);
			br_pem_decoder_setdest(&ld->pem, ld->in_cert ? buf_sink : NULL,
					       ld->in_cert ? &ld->der : NULL);
		} else if (ev == BR_PEM_END_OBJ) {
			if (ld->in_cert) {
				enum lt_err err = add_anchor(ld);
				if (err)
					return err;
			}
			ld->in_cert = false;
		} else if (ev == BR_PEM_ERROR) {
			return LT_EINVAL;
		} else if (used == 0) {
			return LT_EINVAL; /* no progress and no event: never loop */
		}
	}
	return LT_OK;
}

static void anchors_free(struct lt_tls_anchors *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		anchor_release(&a->ta[i]);
	free(a->ta);
	free(a);
}

enum lt_err lt_tls_anchors_load(const char *pem_path, struct lt_tls_anchors **out, char *why,
				size_t why_cap)
{
	*out = NULL;
	enum lt_err err = LT_OK;
	struct loader *ld = NULL;
	FILE *fp = fopen(pem_path, "rb");
	if (!fp) {
		whyf(why, why_cap, "cannot open CA bundle %s: %s", pem_path, strerror(errno));
		return LT_EIO;
	}
	ld = calloc(1, sizeof *ld);
	if (!ld || !(ld->a = calloc(1, sizeof *ld->a))) {
		err = LT_ENOMEM;
		whyf(why, why_cap, "out of memory loading %s", pem_path);
		goto out;
	}
	br_pem_decoder_init(&ld->pem);
	lt_buf_init(&ld->der, NULL, 0, LT_TLS_MAX_CERT);
	lt_buf_init(&ld->dn, NULL, 0, LT_TLS_MAX_DN);
	char chunk[8192];
	size_t n;
	while (!err && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		err = pem_feed(ld, chunk, n);
	/* The decoder needs a line end after the last END banner. */
	if (!err)
		err = pem_feed(ld, "\n", 1);
	if (!err && ferror(fp)) {
		err = LT_EIO;
		whyf(why, why_cap, "cannot read CA bundle %s: %s", pem_path, strerror(errno));
		goto out;
	}
	if (err == LT_EINVAL)
		whyf(why, why_cap, "CA bundle %s is not valid PEM", pem_path);
	else if (err == LT_ETOOBIG)
		whyf(why, why_cap, "CA bundle %s holds more than %d certificates", pem_path,
		     LT_TLS_MAX_ANCHORS);
	else if (err)
		whyf(why, why_cap, "loading CA bundle %s: %s", pem_path, lt_strerror(err));
	else if (ld->a->n == 0) {
		err = LT_EINVAL;
		whyf(why, why_cap, "CA bundle %s holds no usable certificate (%zu skipped)",
		     pem_path, ld->skipped);
	}
out:
	fclose(fp);
	if (ld) {
		lt_buf_release(&ld->der);
		lt_buf_release(&ld->dn);
		if (!err)
			*out = ld->a;
		else
			anchors_free(ld->a);
		free(ld);
	}
	return err;
}

size_t lt_tls_anchors_count(const struct lt_tls_anchors *a)
{
	return a ? a->n : 0;
}

void lt_tls_anchors_free(struct lt_tls_anchors *a)
{
	anchors_free(a);
}
