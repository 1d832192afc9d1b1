/*
 * fuzz_timefmt.c — lt_time_parse_iso on arbitrary bytes, and lt_time_iso on
 * arbitrary int64 values taken from the input.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - parsing yields LT_OK, LT_ESYNTAX or LT_ERANGE; on LT_OK a time >= 0
 *     that formats and parses back to itself (to the millisecond);
 *   - formatting any int64 gives 24 characters ending in 'Z'; a time before
 *     the epoch is refused by the parser with LT_ERANGE, a later one parses
 *     back unless it lies past the parser's last day (LT_ERANGE).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/timefmt.h"

#include "fuzz_check.h"

/* The parser's last whole day: INT64_MAX nanoseconds fall on the next. */
#define LAST_DAY (INT64_MAX / (86400 * LT_NS_PER_S) - 1)

static void check_format(int64_t v)
{
	char out[LT_ISO_LEN];
	lt_time_iso(v, out);
	CHECK(strlen(out) == 24 && out[23] == 'Z');
	int64_t back = -1;
	enum lt_err e = lt_time_parse_iso(out, 24, &back);
	if (v < 0) {
		CHECK(e == LT_ERANGE);
	} else if (v / (86400 * LT_NS_PER_S) > LAST_DAY) {
		CHECK(e == LT_ERANGE);
	} else {
		CHECK(e == LT_OK);
		CHECK(back == v - v % LT_NS_PER_MS);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t ns = -1;
	enum lt_err e = lt_time_parse_iso((const char *)data, size, &ns);
	CHECK(e == LT_OK || e == LT_ESYNTAX || e == LT_ERANGE);
	if (e == LT_OK) {
		CHECK(ns >= 0);
		check_format(ns);
	}
	if (size >= 8) {
		uint64_t u;
		memcpy(&u, data, 8);
		check_format((int64_t)u);
	}
	return 0;
}
