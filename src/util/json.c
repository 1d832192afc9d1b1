/*
 * json.c — strict parsing of untrusted JSON.  See json.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/utf8.h"

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

enum lt_err lt_json_parse(const char *s, size_t n, cJSON **out, size_t *err_pos)
{
	*out = NULL;
	*err_pos = 0;
	if (!lt_utf8_valid(s, n, err_pos))
		return LT_ESYNTAX;
	/* cJSON stops at a NUL inside the text; treat one as an error there. */
	const char *nul = memchr(s, '\0', n);
	size_t len = nul ? (size_t)(nul - s) : n;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (!root) {
		*err_pos = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
		/* cJSON reports running out of input as an error at the last byte.
		 * Parse again with a byte no JSON token accepts appended, so a
		 * truncated text (or one cut by a NUL) reports its end. */
		char *copy = malloc(len + 1);
		if (copy) {
			memcpy(copy, s, len);
			copy[len] = '#';
			end = NULL;
			cJSON *again = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
			if (!again && end && end >= copy && end <= copy + len)
				*err_pos = (size_t)(end - copy);
			cJSON_Delete(again);
			free(copy);
		}
		return LT_ESYNTAX;
	}
	size_t pos = end ? (size_t)(end - s) : len;
	pos = skip_ws(s, pos, n);
	if (pos != n) {
		cJSON_Delete(root);
		*err_pos = pos;
		return LT_ESYNTAX;
	}
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

enum lt_err lt_json_get_i64(const cJSON *obj, const char *name, int64_t min,
			    int64_t max, int64_t *out)
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
