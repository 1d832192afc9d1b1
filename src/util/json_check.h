/*
 * json_check.h — a strict RFC 8259 validator, run before cJSON parses.
 *
 * cJSON is lenient (leading zeros, raw control characters in strings, any
 * byte <= 0x20 as space) and reports the end of input as an error at the
 * last byte.  This scanner accepts exactly RFC 8259 JSON text (UTF-8 is
 * checked separately), bounds nesting depth, and gives the offset of the
 * first byte that cannot belong to a valid document (n when the text ends
 * too early).  Escapes must form valid code points: a \uD800-\uDBFF must be
 * followed by \uDC00-\uDFFF, and a lone low surrogate is refused.  Pure.
 */
#ifndef LT_UTIL_JSON_CHECK_H
#define LT_UTIL_JSON_CHECK_H

#include <stddef.h>

#include "util/err.h"

#define LT_JSON_MAX_DEPTH 64

/* LT_OK, or LT_ESYNTAX with *err_pos set (LT_ETOOBIG past max_depth). */
enum lt_err lt_json_check(const char *s, size_t n, size_t max_depth, size_t *err_pos);

#endif
