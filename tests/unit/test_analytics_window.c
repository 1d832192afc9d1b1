/*
 * test_analytics_window.c — src/analytics/window.c: UTC bucket starts
 * (also before the epoch), day names and their parsing, the parameter
 * defaults and clamps of API.md §3, the report and anomaly windows
 * (half-open, adjacent, never overlapping) and the anomaly formula with
 * the reference's cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "analytics/window.h"

/* 2026-11-23T14:17:42.123Z */
#define T0 INT64_C(1795443462123)

static void test_buckets(void **state)
{
	(void)state;
	assert_int_equal(lt_an_minute_start(T0), T0 - 42123);
	assert_int_equal(lt_an_hour_start(T0), T0 - 17 * 60000 - 42123);
	assert_int_equal(lt_an_day_start(T0), T0 - 14 * 3600000 - 17 * 60000 - 42123);
	assert_int_equal(lt_an_minute_start(0), 0);
	assert_int_equal(lt_an_minute_start(59999), 0);
	assert_int_equal(lt_an_minute_start(60000), 60000);
	/* before the epoch: toward -infinity */
	assert_int_equal(lt_an_minute_start(-1), -60000);
	assert_int_equal(lt_an_day_start(-1), -LT_AN_MS_DAY);
	assert_int_equal(lt_an_day_start(-LT_AN_MS_DAY), -LT_AN_MS_DAY);
}

static void test_day_names(void **state)
{
	(void)state;
	char d[LT_AN_DAY_LEN];
	lt_an_day_name(T0, d);
	assert_string_equal(d, "20261123");
	lt_an_day_name(0, d);
	assert_string_equal(d, "19700101");
	lt_an_day_name(-1, d);
	assert_string_equal(d, "19691231");
	/* the last millisecond of a day and the first of the next */
	int64_t midnight = lt_an_day_start(T0) + LT_AN_MS_DAY;
	lt_an_day_name(midnight - 1, d);
	assert_string_equal(d, "20261123");
	lt_an_day_name(midnight, d);
	assert_string_equal(d, "20261124");
	int64_t start;
	assert_int_equal(lt_an_day_parse("20261123", &start), LT_OK);
	assert_int_equal(start, lt_an_day_start(T0));
	assert_int_equal(lt_an_day_parse("20240229", &start), LT_OK);
	assert_int_equal(lt_an_day_parse("20230229", &start), LT_ERANGE);
	assert_int_equal(lt_an_day_parse("20261301", &start), LT_ERANGE);
	assert_int_equal(lt_an_day_parse("20261100", &start), LT_ERANGE);
	assert_int_equal(lt_an_day_parse("2026112", &start), LT_ESYNTAX);
	assert_int_equal(lt_an_day_parse("202611231", &start), LT_ESYNTAX);
	assert_int_equal(lt_an_day_parse("2026112x", &start), LT_ESYNTAX);
	assert_int_equal(lt_an_day_parse("", &start), LT_ESYNTAX);
	/* every day of a few years round-trips */
	for (int64_t t = 0; t < 5 * 366 * LT_AN_MS_DAY; t += LT_AN_MS_DAY) {
		lt_an_day_name(t + 12345, d);
		assert_int_equal(lt_an_day_parse(d, &start), LT_OK);
		assert_int_equal(start, t);
	}
}

static void test_clamps(void **state)
{
	(void)state;
	assert_int_equal(lt_an_window_minutes(false, 0), 60);
	assert_int_equal(lt_an_window_minutes(true, 0), 1);
	assert_int_equal(lt_an_window_minutes(true, -5), 1);
	assert_int_equal(lt_an_window_minutes(true, 30), 30);
	assert_int_equal(lt_an_window_minutes(true, 1440), 1440);
	assert_int_equal(lt_an_window_minutes(true, 1441), 1440);
	assert_int_equal(lt_an_window_minutes(true, INT64_MAX), 1440);
	assert_int_equal(lt_an_baseline_windows(false, 99), 4);
	assert_int_equal(lt_an_baseline_windows(true, 0), 1);
	assert_int_equal(lt_an_baseline_windows(true, 24), 24);
	assert_int_equal(lt_an_baseline_windows(true, 25), 24);
	assert_int_equal(lt_an_usage_limit(false, 0), 20);
	assert_int_equal(lt_an_usage_limit(true, 0), 1);
	assert_int_equal(lt_an_usage_limit(true, 150), 150);
	assert_int_equal(lt_an_usage_limit(true, 201), 200);
	assert_true(lt_an_threshold(false, 0.1) == 2.0);
	assert_true(lt_an_threshold(true, 0.5) == 1.0);
	assert_true(lt_an_threshold(true, 1.0) == 1.0);
	assert_true(lt_an_threshold(true, 3.5) == 3.5);
	assert_true(lt_an_threshold(true, NAN) == 2.0);
	assert_true(lt_an_threshold(true, INFINITY) == 2.0);
	assert_true(lt_an_threshold(true, -INFINITY) == 2.0);
}

static void test_report_window(void **state)
{
	(void)state;
	struct lt_an_window w;
	lt_an_report_window(T0, 60, &w);
	assert_int_equal(w.start_ms, T0 - 3600000);
	assert_int_equal(w.end_ms, T0);
	lt_an_report_window(T0, 5000, &w); /* clamped to a day */
	assert_int_equal(w.start_ms, T0 - LT_AN_MS_DAY);
	lt_an_report_window(T0, 0, &w); /* clamped to a minute */
	assert_int_equal(w.start_ms, T0 - 60000);
}

static void test_anomaly_windows(void **state)
{
	(void)state;
	struct lt_an_window cur, base[LT_AN_BASELINE_MAX];
	size_t n = 0;
	lt_an_anomaly_windows(T0, 60, 4, &cur, base, &n);
	assert_int_equal(n, 4);
	assert_int_equal(cur.start_ms, T0 - 3600000);
	assert_int_equal(cur.end_ms, T0);
	/* baseline k = [now-(k+1)W, now-kW): adjacent, no overlap */
	int64_t edge = cur.start_ms;
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(base[k].end_ms, edge);
		assert_int_equal(base[k].end_ms - base[k].start_ms, 3600000);
		edge = base[k].start_ms;
	}
	assert_int_equal(base[3].start_ms, T0 - 5 * 3600000);
	lt_an_anomaly_windows(T0, 10, 100, &cur, base, &n);
	assert_int_equal(n, 24);
	assert_int_equal(base[23].start_ms, T0 - 25 * 600000);
	lt_an_anomaly_windows(T0, 10, 0, &cur, base, &n);
	assert_int_equal(n, 1);
}

static void test_anomaly_formula(void **state)
{
	(void)state;
	struct lt_an_anomaly a;
	/* current 300 vs baselines 100 and 100: ratio 3.0, an anomaly */
	int64_t b1[] = {100, 100};
	assert_int_equal(lt_an_anomaly_eval(300, b1, 2, 2.0, &a), LT_OK);
	assert_true(a.has_ratio);
	assert_true(fabs(a.ratio - 3.0) < 1e-12);
	assert_true(a.baseline_avg == 100.0);
	assert_true(a.anomaly);
	/* 150 vs 100: 1.5, not an anomaly at threshold 2 */
	int64_t b2[] = {100};
	assert_int_equal(lt_an_anomaly_eval(150, b2, 1, 2.0, &a), LT_OK);
	assert_true(a.has_ratio);
	assert_true(fabs(a.ratio - 1.5) < 1e-12);
	assert_false(a.anomaly);
	/* threshold 0.5 clamps to 1.0: 150 vs 100 is then an anomaly, and 90
	 * vs 100 (0.9, above 0.5) is not */
	assert_int_equal(lt_an_anomaly_eval(150, b2, 1, 0.5, &a), LT_OK);
	assert_true(a.threshold == 1.0);
	assert_true(a.anomaly);
	assert_int_equal(lt_an_anomaly_eval(90, b2, 1, 0.5, &a), LT_OK);
	assert_false(a.anomaly);
	/* ratio exactly at the threshold counts */
	assert_int_equal(lt_an_anomaly_eval(200, b2, 1, 2.0, &a), LT_OK);
	assert_true(a.anomaly);
	/* zero baseline: no ratio, no anomaly, however large the current */
	int64_t b0[] = {0, 0, 0, 0};
	assert_int_equal(lt_an_anomaly_eval(1000000, b0, 4, 2.0, &a), LT_OK);
	assert_false(a.has_ratio);
	assert_false(a.anomaly);
	assert_true(a.baseline_avg == 0.0);
	/* the mean counts empty windows: 400 over 4 windows is 100 */
	int64_t b3[] = {400, 0, 0, 0};
	assert_int_equal(lt_an_anomaly_eval(250, b3, 4, 2.0, &a), LT_OK);
	assert_true(a.baseline_avg == 100.0);
	assert_true(a.anomaly);
	assert_int_equal(lt_an_anomaly_eval(1, NULL, 1, 2.0, &a), LT_EINVAL);
	assert_int_equal(lt_an_anomaly_eval(1, b1, 0, 2.0, &a), LT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),		cmocka_unit_test(test_day_names),
		cmocka_unit_test(test_clamps),		cmocka_unit_test(test_report_window),
		cmocka_unit_test(test_anomaly_windows), cmocka_unit_test(test_anomaly_formula),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
