/*
 * test_router.c — src/http/router.c: pattern matching with {params} (and
 * literal prefixes/suffixes around them), 404 against 405 with its Allow
 * list, HEAD served by GET routes; and the real table from lt_api_routes().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/handlers.h"
#include "http/router.h"

/* The matcher reads only method and pattern; the other fields stay zero. */
static const struct lt_route table[] = {
	{"GET", "/healthz"},
	{"GET", "/v1/models/special"},
	{"GET", "/v1/models/{model}"},
	{"POST", "/v1beta/models/{model}:generateContent"},
	{"POST", "/v1beta/models/{model}:streamGenerateContent"},
	{"GET", "/v1/users/{user}/keys/{key}"},
	{"GET", "/admin/v1/clock"},
	{"POST", "/admin/v1/clock"},
	{"PUT", "/v1/items/{id}"},
	{"DELETE", "/v1/items/{id}"},
	{"GET", "/files/v{version}.json"},
	{"GET", "/"},
};
#define NTABLE (sizeof table / sizeof table[0])

static enum lt_err match(const char *method, const char *path, struct lt_route_match *m)
{
	memset(m, 0x5A, sizeof *m);
	return lt_router_match(table, NTABLE, method, path, m);
}

static void assert_param(const struct lt_route_match *m, size_t i, const char *name,
			 const char *value)
{
	assert_true(i < m->nparams);
	const struct lt_route_param *p = &m->params[i];
	if (p->name_len != strlen(name) || memcmp(p->name, name, p->name_len) != 0 ||
	    p->len != strlen(value) || memcmp(p->value, value, p->len) != 0)
		fail_msg("param %zu: got %.*s=%.*s, want %s=%s", i, (int)p->name_len, p->name,
			 (int)p->len, p->value, name, value);
}

static void test_exact(void **state)
{
	(void)state;
	struct lt_route_match m;
	assert_int_equal(match("GET", "/healthz", &m), LT_OK);
	assert_ptr_equal(m.route, &table[0]);
	assert_int_equal(m.nparams, 0);
	assert_int_equal(match("GET", "/", &m), LT_OK);
	assert_ptr_equal(m.route, &table[11]);
	/* literal routes listed first win over params */
	assert_int_equal(match("GET", "/v1/models/special", &m), LT_OK);
	assert_ptr_equal(m.route, &table[1]);
	/* near misses */
	/* clang-format off */
	static const char *const miss[] = {
		"/healthz/", "/healthzz", "/health", "/HEALTHZ", "healthz", "", "//healthz",
		"/healthz?x=1", "/v1/models", "/v1/models/", "/v1/models/a/b", "/v1/models//",
		"/v1/users/u/keys", "/v1/users//keys/k", "/v1/users/u/keys/k/", "/files/v.json",
		"/files/1.json", "/files/v1.jsonx", "/admin/v1/clock/",
	};
	/* clang-format on */
	for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++) {
		enum lt_err e = match("GET", miss[i], &m);
		if (e != LT_ENOTFOUND)
			fail_msg("'%s': got %d, want LT_ENOTFOUND", miss[i], (int)e);
		assert_null(m.route);
		assert_string_equal(m.allow, "");
	}
}

static void test_params(void **state)
{
	(void)state;
	struct lt_route_match m;
	assert_int_equal(match("GET", "/v1/models/gpt-4o", &m), LT_OK);
	assert_ptr_equal(m.route, &table[2]);
	assert_int_equal(m.nparams, 1);
	assert_param(&m, 0, "model", "gpt-4o");

	assert_int_equal(match("GET", "/v1/users/alice/keys/k%2F1", &m), LT_OK);
	assert_ptr_equal(m.route, &table[5]);
	assert_int_equal(m.nparams, 2);
	assert_param(&m, 0, "user", "alice");
	assert_param(&m, 1, "key", "k%2F1");

	/* a param with a literal suffix in the same segment */
	assert_int_equal(match("POST", "/v1beta/models/gemini-1.5-pro:generateContent", &m), LT_OK);
	assert_ptr_equal(m.route, &table[3]);
	assert_int_equal(m.nparams, 1);
	assert_param(&m, 0, "model", "gemini-1.5-pro");
	assert_int_equal(match("POST", "/v1beta/models/g:streamGenerateContent", &m), LT_OK);
	assert_ptr_equal(m.route, &table[4]);
	assert_param(&m, 0, "model", "g");
	/* the suffix is matched at the end: a colon inside the value is kept */
	assert_int_equal(match("POST", "/v1beta/models/a:b:generateContent", &m), LT_OK);
	assert_param(&m, 0, "model", "a:b");
	/* the param must be non-empty, and the suffix exact */
	assert_int_equal(match("POST", "/v1beta/models/:generateContent", &m), LT_ENOTFOUND);
	assert_int_equal(match("POST", "/v1beta/models/g:generate", &m), LT_ENOTFOUND);
	assert_int_equal(match("POST", "/v1beta/models/g", &m), LT_ENOTFOUND);
	assert_int_equal(match("POST", "/v1beta/models/generateContent", &m), LT_ENOTFOUND);

	/* prefix and suffix around the param */
	assert_int_equal(match("GET", "/files/v2.json", &m), LT_OK);
	assert_ptr_equal(m.route, &table[10]);
	assert_param(&m, 0, "version", "2");

	/* a param never spans a '/' and is never empty */
	assert_int_equal(match("GET", "/v1/users/a/b/keys/k", &m), LT_ENOTFOUND);
	assert_int_equal(match("GET", "/v1/users//keys/", &m), LT_ENOTFOUND);
}

static void test_405_allow(void **state)
{
	(void)state;
	struct lt_route_match m;
	assert_int_equal(match("POST", "/healthz", &m), LT_EDENIED);
	assert_null(m.route);
	assert_string_equal(m.allow, "GET, HEAD");

	assert_int_equal(match("DELETE", "/admin/v1/clock", &m), LT_EDENIED);
	assert_string_equal(m.allow, "GET, HEAD, POST");

	assert_int_equal(match("GET", "/v1/items/7", &m), LT_EDENIED);
	assert_string_equal(m.allow, "PUT, DELETE"); /* no GET, so no HEAD */
	assert_int_equal(match("HEAD", "/v1/items/7", &m), LT_EDENIED);
	assert_string_equal(m.allow, "PUT, DELETE");

	/* two GET routes match: each method is listed once */
	assert_int_equal(match("POST", "/v1/models/special", &m), LT_EDENIED);
	assert_string_equal(m.allow, "GET, HEAD");

	assert_int_equal(match("GET", "/v1beta/models/x:generateContent", &m), LT_EDENIED);
	assert_string_equal(m.allow, "POST");

	/* methods are case-sensitive */
	assert_int_equal(match("get", "/healthz", &m), LT_EDENIED);
	assert_string_equal(m.allow, "GET, HEAD");
	/* an unknown path is 404 whatever the method */
	assert_int_equal(match("BREW", "/coffee", &m), LT_ENOTFOUND);
}

static void test_head(void **state)
{
	(void)state;
	struct lt_route_match m;
	assert_int_equal(match("HEAD", "/healthz", &m), LT_OK);
	assert_ptr_equal(m.route, &table[0]);
	assert_string_equal(m.route->method, "GET");
	assert_int_equal(match("HEAD", "/v1/models/x", &m), LT_OK);
	assert_param(&m, 0, "model", "x");
	assert_int_equal(match("HEAD", "/admin/v1/clock", &m), LT_OK);
	assert_ptr_equal(m.route, &table[6]);
	assert_int_equal(match("HEAD", "/nope", &m), LT_ENOTFOUND);
}

static void test_pattern_helper(void **state)
{
	(void)state;
	struct lt_route_match m;
	assert_true(lt_route_pattern_match("/a/{b}/{c}/{d}/{e}", "/a/1/2/3/4", &m));
	assert_int_equal(m.nparams, 4);
	assert_param(&m, 3, "e", "4");
	/* more params than LT_ROUTE_MAX_PARAMS never match (and never overflow) */
	assert_false(lt_route_pattern_match("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", &m));
	/* both must be absolute */
	assert_false(lt_route_pattern_match("a", "a", &m));
	assert_false(lt_route_pattern_match("/a", "a", &m));
	assert_false(lt_route_pattern_match("a", "/a", &m));
	/* nparams restarts at every call */
	assert_true(lt_route_pattern_match("/x/{y}", "/x/1", &m));
	assert_true(lt_route_pattern_match("/x/{y}", "/x/2", &m));
	assert_int_equal(m.nparams, 1);
	assert_param(&m, 0, "y", "2");
	/* an unclosed brace is a literal that cannot match a path segment */
	assert_false(lt_route_pattern_match("/x/{y", "/x/1", &m));
}

/* The real route table: every route answers its own method, unique pairs. */
static void test_api_routes(void **state)
{
	(void)state;
	size_t n;
	const struct lt_route *routes = lt_api_routes(&n);
	assert_true(n > 0);
	struct lt_route_match m;
	for (size_t i = 0; i < n; i++) {
		assert_non_null(routes[i].handler);
		assert_non_null(routes[i].summary);
		assert_int_equal(routes[i].pattern[0], '/');
		for (size_t j = 0; j < i; j++)
			if (!strcmp(routes[i].method, routes[j].method) &&
			    !strcmp(routes[i].pattern, routes[j].pattern))
				fail_msg("duplicate route %s %s", routes[i].method,
					 routes[i].pattern);
		if (strchr(routes[i].pattern, '{'))
			continue; /* patterns with params are checked by test_params */
		assert_int_equal(
			lt_router_match(routes, n, routes[i].method, routes[i].pattern, &m), LT_OK);
		assert_ptr_equal(m.route, &routes[i]);
	}
	assert_int_equal(lt_router_match(routes, n, "GET", "/healthz", &m), LT_OK);
	assert_int_equal(lt_router_match(routes, n, "HEAD", "/readyz", &m), LT_OK);
	assert_string_equal(m.route->method, "GET");
	assert_int_equal(lt_router_match(routes, n, "POST", "/healthz", &m), LT_EDENIED);
	assert_string_equal(m.allow, "GET, HEAD");
	assert_int_equal(lt_router_match(routes, n, "PUT", "/admin/v1/clock", &m), LT_EDENIED);
	assert_string_equal(m.allow, "GET, HEAD, POST");
	assert_int_equal(lt_router_match(routes, n, "GET", "/metrics/", &m), LT_ENOTFOUND);
	assert_int_equal(lt_router_match(routes, n, "GET", "/no/such/thing", &m), LT_ENOTFOUND);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_405_allow),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_pattern_helper),
		cmocka_unit_test(test_api_routes),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
