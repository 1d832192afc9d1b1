/*
 * listener.h — the civetweb listener and the request pipeline.
 *
 * Every request passes, in order: correlation id → drain and in-flight
 * admission (503 + Retry-After) → route match (404, 405 + Allow) →
 * debug-route check (403) → readiness (503) → body limits (413 by declared
 * length, 415 for non-JSON, 413 while reading, 400 for bad JSON with the
 * byte offset) → handler → metrics and access log.
 * Errors civetweb raises itself (oversized headers, malformed request line)
 * are rendered as the same JSON envelope through its http_error callback.
 */
#ifndef LT_HTTP_LISTENER_H
#define LT_HTTP_LISTENER_H

#include <stddef.h>

#include "util/err.h"

struct lt_server;
struct lt_route;

#define LT_HTTP_ERR_MAX 1024

/* Start listening with srv's current configuration and routes.  Sets
 * srv->http and srv->http_port (the bound port, useful with port 0). */
enum lt_err lt_http_start(struct lt_server *srv, char *err);
void lt_http_stop(struct lt_server *srv);

#endif
