/*
 * query.h — the read side of analytics.db (issue 7, API.md §3): exact
 * answers over any window, never a sample.
 *
 * Every window is half-open, [start, end) in Unix milliseconds, so an event
 * at a window's end belongs to the next window and no event counts twice.
 * Each call runs inside one read transaction: all the tables it reads are
 * seen at one snapshot (an ingest batch is either wholly in or wholly out,
 * and a day table dropped by retention meanwhile is simply absent).
 *
 * Sources (schema.h):
 *   usage, report, anomalies   the per-day fact tables usage_YYYYMMDD via
 *                              their (provider, at) index; only the tables
 *                              of the days a window touches are read.
 *   cost, user daily summary   rollup_minute via its (minute, provider)
 *                              index: minute resolution, kept longer than
 *                              the day tables.
 *
 * Restriction: a struct lt_aq_scope with user_id set limits every query to
 * rows whose user_id is that user or whose org_id is one of org_ids; it is
 * applied in the SQL (a USER's view).  A NULL scope or a NULL user_id reads
 * everything (ADMIN).
 *
 * Thread safety: none of its own; db is a connection the calling thread
 * holds (a reader pool's).  Statements over fixed SQL are cached on the
 * connection (store/stmt.h); those naming a day table are prepared for the
 * call and finalized before it returns.  Results are written into the
 * caller's structs; nothing returned is allocated for the caller.
 */
#ifndef LT_ANALYTICS_QUERY_H
#define LT_ANALYTICS_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/window.h"
#include "util/err.h"

struct sqlite3;

#define LT_AQ_ID_MAX 128    /* user, org, provider, model ids as read back */
#define LT_AQ_TOP 5	    /* report: top users */
#define LT_AQ_ORGS_MAX 256  /* scope: org ids */
#define LT_AQ_USAGE_MAX 200 /* usage: most items */

/* Whose rows a query may see.  user_id NULL: all rows (ADMIN).  Strings are
 * borrowed for the call. */
struct lt_aq_scope {
	const char *user_id;
	const char *const *org_ids; /* norgs entries, norgs <= LT_AQ_ORGS_MAX */
	size_t norgs;
};

/* ---- usage: the newest events of a provider ---- */

struct lt_aq_event {
	int64_t event_id;
	int64_t at; /* ms */
	char user_id[LT_AQ_ID_MAX + 1];
	int64_t tokens; /* total */
	bool allowed;
};

/* Up to `limit` (1..LT_AQ_USAGE_MAX) newest events of provider, newest
 * first (ties by event id, higher first), into out[] (limit entries);
 * *n = how many.  Day tables are read newest day first, stopping as soon as
 * enough were found. */
enum lt_err lt_aq_usage(struct sqlite3 *db, const struct lt_aq_scope *sc, const char *provider,
			int limit, struct lt_aq_event *out, size_t *n);

/* ---- report: one window's totals ---- */

struct lt_aq_user_total {
	char user_id[LT_AQ_ID_MAX + 1];
	int64_t tokens;
	int64_t events;
};

struct lt_aq_report {
	int64_t start, end; /* the window, [start, end) */
	int64_t events, allowed, denied, tokens;
	double average_tokens; /* tokens / events; 0 when there are none */
	int64_t unique_users;  /* distinct non-empty user ids */
	size_t ntop;
	struct lt_aq_user_total top[LT_AQ_TOP]; /* by tokens desc, then events
						   desc, then user id */
};

/* Totals of provider's events in [start, end).  Events without a user id
 * count in the totals but not as a user.  LT_EINVAL if end <= start. */
enum lt_err lt_aq_report(struct sqlite3 *db, const struct lt_aq_scope *sc, const char *provider,
			 int64_t start, int64_t end, struct lt_aq_report *out);

/* ---- anomalies: the current window against the previous ones ---- */

struct lt_aq_anomaly {
	int64_t start, end;	  /* the current window [now - W, now) */
	int64_t baseline_windows; /* N, as clamped */
	struct lt_an_anomaly a;	  /* current, baseline mean, ratio, threshold,
				     anomaly (window.h's formula) */
};

/* Tokens (total) of provider in the current window [now - W, now) and in
 * each baseline window [now - (k+1)W, now - kW), k = 1..N, where W =
 * window_minutes and N = baseline with window.h's clamps (1..1440, 1..24),
 * then window.h's lt_an_anomaly_eval with threshold (clamped >= 1.0). */
enum lt_err lt_aq_anomalies(struct sqlite3 *db, const struct lt_aq_scope *sc, const char *provider,
			    int64_t now, int64_t window_minutes, int64_t baseline, double threshold,
			    struct lt_aq_anomaly *out);

/* ---- cost: exact sums from the minute rollups ---- */

enum lt_aq_group { LT_AQ_BY_USER, LT_AQ_BY_ORG, LT_AQ_BY_PROVIDER, LT_AQ_BY_MODEL };
enum lt_aq_bucket { LT_AQ_MINUTE, LT_AQ_HOUR, LT_AQ_DAY };

/* "user"/"org"/"provider"/"model", "minute"/"hour"/"day" (exact,
 * lower-case); LT_EINVAL for anything else. */
enum lt_err lt_aq_group_parse(const char *s, enum lt_aq_group *out);
enum lt_err lt_aq_bucket_parse(const char *s, enum lt_aq_bucket *out);
const char *lt_aq_group_name(enum lt_aq_group g);
const char *lt_aq_bucket_name(enum lt_aq_bucket b);
int64_t lt_aq_bucket_ms(enum lt_aq_bucket b);

/* The rollups' resolution is one minute, so a cost range is widened to
 * whole minutes: *rfrom = from rounded down, *rto = to rounded up (an
 * event at any instant of [from, to) is counted; the answer echoes the
 * widened range).  Buckets are aligned to UTC (epoch) minutes, hours, days,
 * so the first and last buckets may cover part of their period only. */
void lt_aq_cost_range(int64_t from, int64_t to, int64_t *rfrom, int64_t *rto);

struct lt_aq_cost_row {
	int64_t bucket_start; /* ms */
	char group[LT_AQ_ID_MAX + 1];
	int64_t cost_micros;
	int64_t requests;
	int64_t tokens; /* total */
};

/* Sums per (bucket, group) of the rollup rows with minute in [from, to)
 * (already whole minutes: see lt_aq_cost_range), optionally only of
 * provider (NULL: all), ordered by bucket then group; row(arg, r) per
 * result row (r valid for the call; returning non-zero stops with
 * LT_ETOOBIG).  At most max_rows rows: one more is LT_ETOOBIG. */
enum lt_err lt_aq_cost(struct sqlite3 *db, const struct lt_aq_scope *sc, int64_t from, int64_t to,
		       enum lt_aq_group g, enum lt_aq_bucket b, const char *provider,
		       size_t max_rows, int (*row)(void *arg, const struct lt_aq_cost_row *r),
		       void *arg);

/* ---- one user's day ---- */

struct lt_aq_daily {
	int64_t requests, allowed, refused_rate, refused_quota, refused_other;
	int64_t input, cached_input, output, total;
	int64_t cost_micros;
	int64_t latency_sum, latency_max;
};

/* user_id's totals over the UTC day starting at day_start (a multiple of
 * LT_AN_MS_DAY, else LT_EINVAL), from the minute rollups, under sc. */
enum lt_err lt_aq_user_daily(struct sqlite3 *db, const struct lt_aq_scope *sc, const char *user_id,
			     int64_t day_start, struct lt_aq_daily *out);

#endif
