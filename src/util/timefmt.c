/*
 * timefmt.c — ISO-8601 formatting and parsing.  See timefmt.h.
 * The civil-date algorithms are Howard Hinnant's (public domain).
 */
#include <stdbool.h>

#include "util/clock.h"
#include "util/timefmt.h"

int64_t lt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void lt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Write v as exactly `width` decimal digits (zero-padded, high digits cut). */
static void put_num(char *out, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void lt_time_iso(int64_t unix_ns, char out[LT_ISO_LEN])
{
	int64_t ms = floordiv(unix_ns, LT_NS_PER_MS);
	int64_t secs = floordiv(ms, 1000);
	int64_t days = floordiv(secs, 86400);
	int64_t sod = secs - days * 86400;
	int64_t y;
	unsigned m, d;
	lt_civil_from_days(days, &y, &m, &d);
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;
	put_num(out, (unsigned)y, 4);
	out[4] = '-';
	put_num(out + 5, m, 2);
	out[7] = '-';
	put_num(out + 8, d, 2);
	out[10] = 'T';
	put_num(out + 11, (unsigned)(sod / 3600), 2);
	out[13] = ':';
	put_num(out + 14, (unsigned)(sod / 60 % 60), 2);
	out[16] = ':';
	put_num(out + 17, (unsigned)(sod % 60), 2);
	out[19] = '.';
	put_num(out + 20, (unsigned)(ms - secs * 1000), 3);
	out[23] = 'Z';
	out[24] = '\0';
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

enum lt_err lt_time_parse_iso(const char *s, size_t n, int64_t *out_ns)
{
	unsigned y, mo, d, h, mi, sec, frac = 0;
	size_t i = 19;
	if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return LT_ESYNTAX;
	if (s[i] == '.') {
		size_t nd = 0;
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (nd == 9)
				return LT_ESYNTAX;
			frac = frac * 10 + (unsigned)(s[i] - '0');
			nd++;
			i++;
		}
		if (nd == 0)
			return LT_ESYNTAX;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
		/* ok */
	} else if (i + 6 == n && s[i] == '+' && s[i + 1] == '0' && s[i + 2] == '0' &&
		   s[i + 3] == ':' && s[i + 4] == '0' && s[i + 5] == '0') {
		/* ok */
	} else {
		return LT_ESYNTAX;
	}
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
		return LT_ERANGE;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return LT_ERANGE;
	int64_t days = lt_days_from_civil(y, mo, d);
	if (days < 0 || days > INT64_MAX / (86400 * LT_NS_PER_S) - 1)
		return LT_ERANGE;
	*out_ns = (days * 86400 + h * 3600 + mi * 60 + sec) * LT_NS_PER_S + frac;
	return LT_OK;
}
