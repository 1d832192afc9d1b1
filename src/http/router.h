/*
 * router.h — the route table and its matcher (pure: no I/O, no civetweb).
 *
 * A route is (method, path pattern, handler, auth requirement, body kind).
 * Patterns are literal segments separated by '/', where a segment may hold
 * one {param} followed by a literal suffix ("{model}:generateContent").  A
 * param matches one non-empty segment (no '/').  Matching returns the route
 * and its params, or tells 404 from 405 and lists the allowed methods.
 * HEAD matches a GET route.
 */
#ifndef LT_HTTP_ROUTER_H
#define LT_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define LT_ROUTE_MAX_PARAMS 4
#define LT_ROUTE_ALLOW_MAX 64

enum lt_route_auth {
	LT_AUTH_PUBLIC, /* anyone */
	LT_AUTH_DEBUG,	/* loopback clients, and only with [debug] test_endpoints or the
			    feature the handler checks (manual_clock) */
	LT_AUTH_USER,	/* any authenticated principal (401 otherwise) */
	LT_AUTH_ADMIN,	/* a principal with the ADMIN role (403 otherwise) */
};

enum lt_body {
	LT_BODY_NONE, /* a body, if sent, is read and ignored (up to max_body) */
	LT_BODY_JSON, /* a JSON object or array is required */
};

struct lt_req;
typedef void (*lt_handler_fn)(struct lt_req *req);

struct lt_route {
	const char *method;
	const char *pattern; /* also the route's name in logs and metrics */
	lt_handler_fn handler;
	enum lt_route_auth auth;
	enum lt_body body;
	bool needs_ready;    /* 503 until storage is ready */
	const char *summary; /* one line, for the OpenAPI check */
	bool during_drain;   /* still served while shutting down (health probes) */
	bool admits;	     /* the handler runs the request's whole admission itself (request
			and token buckets in one transaction, api/spend.h); for every
			other route the dispatcher admits the request limit */
};

struct lt_route_param {
	const char *name; /* points into the pattern */
	size_t name_len;
	const char *value; /* points into the path */
	size_t len;
};

struct lt_route_match {
	const struct lt_route *route;
	size_t nparams;
	struct lt_route_param params[LT_ROUTE_MAX_PARAMS];
	char allow[LT_ROUTE_ALLOW_MAX]; /* for 405: "GET, HEAD, POST" */
};

/* LT_OK: m->route set.  LT_ENOTFOUND: no pattern matches the path.
 * LT_EDENIED: a pattern matches but not the method; m->allow lists methods. */
enum lt_err lt_router_match(const struct lt_route *routes, size_t n, const char *method,
			    const char *path, struct lt_route_match *m);

/* True if `pattern` matches `path`, filling params (pure helper). */
bool lt_route_pattern_match(const char *pattern, const char *path, struct lt_route_match *m);

#endif
