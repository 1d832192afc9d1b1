/*
 * window.c — analytics windows, clamps and the anomaly formula (pure).
 * See window.h.
 */
#include <math.h>

#include "analytics/window.h"
#include "util/timefmt.h"

static int64_t floor_to(int64_t t, int64_t unit)
{
	int64_t r = t % unit;
	return r < 0 ? t - r - unit : t - r;
}

int64_t lt_an_minute_start(int64_t t_ms)
{
	return floor_to(t_ms, LT_AN_MS_MINUTE);
}

int64_t lt_an_hour_start(int64_t t_ms)
{
	return floor_to(t_ms, LT_AN_MS_HOUR);
}

int64_t lt_an_day_start(int64_t t_ms)
{
	return floor_to(t_ms, LT_AN_MS_DAY);
}

void lt_an_day_name(int64_t t_ms, char out[LT_AN_DAY_LEN])
{
	int64_t days = lt_an_day_start(t_ms) / LT_AN_MS_DAY, y;
	unsigned m, d;
	lt_civil_from_days(days, &y, &m, &d);
	if (y < 0) {
		y = 0, m = 1, d = 1;
	} else if (y > 9999) {
		y = 9999, m = 12, d = 31;
	}
	unsigned v[8] = {(unsigned)(y / 1000),
			 (unsigned)(y / 100 % 10),
			 (unsigned)(y / 10 % 10),
			 (unsigned)(y % 10),
			 m / 10,
			 m % 10,
			 d / 10,
			 d % 10};
	for (int i = 0; i < 8; i++)
		out[i] = (char)('0' + v[i]);
	out[8] = '\0';
}

enum lt_err lt_an_day_parse(const char *day, int64_t *start_ms)
{
	*start_ms = 0;
	unsigned v = 0;
	for (int i = 0; i < 8; i++) {
		if (day[i] < '0' || day[i] > '9')
			return LT_ESYNTAX;
		v = v * 10 + (unsigned)(day[i] - '0');
	}
	if (day[8] != '\0')
		return LT_ESYNTAX;
	unsigned y = v / 10000, m = v / 100 % 100, d = v % 100;
	static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return LT_ERANGE;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return LT_ERANGE;
	*start_ms = lt_days_from_civil(y, m, d) * LT_AN_MS_DAY;
	return LT_OK;
}

static int64_t clamp(bool given, int64_t v, int64_t def, int64_t lo, int64_t hi)
{
	if (!given)
		return def;
	return v < lo ? lo : v > hi ? hi : v;
}

int64_t lt_an_window_minutes(bool given, int64_t v)
{
	return clamp(given, v, LT_AN_WINDOW_DEFAULT, LT_AN_WINDOW_MIN, LT_AN_WINDOW_MAX);
}

int64_t lt_an_baseline_windows(bool given, int64_t v)
{
	return clamp(given, v, LT_AN_BASELINE_DEFAULT, LT_AN_BASELINE_MIN, LT_AN_BASELINE_MAX);
}

int64_t lt_an_usage_limit(bool given, int64_t v)
{
	return clamp(given, v, LT_AN_LIMIT_DEFAULT, LT_AN_LIMIT_MIN, LT_AN_LIMIT_MAX);
}

double lt_an_threshold(bool given, double v)
{
	if (!given || !isfinite(v))
		return LT_AN_THRESHOLD_DEFAULT;
	return v < LT_AN_THRESHOLD_MIN ? LT_AN_THRESHOLD_MIN : v;
}

void lt_an_report_window(int64_t now_ms, int64_t minutes, struct lt_an_window *out)
{
	int64_t w = lt_an_window_minutes(true, minutes) * LT_AN_MS_MINUTE;
	out->start_ms = now_ms - w;
	out->end_ms = now_ms;
}

void lt_an_anomaly_windows(int64_t now_ms, int64_t minutes, int64_t n, struct lt_an_window *current,
			   struct lt_an_window base[LT_AN_BASELINE_MAX], size_t *n_out)
{
	int64_t w = lt_an_window_minutes(true, minutes) * LT_AN_MS_MINUTE;
	int64_t count = lt_an_baseline_windows(true, n);
	current->start_ms = now_ms - w;
	current->end_ms = now_ms;
	for (int64_t k = 1; k <= count; k++) {
		base[k - 1].start_ms = now_ms - (k + 1) * w;
		base[k - 1].end_ms = now_ms - k * w;
	}
	*n_out = (size_t)count;
}

enum lt_err lt_an_anomaly_eval(int64_t current, const int64_t *base, size_t n, double threshold,
			       struct lt_an_anomaly *out)
{
	*out = (struct lt_an_anomaly){0};
	if (!base || n == 0)
		return LT_EINVAL;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)base[i];
	out->current = current;
	out->baseline_avg = sum / (double)n;
	out->threshold = lt_an_threshold(true, threshold);
	if (out->baseline_avg != 0) {
		out->has_ratio = true;
		out->ratio = (double)current / out->baseline_avg;
		out->anomaly = out->ratio >= out->threshold;
	}
	return LT_OK;
}
