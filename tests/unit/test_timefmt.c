/*
 * test_timefmt.c — src/util/timefmt.c: civil-date arithmetic, ISO-8601
 * formatting (negative times, the epoch, leap days, int64 extremes) and
 * strict parsing (fields, fractions, offsets, Feb 29 on leap and common years).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/clock.h"
#include "util/timefmt.h"

#define S LT_NS_PER_S
#define MS LT_NS_PER_MS

static void check_iso(int64_t ns, const char *want)
{
	char out[LT_ISO_LEN];
	memset(out, 'x', sizeof out);
	lt_time_iso(ns, out);
	if (strcmp(out, want) != 0)
		fail_msg("lt_time_iso(%lld) = '%s', want '%s'", (long long)ns, out, want);
}

static void test_civil(void **state)
{
	(void)state;
	assert_int_equal(lt_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(lt_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(lt_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(lt_days_from_civil(1600, 2, 29), -135081);
	assert_int_equal(lt_days_from_civil(1, 1, 1), -719162);
	assert_int_equal(lt_days_from_civil(9999, 12, 31), 2932896);
	/* consecutive days round-trip across many centuries, both sides of 0 */
	int64_t py = 0;
	unsigned pm = 0, pd = 0;
	for (int64_t z = -800000; z <= 3000000; z += 1) {
		int64_t y;
		unsigned m, d;
		lt_civil_from_days(z, &y, &m, &d);
		if (m < 1 || m > 12 || d < 1 || d > 31 || lt_days_from_civil(y, m, d) != z)
			fail_msg("day %lld -> %lld-%u-%u", (long long)z, (long long)y, m, d);
		if (z > -800000 && !(y == py && m == pm && d == pd + 1) &&
		    !(d == 1 && ((y == py && m == pm + 1) || (y == py + 1 && m == 1 && pm == 12))))
			fail_msg("day %lld: %lld-%u-%u does not follow %lld-%u-%u", (long long)z,
				 (long long)y, m, d, (long long)py, pm, pd);
		py = y;
		pm = m;
		pd = d;
	}
}

static void test_iso_format(void **state)
{
	(void)state;
	check_iso(0, "1970-01-01T00:00:00.000Z");
	check_iso(1, "1970-01-01T00:00:00.000Z");
	check_iso(999999, "1970-01-01T00:00:00.000Z");
	check_iso(MS, "1970-01-01T00:00:00.001Z");
	check_iso(-1, "1969-12-31T23:59:59.999Z");
	check_iso(-MS, "1969-12-31T23:59:59.999Z");
	check_iso(-MS - 1, "1969-12-31T23:59:59.998Z");
	check_iso(-S, "1969-12-31T23:59:59.000Z");
	check_iso(-86400 * S, "1969-12-31T00:00:00.000Z");
	check_iso(1770285600 * S + 123 * MS + 456789, "2026-02-05T10:00:00.123Z");
	check_iso(951782400 * S, "2000-02-29T00:00:00.000Z");
	check_iso(951782400 * S + 86400 * S, "2000-03-01T00:00:00.000Z");
	check_iso(1709251199 * S + 999 * MS, "2024-02-29T23:59:59.999Z");
	check_iso(68212800 * S, "1972-02-29T12:00:00.000Z");
	check_iso(4107542400 * S - 1, "2100-02-28T23:59:59.999Z");  /* 2100: no Feb 29 */
	check_iso(-2203891200 * S - 1, "1900-02-28T23:59:59.999Z"); /* 1900: no Feb 29 */
	check_iso(INT64_MAX, "2262-04-11T23:47:16.854Z");
	check_iso(INT64_MIN, "1677-09-21T00:12:43.145Z");
	char out[LT_ISO_LEN];
	lt_time_iso(0, out);
	assert_int_equal(strlen(out), 24);
}

static void check_parse(const char *s, enum lt_err want_err, int64_t want_ns)
{
	int64_t ns = -42;
	enum lt_err e = lt_time_parse_iso(s, strlen(s), &ns);
	if (e != want_err || (e == LT_OK && ns != want_ns))
		fail_msg("parse '%s': got %d %lld, want %d %lld", s, (int)e, (long long)ns,
			 (int)want_err, (long long)want_ns);
	if (e != LT_OK && ns != -42)
		fail_msg("parse '%s': output written on error", s);
}

static void test_parse_accept(void **state)
{
	(void)state;
	check_parse("1970-01-01T00:00:00Z", LT_OK, 0);
	check_parse("1970-01-01t00:00:00z", LT_OK, 0);
	check_parse("1970-01-01T00:00:00+00:00", LT_OK, 0);
	check_parse("2026-02-05T10:00:00Z", LT_OK, 1770285600 * S);
	check_parse("2026-02-05T10:00:00.123Z", LT_OK, 1770285600 * S + 123 * MS);
	check_parse("2026-02-05T10:00:00.1Z", LT_OK, 1770285600 * S + 100 * MS);
	check_parse("2026-02-05T10:00:00.000000001Z", LT_OK, 1770285600 * S + 1);
	check_parse("2026-02-05T10:00:00.123456789Z", LT_OK, 1770285600 * S + 123456789);
	check_parse("2026-02-05T10:00:00.5+00:00", LT_OK, 1770285600 * S + 500 * MS);
	check_parse("2000-02-29T00:00:00Z", LT_OK, 951782400 * S);  /* divisible by 400 */
	check_parse("2024-02-29T23:59:59Z", LT_OK, 1709251199 * S); /* divisible by 4 */
	check_parse("1972-02-29T12:00:00Z", LT_OK, 68212800 * S);
	check_parse("2024-12-31T23:59:59.999999999Z", LT_OK, 1735689599 * S + 999999999);
	check_parse("2262-04-10T23:59:59.999999999Z", LT_OK, 9223286399 * S + 999999999);
}

static void test_parse_reject(void **state)
{
	(void)state;
	/* malformed */
	/* clang-format off */
	static const char *const syntax[] = {
		"",
		"2026-02-05",
		"2026-02-05T10:00:00",       /* no zone */
		"2026-02-05 10:00:00Z",      /* space for T */
		"2026-02-05T10:00Z",
		"2026-2-05T10:00:00Z",
		"2026-02-05T10:00:00.Z",     /* empty fraction */
		"2026-02-05T10:00:00.1234567890Z", /* ten fraction digits */
		"2026-02-05T10:00:00,5Z",
		"2026-02-05T10:00:00ZZ",
		"2026-02-05T10:00:00Z ",
		" 2026-02-05T10:00:00Z",
		"2026-02-05T10:00:00+01:00", /* only UTC */
		"2026-02-05T10:00:00-00:00",
		"2026-02-05T10:00:00+0000",
		"2026-02-05T10:00:00+00:00Z",
		"+2026-02-05T10:00:00Z",
		"20260205T100000Z",
		"2026-02-05T1a:00:00Z",
		"2026/02/05T10:00:00Z",
		"2026-02-05T10:00:00.12a",
		"2026-02-05T10:00:00.",
	};
	/* clang-format on */
	for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++)
		check_parse(syntax[i], LT_ESYNTAX, 0);

	/* well-formed but out of range */
	/* clang-format off */
	static const char *const range[] = {
		"2023-02-29T00:00:00Z", /* not a leap year */
		"1900-02-29T00:00:00Z", /* divisible by 100, not 400 */
		"2100-02-29T00:00:00Z",
		"2024-02-30T00:00:00Z",
		"2024-04-31T00:00:00Z",
		"2024-00-10T00:00:00Z",
		"2024-13-10T00:00:00Z",
		"2024-01-00T00:00:00Z",
		"2024-01-32T00:00:00Z",
		"2024-01-01T24:00:00Z",
		"2024-01-01T23:60:00Z",
		"2024-01-01T23:59:60Z", /* no leap seconds */
		"1969-12-31T23:59:59Z", /* before the epoch */
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59Z", /* past int64 nanoseconds */
		"2262-04-12T00:00:00Z",
	};
	/* clang-format on */
	for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
		check_parse(range[i], LT_ERANGE, 0);
}

/* Only n bytes are read: a valid stamp followed by more text is refused,
 * and a prefix that is valid parses when cut there. */
static void test_parse_length(void **state)
{
	(void)state;
	const char s[] = "2026-02-05T10:00:00ZXYZ";
	int64_t ns;
	assert_int_equal(lt_time_parse_iso(s, 20, &ns), LT_OK);
	assert_int_equal(ns, 1770285600 * S);
	assert_int_equal(lt_time_parse_iso(s, 21, &ns), LT_ESYNTAX);
	assert_int_equal(lt_time_parse_iso(s, 19, &ns), LT_ESYNTAX);
	const char frac[] = "2026-02-05T10:00:00.123";
	assert_int_equal(lt_time_parse_iso(frac, sizeof frac - 1, &ns), LT_ESYNTAX);
}

/* Formatting then parsing gives the time back, truncated to milliseconds. */
static void test_roundtrip(void **state)
{
	(void)state;
	uint64_t t = 0;
	for (int i = 0; i < 20000; i++) {
		t = t * 6364136223846793005u + 1442695040888963407u; /* an LCG */
		int64_t ns = (int64_t)(t >> 1) % (INT64_C(9223286399) * S);
		char out[LT_ISO_LEN];
		int64_t back;
		lt_time_iso(ns, out);
		assert_int_equal(lt_time_parse_iso(out, strlen(out), &back), LT_OK);
		assert_int_equal(back, ns - ns % MS);
	}
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_civil),
		cmocka_unit_test(test_iso_format),
		cmocka_unit_test(test_parse_accept),
		cmocka_unit_test(test_parse_reject),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_roundtrip),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
