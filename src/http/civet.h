/*
 * civet.h — starting and stopping a civetweb context: shared by the API
 * listener (http/listener.c) and the provider stubs (stubs/stubs.c).
 *
 * lt_civet_stop knocks on the listener while mg_stop runs: civetweb's
 * master thread notices the stop only when its poll() wakes, which takes up
 * to its 2 s quantum on an idle listener, so without the knock every
 * shutdown would take that long.
 */
#ifndef LT_HTTP_CIVET_H
#define LT_HTTP_CIVET_H

#include <stddef.h>
#include <sys/socket.h>

#include "util/err.h"

struct mg_context;
struct mg_callbacks;

/* Start a context with the NULL-terminated option list and callbacks
 * (user is mg_get_user_data's).  *port is the first port bound.  LT_EIO
 * with "<what> <listen>: <civetweb's reason>" in err, e.g. what =
 * "cannot listen on". */
enum lt_err lt_civet_start(const char *what, const char *listen, const char **options,
			   const struct mg_callbacks *cb, void *user, struct mg_context **out,
			   int *port, char *err, size_t err_cap);

/* The address at which this machine reaches a listener configured as
 * "HOST:PORT" and bound on `port` (a wildcard host becomes loopback). */
void lt_civet_local_addr(const char *listen, int port, struct sockaddr_storage *ss, socklen_t *len);

/* mg_stop(ctx), knocking on the listener so it returns in milliseconds. */
void lt_civet_stop(struct mg_context *ctx, const char *listen, int port);

#endif
