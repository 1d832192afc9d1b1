/*
 * json.h — parsing untrusted JSON and reading typed fields, over cJSON.
 *
 * lt_json_parse validates UTF-8, parses with an explicit length (never
 * cJSON_GetErrorPtr, which is global), rejects trailing garbage and reports
 * the byte offset of the first error.  Getters distinguish "absent or null"
 * (LT_ENOTFOUND) from "wrong type" (LT_EINVAL) and "outside bounds"
 * (LT_ERANGE); integers must be exact (cJSON numbers are doubles).
 *
 * Ownership: lt_json_parse returns a tree the caller frees with cJSON_Delete.
 * Strings from getters point into the tree and live as long as it does.
 */
#ifndef LT_UTIL_JSON_H
#define LT_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/err.h"

/* Largest integer a double holds exactly. */
#define LT_JSON_INT_MAX INT64_C(9007199254740991)

/* Parse s[0..n) as strict RFC 8259 JSON (see json_check.h), nesting at
 * most LT_JSON_MAX_DEPTH.  LT_ESYNTAX with *err_pos set on malformed JSON
 * or invalid UTF-8, LT_ETOOBIG when nested too deep, LT_ENOMEM on
 * allocation failure. */
enum lt_err lt_json_parse(const char *s, size_t n, cJSON **out, size_t *err_pos);

enum lt_err lt_json_get_str(const cJSON *obj, const char *name, const char **out);
enum lt_err lt_json_get_i64(const cJSON *obj, const char *name, int64_t min, int64_t max,
			    int64_t *out);
enum lt_err lt_json_get_bool(const cJSON *obj, const char *name, bool *out);

#endif
