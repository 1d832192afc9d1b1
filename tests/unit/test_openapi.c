/*
 * test_openapi.c — the OpenAPI contract: the document embedded from
 * src/api/openapi.json lists exactly the (method, path) pairs of the route
 * table lt_api_routes(), no more and no fewer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/handlers.h"
#include "util/json.h"

extern const char lt_openapi_json[];

static const char *const http_methods[] = {"get",     "put",  "post",  "delete",
					   "options", "head", "patch", "trace"};

static bool is_http_method(const char *key)
{
	for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++)
		if (!strcmp(key, http_methods[i]))
			return true;
	return false;
}

static int setup(void **state)
{
	cJSON *doc;
	size_t pos;
	if (lt_json_parse(lt_openapi_json, strlen(lt_openapi_json), &doc, &pos) != LT_OK) {
		fprintf(stderr, "src/api/openapi.json is not valid JSON (byte %zu)\n", pos);
		return -1;
	}
	*state = doc;
	return 0;
}

static int teardown(void **state)
{
	cJSON_Delete(*state);
	return 0;
}

static const cJSON *paths_of(const cJSON *doc)
{
	const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
	if (!cJSON_IsObject(paths))
		fail_msg("openapi.json has no \"paths\" object");
	return paths;
}

static void test_document(void **state)
{
	const cJSON *doc = *state;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "openapi");
	assert_true(cJSON_IsString(v));
	assert_true(!strncmp(v->valuestring, "3.", 2));
	assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "info")));
	paths_of(doc);
}

/* Every route is documented under its path with its lower-case method. */
static void test_routes_documented(void **state)
{
	const cJSON *paths = paths_of(*state);
	size_t n;
	const struct lt_route *routes = lt_api_routes(&n);
	size_t missing = 0;
	for (size_t i = 0; i < n; i++) {
		char method[16];
		size_t k;
		for (k = 0; routes[i].method[k] && k < sizeof method - 1; k++)
			method[k] = (char)tolower((unsigned char)routes[i].method[k]);
		method[k] = '\0';
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, routes[i].pattern);
		const cJSON *op = item ? cJSON_GetObjectItemCaseSensitive(item, method) : NULL;
		if (!cJSON_IsObject(op)) {
			fprintf(stderr, "not in openapi.json: %s %s\n", routes[i].method,
				routes[i].pattern);
			missing++;
		}
	}
	if (missing)
		fail_msg("%zu of %zu routes are missing from src/api/openapi.json", missing, n);
}

/* Every documented operation is a route. */
static void test_documented_are_routes(void **state)
{
	const cJSON *paths = paths_of(*state);
	size_t n;
	const struct lt_route *routes = lt_api_routes(&n);
	size_t extra = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, paths)
	{
		const cJSON *op;
		cJSON_ArrayForEach(op, item)
		{
			if (!is_http_method(op->string))
				continue; /* summary, parameters, servers, ... */
			bool found = false;
			for (size_t i = 0; i < n && !found; i++)
				found = !strcmp(routes[i].pattern, item->string) &&
					!strcasecmp(routes[i].method, op->string);
			if (!found) {
				fprintf(stderr, "in openapi.json but not a route: %s %s\n",
					op->string, item->string);
				extra++;
			}
		}
	}
	if (extra)
		fail_msg("%zu operations in src/api/openapi.json have no route", extra);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_routes_documented),
		cmocka_unit_test(test_documented_are_routes),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, setup, teardown);
}
