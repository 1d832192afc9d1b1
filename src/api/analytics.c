/*
 * analytics.c — the analytics API (API.md §3): health, usage, report,
 * anomalies, cost and a user's daily summary.  Parses and clamps the
 * parameters (window.h's defaults and bounds, the reference's names),
 * resolves the caller's restriction, runs analytics/query.h on a
 * connection borrowed from the server's analytics.db reader pool
 * (srv->analytics_readers) and renders JSON in one buffer.
 *
 * Restriction: ADMIN reads everything; any other principal reads only rows
 * of its own user id or of the orgs it belongs to (read from leaky.db
 * through srv->auth.readers, at most LT_AQ_ORGS_MAX), applied in the SQL.
 *
 * Errors: 400 with a message naming the parameter; 503 when no reader
 * connection can be had or analytics.db fails.  Nothing here is owned past
 * the request; every buffer is released before the handler returns.
 *
 * Reads go through srv->analytics_readers (opened in leakyd.c after the
 * ingest migrated analytics.db).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/query.h"
#include "analytics/render.h"
#include "analytics/window.h"
#include "api/handlers.h"
#include "http/request.h"
#include "server.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define READER_WAIT_MS 2000
#define PARAM_MAX 64
#define PROVIDER_MAX 63
#define REPORT_SAMPLE_DEFAULT 1000 /* `limit` on report: echoed as sampleLimit */
#define REPORT_SAMPLE_MAX 5000
#define COST_RANGE_MAX_DAYS 366
#define COST_ROWS_MAX 100000
#define BODY_MAX (32u << 20)

static int64_t now_ms(const struct lt_req *req)
{
	return lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
}

/* ---- parameters ---- */

/* Optional integer parameter: *given false when absent.  Answers 400 and
 * returns false when present but not an integer. */
static bool param_int(struct lt_req *req, const char *name, bool *given, int64_t *v)
{
	char s[PARAM_MAX], msg[128];
	*given = false;
	*v = 0;
	enum lt_err e = lt_req_query(req, name, s, sizeof s);
	if (e == LT_ENOTFOUND)
		return true;
	char *end = NULL;
	errno = 0;
	long long x = e ? 0 : strtoll(s, &end, 10);
	if (e || !s[0] || *end || errno == ERANGE) {
		snprintf(msg, sizeof msg, "%s must be an integer", name);
		lt_reply_error(req, 400, msg);
		return false;
	}
	*given = true;
	*v = x;
	return true;
}

static bool param_double(struct lt_req *req, const char *name, bool *given, double *v)
{
	char s[PARAM_MAX], msg[128];
	*given = false;
	*v = 0;
	enum lt_err e = lt_req_query(req, name, s, sizeof s);
	if (e == LT_ENOTFOUND)
		return true;
	char *end = NULL;
	errno = 0;
	double x = e ? 0 : strtod(s, &end);
	if (e || !s[0] || *end || errno == ERANGE || !isfinite(x)) {
		snprintf(msg, sizeof msg, "%s must be a number", name);
		lt_reply_error(req, 400, msg);
		return false;
	}
	*given = true;
	*v = x;
	return true;
}

/* The required provider, lower-cased into out. */
static bool param_provider(struct lt_req *req, char out[PROVIDER_MAX + 1])
{
	enum lt_err e = lt_req_query(req, "provider", out, PROVIDER_MAX + 1);
	if (e == LT_ENOTFOUND || (!e && !out[0])) {
		lt_reply_error(req, 400, "provider is required");
		return false;
	}
	for (char *p = out; !e && *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			e = LT_EINVAL;
	}
	if (e) {
		lt_reply_error(req, 400, "invalid provider");
		return false;
	}
	return true;
}

/* A time: ISO-8601 UTC, or Unix milliseconds. */
static bool param_time(struct lt_req *req, const char *name, bool *given, int64_t *ms)
{
	char s[PARAM_MAX], msg[128];
	*given = false;
	enum lt_err e = lt_req_query(req, name, s, sizeof s);
	if (e == LT_ENOTFOUND)
		return true;
	if (!e) {
		size_t n = strlen(s), digits = strspn(s, "0123456789");
		if (n && digits == n && n <= 15) {
			*ms = strtoll(s, NULL, 10);
			*given = true;
			return true;
		}
		int64_t ns;
		if (n && lt_time_parse_iso(s, n, &ns) == LT_OK && ns >= 0) {
			*ms = ns / LT_NS_PER_MS;
			*given = true;
			return true;
		}
	}
	snprintf(msg, sizeof msg,
		 "%s must be an ISO-8601 UTC time (2026-02-05T10:00:00Z) or Unix milliseconds",
		 name);
	lt_reply_error(req, 400, msg);
	return false;
}

/* ---- the caller's restriction ---- */

struct scope {
	struct lt_aq_scope sc;
	char ids[LT_AQ_ORGS_MAX][LT_ID_LEN + 1];
	const char *ptrs[LT_AQ_ORGS_MAX];
	bool full; /* more orgs than fit */
};

static bool add_org(void *arg, const struct lt_membership *m)
{
	struct scope *s = arg;
	if (s->sc.norgs == LT_AQ_ORGS_MAX) {
		s->full = true;
		return false;
	}
	memcpy(s->ids[s->sc.norgs], m->org_id, sizeof s->ids[0]);
	s->ptrs[s->sc.norgs] = s->ids[s->sc.norgs];
	s->sc.norgs++;
	return true;
}

/* ADMIN: no restriction; anyone else: its user id and its orgs.  Answers
 * 503 itself on failure. */
static bool scope_of(struct lt_req *req, struct scope *s)
{
	memset(&s->sc, 0, sizeof s->sc);
	s->full = false;
	if (req->principal.roles & LT_ROLE_ADMIN)
		return true;
	s->sc.user_id = req->principal.user_id;
	s->sc.org_ids = s->ptrs;
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return false;
	}
	enum lt_err e = lt_ident_member_list(db, NULL, req->principal.user_id, add_org, s);
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e) {
		lt_reply_error(req, 503, "storage error");
		return false;
	}
	return true;
}

static bool acquire(struct lt_req *req, struct sqlite3 **db)
{
	if (lt_dbpool_acquire(&req->srv->analytics_readers, READER_WAIT_MS, db) == LT_OK)
		return true;
	lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
	return false;
}

static void release(struct lt_req *req, struct sqlite3 *db)
{
	lt_dbpool_release(&req->srv->analytics_readers, db);
}

/* Reply with b, or 503 on a query error (b released either way). */
static void finish(struct lt_req *req, enum lt_err e, struct lt_buf *b)
{
	if (e == LT_ETOOBIG)
		lt_reply_error(req, 400,
			       "result too large: use a coarser bucket or a shorter range");
	else if (e)
		lt_reply_error(req, 503, "analytics storage error");
	else
		lt_reply_json(req, 200, b, NULL);
	lt_buf_release(b);
}

/* ---- handlers ---- */

void lt_api_analytics_health(struct lt_req *req)
{
	char stack[256];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1024);
	lt_buf_puts(&b, "{\"service\":\"analytics-service\",\"status\":\"ok\",");
	lt_an_json_time(&b, "timestamp", now_ms(req));
	lt_buf_putc(&b, '}');
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_analytics_usage(struct lt_req *req)
{
	char provider[PROVIDER_MAX + 1];
	bool given;
	int64_t limit;
	if (!param_provider(req, provider) || !param_int(req, "limit", &given, &limit))
		return;
	limit = lt_an_usage_limit(given, limit);
	struct scope *s = malloc(sizeof *s);
	struct lt_aq_event *items = calloc((size_t)limit, sizeof *items);
	if (!s || !items) {
		free(s);
		free(items);
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	size_t n = 0;
	struct sqlite3 *db;
	if (!scope_of(req, s) || !acquire(req, &db))
		goto out;
	enum lt_err e = lt_aq_usage(db, &s->sc, provider, (int)limit, items, &n);
	release(req, db);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, BODY_MAX);
	lt_an_json_usage(&b, provider, items, n);
	finish(req, e, &b);
out:
	free(items);
	free(s);
}

void lt_api_analytics_report(struct lt_req *req)
{
	char provider[PROVIDER_MAX + 1];
	bool wgiven, lgiven;
	int64_t minutes, limit;
	if (!param_provider(req, provider) || !param_int(req, "windowMinutes", &wgiven, &minutes) ||
	    !param_int(req, "limit", &lgiven, &limit))
		return;
	limit = !lgiven			    ? REPORT_SAMPLE_DEFAULT
		: limit < 1		    ? 1
		: limit > REPORT_SAMPLE_MAX ? REPORT_SAMPLE_MAX
					    : limit;
	struct lt_an_window w;
	lt_an_report_window(now_ms(req), lt_an_window_minutes(wgiven, minutes), &w);
	struct scope *s = malloc(sizeof *s);
	if (!s) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	struct sqlite3 *db;
	struct lt_aq_report r;
	if (!scope_of(req, s) || !acquire(req, &db)) {
		free(s);
		return;
	}
	enum lt_err e = lt_aq_report(db, &s->sc, provider, w.start_ms, w.end_ms, &r);
	release(req, db);
	free(s);
	char stack[2048];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 16);
	lt_an_json_report(&b, provider, w.start_ms, w.end_ms, &r, limit);
	finish(req, e, &b);
}

void lt_api_analytics_anomalies(struct lt_req *req)
{
	char provider[PROVIDER_MAX + 1];
	bool wg, bg, tg;
	int64_t minutes, nb;
	double threshold;
	if (!param_provider(req, provider) || !param_int(req, "windowMinutes", &wg, &minutes) ||
	    !param_int(req, "baselineWindows", &bg, &nb) ||
	    !param_double(req, "thresholdMultiplier", &tg, &threshold))
		return;
	minutes = lt_an_window_minutes(wg, minutes);
	nb = lt_an_baseline_windows(bg, nb);
	threshold = lt_an_threshold(tg, threshold);
	struct scope *s = malloc(sizeof *s);
	if (!s) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	struct sqlite3 *db;
	struct lt_aq_anomaly a;
	if (!scope_of(req, s) || !acquire(req, &db)) {
		free(s);
		return;
	}
	enum lt_err e =
		lt_aq_anomalies(db, &s->sc, provider, now_ms(req), minutes, nb, threshold, &a);
	release(req, db);
	free(s);
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 14);
	lt_an_json_anomaly(&b, provider, &a);
	finish(req, e, &b);
}

struct cost_ctx {
	struct lt_buf *b;
	size_t n;
	int64_t total;
};

static int put_cost_row(void *arg, const struct lt_aq_cost_row *r)
{
	struct cost_ctx *c = arg;
	lt_an_json_cost_row(c->b, c->n++, r);
	c->total += r->cost_micros;
	return c->b->err ? 1 : 0;
}

void lt_api_analytics_cost(struct lt_req *req)
{
	bool fg, tg;
	int64_t from = 0, to = 0;
	char gs[PARAM_MAX] = "", bs[PARAM_MAX] = "", provider[PROVIDER_MAX + 1];
	bool has_provider =
		lt_req_query(req, "provider", provider, sizeof provider) != LT_ENOTFOUND;
	if ((has_provider && !param_provider(req, provider)) ||
	    !param_time(req, "from", &fg, &from) || !param_time(req, "to", &tg, &to))
		return;
	enum lt_aq_group g;
	enum lt_aq_bucket bk;
	/* lt_req_query empties its buffer when the parameter is absent: put
	 * the defaults back after it */
	enum lt_err qe = lt_req_query(req, "groupBy", gs, sizeof gs);
	if (qe == LT_ENOTFOUND)
		snprintf(gs, sizeof gs, "provider");
	if ((qe && qe != LT_ENOTFOUND) || lt_aq_group_parse(gs, &g)) {
		lt_reply_error(req, 400, "groupBy must be one of user, org, provider, model");
		return;
	}
	qe = lt_req_query(req, "bucket", bs, sizeof bs);
	if (qe == LT_ENOTFOUND)
		snprintf(bs, sizeof bs, "hour");
	if ((qe && qe != LT_ENOTFOUND) || lt_aq_bucket_parse(bs, &bk)) {
		lt_reply_error(req, 400, "bucket must be one of minute, hour, day");
		return;
	}
	if (!tg)
		to = now_ms(req);
	if (!fg)
		from = to - LT_AN_MS_DAY;
	if (from < 0 || from >= to) {
		lt_reply_error(req, 400, "from must be before to");
		return;
	}
	if (to - from > COST_RANGE_MAX_DAYS * LT_AN_MS_DAY) {
		lt_reply_error(req, 400, "the range from..to must not exceed 366 days");
		return;
	}
	int64_t rf, rt;
	lt_aq_cost_range(from, to, &rf, &rt);
	struct scope *s = malloc(sizeof *s);
	if (!s) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	struct sqlite3 *db;
	if (!scope_of(req, s) || !acquire(req, &db)) {
		free(s);
		return;
	}
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, BODY_MAX);
	lt_an_json_cost_open(&b, rf, rt, g, bk, has_provider ? provider : NULL);
	struct cost_ctx c = {&b, 0, 0};
	enum lt_err e = lt_aq_cost(db, &s->sc, rf, rt, g, bk, has_provider ? provider : NULL,
				   COST_ROWS_MAX, put_cost_row, &c);
	release(req, db);
	free(s);
	lt_an_json_cost_close(&b, c.n, c.total);
	finish(req, e, &b);
}

void lt_api_analytics_user_daily(struct lt_req *req)
{
	const char *pv;
	size_t pn;
	char uid[LT_ID_LEN + 1], day[PARAM_MAX];
	if (lt_req_param(req, "userId", &pv, &pn) || !lt_uuid_canonical(pv, pn, uid)) {
		lt_reply_error(req, 400, "invalid userId");
		return;
	}
	enum lt_err qe = lt_req_query(req, "day", day, sizeof day);
	if (qe == LT_ENOTFOUND) {
		lt_reply_error(req, 400, "day is required");
		return;
	}
	int64_t start = 0;
	char compact[LT_AN_DAY_LEN];
	bool ok = !qe && strlen(day) == 10 && day[4] == '-' && day[7] == '-';
	if (ok) {
		memcpy(compact, day, 4);
		memcpy(compact + 4, day + 5, 2);
		memcpy(compact + 6, day + 8, 2);
		compact[8] = '\0';
		ok = lt_an_day_parse(compact, &start) == LT_OK;
	}
	if (!ok) {
		lt_reply_error(req, 400, "day must be a date YYYY-MM-DD");
		return;
	}
	struct scope *s = malloc(sizeof *s);
	if (!s) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	struct sqlite3 *db;
	struct lt_aq_daily d;
	if (!scope_of(req, s) || !acquire(req, &db)) {
		free(s);
		return;
	}
	enum lt_err e = lt_aq_user_daily(db, &s->sc, uid, start, &d);
	release(req, db);
	free(s);
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 14);
	lt_an_json_daily(&b, uid, day, start, &d);
	finish(req, e, &b);
}
