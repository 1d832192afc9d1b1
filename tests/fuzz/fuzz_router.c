/*
 * fuzz_router.c — lt_router_match on arbitrary method and path.
 *
 * The input is "METHOD PATH" (split at the first space or newline; no
 * separator means an empty method).  Each pair is matched against the real
 * table (lt_api_routes) and against a table of patterns with {params},
 * prefixes and suffixes.  Checks, beyond "no crash and no sanitizer report":
 *   - LT_OK: the route's method is the method (or GET for HEAD), its pattern
 *     matches the path, and every param is a non-empty slice of the path
 *     holding no '/';
 *   - LT_EDENIED: no route, a non-empty Allow list, some pattern matches;
 *   - LT_ENOTFOUND: no pattern matches the path.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "http/router.h"

#include "fuzz_check.h"

/* The matcher reads only method and pattern; the other fields stay zero. */
static const struct lt_route params_table[] = {
	{"GET", "/v1/models"},
	{"GET", "/v1/models/{model}"},
	{"POST", "/v1beta/models/{model}:generateContent"},
	{"POST", "/v1beta/models/{model}:streamGenerateContent"},
	{"GET", "/v1/users/{user}/keys/{key}"},
	{"DELETE", "/v1/users/{user}/keys/{key}"},
	{"GET", "/files/v{version}.json"},
	{"PUT", "/{a}/{b}/{c}/{d}"},
	{"GET", "/"},
};

static char *dup_n(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void check(const struct lt_route *routes, size_t n, const char *method, const char *path)
{
	struct lt_route_match m, tmp;
	enum lt_err e = lt_router_match(routes, n, method, path, &m);
	bool any = false;
	for (size_t i = 0; i < n && !any; i++)
		any = lt_route_pattern_match(routes[i].pattern, path, &tmp);
	size_t plen = strlen(path);
	if (e == LT_OK) {
		CHECK(m.route != NULL);
		CHECK(!strcmp(m.route->method, method) ||
		      (!strcmp(method, "HEAD") && !strcmp(m.route->method, "GET")));
		CHECK(lt_route_pattern_match(m.route->pattern, path, &tmp));
		CHECK(m.nparams <= LT_ROUTE_MAX_PARAMS);
		for (size_t i = 0; i < m.nparams; i++) {
			const struct lt_route_param *p = &m.params[i];
			CHECK(p->len > 0);
			CHECK(p->value >= path && p->value + p->len <= path + plen);
			CHECK(!memchr(p->value, '/', p->len));
			CHECK(p->name >= m.route->pattern &&
			      p->name + p->name_len < m.route->pattern + strlen(m.route->pattern));
		}
	} else if (e == LT_EDENIED) {
		CHECK(m.route == NULL);
		CHECK(any);
		CHECK(m.allow[0] != '\0');
		CHECK(strlen(m.allow) < LT_ROUTE_ALLOW_MAX);
	} else {
		CHECK(e == LT_ENOTFOUND);
		CHECK(m.route == NULL);
		CHECK(!any);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut = 0;
	while (cut < size && data[cut] != ' ' && data[cut] != '\n')
		cut++;
	char *method, *path;
	if (cut < size) {
		method = dup_n(data, cut);
		path = dup_n(data + cut + 1, size - cut - 1);
	} else {
		method = dup_n(data, 0);
		path = dup_n(data, size);
	}
	size_t n;
	const struct lt_route *routes = lt_api_routes(&n);
	check(routes, n, method, path);
	check(params_table, sizeof params_table / sizeof params_table[0], method, path);
	free(method);
	free(path);
	return 0;
}
