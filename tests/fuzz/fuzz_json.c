/*
 * fuzz_json.c — lt_json_parse and the typed getters on arbitrary bytes, and
 * lt_buf_put_json_str's promise that its output is always valid JSON.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - a rejection is LT_ESYNTAX (or LT_ETOOBIG past the depth limit) with an
 *     offset within the input and no tree; never LT_ENOMEM, which would mean
 *     the strict scanner accepted a text cJSON could not parse;
 *   - getters agree with the node types and honour their bounds;
 *   - an accepted document printed by cJSON parses again;
 *   - the input escaped as a JSON string literal parses back to a string,
 *     equal to the input when the input is valid UTF-8 without NUL.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/json.h"
#include "util/utf8.h"

#include "fuzz_check.h"

static void check_getters(const cJSON *obj, const char *name)
{
	const char *s = NULL;
	int64_t i = 0;
	bool b;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	bool absent = !it || cJSON_IsNull(it);

	enum lt_err e = lt_json_get_str(obj, name, &s);
	CHECK(absent ? e == LT_ENOTFOUND : (e == LT_OK) == (cJSON_IsString(it) != 0));
	if (e == LT_OK)
		CHECK(s == it->valuestring);

	e = lt_json_get_i64(obj, name, -1000, 1000, &i);
	CHECK(absent ? e == LT_ENOTFOUND : e != LT_ENOTFOUND);
	if (e == LT_OK)
		CHECK(cJSON_IsNumber(it) && i >= -1000 && i <= 1000 &&
		      (double)i == it->valuedouble);
	if (e == LT_EINVAL && cJSON_IsNumber(it))
		CHECK(!isfinite(it->valuedouble) || it->valuedouble != floor(it->valuedouble));
	e = lt_json_get_i64(obj, name, INT64_MIN, INT64_MAX, &i);
	if (e == LT_OK)
		CHECK(i >= -LT_JSON_INT_MAX && i <= LT_JSON_INT_MAX);

	e = lt_json_get_bool(obj, name, &b);
	CHECK(absent ? e == LT_ENOTFOUND : (e == LT_OK) == (cJSON_IsBool(it) != 0));
}

static void walk(const cJSON *node, int depth)
{
	if (depth > 64)
		return;
	const cJSON *child;
	cJSON_ArrayForEach(child, node)
	{
		if (cJSON_IsObject(node) && child->string)
			check_getters(node, child->string);
		walk(child, depth + 1);
	}
	/* names that are usually absent */
	check_getters(node, "model");
	check_getters(node, "");
}

static void check_parse(const uint8_t *data, size_t size)
{
	cJSON *j = (cJSON *)&j;
	size_t pos = SIZE_MAX;
	enum lt_err e = lt_json_parse((const char *)data, size, &j, &pos);
	if (e != LT_OK) {
		CHECK(e == LT_ESYNTAX || e == LT_ETOOBIG);
		CHECK(j == NULL);
		CHECK(pos <= size);
		return;
	}
	CHECK(j != NULL);
	walk(j, 0);
	char *printed = cJSON_PrintUnformatted(j);
	if (printed) {
		cJSON *again;
		size_t pos2;
		if (lt_json_parse(printed, strlen(printed), &again, &pos2) != LT_OK) {
			fprintf(stderr, "printed JSON does not parse at %zu: %s\n", pos2, printed);
			abort();
		}
		cJSON_Delete(again);
		free(printed);
	}
	cJSON_Delete(j);
}

static void check_escape(const uint8_t *data, size_t size)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 8 * size + 16);
	CHECK(lt_buf_put_json_str(&b, (const char *)data, size) == LT_OK);
	cJSON *j;
	size_t pos;
	if (lt_json_parse(b.data, b.len, &j, &pos) != LT_OK) {
		fprintf(stderr, "escaped string does not parse at %zu: %s\n", pos, b.data);
		abort();
	}
	CHECK(cJSON_IsString(j));
	if (lt_utf8_valid((const char *)data, size, NULL) && !memchr(data, 0, size)) {
		CHECK(strlen(j->valuestring) == size);
		CHECK(memcmp(j->valuestring, data, size) == 0);
	}
	cJSON_Delete(j);
	lt_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size);
	check_escape(data, size);
	return 0;
}
