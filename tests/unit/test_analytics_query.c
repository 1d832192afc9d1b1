/*
 * test_analytics_query.c — src/analytics/query.c against a real
 * analytics.db in a temp directory, created and filled by the store's own
 * functions (analytics/store.h: migration, day tables, facts, rollups).
 *
 * The fixture is a deterministic pseudo-random set of events (xorshift,
 * fixed seed) over four hours around a UTC midnight, several users, orgs,
 * providers and models, refusals of every kind, plus events placed exactly
 * on the window edges the tests use.  Each fact gets its own rollup row,
 * so a minute's totals are a SUM over several rows as in production.
 * Every query result is compared with an independent computation over the
 * in-memory event list: report (totals, unique users, top 5), usage
 * (newest first, across the day boundary), anomalies, cost (every group
 * and bucket), a user's day; each also under a USER's restriction (its
 * own rows and its org's).  The anomaly reference cases run end to end on
 * a fresh database: 300 vs 100,100 -> 3.0, anomaly; 150 vs 100 -> 1.5,
 * none; zero baseline -> no ratio; a threshold below 1.0 -> 1.0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/query.h"
#include "analytics/store.h"
#include "store/db.h"
#include "testutil.h"

#define MIN INT64_C(60000)
#define HOUR INT64_C(3600000)
#define DAY INT64_C(86400000)
/* 2026-02-28T22:00:00Z: the events run to 2026-03-01T02:00:00Z */
#define T0 (INT64_C(20512) * DAY + 22 * HOUR)
#define SPAN (4 * HOUR)
#define NRAND 900
#define NEV_MAX 1000

#define U1 "00000000-0000-4000-8000-000000000001"
#define U2 "00000000-0000-4000-8000-000000000002"
#define U3 "00000000-0000-4000-8000-000000000003"
#define U4 "00000000-0000-4000-8000-000000000004"
#define O1 "00000000-0000-4000-8000-0000000000a1"
#define O2 "00000000-0000-4000-8000-0000000000a2"

static const char *const users[] = {U1, U2, U3, U4, ""};
static const char *const orgs[] = {O1, O2, ""};
static const char *const providers[] = {"openai", "gemini"};
static const char *const models[] = {"gpt-4o", "gpt-4o-mini", "gemini-pro"};
static const char *const reasons[] = {"rate_limited", "insufficient_quota", "request_too_large",
				      "provider_failed", "weird"};

struct ev {
	int64_t id, at;
	const char *user, *org, *provider, *model, *reason;
	bool allowed;
	int64_t input, cached, output, reasoning, total, cost, latency;
};

struct fx {
	char dir[TU_PATH_MAX];
	sqlite3 *db;
	struct ev ev[NEV_MAX];
	size_t n;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next_rand(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int64_t pick(int64_t n)
{
	return (int64_t)(next_rand() % (uint64_t)n);
}

static void add_event(struct fx *f, int64_t at, const char *user, const char *org,
		      const char *provider, const char *model, const char *reason, int64_t total)
{
	assert_true(f->n < NEV_MAX);
	struct ev *e = &f->ev[f->n];
	*e = (struct ev){.id = (int64_t)f->n + 1,
			 .at = at,
			 .user = user,
			 .org = org,
			 .provider = provider,
			 .model = model,
			 .reason = reason ? reason : ""};
	e->allowed = !reason || !strcmp(reason, "provider_failed");
	if (e->allowed && !reason) {
		e->input = total / 2;
		e->cached = total / 8;
		e->output = total - e->input;
		e->reasoning = e->output / 3;
		e->total = total;
		e->cost = total * 3 + 1;
	}
	e->latency = 10 + pick(500);
	f->n++;
}

/* Write every event as a fact and one rollup row each, in one transaction. */
static void store_events(struct fx *f)
{
	assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		struct lt_an_fact fa;
		memset(&fa, 0, sizeof fa);
		fa.event_id = (uint64_t)e->id;
		fa.at_ms = e->at;
		snprintf(fa.user_id, sizeof fa.user_id, "%s", e->user);
		snprintf(fa.org_id, sizeof fa.org_id, "%s", e->org);
		snprintf(fa.provider, sizeof fa.provider, "%s", e->provider);
		snprintf(fa.model, sizeof fa.model, "%s", e->model);
		snprintf(fa.reason, sizeof fa.reason, "%s", e->reason);
		fa.allowed = e->allowed;
		fa.input = e->input;
		fa.cached_input = e->cached;
		fa.output = e->output;
		fa.reasoning = e->reasoning;
		fa.total = e->total;
		fa.cost_micros = e->cost;
		fa.latency_ms = e->latency;
		char day[LT_AN_DAY_LEN];
		lt_an_day_name(e->at, day);
		assert_int_equal(lt_an_ensure_day(f->db, day, e->at), LT_OK);
		bool inserted = false;
		assert_int_equal(lt_an_append_fact(f->db, &fa, &inserted), LT_OK);
		assert_true(inserted);
		struct lt_an_rollup r;
		lt_an_rollup_init(&r, &fa);
		assert_int_equal(lt_an_append_rollup(f->db, &r), LT_OK);
	}
	assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

static int setup_empty(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	char err[512] = "";
	if (lt_an_db_open(f->dir, false, 1, 5000, &f->db, err)) {
		fprintf(stderr, "open: %s\n", err);
		tu_rmtree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* The edges used below: report/usage windows and cost ranges. */
#define EDGE_START (T0 + HOUR + 30 * MIN + 1234) /* not on a minute */
#define EDGE_END (T0 + 2 * HOUR + 17 * MIN)	 /* 00:17 on day 2 */

static int setup(void **state)
{
	if (setup_empty(state))
		return -1;
	struct fx *f = *state;
	rng_state = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < NRAND; i++) {
		int64_t r = pick(10);
		const char *reason = r < 7 ? NULL : reasons[pick(5)];
		add_event(f, T0 + pick(SPAN), users[pick(5)], orgs[pick(3)], providers[pick(2)],
			  models[pick(3)], reason, 1 + pick(2000));
	}
	/* Exactly on the edges, and one millisecond either side. */
	int64_t edges[] = {EDGE_START, EDGE_END, 2 * DAY + T0 - 22 * HOUR, T0 + 2 * HOUR};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		for (int d = -1; d <= 1; d++)
			add_event(f, edges[i] + d, U2, O2, "openai", "gpt-4o", NULL, 1000 + d);
	/* Same instant, several events: ties broken by event id. */
	for (int i = 0; i < 3; i++)
		add_event(f, T0 + 3 * HOUR + 59 * MIN, U3, "", "openai", "gpt-4o", NULL, 5 + i);
	store_events(f);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* ---- the independent model ---- */

static bool visible(const struct ev *e, const struct lt_aq_scope *sc)
{
	if (!sc || !sc->user_id)
		return true;
	if (!strcmp(e->user, sc->user_id))
		return true;
	for (size_t i = 0; i < sc->norgs; i++)
		if (!strcmp(e->org, sc->org_ids[i]))
			return true;
	return false;
}

static const char *const user_org1[] = {O1};
static const struct lt_aq_scope scope_u1 = {U1, user_org1, 1}; /* U1, member of O1 */
static const struct lt_aq_scope scope_u4 = {U4, NULL, 0};      /* U4, no org */

struct utot {
	const char *user;
	int64_t tokens, events;
};

static int utot_cmp(const void *a, const void *b)
{
	const struct utot *x = a, *y = b;
	if (x->tokens != y->tokens)
		return x->tokens > y->tokens ? -1 : 1;
	if (x->events != y->events)
		return x->events > y->events ? -1 : 1;
	return strcmp(x->user, y->user);
}

static void check_report(struct fx *f, const struct lt_aq_scope *sc, const char *provider,
			 int64_t start, int64_t end)
{
	struct lt_aq_report r;
	assert_int_equal(lt_aq_report(f->db, sc, provider, start, end, &r), LT_OK);
	int64_t events = 0, allowed = 0, tokens = 0;
	struct utot u[5] = {{U1, 0, 0}, {U2, 0, 0}, {U3, 0, 0}, {U4, 0, 0}, {"", 0, 0}};
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		if (strcmp(e->provider, provider) || e->at < start || e->at >= end ||
		    !visible(e, sc))
			continue;
		events++;
		allowed += e->allowed;
		tokens += e->total;
		for (int k = 0; k < 5; k++)
			if (!strcmp(u[k].user, e->user)) {
				u[k].tokens += e->total;
				u[k].events++;
			}
	}
	qsort(u, 4, sizeof u[0], utot_cmp); /* the four real users; "" excluded */
	int64_t uniq = 0;
	for (int k = 0; k < 4; k++)
		uniq += u[k].events > 0;
	assert_int_equal(r.start, start);
	assert_int_equal(r.end, end);
	assert_int_equal(r.events, events);
	assert_int_equal(r.allowed, allowed);
	assert_int_equal(r.denied, events - allowed);
	assert_int_equal(r.tokens, tokens);
	assert_true(fabs(r.average_tokens - (events ? (double)tokens / (double)events : 0)) < 1e-9);
	assert_int_equal(r.unique_users, uniq);
	assert_int_equal(r.ntop, (size_t)uniq);
	for (size_t k = 0; k < r.ntop; k++) {
		assert_string_equal(r.top[k].user_id, u[k].user);
		assert_int_equal(r.top[k].tokens, u[k].tokens);
		assert_int_equal(r.top[k].events, u[k].events);
	}
}

static void test_report(void **state)
{
	struct fx *f = *state;
	/* The whole span, across midnight, both providers, every scope. */
	const struct lt_aq_scope *scopes[] = {NULL, &scope_u1, &scope_u4};
	for (size_t s = 0; s < 3; s++)
		for (int p = 0; p < 2; p++) {
			check_report(f, scopes[s], providers[p], T0, T0 + SPAN);
			check_report(f, scopes[s], providers[p], EDGE_START, EDGE_END);
			check_report(f, scopes[s], providers[p], T0 + 10 * MIN, T0 + 70 * MIN);
			check_report(f, scopes[s], providers[p], T0 + 2 * HOUR - 1,
				     T0 + 2 * HOUR + 1);
		}
	/* Half-open: the event at start counts, the one at end does not. */
	struct lt_aq_report r;
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", EDGE_START, EDGE_START + 1, &r),
			 LT_OK);
	int64_t at_start = 0;
	for (size_t i = 0; i < f->n; i++)
		at_start += f->ev[i].at == EDGE_START && !strcmp(f->ev[i].provider, "openai");
	assert_true(at_start >= 1);
	assert_int_equal(r.events, at_start);
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", EDGE_END - 1, EDGE_END, &r), LT_OK);
	int64_t before_end = 0;
	for (size_t i = 0; i < f->n; i++)
		before_end += f->ev[i].at == EDGE_END - 1 && !strcmp(f->ev[i].provider, "openai");
	assert_int_equal(r.events, before_end);
	/* Adjacent windows add up to their union: nothing counted twice. */
	struct lt_aq_report a, b, all;
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0, EDGE_END, &a), LT_OK);
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", EDGE_END, T0 + SPAN, &b), LT_OK);
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0, T0 + SPAN, &all), LT_OK);
	assert_int_equal(a.events + b.events, all.events);
	assert_int_equal(a.tokens + b.tokens, all.tokens);
	/* No data, unknown provider, empty window. */
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0 - 10 * DAY, T0 - 9 * DAY, &r),
			 LT_OK);
	assert_int_equal(r.events, 0);
	assert_int_equal(r.ntop, 0);
	assert_int_equal(lt_aq_report(f->db, NULL, "nobody", T0, T0 + SPAN, &r), LT_OK);
	assert_int_equal(r.events, 0);
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0, T0, &r), LT_EINVAL);
}

static int ev_newer(const void *a, const void *b)
{
	const struct ev *x = *(const struct ev *const *)a, *y = *(const struct ev *const *)b;
	if (x->at != y->at)
		return x->at > y->at ? -1 : 1;
	return x->id > y->id ? -1 : 1;
}

static void check_usage(struct fx *f, const struct lt_aq_scope *sc, const char *provider, int limit)
{
	struct lt_aq_event out[LT_AQ_USAGE_MAX];
	size_t n = 0;
	assert_int_equal(lt_aq_usage(f->db, sc, provider, limit, out, &n), LT_OK);
	const struct ev *want[NEV_MAX];
	size_t m = 0;
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->ev[i].provider, provider) && visible(&f->ev[i], sc))
			want[m++] = &f->ev[i];
	qsort(want, m, sizeof want[0], ev_newer);
	size_t expect = m < (size_t)limit ? m : (size_t)limit;
	assert_int_equal(n, expect);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].event_id, want[i]->id);
		assert_int_equal(out[i].at, want[i]->at);
		assert_string_equal(out[i].user_id, want[i]->user);
		assert_int_equal(out[i].tokens, want[i]->total);
		assert_int_equal(out[i].allowed, want[i]->allowed);
	}
}

static void test_usage(void **state)
{
	struct fx *f = *state;
	const struct lt_aq_scope *scopes[] = {NULL, &scope_u1, &scope_u4};
	int limits[] = {1, 3, 20, 200};
	for (size_t s = 0; s < 3; s++)
		for (int p = 0; p < 2; p++)
			for (size_t l = 0; l < 4; l++)
				check_usage(f, scopes[s], providers[p], limits[l]);
	/* U4's ~90 openai events reach back across midnight into day 1. */
	struct lt_aq_event out[LT_AQ_USAGE_MAX];
	size_t n = 0;
	assert_int_equal(lt_aq_usage(f->db, &scope_u4, "openai", 200, out, &n), LT_OK);
	assert_true(n > 1 && n < 200);
	assert_true(out[0].at >= T0 + 2 * HOUR && out[n - 1].at < T0 + 2 * HOUR);
	assert_int_equal(lt_aq_usage(f->db, NULL, "nobody", 20, out, &n), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(lt_aq_usage(f->db, NULL, "openai", 0, out, &n), LT_EINVAL);
	assert_int_equal(lt_aq_usage(f->db, NULL, "openai", 201, out, &n), LT_EINVAL);
}

static void check_anomaly(struct fx *f, const struct lt_aq_scope *sc, const char *provider,
			  int64_t now, int64_t minutes, int64_t nb)
{
	struct lt_aq_anomaly a;
	assert_int_equal(lt_aq_anomalies(f->db, sc, provider, now, minutes, nb, 2.0, &a), LT_OK);
	int64_t w = minutes * MIN, sums[25] = {0};
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		if (strcmp(e->provider, provider) || !visible(e, sc))
			continue;
		for (int64_t k = 0; k <= nb; k++)
			if (e->at >= now - (k + 1) * w && e->at < now - k * w)
				sums[k] += e->total;
	}
	double mean = 0;
	for (int64_t k = 1; k <= nb; k++)
		mean += (double)sums[k];
	mean /= (double)nb;
	assert_int_equal(a.start, now - w);
	assert_int_equal(a.end, now);
	assert_int_equal(a.baseline_windows, nb);
	assert_int_equal(a.a.current, sums[0]);
	assert_true(fabs(a.a.baseline_avg - mean) < 1e-6);
	assert_int_equal(a.a.has_ratio, mean != 0);
	if (mean != 0) {
		assert_true(fabs(a.a.ratio - (double)sums[0] / mean) < 1e-9);
		assert_int_equal(a.a.anomaly, (double)sums[0] / mean >= 2.0);
	}
}

static void test_anomalies_fixture(void **state)
{
	struct fx *f = *state;
	const struct lt_aq_scope *scopes[] = {NULL, &scope_u1, &scope_u4};
	for (size_t s = 0; s < 3; s++)
		for (int p = 0; p < 2; p++) {
			check_anomaly(f, scopes[s], providers[p], EDGE_END, 7, 4);
			check_anomaly(f, scopes[s], providers[p], T0 + SPAN, 60, 3);
			check_anomaly(f, scopes[s], providers[p], EDGE_START, 1, 24);
			check_anomaly(f, scopes[s], providers[p], T0 + 2 * HOUR, 13, 9);
		}
}

/* The reference cases, end to end on a fresh database. */
static void test_anomalies_reference(void **state)
{
	struct fx *f = *state;
	int64_t now = T0 + 3 * HOUR; /* 01:00 on day 2: windows cross midnight */
	/* current [now-60m, now): 300, on its first instant; baselines 100 each,
	 * also on their first instants (now - 2W belongs to baseline 2). */
	add_event(f, now - 60 * MIN, U1, "", "ref1", "q", NULL, 200);
	add_event(f, now - 1, U2, "", "ref1", "q", NULL, 100);
	add_event(f, now, U2, "", "ref1", "q", NULL, 5000); /* not yet: the end is open */
	add_event(f, now - 120 * MIN, U1, "", "ref1", "q", NULL, 100);
	add_event(f, now - 180 * MIN, U1, "", "ref1", "q", NULL, 60);
	add_event(f, now - 121 * MIN, U1, "", "ref1", "q", NULL, 40);
	add_event(f, now - 181 * MIN, U1, "", "ref1", "q", NULL, 7777); /* before baseline 2 */
	/* 150 vs 100, one baseline window. */
	int64_t n2 = T0 + 10 * HOUR;
	add_event(f, n2 - 10 * MIN, U3, "", "ref2", "m", NULL, 150);
	add_event(f, n2 - 70 * MIN, U3, "", "ref2", "m", NULL, 100);
	/* Zero baseline. */
	int64_t n3 = T0 + 20 * HOUR;
	add_event(f, n3 - 1, U3, "", "ref3", "m", NULL, 999);
	store_events(f);
	struct lt_aq_anomaly a;
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref1", now, 60, 2, 2.0, &a), LT_OK);
	assert_int_equal(a.a.current, 300);
	assert_true(fabs(a.a.baseline_avg - 100.0) < 1e-9);
	assert_true(a.a.has_ratio);
	assert_true(fabs(a.a.ratio - 3.0) < 1e-9);
	assert_true(a.a.anomaly);
	assert_true(fabs(a.a.threshold - 2.0) < 1e-12);
	/* One millisecond later the 5000 is current and the 200 is baseline. */
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref1", now + 1, 60, 2, 2.0, &a), LT_OK);
	assert_int_equal(a.a.current, 5100);
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref2", n2, 60, 1, 2.0, &a), LT_OK);
	assert_int_equal(a.a.current, 150);
	assert_true(a.a.has_ratio);
	assert_true(fabs(a.a.ratio - 1.5) < 1e-9);
	assert_false(a.a.anomaly);
	/* Threshold below 1.0 clamps to 1.0: then 1.5 is an anomaly. */
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref2", n2, 60, 1, 0.5, &a), LT_OK);
	assert_true(fabs(a.a.threshold - 1.0) < 1e-12);
	assert_true(a.a.anomaly);
	/* Zero baseline: no ratio, no anomaly. */
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref3", n3, 60, 4, 2.0, &a), LT_OK);
	assert_int_equal(a.a.current, 999);
	assert_false(a.a.has_ratio);
	assert_false(a.a.anomaly);
	assert_int_equal(a.baseline_windows, 4);
	/* Clamps: 0 minutes -> 1, 99 baselines -> 24. */
	assert_int_equal(lt_aq_anomalies(f->db, NULL, "ref3", n3, 0, 99, 2.0, &a), LT_OK);
	assert_int_equal(a.end - a.start, MIN);
	assert_int_equal(a.baseline_windows, 24);
	assert_int_equal(a.a.current, 999);
}

/* ---- cost ---- */

struct cost_rows {
	struct lt_aq_cost_row r[4096];
	size_t n;
};

static int collect(void *arg, const struct lt_aq_cost_row *r)
{
	struct cost_rows *c = arg;
	if (c->n == sizeof c->r / sizeof c->r[0])
		return 1;
	c->r[c->n++] = *r;
	return 0;
}

static const char *group_of(const struct ev *e, enum lt_aq_group g)
{
	return g == LT_AQ_BY_USER	? e->user
	       : g == LT_AQ_BY_ORG	? e->org
	       : g == LT_AQ_BY_PROVIDER ? e->provider
					: e->model;
}

static void check_cost(struct fx *f, const struct lt_aq_scope *sc, int64_t from, int64_t to,
		       enum lt_aq_group g, enum lt_aq_bucket b, const char *provider)
{
	static struct cost_rows c;
	c.n = 0;
	int64_t rf, rt;
	lt_aq_cost_range(from, to, &rf, &rt);
	assert_int_equal(lt_aq_cost(f->db, sc, rf, rt, g, b, provider, 100000, collect, &c), LT_OK);
	int64_t bms = lt_aq_bucket_ms(b);
	/* Every row equals the model's sum for its (bucket, group); rows are
	 * ordered; and they cover every event in range (the totals match). */
	int64_t cost_all = 0, req_all = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		if (e->at >= rf && e->at < rt && visible(e, sc) &&
		    (!provider || !strcmp(provider, e->provider))) {
			cost_all += e->cost;
			req_all++;
		}
	}
	int64_t cost_rows = 0, req_rows = 0;
	for (size_t k = 0; k < c.n; k++) {
		const struct lt_aq_cost_row *r = &c.r[k];
		if (k) {
			const struct lt_aq_cost_row *p = &c.r[k - 1];
			assert_true(p->bucket_start < r->bucket_start ||
				    (p->bucket_start == r->bucket_start &&
				     strcmp(p->group, r->group) < 0));
		}
		assert_int_equal(r->bucket_start % bms, 0);
		int64_t cost = 0, req = 0, tok = 0;
		for (size_t i = 0; i < f->n; i++) {
			const struct ev *e = &f->ev[i];
			int64_t bs = e->at - e->at % bms;
			if (e->at >= rf && e->at < rt && visible(e, sc) &&
			    (!provider || !strcmp(provider, e->provider)) &&
			    bs == r->bucket_start && !strcmp(group_of(e, g), r->group)) {
				cost += e->cost;
				req++;
				tok += e->total;
			}
		}
		assert_true(req > 0);
		assert_int_equal(r->cost_micros, cost);
		assert_int_equal(r->requests, req);
		assert_int_equal(r->tokens, tok);
		cost_rows += r->cost_micros;
		req_rows += r->requests;
	}
	assert_int_equal(cost_rows, cost_all);
	assert_int_equal(req_rows, req_all);
}

static void test_cost(void **state)
{
	struct fx *f = *state;
	const struct lt_aq_scope *scopes[] = {NULL, &scope_u1, &scope_u4};
	for (size_t s = 0; s < 3; s++)
		for (int g = 0; g < 4; g++)
			for (int b = 0; b < 3; b++) {
				check_cost(f, scopes[s], T0, T0 + SPAN, g, b, NULL);
				check_cost(f, scopes[s], EDGE_START, EDGE_END, g, b, NULL);
				check_cost(f, scopes[s], EDGE_START, EDGE_END, g, b, "gemini");
			}
	/* Rounding: from down, to up, to whole minutes; exact minutes stay. */
	int64_t rf, rt;
	lt_aq_cost_range(T0 + 1, T0 + MIN + 1, &rf, &rt);
	assert_int_equal(rf, T0);
	assert_int_equal(rt, T0 + 2 * MIN);
	lt_aq_cost_range(T0, T0 + MIN, &rf, &rt);
	assert_int_equal(rf, T0);
	assert_int_equal(rt, T0 + MIN);
	/* Half-open on whole minutes: [m, m+1min) holds the minute m only. */
	static struct cost_rows c;
	c.n = 0;
	int64_t m = lt_an_minute_start(EDGE_END); /* events at EDGE_END - 1 are the minute before */
	assert_int_equal(lt_aq_cost(f->db, NULL, m, m + MIN, LT_AQ_BY_PROVIDER, LT_AQ_MINUTE, NULL,
				    1000, collect, &c),
			 LT_OK);
	for (size_t k = 0; k < c.n; k++)
		assert_int_equal(c.r[k].bucket_start, m);
	/* The row cap. */
	c.n = 0;
	assert_int_equal(lt_aq_cost(f->db, NULL, T0, T0 + SPAN, LT_AQ_BY_USER, LT_AQ_MINUTE, NULL,
				    3, collect, &c),
			 LT_ETOOBIG);
	/* Names. */
	enum lt_aq_group g;
	enum lt_aq_bucket b;
	assert_int_equal(lt_aq_group_parse("org", &g), LT_OK);
	assert_int_equal(g, LT_AQ_BY_ORG);
	assert_int_equal(lt_aq_group_parse("ORG", &g), LT_EINVAL);
	assert_int_equal(lt_aq_group_parse("team", &g), LT_EINVAL);
	assert_int_equal(lt_aq_bucket_parse("hour", &b), LT_OK);
	assert_int_equal(b, LT_AQ_HOUR);
	assert_int_equal(lt_aq_bucket_parse("week", &b), LT_EINVAL);
	assert_string_equal(lt_aq_group_name(LT_AQ_BY_MODEL), "model");
	assert_string_equal(lt_aq_bucket_name(LT_AQ_DAY), "day");
	assert_int_equal(
		lt_aq_cost(f->db, NULL, T0, T0, LT_AQ_BY_USER, LT_AQ_DAY, NULL, 10, collect, &c),
		LT_EINVAL);
}

static void check_daily(struct fx *f, const struct lt_aq_scope *sc, const char *user, int64_t day)
{
	struct lt_aq_daily d;
	assert_int_equal(lt_aq_user_daily(f->db, sc, user, day, &d), LT_OK);
	struct lt_aq_daily w = {0};
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		if (strcmp(e->user, user) || e->at < day || e->at >= day + DAY || !visible(e, sc))
			continue;
		w.requests++;
		w.allowed += e->allowed;
		if (!e->allowed) {
			if (!strcmp(e->reason, "rate_limited") ||
			    !strcmp(e->reason, "request_too_large"))
				w.refused_rate++;
			else if (!strcmp(e->reason, "insufficient_quota"))
				w.refused_quota++;
			else
				w.refused_other++;
		}
		w.input += e->input;
		w.cached_input += e->cached;
		w.output += e->output;
		w.total += e->total;
		w.cost_micros += e->cost;
		w.latency_sum += e->latency;
		if (e->latency > w.latency_max)
			w.latency_max = e->latency;
	}
	assert_int_equal(d.requests, w.requests);
	assert_int_equal(d.allowed, w.allowed);
	assert_int_equal(d.refused_rate, w.refused_rate);
	assert_int_equal(d.refused_quota, w.refused_quota);
	assert_int_equal(d.refused_other, w.refused_other);
	assert_int_equal(d.input, w.input);
	assert_int_equal(d.cached_input, w.cached_input);
	assert_int_equal(d.output, w.output);
	assert_int_equal(d.total, w.total);
	assert_int_equal(d.cost_micros, w.cost_micros);
	assert_int_equal(d.latency_sum, w.latency_sum);
	assert_int_equal(d.latency_max, w.latency_max);
}

static void test_daily(void **state)
{
	struct fx *f = *state;
	int64_t d1 = lt_an_day_start(T0), d2 = d1 + DAY;
	const char *us[] = {U1, U2, U3, U4};
	for (int u = 0; u < 4; u++) {
		check_daily(f, NULL, us[u], d1);
		check_daily(f, NULL, us[u], d2);
		check_daily(f, &scope_u1, us[u], d2); /* U1 sees others' O1 rows only */
		check_daily(f, &scope_u4, us[u], d1); /* U4 sees only its own */
	}
	/* The restriction is not a no-op: U4 sees nothing of U2's day. */
	struct lt_aq_daily d;
	assert_int_equal(lt_aq_user_daily(f->db, NULL, U2, d2, &d), LT_OK);
	assert_true(d.requests > 0);
	assert_int_equal(lt_aq_user_daily(f->db, &scope_u4, U2, d2, &d), LT_OK);
	assert_int_equal(d.requests, 0);
	assert_int_equal(lt_aq_user_daily(f->db, NULL, U1, d1 + 1, &d), LT_EINVAL);
}

/* The restriction really filters: U4 (no org) sees a strict subset. */
static void test_scope_subset(void **state)
{
	struct fx *f = *state;
	struct lt_aq_report all, u1, u4;
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0, T0 + SPAN, &all), LT_OK);
	assert_int_equal(lt_aq_report(f->db, &scope_u1, "openai", T0, T0 + SPAN, &u1), LT_OK);
	assert_int_equal(lt_aq_report(f->db, &scope_u4, "openai", T0, T0 + SPAN, &u4), LT_OK);
	assert_true(u4.events > 0 && u4.events < u1.events && u1.events < all.events);
	assert_int_equal(u4.unique_users, 1);
	assert_string_equal(u4.top[0].user_id, U4);
	/* Quotes in an org id are data, not SQL or JSON syntax. */
	const char *weird[] = {"\"]) OR 1=1 --", O2};
	struct lt_aq_scope sc = {U4, weird, 2};
	struct lt_aq_report w;
	assert_int_equal(lt_aq_report(f->db, &sc, "openai", T0, T0 + SPAN, &w), LT_OK);
	int64_t want = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct ev *e = &f->ev[i];
		want += !strcmp(e->provider, "openai") && e->at >= T0 && e->at < T0 + SPAN &&
			(!strcmp(e->user, U4) || !strcmp(e->org, O2));
	}
	assert_int_equal(w.events, want);
	struct lt_aq_scope too_many = {U4, weird, LT_AQ_ORGS_MAX + 1};
	assert_int_equal(lt_aq_report(f->db, &too_many, "openai", T0, T0 + SPAN, &w), LT_EINVAL);
}

/* A day table dropped by retention is simply absent from the answers. */
static void test_retention_gap(void **state)
{
	struct fx *f = *state;
	size_t dropped = 0;
	/* keep 1 day at the end of day 2: day 1 (whole, before) is dropped. */
	int64_t d2 = lt_an_day_start(T0) + DAY;
	assert_int_equal(lt_an_retain(f->db, d2 + DAY, 1, &dropped), LT_OK);
	assert_int_equal(dropped, 1);
	struct lt_aq_report r;
	assert_int_equal(lt_aq_report(f->db, NULL, "openai", T0, T0 + SPAN, &r), LT_OK);
	int64_t want = 0;
	for (size_t i = 0; i < f->n; i++)
		want += !strcmp(f->ev[i].provider, "openai") && f->ev[i].at >= d2 &&
			f->ev[i].at < T0 + SPAN;
	assert_int_equal(r.events, want);
	struct lt_aq_event out[LT_AQ_USAGE_MAX];
	size_t n = 0;
	assert_int_equal(lt_aq_usage(f->db, NULL, "openai", 200, out, &n), LT_OK);
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++)
		assert_true(out[i].at >= d2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anomalies_fixture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anomalies_reference, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_cost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daily, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_subset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_gap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
