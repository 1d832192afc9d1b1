/*
 * tls.h — internal to the upstream client: one BearSSL client connection
 * driven over a non-blocking socket with deadlines.  Not for other modules
 * (they see struct lt_tls_anchors through upstream.h only).
 *
 * A struct lt_tls_conn holds the BearSSL client and X.509 contexts and the
 * record buffer (BR_SSL_BUFSIZE_BIDI bytes) of one connection; it never owns
 * the socket.  It is used by one thread at a time (the one holding the
 * connection) and borrows the trust anchors, which must outlive it.
 *
 * Every I/O function takes an absolute deadline on lt_clock_mono_ns() (0 =
 * none) and waits with poll().  Errors:
 *   LT_ETIMEOUT  the deadline passed;
 *   LT_ECLOSED   the peer closed (socket EOF, reset, or TLS close_notify);
 *   LT_EIO       another socket error (why holds strerror);
 *   LT_ETLS      the TLS engine failed (why names the BearSSL error).
 * After any error the connection must be freed, not reused.
 */
#ifndef LT_PROVIDER_TLS_H
#define LT_PROVIDER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider/upstream.h"
#include "util/err.h"

struct lt_tls_conn;

/* A client context for `host` (SNI and the name the certificate must carry),
 * verifying against `anchors`.  LT_ENOMEM or LT_EINVAL (host too long). */
enum lt_err lt_tls_conn_new(const struct lt_tls_anchors *anchors, const char *host,
			    struct lt_tls_conn **out);
void lt_tls_conn_free(struct lt_tls_conn *c);

/* Run the handshake on the connected socket fd until application data can
 * be sent.  On failure why reads e.g. "TLS handshake with HOST failed:
 * certificate not trusted (BearSSL error 62)". */
enum lt_err lt_tls_handshake(struct lt_tls_conn *c, int fd, int64_t deadline_ns, char *why,
			     size_t why_cap);

/* Encrypt and send all of p[0..n), then flush. */
enum lt_err lt_tls_write(struct lt_tls_conn *c, int fd, const void *p, size_t n,
			 int64_t deadline_ns, char *why, size_t why_cap);

/* Read up to cap decrypted bytes (at least one) into buf. */
enum lt_err lt_tls_read(struct lt_tls_conn *c, int fd, void *buf, size_t cap, size_t *got,
			int64_t deadline_ns, char *why, size_t why_cap);

/* True if the engine is still open and holds no unread application data:
 * the connection may be pooled. */
bool lt_tls_idle_ok(struct lt_tls_conn *c);

/* Shared socket helper (also used by upstream.c): wait until fd is ready
 * for `events` (POLLIN/POLLOUT; an error or hang-up also counts as ready)
 * or the deadline passes (LT_ETIMEOUT; deadline 0 = none).  LT_EIO if poll
 * itself fails (errno is set). */
enum lt_err lt_sock_wait(int fd, short events, int64_t deadline_ns);

/* Send some of buf[0..len) (len > 0) on a non-blocking socket, waiting for
 * it to become writable up to the deadline; *sent > 0 on LT_OK.
 * LT_ETIMEOUT, LT_ECLOSED (EPIPE, ECONNRESET) or LT_EIO with a bare reason
 * in why.  Shared by the plain and TLS write paths. */
enum lt_err lt_sock_send(int fd, const void *buf, size_t len, int64_t deadline_ns, size_t *sent,
			 char *why, size_t why_cap);

/* Words for a br_ssl_engine_last_error code ("certificate not trusted"). */
const char *lt_tls_error_str(int br_err);

#endif
