/*
 * timefmt.h — ISO-8601 UTC timestamps ("2026-02-05T10:00:00.123Z"), pure.
 * Calendar arithmetic is done here (days from civil), not with the C
 * library's time zone machinery, so results never depend on TZ.
 */
#ifndef LT_UTIL_TIMEFMT_H
#define LT_UTIL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_ISO_LEN 32 /* enough for any output of lt_time_iso, with NUL */

/* Format Unix nanoseconds as ISO-8601 UTC with milliseconds and 'Z'.
 * Years outside 0000..9999 are clamped to those bounds. */
void lt_time_iso(int64_t unix_ns, char out[LT_ISO_LEN]);

/* Parse "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (fraction up to 9 digits; 'z',
 * "+00:00" also accepted) into Unix nanoseconds.  LT_ESYNTAX if malformed,
 * LT_ERANGE if a field is out of range (Feb 30, 25:00, ...). */
enum lt_err lt_time_parse_iso(const char *s, size_t n, int64_t *out_ns);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t lt_days_from_civil(int64_t y, unsigned m, unsigned d);
void lt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
