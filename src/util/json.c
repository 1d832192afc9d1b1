/*
 * json.c — strict parsing of untrusted JSON.  See json.h.
 */
#include <math.h>
#include <string.h>

#include "util/json.h"
#include "util/json_check.h"
#include "util/utf8.h"

enum lt_err lt_json_parse(const char *s, size_t n, cJSON **out, size_t *err_pos)
{
	*out = NULL;
	*err_pos = 0;
	if (!lt_utf8_valid(s, n, err_pos))
		return LT_ESYNTAX;
	/* The strict scanner decides validity and the error offset; cJSON only
	 * builds the tree of a text already known to be good (a NUL byte is
	 * never valid JSON, so cJSON never sees one). */
	enum lt_err e = lt_json_check(s, n, LT_JSON_MAX_DEPTH, err_pos);
	if (e)
		return e;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	if (!root) /* valid text: only an allocation can fail */
		return LT_ENOMEM;
	*out = root;
	return LT_OK;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	return (it && !cJSON_IsNull(it)) ? it : NULL;
}

enum lt_err lt_json_get_str(const cJSON *obj, const char *name, const char **out)
{
	const cJSON *it = member(obj, name);
	if (!it)
		return LT_ENOTFOUND;
	if (!cJSON_IsString(it) || !it->valuestring)
		return LT_EINVAL;
	*out = it->valuestring;
	return LT_OK;
}

enum lt_err lt_json_get_i64(const cJSON *obj, const char *name, int64_t min, int64_t max,
			    int64_t *out)
{
	const cJSON *it = member(obj, name);
	if (!it)
		return LT_ENOTFOUND;
	if (!cJSON_IsNumber(it))
		return LT_EINVAL;
	double v = it->valuedouble;
	if (!isfinite(v) || v != floor(v))
		return LT_EINVAL;
	if (v < -(double)LT_JSON_INT_MAX || v > (double)LT_JSON_INT_MAX)
		return LT_ERANGE;
	int64_t i = (int64_t)v;
	if (i < min || i > max)
		return LT_ERANGE;
	*out = i;
	return LT_OK;
}

enum lt_err lt_json_get_bool(const cJSON *obj, const char *name, bool *out)
{
	const cJSON *it = member(obj, name);
	if (!it)
		return LT_ENOTFOUND;
	if (!cJSON_IsBool(it))
		return LT_EINVAL;
	*out = cJSON_IsTrue(it);
	return LT_OK;
}
