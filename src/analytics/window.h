/*
 * window.h — the analytics time arithmetic (pure: no I/O, no clock; every
 * function takes `now` and its inputs as arguments).
 *
 * Owns: UTC minute / hour / day bucket starts and day names ("YYYYMMDD",
 * the suffix of the usage_ day tables, schema.h); the query parameters'
 * defaults and clamps (API.md §3, the reference's names and bounds); the
 * report window and the anomaly windows; the anomaly formula.
 *
 * Windows are half-open, [start, end), in Unix milliseconds:
 *   report:   [now - W, now)                 W = windowMinutes
 *   current:  [now - W, now)
 *   baseline k (1..N): [now - (k+1)W, now - kW)
 * so consecutive windows share no instant and no event counts twice.
 *
 * Anomaly: ratio = current / mean(baselines) (the mean over all N windows,
 * empty ones included); no ratio (JSON null) when that mean is 0; anomaly
 * when there is a ratio and ratio >= threshold.
 *
 * Times before the epoch floor correctly (toward -infinity).
 */
#ifndef LT_ANALYTICS_WINDOW_H
#define LT_ANALYTICS_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_AN_MS_MINUTE INT64_C(60000)
#define LT_AN_MS_HOUR INT64_C(3600000)
#define LT_AN_MS_DAY INT64_C(86400000)

/* windowMinutes: default 60, clamped 1..1440 */
#define LT_AN_WINDOW_DEFAULT 60
#define LT_AN_WINDOW_MIN 1
#define LT_AN_WINDOW_MAX 1440
/* baselineWindows: default 4, clamped 1..24 */
#define LT_AN_BASELINE_DEFAULT 4
#define LT_AN_BASELINE_MIN 1
#define LT_AN_BASELINE_MAX 24
/* thresholdMultiplier: default 2.0, at least 1.0 */
#define LT_AN_THRESHOLD_DEFAULT 2.0
#define LT_AN_THRESHOLD_MIN 1.0
/* usage limit: default 20, clamped 1..200 */
#define LT_AN_LIMIT_DEFAULT 20
#define LT_AN_LIMIT_MIN 1
#define LT_AN_LIMIT_MAX 200

#define LT_AN_DAY_LEN 9 /* "YYYYMMDD" and its NUL */

/* Start of the UTC minute, hour or day holding t_ms. */
int64_t lt_an_minute_start(int64_t t_ms);
int64_t lt_an_hour_start(int64_t t_ms);
int64_t lt_an_day_start(int64_t t_ms);

/* The UTC day of t_ms as "YYYYMMDD" (years clamped to 0000..9999). */
void lt_an_day_name(int64_t t_ms, char out[LT_AN_DAY_LEN]);

/* Parse a day name back to the start of that day (ms).  LT_ESYNTAX unless
 * exactly 8 digits; LT_ERANGE for a date that does not exist. */
enum lt_err lt_an_day_parse(const char *day, int64_t *start_ms);

/* The parameters with their defaults and clamps: `given` false means the
 * parameter was absent (the default applies).  A threshold that is NaN or
 * infinite is taken as absent. */
int64_t lt_an_window_minutes(bool given, int64_t v);
int64_t lt_an_baseline_windows(bool given, int64_t v);
double lt_an_threshold(bool given, double v);
int64_t lt_an_usage_limit(bool given, int64_t v);

struct lt_an_window {
	int64_t start_ms; /* inclusive */
	int64_t end_ms;	  /* exclusive */
};

/* The report window [now - minutes, now); minutes is clamped as above. */
void lt_an_report_window(int64_t now_ms, int64_t minutes, struct lt_an_window *out);

/* The anomaly windows: *current = [now - W, now) and base[k-1] = baseline
 * k for k = 1..n, where W = minutes (clamped) and n the baseline count
 * (clamped; base must hold LT_AN_BASELINE_MAX).  *n_out = the count used. */
void lt_an_anomaly_windows(int64_t now_ms, int64_t minutes, int64_t n, struct lt_an_window *current,
			   struct lt_an_window base[LT_AN_BASELINE_MAX], size_t *n_out);

struct lt_an_anomaly {
	int64_t current;     /* tokens in the current window */
	double baseline_avg; /* mean over the baseline windows */
	bool has_ratio;	     /* false: the baseline mean is 0 (ratio is null) */
	double ratio;	     /* current / baseline_avg, when has_ratio */
	double threshold;    /* the clamped threshold used */
	bool anomaly;	     /* has_ratio && ratio >= threshold */
};

/* Evaluate: current against the n (>= 1) baseline sums base[].  threshold
 * is clamped to >= 1.0 here too (NaN and infinities give the default).
 * LT_EINVAL when n is 0 or base is NULL. */
enum lt_err lt_an_anomaly_eval(int64_t current, const int64_t *base, size_t n, double threshold,
			       struct lt_an_anomaly *out);

#endif
