/*
 * test_pool.c — src/quota/pool.c: UTC calendar windows (hour, day, month,
 * around their boundaries, leap years, year ends, epoch 0), the window roll,
 * reserve/settle/release/grant/adjust with their errors leaving the pool
 * untouched, window caps that limit spending but never destroy tokens, and
 * a 100k-step random sequence whose returned deltas, summed like a ledger,
 * must always equal the pool's balances.
 *
 * Expected instants are Unix milliseconds written out as constants (checked
 * against Python's calendar.timegm), not computed with the calendar code
 * under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quota/pool.h"
#include "util/timefmt.h"

#define HOUR INT64_C(3600000)
#define DAY INT64_C(86400000)

/* 00:00:00.000Z of some dates, in Unix ms. */
#define T_1970_02_01 INT64_C(2678400000)
#define T_2000_02_01 INT64_C(949363200000)
#define T_2000_03_01 INT64_C(951868800000)
#define T_2023_02_28 INT64_C(1677542400000)
#define T_2023_03_01 INT64_C(1677628800000)
#define T_2023_12_01 INT64_C(1701388800000)
#define T_2024_01_01 INT64_C(1704067200000)
#define T_2024_02_01 INT64_C(1706745600000)
#define T_2024_02_29 INT64_C(1709164800000)
#define T_2024_03_01 INT64_C(1709251200000)
#define T_2024_03_10 INT64_C(1710028800000)
#define T_2100_02_01 INT64_C(4105123200000)
#define T_2100_03_01 INT64_C(4107542400000)

#define BIG (INT64_MAX / 4)

static void assert_pool_equal(const struct lt_pool *a, const struct lt_pool *b)
{
	assert_int_equal(a->total, b->total);
	assert_int_equal(a->remaining, b->remaining);
	assert_int_equal(a->reserved, b->reserved);
	assert_int_equal(a->window, b->window);
	assert_int_equal(a->window_start_ms, b->window_start_ms);
	assert_int_equal(a->window_cap, b->window_cap);
	assert_int_equal(a->window_used, b->window_used);
}

/* A pool holding `amount` granted tokens. */
static struct lt_pool granted(enum lt_window w, int64_t cap, int64_t now, int64_t amount)
{
	struct lt_pool p;
	lt_pool_init(&p, w, cap, now);
	assert_true(lt_pool_valid(&p));
	assert_int_equal(lt_pool_grant(&p, amount), LT_OK);
	return p;
}

static void test_window_names(void **state)
{
	(void)state;
	enum lt_window w;
	assert_string_equal(lt_window_name(LT_WINDOW_NONE), "none");
	assert_string_equal(lt_window_name(LT_WINDOW_HOUR), "hour");
	assert_string_equal(lt_window_name(LT_WINDOW_DAY), "day");
	assert_string_equal(lt_window_name(LT_WINDOW_MONTH), "month");
	assert_non_null(lt_window_name((enum lt_window)42));
	const char *ok[] = {"none", "hour", "day", "month", "NONE", "Hour", "DaY", "MONTH"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		w = (enum lt_window)99;
		assert_int_equal(lt_window_parse(ok[i], &w), LT_OK);
		assert_int_equal(w, (enum lt_window)(i % 4));
		assert_string_equal(lt_window_name(w), ok[i % 4]);
	}
	const char *bad[] = {"", "days", "hourly", " day", "day ", "week", "mont", "monthx"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		w = LT_WINDOW_DAY;
		assert_int_equal(lt_window_parse(bad[i], &w), LT_EINVAL);
		assert_int_equal(w, LT_WINDOW_DAY);
	}
	assert_int_equal(lt_window_parse(NULL, &w), LT_EINVAL);
}

static void test_window_none(void **state)
{
	(void)state;
	assert_int_equal(lt_window_start(LT_WINDOW_NONE, 0), 0);
	assert_int_equal(lt_window_start(LT_WINDOW_NONE, T_2024_02_29 + 5), 0);
	assert_int_equal(lt_window_end(LT_WINDOW_NONE, 0), -1);
	assert_int_equal(lt_window_end(LT_WINDOW_NONE, T_2024_02_29 + 5), -1);
}

static void test_window_hour(void **state)
{
	(void)state;
	const int64_t h5 = T_2024_03_10 + 5 * HOUR;
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, h5), h5);
	assert_int_equal(lt_window_end(LT_WINDOW_HOUR, h5), h5 + HOUR);
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, h5 + HOUR - 1), h5);
	assert_int_equal(lt_window_end(LT_WINDOW_HOUR, h5 + HOUR - 1), h5 + HOUR);
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, h5 + HOUR), h5 + HOUR);
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, h5 - 1), h5 - HOUR);
	/* the last hour of a day ends at the next midnight */
	assert_int_equal(lt_window_end(LT_WINDOW_HOUR, T_2024_03_01 - 1), T_2024_03_01);
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, T_2024_03_01 - 1), T_2024_03_01 - HOUR);
	/* epoch */
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, 0), 0);
	assert_int_equal(lt_window_end(LT_WINDOW_HOUR, 0), HOUR);
	assert_int_equal(lt_window_start(LT_WINDOW_HOUR, HOUR - 1), 0);
	assert_int_equal(lt_window_end(LT_WINDOW_HOUR, HOUR - 1), HOUR);
}

static void test_window_day(void **state)
{
	(void)state;
	/* 2024-02-29, a leap day: its own window, followed by March 1 */
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2024_02_29), T_2024_02_29);
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2024_02_29 + 12 * HOUR), T_2024_02_29);
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, T_2024_02_29), T_2024_03_01);
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2024_03_01 - 1), T_2024_02_29);
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, T_2024_03_01 - 1), T_2024_03_01);
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2024_03_01), T_2024_03_01);
	/* 2023-02-28 is followed by 03-01 */
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, T_2023_02_28 + 1), T_2023_03_01);
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2023_03_01 - 1), T_2023_02_28);
	/* Dec 31 → Jan 1 */
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, T_2024_01_01 - 1), T_2024_01_01 - DAY);
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, T_2024_01_01 - 1), T_2024_01_01);
	/* epoch */
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, 0), 0);
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, 0), DAY);
	assert_int_equal(lt_window_end(LT_WINDOW_DAY, DAY - 1), DAY);
	assert_int_equal(lt_window_start(LT_WINDOW_DAY, DAY), DAY);
}

static void test_window_month(void **state)
{
	(void)state;
	const enum lt_window M = LT_WINDOW_MONTH;
	/* last ms of January 2024, then February */
	assert_int_equal(lt_window_start(M, T_2024_02_01 - 1), T_2024_01_01);
	assert_int_equal(lt_window_end(M, T_2024_02_01 - 1), T_2024_02_01);
	assert_int_equal(lt_window_start(M, T_2024_02_01), T_2024_02_01);
	/* leap February: 29 days, 2024-02-29 belongs to it */
	assert_int_equal(lt_window_start(M, T_2024_02_29), T_2024_02_01);
	assert_int_equal(lt_window_end(M, T_2024_02_29), T_2024_03_01);
	assert_int_equal(lt_window_start(M, T_2024_03_01 - 1), T_2024_02_01);
	assert_int_equal(lt_window_end(M, T_2024_03_01 - 1), T_2024_03_01);
	assert_int_equal(lt_window_start(M, T_2024_03_01), T_2024_03_01);
	assert_int_equal(T_2024_03_01 - T_2024_02_01, 29 * DAY);
	/* 2023-02-28 → 03-01: February 2023 has 28 days */
	assert_int_equal(lt_window_end(M, T_2023_02_28), T_2023_03_01);
	assert_int_equal(lt_window_end(M, T_2023_03_01 - 1), T_2023_03_01);
	assert_int_equal(lt_window_start(M, T_2023_03_01 - 1), T_2023_03_01 - 28 * DAY);
	assert_int_equal(lt_window_start(M, T_2023_03_01), T_2023_03_01);
	/* December → January of the next year */
	assert_int_equal(lt_window_start(M, T_2024_01_01 - 1), T_2023_12_01);
	assert_int_equal(lt_window_end(M, T_2024_01_01 - 1), T_2024_01_01);
	assert_int_equal(lt_window_end(M, T_2023_12_01), T_2024_01_01);
	assert_int_equal(lt_window_start(M, T_2024_01_01), T_2024_01_01);
	/* century rules: 2000 is a leap year, 2100 is not */
	assert_int_equal(lt_window_end(M, T_2000_02_01), T_2000_03_01);
	assert_int_equal(T_2000_03_01 - T_2000_02_01, 29 * DAY);
	assert_int_equal(lt_window_end(M, T_2100_02_01 + 27 * DAY), T_2100_03_01);
	assert_int_equal(lt_window_start(M, T_2100_03_01 - 1), T_2100_02_01);
	/* epoch: January 1970 */
	assert_int_equal(lt_window_start(M, 0), 0);
	assert_int_equal(lt_window_end(M, 0), T_1970_02_01);
	assert_int_equal(lt_window_start(M, T_1970_02_01 - 1), 0);
}

/* Every window of 2023 and 2024: starts on the 1st at 00:00, lasts its
 * month's days, and each ends where the next starts. */
static void test_window_month_lengths(void **state)
{
	(void)state;
	static const int days[2][12] = {{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31},
					{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}};
	int64_t t = T_2024_01_01 - 365 * DAY; /* 2023-01-01 */
	for (int y = 0; y < 2; y++) {
		for (int m = 0; m < 12; m++) {
			int64_t end = t + days[y][m] * DAY;
			for (int64_t probe = t; probe < end; probe += 7 * HOUR + 13) {
				assert_int_equal(lt_window_start(LT_WINDOW_MONTH, probe), t);
				assert_int_equal(lt_window_end(LT_WINDOW_MONTH, probe), end);
			}
			assert_int_equal(lt_window_start(LT_WINDOW_MONTH, end - 1), t);
			assert_int_equal(lt_window_end(LT_WINDOW_MONTH, end - 1), end);
			assert_int_equal(lt_window_start(LT_WINDOW_MONTH, end), end);
			t = end;
		}
	}
	assert_int_equal(t, T_2024_01_01 + 366 * DAY);
}

/* For many instants: start <= t < end, the window after starts at end. */
static void test_window_property(void **state)
{
	(void)state;
	const enum lt_window kinds[] = {LT_WINDOW_HOUR, LT_WINDOW_DAY, LT_WINDOW_MONTH};
	uint64_t x = 0x9E3779B97F4A7C15u;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t t = (int64_t)(x % (uint64_t)INT64_C(253402300800000)); /* < year 10000 */
		for (size_t k = 0; k < 3; k++) {
			int64_t s = lt_window_start(kinds[k], t), e = lt_window_end(kinds[k], t);
			assert_true(s <= t && t < e);
			assert_int_equal(lt_window_start(kinds[k], s), s);
			assert_int_equal(lt_window_start(kinds[k], e - 1), s);
			assert_int_equal(lt_window_start(kinds[k], e), e);
			assert_int_equal(lt_window_end(kinds[k], s), e);
			if (kinds[k] == LT_WINDOW_MONTH) {
				assert_true(e - s >= 28 * DAY && e - s <= 31 * DAY);
				int64_t y;
				unsigned mo, d;
				lt_civil_from_days(s / DAY, &y, &mo, &d);
				assert_int_equal(d, 1);
				assert_int_equal(s % DAY, 0);
			}
		}
	}
}

static void test_init(void **state)
{
	(void)state;
	struct lt_pool p;
	lt_pool_init(&p, LT_WINDOW_DAY, 500, T_2024_02_29 + 5 * HOUR);
	assert_int_equal(p.total, 0);
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.window, LT_WINDOW_DAY);
	assert_int_equal(p.window_start_ms, T_2024_02_29);
	assert_int_equal(p.window_cap, 500);
	assert_int_equal(p.window_used, 0);
	assert_true(lt_pool_valid(&p));
	assert_int_equal(lt_pool_available(&p), 0);
	lt_pool_init(&p, LT_WINDOW_NONE, -1, T_2024_02_29 + 5 * HOUR);
	assert_int_equal(p.window_start_ms, 0);
	assert_true(lt_pool_valid(&p));
}

static void test_roll(void **state)
{
	(void)state;
	struct lt_pool p = granted(LT_WINDOW_DAY, 100, T_2024_02_29 + HOUR, 1000);
	assert_int_equal(lt_pool_reserve(&p, 30), LT_OK);
	int64_t c, u, dr, dres;
	assert_int_equal(lt_pool_settle(&p, 30, 30, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(lt_pool_reserve(&p, 20), LT_OK); /* stays open across the roll */
	assert_int_equal(p.window_used, 50);

	/* not yet: the last ms of the day */
	struct lt_pool before = p;
	assert_false(lt_pool_roll(&p, T_2024_03_01 - 1));
	assert_pool_equal(&p, &before);
	/* exactly at the boundary */
	assert_true(lt_pool_roll(&p, T_2024_03_01));
	assert_int_equal(p.window_start_ms, T_2024_03_01);
	assert_int_equal(p.window_used, 20); /* the open reservation carries over */
	assert_int_equal(p.reserved, 20);
	assert_int_equal(p.remaining, 950); /* rolls never touch the balance */
	assert_int_equal(p.total, 1000);
	assert_int_equal(lt_pool_available(&p), 80);
	assert_true(lt_pool_valid(&p));
	/* again in the same window: nothing */
	before = p;
	assert_false(lt_pool_roll(&p, T_2024_03_01));
	assert_false(lt_pool_roll(&p, T_2024_03_01 + DAY - 1));
	assert_pool_equal(&p, &before);
	/* a clock stepped back does not roll */
	assert_false(lt_pool_roll(&p, T_2024_02_29));
	assert_pool_equal(&p, &before);
	/* skipping several windows lands on the current one */
	assert_int_equal(lt_pool_settle(&p, 20, 5, &c, &u, &dr, &dres), LT_OK);
	assert_true(lt_pool_roll(&p, T_2024_03_10 + 3 * HOUR));
	assert_int_equal(p.window_start_ms, T_2024_03_10);
	assert_int_equal(p.window_used, 0);
	assert_int_equal(p.remaining, 965);
	assert_true(lt_pool_valid(&p));

	/* month pool: Feb 2023 → Mar 2023 at exactly 03-01 00:00 */
	p = granted(LT_WINDOW_MONTH, -1, T_2023_02_28, 10);
	assert_int_equal(p.window_start_ms, T_2023_02_28 - 27 * DAY);
	assert_false(lt_pool_roll(&p, T_2023_03_01 - 1));
	assert_true(lt_pool_roll(&p, T_2023_03_01));
	assert_int_equal(p.window_start_ms, T_2023_03_01);
	/* hour pool from epoch 0 */
	p = granted(LT_WINDOW_HOUR, 5, 0, 10);
	assert_int_equal(p.window_start_ms, 0);
	assert_false(lt_pool_roll(&p, HOUR - 1));
	assert_true(lt_pool_roll(&p, HOUR));
	assert_int_equal(p.window_start_ms, HOUR);
	/* NONE never rolls */
	p = granted(LT_WINDOW_NONE, -1, T_2024_02_29, 10);
	assert_int_equal(lt_pool_reserve(&p, 4), LT_OK);
	before = p;
	assert_false(lt_pool_roll(&p, INT64_MAX / 2));
	assert_pool_equal(&p, &before);
}

static void test_reserve(void **state)
{
	(void)state;
	struct lt_pool p = granted(LT_WINDOW_NONE, -1, 0, 100);
	assert_int_equal(lt_pool_available(&p), 100);
	assert_int_equal(lt_pool_reserve(&p, 30), LT_OK);
	assert_int_equal(p.remaining, 70);
	assert_int_equal(p.reserved, 30);
	assert_int_equal(p.total, 100);
	assert_int_equal(lt_pool_available(&p), 70);

	struct lt_pool before = p;
	assert_int_equal(lt_pool_reserve(&p, 71), LT_EDENIED);
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_reserve(&p, INT64_MAX), LT_EDENIED);
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_reserve(&p, 0), LT_EINVAL);
	assert_int_equal(lt_pool_reserve(&p, -5), LT_EINVAL);
	assert_int_equal(lt_pool_reserve(&p, INT64_MIN), LT_EINVAL);
	assert_pool_equal(&p, &before);

	assert_int_equal(lt_pool_reserve(&p, 70), LT_OK); /* exactly what is available */
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 100);
	assert_int_equal(lt_pool_available(&p), 0);
	before = p;
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_pool_equal(&p, &before);
	assert_true(lt_pool_valid(&p));

	/* an empty pool denies everything */
	lt_pool_init(&p, LT_WINDOW_DAY, -1, 0);
	before = p;
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_pool_equal(&p, &before);
}

/* The reference truncated the balance to the tier cap at each window: a
 * user who bought 1000 tokens on a 50/day tier lost 950 of them.  Here the
 * cap limits the spending per day, the balance survives every roll, and all
 * of it can be spent over the following days. */
static void test_window_cap(void **state)
{
	(void)state;
	int64_t now = T_2024_02_29 + HOUR;
	struct lt_pool p = granted(LT_WINDOW_DAY, 50, now, 1000);
	int64_t c, u, dr, dres;
	assert_int_equal(lt_pool_available(&p), 50);
	assert_int_equal(lt_pool_reserve(&p, 40), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 40, 40, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(p.remaining, 960);
	assert_int_equal(lt_pool_available(&p), 10);

	struct lt_pool before = p;
	assert_int_equal(lt_pool_reserve(&p, 11), LT_EDENIED); /* the cap, not the balance */
	assert_pool_equal(&p, &before);
	assert_int_equal(p.remaining, 960);
	assert_int_equal(lt_pool_reserve(&p, 10), LT_OK);
	assert_int_equal(lt_pool_available(&p), 0);
	assert_int_equal(lt_pool_settle(&p, 10, 10, &c, &u, &dr, &dres), LT_OK);
	before = p;
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_pool_equal(&p, &before);
	assert_int_equal(p.remaining, 950);
	assert_int_equal(p.total, 1000);

	/* next day: spending is allowed again, the balance is intact */
	now = T_2024_03_01;
	assert_true(lt_pool_roll(&p, now));
	assert_int_equal(p.remaining, 950);
	assert_int_equal(p.total, 1000);
	assert_int_equal(p.window_used, 0);
	assert_int_equal(lt_pool_available(&p), 50);

	/* spend the cap every day: 19 more days empty the pool exactly */
	for (int day = 0; day < 19; day++) {
		if (day > 0) {
			now += DAY;
			assert_true(lt_pool_roll(&p, now));
		}
		assert_int_equal(p.remaining, 950 - 50 * day);
		assert_int_equal(lt_pool_available(&p), 50);
		assert_int_equal(lt_pool_reserve(&p, 50), LT_OK);
		assert_int_equal(lt_pool_settle(&p, 50, 50, &c, &u, &dr, &dres), LT_OK);
		assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	}
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.total, 1000);
	assert_true(lt_pool_roll(&p, now + DAY));
	assert_int_equal(lt_pool_available(&p), 0); /* now it is the balance that is empty */

	/* a cap lowered below what was already used: nothing more this window */
	p = granted(LT_WINDOW_DAY, 100, T_2024_02_29, 500);
	assert_int_equal(lt_pool_reserve(&p, 80), LT_OK);
	p.window_cap = 30;
	assert_true(lt_pool_valid(&p));
	assert_int_equal(lt_pool_available(&p), 0);
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_int_equal(p.remaining, 420);
	/* the open reservation counts in the next window too */
	assert_true(lt_pool_roll(&p, T_2024_03_01));
	assert_int_equal(p.window_used, 80);
	assert_int_equal(lt_pool_available(&p), 0);
	assert_int_equal(lt_pool_release(&p, 80), LT_OK);
	assert_int_equal(lt_pool_available(&p), 30);
	assert_int_equal(p.remaining, 500);
	assert_int_equal(p.total, 500);
}

static void test_settle_refund_exact_charge(void **state)
{
	(void)state;
	int64_t c, u, dr, dres;
	/* refund: used less than held */
	struct lt_pool p = granted(LT_WINDOW_DAY, 1000, T_2024_02_29, 500);
	assert_int_equal(lt_pool_reserve(&p, 100), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 100, 30, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 30);
	assert_int_equal(u, 0);
	assert_int_equal(dr, 70);
	assert_int_equal(dres, -100);
	assert_int_equal(p.remaining, 470);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.window_used, 30);
	assert_int_equal(p.total, 500);
	assert_true(lt_pool_valid(&p));
	/* actual 0: everything back */
	assert_int_equal(lt_pool_reserve(&p, 50), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 50, 0, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 0);
	assert_int_equal(dr, 50);
	assert_int_equal(p.remaining, 470);
	assert_int_equal(p.window_used, 30);
	/* exact */
	assert_int_equal(lt_pool_reserve(&p, 100), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 100, 100, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 100);
	assert_int_equal(u, 0);
	assert_int_equal(dr, 0);
	assert_int_equal(dres, -100);
	assert_int_equal(p.remaining, 370);
	assert_int_equal(p.window_used, 130);
	/* charge: used more than held, enough remains */
	assert_int_equal(lt_pool_reserve(&p, 100), LT_OK);
	assert_int_equal(p.remaining, 270);
	assert_int_equal(lt_pool_settle(&p, 100, 250, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 250);
	assert_int_equal(u, 0);
	assert_int_equal(dr, -150);
	assert_int_equal(dres, -100);
	assert_int_equal(p.remaining, 120);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.window_used, 380);
	assert_int_equal(p.total, 500);
	assert_true(lt_pool_valid(&p));
	/* settle without a hold (held 0) charges from remaining */
	assert_int_equal(lt_pool_settle(&p, 0, 20, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 20);
	assert_int_equal(dr, -20);
	assert_int_equal(dres, 0);
	assert_int_equal(p.remaining, 100);
	/* out-parameters are optional */
	assert_int_equal(lt_pool_reserve(&p, 10), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 10, 5, NULL, NULL, NULL, NULL), LT_OK);
	assert_int_equal(p.remaining, 95);
}

static void test_settle_overage(void **state)
{
	(void)state;
	int64_t c = -1, u = -1, dr = -1, dres = -1;
	struct lt_pool p = granted(LT_WINDOW_HOUR, -1, T_2024_02_29, 100);
	assert_int_equal(lt_pool_reserve(&p, 40), LT_OK);
	assert_int_equal(lt_pool_reserve(&p, 20), LT_OK); /* another open reservation */
	assert_int_equal(p.remaining, 40);
	/* actual 120 > held 40 + remaining 40 */
	assert_int_equal(lt_pool_settle(&p, 40, 120, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 80);
	assert_int_equal(u, 40);
	assert_int_equal(c + u, 120);
	assert_int_equal(dr, -40);
	assert_int_equal(dres, -40);
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 20); /* the other reservation is untouched */
	assert_int_equal(p.window_used, 100);
	assert_true(lt_pool_valid(&p));
	/* with nothing left, the whole excess is unbilled */
	assert_int_equal(lt_pool_settle(&p, 20, 1000, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 20);
	assert_int_equal(u, 980);
	assert_int_equal(dr, 0);
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.total, 100);
	assert_true(lt_pool_valid(&p));

	/* an overage may push window_used past the cap; nothing more can be
	 * reserved in that window, and the next window is open again */
	p = granted(LT_WINDOW_HOUR, 50, T_2024_02_29, 1000);
	assert_int_equal(lt_pool_reserve(&p, 50), LT_OK);
	assert_int_equal(lt_pool_settle(&p, 50, 70, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 70);
	assert_int_equal(u, 0);
	assert_int_equal(p.window_used, 70);
	assert_int_equal(lt_pool_available(&p), 0);
	assert_true(lt_pool_valid(&p));
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_true(lt_pool_roll(&p, T_2024_02_29 + HOUR));
	assert_int_equal(lt_pool_available(&p), 50);
	assert_int_equal(p.remaining, 930);
}

static void test_settle_errors(void **state)
{
	(void)state;
	int64_t c = 7, u = 7, dr = 7, dres = 7;
	struct lt_pool p = granted(LT_WINDOW_DAY, -1, T_2024_02_29, 100);
	assert_int_equal(lt_pool_reserve(&p, 30), LT_OK);
	struct lt_pool before = p;
	assert_int_equal(lt_pool_settle(&p, 31, 10, &c, &u, &dr, &dres), LT_EINVAL);
	assert_int_equal(lt_pool_settle(&p, -1, 10, &c, &u, &dr, &dres), LT_EINVAL);
	assert_int_equal(lt_pool_settle(&p, 30, -1, &c, &u, &dr, &dres), LT_EINVAL);
	assert_int_equal(lt_pool_settle(&p, INT64_MIN, INT64_MIN, &c, &u, &dr, &dres), LT_EINVAL);
	assert_pool_equal(&p, &before);
	assert_int_equal(c, 7);
	assert_int_equal(u, 7);
	assert_int_equal(dr, 7);
	assert_int_equal(dres, 7);
	/* the largest possible actual is fine */
	assert_int_equal(lt_pool_settle(&p, 30, INT64_MAX, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, 100);
	assert_int_equal(u, INT64_MAX - 100);
	assert_int_equal(p.remaining, 0);
	assert_true(lt_pool_valid(&p));
}

static void test_release(void **state)
{
	(void)state;
	struct lt_pool p = granted(LT_WINDOW_MONTH, 60, T_2024_02_29, 100);
	assert_int_equal(lt_pool_reserve(&p, 25), LT_OK);
	assert_int_equal(lt_pool_reserve(&p, 35), LT_OK);
	assert_int_equal(lt_pool_available(&p), 0); /* the cap */
	struct lt_pool before = p;
	assert_int_equal(lt_pool_release(&p, 61), LT_EINVAL);
	assert_int_equal(lt_pool_release(&p, -1), LT_EINVAL);
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_release(&p, 25), LT_OK);
	assert_int_equal(p.remaining, 65);
	assert_int_equal(p.reserved, 35);
	assert_int_equal(p.window_used, 35);
	assert_int_equal(lt_pool_available(&p), 25);
	assert_int_equal(lt_pool_release(&p, 35), LT_OK);
	assert_int_equal(p.remaining, 100);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.window_used, 0);
	assert_int_equal(p.total, 100);
	assert_true(lt_pool_valid(&p));
	/* a reservation released after a roll leaves the new window clean */
	assert_int_equal(lt_pool_reserve(&p, 40), LT_OK);
	assert_true(lt_pool_roll(&p, T_2024_03_01));
	assert_int_equal(p.window_used, 40);
	assert_int_equal(lt_pool_release(&p, 40), LT_OK);
	assert_int_equal(p.window_used, 0);
	assert_int_equal(lt_pool_available(&p), 60);
	assert_true(lt_pool_valid(&p));
}

static void test_grant(void **state)
{
	(void)state;
	struct lt_pool p;
	lt_pool_init(&p, LT_WINDOW_DAY, 10, T_2024_02_29);
	struct lt_pool before = p;
	assert_int_equal(lt_pool_grant(&p, 0), LT_EINVAL);
	assert_int_equal(lt_pool_grant(&p, -3), LT_EINVAL);
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_grant(&p, 100), LT_OK);
	assert_int_equal(lt_pool_grant(&p, 23), LT_OK);
	assert_int_equal(p.total, 123);
	assert_int_equal(p.remaining, 123);
	assert_int_equal(p.window_used, 0); /* a grant is not spending */
	assert_int_equal(lt_pool_available(&p), 10);
	/* overflow */
	assert_int_equal(lt_pool_grant(&p, INT64_MAX - 123), LT_OK);
	assert_int_equal(p.total, INT64_MAX);
	before = p;
	assert_int_equal(lt_pool_grant(&p, 1), LT_ERANGE);
	assert_pool_equal(&p, &before);
	assert_true(lt_pool_valid(&p));
}

static void test_adjust(void **state)
{
	(void)state;
	struct lt_pool p = granted(LT_WINDOW_NONE, -1, 0, 100);
	assert_int_equal(lt_pool_reserve(&p, 30), LT_OK);
	assert_int_equal(lt_pool_adjust(&p, 50), LT_OK);
	assert_int_equal(p.total, 150);
	assert_int_equal(p.remaining, 120);
	assert_int_equal(lt_pool_adjust(&p, -20), LT_OK);
	assert_int_equal(p.total, 150); /* negative adjusts leave total */
	assert_int_equal(p.remaining, 100);
	assert_int_equal(lt_pool_adjust(&p, 0), LT_OK);
	assert_int_equal(p.remaining, 100);
	struct lt_pool before = p;
	assert_int_equal(lt_pool_adjust(&p, -101), LT_ERANGE); /* past zero */
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_adjust(&p, INT64_MIN), LT_ERANGE);
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_adjust(&p, INT64_MAX), LT_ERANGE); /* total would overflow */
	assert_pool_equal(&p, &before);
	assert_int_equal(lt_pool_adjust(&p, -100), LT_OK); /* exactly to zero */
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 30); /* reservations are not adjusted */
	assert_true(lt_pool_valid(&p));
	before = p;
	assert_int_equal(lt_pool_adjust(&p, -1), LT_ERANGE);
	assert_pool_equal(&p, &before);
}

/* Amounts up to INT64_MAX/4 go through every operation without overflow. */
static void test_big_amounts(void **state)
{
	(void)state;
	int64_t c, u, dr, dres;
	struct lt_pool p = granted(LT_WINDOW_MONTH, BIG, T_2024_02_29, BIG);
	assert_int_equal(lt_pool_grant(&p, BIG), LT_OK);
	assert_int_equal(lt_pool_adjust(&p, BIG), LT_OK);
	assert_int_equal(p.total, 3 * BIG);
	assert_int_equal(lt_pool_available(&p), BIG); /* the cap */
	assert_int_equal(lt_pool_reserve(&p, BIG), LT_OK);
	assert_int_equal(lt_pool_reserve(&p, 1), LT_EDENIED);
	assert_int_equal(lt_pool_settle(&p, BIG, BIG / 2, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(c, BIG / 2);
	assert_int_equal(dr, BIG - BIG / 2);
	assert_int_equal(lt_pool_reserve(&p, BIG - BIG / 2), LT_OK);
	assert_true(lt_pool_roll(&p, T_2024_03_01));
	assert_int_equal(lt_pool_reserve(&p, BIG / 2), LT_OK);
	assert_int_equal(p.reserved, BIG);
	assert_int_equal(lt_pool_settle(&p, BIG - BIG / 2, 3 * BIG, &c, &u, &dr, &dres), LT_OK);
	assert_int_equal(p.remaining, 0);
	assert_int_equal(c + u, 3 * BIG);
	assert_int_equal(lt_pool_release(&p, BIG / 2), LT_OK);
	assert_int_equal(p.remaining, BIG / 2);
	assert_int_equal(lt_pool_adjust(&p, -(BIG / 2)), LT_OK);
	assert_int_equal(p.remaining, 0);
	assert_true(lt_pool_valid(&p));
	assert_int_equal(p.total, 3 * BIG);
	/* windows far in the future still compute */
	int64_t far = INT64_MAX - 1;
	assert_true(lt_window_start(LT_WINDOW_MONTH, far) <= far);
	assert_true(lt_window_end(LT_WINDOW_MONTH, far) >= lt_window_start(LT_WINDOW_MONTH, far));
	assert_true(lt_window_end(LT_WINDOW_HOUR, far) > far);
}

static void test_valid(void **state)
{
	(void)state;
	struct lt_pool good = granted(LT_WINDOW_DAY, 100, T_2024_02_29 + 7, 100);
	assert_int_equal(lt_pool_reserve(&good, 10), LT_OK);
	assert_true(lt_pool_valid(&good));
	struct lt_pool p;
	p = good, p.remaining = -1;
	assert_false(lt_pool_valid(&p));
	p = good, p.reserved = -1;
	assert_false(lt_pool_valid(&p));
	p = good, p.total = -1;
	assert_false(lt_pool_valid(&p));
	p = good, p.window_used = -1;
	assert_false(lt_pool_valid(&p));
	p = good, p.total = 99; /* remaining 90 + reserved 10 > 99 */
	assert_false(lt_pool_valid(&p));
	p = good, p.window_used = 9; /* < reserved */
	assert_false(lt_pool_valid(&p));
	p = good, p.window_start_ms += 1; /* not aligned */
	assert_false(lt_pool_valid(&p));
	p = good, p.window_start_ms = T_2024_02_29 + HOUR;
	assert_false(lt_pool_valid(&p));
	p = good, p.window = LT_WINDOW_HOUR; /* a day start is an hour start too */
	assert_true(lt_pool_valid(&p));
	p = good, p.window = LT_WINDOW_MONTH; /* Feb 29 is no month start */
	assert_false(lt_pool_valid(&p));
	p = good, p.window = (enum lt_window)9;
	assert_false(lt_pool_valid(&p));
	p = good, p.window_cap = -2;
	assert_false(lt_pool_valid(&p));
	p = good, p.remaining = INT64_MAX, p.total = INT64_MAX; /* + reserved overflows */
	assert_false(lt_pool_valid(&p));
	/* allowed: a cap lowered below window_used; NONE with any window_used */
	p = good, p.window_cap = 5;
	assert_true(lt_pool_valid(&p));
	assert_int_equal(lt_pool_available(&p), 0);
	p = good, p.window = LT_WINDOW_NONE, p.window_start_ms = 0, p.window_used = 0;
	assert_true(lt_pool_valid(&p));
	p.window_start_ms = T_2024_02_29;
	assert_false(lt_pool_valid(&p));
}

/* The NONE window has no cap to apply: available is the balance. */
static void test_none_ignores_cap(void **state)
{
	(void)state;
	struct lt_pool p = granted(LT_WINDOW_NONE, 10, 0, 100);
	assert_int_equal(lt_pool_available(&p), 100);
	assert_int_equal(lt_pool_reserve(&p, 60), LT_OK);
	assert_int_equal(lt_pool_available(&p), 40);
	assert_true(lt_pool_valid(&p));
}

/* --- the ledger property ------------------------------------------------ */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	r->s = x;
	return x;
}

/* Uniform-enough in [0, n) for n >= 1. */
static int64_t rng_below(struct rng *r, int64_t n)
{
	return (int64_t)(rng_next(r) % (uint64_t)n);
}

#define MAX_OPEN 64

struct ledger {
	int64_t remaining, reserved; /* sums of the deltas */
	int64_t total;		     /* sum of grants and positive adjusts */
	int64_t spent;		     /* sum of charged */
	int64_t removed;	     /* sum of negative adjusts */
	int64_t open[MAX_OPEN];	     /* open reservations */
	int nopen;
};

static void check_pool(const struct lt_pool *p, const struct ledger *l, long step)
{
	if (p->remaining != l->remaining || p->reserved != l->reserved || p->total != l->total ||
	    p->remaining < 0 || !lt_pool_valid(p))
		fail_msg("step %ld: pool rem=%lld res=%lld tot=%lld used=%lld, ledger rem=%lld "
			 "res=%lld tot=%lld",
			 step, (long long)p->remaining, (long long)p->reserved, (long long)p->total,
			 (long long)p->window_used, (long long)l->remaining, (long long)l->reserved,
			 (long long)l->total);
	int64_t open = 0;
	for (int i = 0; i < l->nopen; i++)
		open += l->open[i];
	assert_int_equal(open, p->reserved);
	assert_int_equal(p->total - p->remaining - p->reserved, l->spent + l->removed);
	int64_t avail = lt_pool_available(p);
	assert_true(avail >= 0 && avail <= p->remaining);
	assert_true(p->window_used >= p->reserved || p->window == LT_WINDOW_NONE);
}

/* An amount that is mostly small, sometimes near `hint`, rarely huge. */
static int64_t pick_amount(struct rng *r, int64_t hint)
{
	int64_t k = rng_below(r, 100);
	if (k < 60)
		return 1 + rng_below(r, 1000);
	if (k < 95)
		return hint > 1 ? 1 + rng_below(r, hint + 2) : 1 + rng_below(r, 5);
	return 1 + rng_below(r, 1000000);
}

static void run_ledger(enum lt_window w, int64_t cap, uint64_t seed, long steps)
{
	struct rng r = {seed};
	struct ledger l = {0};
	int64_t now = T_2024_01_01 - 3 * DAY + 12345;
	struct lt_pool p;
	lt_pool_init(&p, w, cap, now);
	long ok[6] = {0}, refused[6] = {0};
	for (long step = 0; step < steps; step++) {
		struct lt_pool before = p;
		enum lt_err err;
		int op = (int)rng_below(&r, 100);
		if (op < 30) { /* reserve */
			int64_t a = pick_amount(&r, lt_pool_available(&p));
			if (rng_below(&r, 50) == 0)
				a = -rng_below(&r, 3); /* invalid */
			if (l.nopen == MAX_OPEN)
				a = 0;
			err = lt_pool_reserve(&p, a);
			if (err == LT_OK) {
				l.remaining -= a;
				l.reserved += a;
				l.open[l.nopen++] = a;
				if (p.window != LT_WINDOW_NONE && p.window_cap >= 0)
					assert_true(p.window_used <= p.window_cap);
			} else {
				assert_true(err == (a < 1 ? LT_EINVAL : LT_EDENIED));
			}
			op = 0;
		} else if (op < 50) { /* settle */
			int i = l.nopen ? (int)rng_below(&r, l.nopen) : -1;
			int64_t held = i >= 0 ? l.open[i] : 0;
			int64_t actual;
			switch (rng_below(&r, 4)) {
			case 0: actual = rng_below(&r, held + 1); break;
			case 1: actual = held; break;
			case 2: actual = held + rng_below(&r, 2000); break;
			default: actual = held + rng_below(&r, p.remaining + 3000); break;
			}
			int64_t c = -1, u = -1, dr = 0, dres = 0;
			err = lt_pool_settle(&p, held, actual, &c, &u, &dr, &dres);
			assert_int_equal(err, LT_OK);
			assert_true(c >= 0 && u >= 0 && c <= actual);
			assert_int_equal(c + u, actual);
			assert_int_equal(dr, held - c);
			assert_int_equal(dres, -held);
			assert_true(u == 0 || p.remaining == 0);
			l.remaining += dr;
			l.reserved += dres;
			l.spent += c;
			if (i >= 0)
				l.open[i] = l.open[--l.nopen];
			op = 1;
		} else if (op < 60) { /* release */
			int i = l.nopen ? (int)rng_below(&r, l.nopen) : -1;
			int64_t held = i >= 0 ? l.open[i] : p.reserved + 1; /* too much */
			err = lt_pool_release(&p, held);
			if (i >= 0) {
				assert_int_equal(err, LT_OK);
				l.remaining += held;
				l.reserved -= held;
				l.open[i] = l.open[--l.nopen];
			} else {
				assert_int_equal(err, LT_EINVAL);
			}
			op = 2;
		} else if (op < 72) { /* grant */
			int64_t a = rng_below(&r, 5000) == 0 ? BIG : pick_amount(&r, 5000);
			err = lt_pool_grant(&p, a);
			if (err == LT_OK) {
				l.remaining += a;
				l.total += a;
			} else {
				assert_int_equal(err, LT_ERANGE);
				assert_true(p.total > INT64_MAX - a);
			}
			op = 3;
		} else if (op < 85) { /* adjust, either way, sometimes past zero */
			int64_t d = pick_amount(&r, p.remaining);
			if (rng_below(&r, 3) != 0)
				d = -d;
			err = lt_pool_adjust(&p, d);
			if (err == LT_OK) {
				l.remaining += d;
				if (d > 0)
					l.total += d;
				else
					l.removed -= d;
			} else {
				assert_int_equal(err, LT_ERANGE);
				assert_true(d < 0 ? before.remaining + d < 0
						  : before.total > INT64_MAX - d);
			}
			op = 4;
		} else { /* time passes; roll */
			int64_t unit = w == LT_WINDOW_HOUR ? HOUR : DAY;
			now += rng_below(&r, 4) == 0 ? rng_below(&r, 40 * unit)
						     : rng_below(&r, unit);
			int64_t start = p.window_start_ms;
			bool rolled = lt_pool_roll(&p, now);
			if (w == LT_WINDOW_NONE) {
				assert_false(rolled);
			} else {
				assert_int_equal(rolled, now >= lt_window_end(w, start));
				assert_int_equal(p.window_start_ms, lt_window_start(w, now));
				if (rolled)
					assert_int_equal(p.window_used, p.reserved);
			}
			assert_int_equal(p.remaining, before.remaining);
			assert_int_equal(p.reserved, before.reserved);
			assert_int_equal(p.total, before.total);
			err = LT_OK;
			op = 5;
		}
		if (err == LT_OK) {
			ok[op]++;
		} else {
			assert_pool_equal(&p, &before);
			refused[op]++;
		}
		check_pool(&p, &l, step);
	}
	/* the sequence really exercised every path */
	for (int i = 0; i < 6; i++)
		assert_true(ok[i] > steps / 100);
	assert_true(refused[0] > 0); /* denied or invalid reserves */
	assert_true(refused[2] > 0); /* over-release */
	assert_true(refused[4] > 0); /* adjust past zero */
}

static void test_ledger_sum(void **state)
{
	(void)state;
	run_ledger(LT_WINDOW_DAY, 20000, 0x243F6A8885A308D3u, 100000);
	run_ledger(LT_WINDOW_HOUR, 3000, 0x13198A2E03707344u, 100000);
	run_ledger(LT_WINDOW_MONTH, -1, 0xA4093822299F31D0u, 100000);
	run_ledger(LT_WINDOW_NONE, -1, 0x082EFA98EC4E6C89u, 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_names),
		cmocka_unit_test(test_window_none),
		cmocka_unit_test(test_window_hour),
		cmocka_unit_test(test_window_day),
		cmocka_unit_test(test_window_month),
		cmocka_unit_test(test_window_month_lengths),
		cmocka_unit_test(test_window_property),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_roll),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_window_cap),
		cmocka_unit_test(test_settle_refund_exact_charge),
		cmocka_unit_test(test_settle_overage),
		cmocka_unit_test(test_settle_errors),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_grant),
		cmocka_unit_test(test_adjust),
		cmocka_unit_test(test_big_amounts),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_none_ignores_cap),
		cmocka_unit_test(test_ledger_sum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
