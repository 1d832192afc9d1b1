/*
 * test_analytics_store.c — src/analytics/store.c and ingest.c with real
 * files: a real event log (token-usage events written with
 * lt_evlog_append, payloads built with lt_usage_event_json) ingested into a
 * real analytics.db in a temp directory.
 *
 * Covered: migration (user_version, tables, reopen, read-only open); the
 * strict payload parser (accepts what lt_usage_event_json writes, refuses
 * wrong types, bad times, inconsistent tokens, oversized strings, ignores
 * unknown members); ingest of events spread over minutes, hours and a UTC
 * day boundary, in small batches, checked against sums computed here from
 * the generated events (facts per day table, rollups per minute, provider
 * and refusal class); unparseable events skipped and counted; an event id
 * seen twice counted once; a crash before commit (the before_commit seam
 * fails the transaction: nothing applied, the offset unchanged; reopen
 * and continue: nothing counted twice); rebuild (everything reset in one
 * transaction, the same sums after re-ingest); retention (only old day
 * tables dropped, rollups kept); the thread (start, kick, catch up, stop).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "analytics/ingest.h"
#include "analytics/store.h"
#include "analytics/window.h"
#include "conf/config.h"
#include "events/consumer.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "events/usage_event.h"
#include "store/db.h"
#include "util/buf.h"
#include "testutil.h"

/* 2026-11-23T22:00:00Z: two hours before a UTC midnight */
#define BASE INT64_C(1795471200000)
#define MIDNIGHT (BASE + 2 * LT_AN_MS_HOUR)
#define NEV 700
#define STEP_MS 31007 /* 700 events span ~6 h: many minutes, hours, 2 days */

struct gen {
	int64_t at;
	uint64_t id;
	char user[16], org[16], provider[16], model[24];
	bool allowed;
	const char *reason;
	int64_t input, cached, output, reasoning, cost, latency;
};

struct fx {
	char dir[TU_PATH_MAX];
	char events[TU_PATH_MAX];
	struct lt_evlog *log;
	sqlite3 *db;
	struct gen ev[NEV];
};

static struct lt_evlog *open_log(const char *dir)
{
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.fsync = false;
	struct lt_evlog *l = NULL;
	char why[256] = "";
	if (lt_evlog_open(dir, &o, &l, NULL, why, sizeof why)) {
		fprintf(stderr, "evlog open: %s\n", why);
		return NULL;
	}
	return l;
}

static sqlite3 *open_db(const char *dir)
{
	sqlite3 *db = NULL;
	char err[LT_DB_ERR_MAX] = "";
	if (lt_an_db_open(dir, false, LT_SYNC_NORMAL, 10000, &db, err)) {
		fprintf(stderr, "analytics.db: %s\n", err);
		return NULL;
	}
	return db;
}

/* A deterministic generator (not the C library's). */
static uint64_t lcg(uint64_t *s)
{
	*s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
	return *s >> 33;
}

static void generate(struct fx *f)
{
	static const char *reasons[] = {"rate_limited", "insufficient_quota", "request_too_large",
					"provider_failed", "something_else"};
	uint64_t s = 42;
	for (int i = 0; i < NEV; i++) {
		struct gen *g = &f->ev[i];
		memset(g, 0, sizeof *g);
		g->at = BASE + (int64_t)i * STEP_MS + (int64_t)(lcg(&s) % 1000);
		g->id = (uint64_t)i + 1;
		snprintf(g->user, sizeof g->user, "u%d", (int)(lcg(&s) % 5));
		if (lcg(&s) % 2)
			snprintf(g->org, sizeof g->org, "o%d", (int)(lcg(&s) % 2));
		snprintf(g->provider, sizeof g->provider, "%s", lcg(&s) % 3 ? "openai" : "gemini");
		if (lcg(&s) % 4)
			snprintf(g->model, sizeof g->model, "m%d", (int)(lcg(&s) % 3));
		g->allowed = lcg(&s) % 5 != 0;
		if (!g->allowed) {
			g->reason = reasons[lcg(&s) % 5];
			if (!strcmp(g->reason, "provider_failed"))
				g->allowed = true; /* admitted, then the call failed */
		}
		if (g->allowed && !g->reason) {
			g->input = 1 + (int64_t)(lcg(&s) % 5000);
			g->cached = g->input / 3;
			g->output = (int64_t)(lcg(&s) % 3000);
			g->reasoning = g->output / 4;
			g->cost = g->input * 3 + g->output * 11;
		}
		g->latency = (int64_t)(lcg(&s) % 20000);
	}
}

static void payload_of(const struct gen *g, struct lt_buf *b)
{
	struct lt_usage_event ev = {0};
	ev.time_ms = g->at;
	ev.correlation_id = "corr";
	ev.user_id = g->user;
	ev.org_id = g->org[0] ? g->org : NULL;
	ev.key_id = g->id % 3 ? NULL : "k1";
	ev.provider = g->provider;
	ev.model = g->model[0] ? g->model : NULL;
	ev.endpoint = "chat";
	ev.allowed = g->allowed;
	ev.reason = g->reason;
	ev.outcome = g->reason && !strcmp(g->reason, "provider_failed") ? "timeout" : NULL;
	ev.tokens.input = g->input;
	ev.tokens.cached_input = g->cached;
	ev.tokens.output = g->output;
	ev.tokens.reasoning = g->reasoning;
	ev.cost_micros = g->cost;
	ev.requested_tokens = 100;
	ev.latency_ms = g->latency;
	lt_buf_reset(b);
	lt_usage_event_json(&ev, b);
	assert_int_equal(b->err, LT_OK);
}

/* Append one raw payload as a token-usage event. */
static void append_raw(struct lt_evlog *l, uint64_t id, int64_t at, const char *payload)
{
	struct lt_event ev = {0};
	ev.time_ms = at;
	ev.event_id = id;
	ev.topic = LT_TOPIC_USAGE;
	ev.topic_len = strlen(LT_TOPIC_USAGE);
	ev.type = LT_USAGE_EVENT_TYPE;
	ev.type_len = strlen(LT_USAGE_EVENT_TYPE);
	ev.key = "u";
	ev.key_len = 1;
	ev.payload = payload;
	ev.payload_len = strlen(payload);
	assert_int_equal(lt_evlog_append(l, &ev, 1), LT_OK);
}

/* Append generated events [lo, hi). */
static void append_gen(struct fx *f, int lo, int hi)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 65536);
	for (int i = lo; i < hi; i++) {
		payload_of(&f->ev[i], &b);
		append_raw(f->log, f->ev[i].id, f->ev[i].at, b.data);
	}
	lt_buf_release(&b);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->events, f->dir, "events");
	f->log = open_log(f->events);
	f->db = open_db(f->dir);
	if (!f->log || !f->db)
		return -1;
	generate(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_evlog_close(f->log);
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static int64_t q64(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q64(sqlite3 *db, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void ingest_init(struct lt_an_ingest *g, struct fx *f, size_t batch)
{
	memset(g, 0, sizeof *g);
	g->evlog = f->log;
	g->db = f->db;
	g->batch = batch;
	assert_int_equal(lt_an_ingest_init(g), LT_OK);
}

static uint64_t offset_of(sqlite3 *db)
{
	uint64_t next = 0;
	enum lt_err e = lt_consumer_get(db, LT_ANALYTICS_CONSUMER, LT_TOPIC_USAGE, &next);
	assert_true(e == LT_OK || e == LT_ENOTFOUND);
	return next;
}

/* ---- independent sums ---- */

static bool in_range(const struct gen *g, int64_t lo, int64_t hi)
{
	return g->at >= lo && g->at < hi;
}

/* An aggregate over one minute's rollup rows of one provider. */
static int64_t rsum(sqlite3 *db, const char *agg, int64_t m, const char *prov)
{
	return q64(db, "SELECT %s FROM rollup_minute WHERE minute = %lld AND provider = '%s'", agg,
		   (long long)m, prov);
}

/* Check facts and rollups against the generated events [0, n). */
static void check_sums(struct fx *f, int n)
{
	sqlite3 *db = f->db;
	/* day tables: one per UTC day the events touch */
	char d1[LT_AN_DAY_LEN], d2[LT_AN_DAY_LEN];
	lt_an_day_name(MIDNIGHT - 1, d1);
	lt_an_day_name(MIDNIGHT, d2);
	int64_t want_days = (f->ev[0].at < MIDNIGHT) + (f->ev[n - 1].at >= MIDNIGHT);
	assert_int_equal(q64(db, "SELECT count(*) FROM days"), want_days);
	const char *dn[2] = {d1, d2};
	int64_t lo[2] = {MIDNIGHT - LT_AN_MS_DAY, MIDNIGHT};
	for (int d = 0; d < 2; d++) {
		int64_t cnt = 0, tot = 0, cost = 0, cached = 0, reas = 0, lat = 0, allowed = 0;
		for (int i = 0; i < n; i++) {
			const struct gen *g = &f->ev[i];
			if (!in_range(g, lo[d], lo[d] + LT_AN_MS_DAY))
				continue;
			cnt++;
			tot += g->input + g->output;
			cost += g->cost;
			cached += g->cached;
			reas += g->reasoning;
			lat += g->latency;
			allowed += g->allowed;
		}
		if (!cnt)
			continue;
		assert_int_equal(q64(db, "SELECT count(*) FROM usage_%s", dn[d]), cnt);
		assert_int_equal(q64(db, "SELECT total(total) FROM usage_%s", dn[d]), tot);
		assert_int_equal(q64(db, "SELECT total(cost_micros) FROM usage_%s", dn[d]), cost);
		assert_int_equal(q64(db, "SELECT total(cached_input) FROM usage_%s", dn[d]),
				 cached);
		assert_int_equal(q64(db, "SELECT total(reasoning) FROM usage_%s", dn[d]), reas);
		assert_int_equal(q64(db, "SELECT total(latency_ms) FROM usage_%s", dn[d]), lat);
		assert_int_equal(q64(db, "SELECT total(allowed) FROM usage_%s", dn[d]), allowed);
		/* every fact is in its own day */
		assert_int_equal(q64(db,
				     "SELECT count(*) FROM usage_%s WHERE at < %lld OR at >= %lld",
				     dn[d], (long long)lo[d], (long long)(lo[d] + LT_AN_MS_DAY)),
				 0);
	}
	/* rollups: per minute and provider, refusal classes, max latency */
	int64_t first = lt_an_minute_start(f->ev[0].at), last = lt_an_minute_start(f->ev[n - 1].at);
	int64_t all_req = 0;
	for (int64_t m = first; m <= last; m += LT_AN_MS_MINUTE) {
		for (int p = 0; p < 2; p++) {
			const char *prov = p ? "gemini" : "openai";
			int64_t req = 0, tot = 0, rr = 0, rq = 0, ro = 0, al = 0, lmax = 0,
				cost = 0;
			for (int i = 0; i < n; i++) {
				const struct gen *g = &f->ev[i];
				if (!in_range(g, m, m + LT_AN_MS_MINUTE) ||
				    strcmp(g->provider, prov))
					continue;
				req++;
				tot += g->input + g->output;
				cost += g->cost;
				if (g->allowed)
					al++;
				else if (!strcmp(g->reason, "insufficient_quota"))
					rq++;
				else if (!strcmp(g->reason, "rate_limited") ||
					 !strcmp(g->reason, "request_too_large"))
					rr++;
				else
					ro++;
				if (g->latency > lmax)
					lmax = g->latency;
			}
			all_req += req;
			assert_int_equal(rsum(db, "total(requests)", m, prov), req);
			assert_int_equal(rsum(db, "total(total)", m, prov), tot);
			assert_int_equal(rsum(db, "total(cost_micros)", m, prov), cost);
			assert_int_equal(rsum(db, "total(allowed)", m, prov), al);
			assert_int_equal(rsum(db, "total(refused_rate)", m, prov), rr);
			assert_int_equal(rsum(db, "total(refused_quota)", m, prov), rq);
			assert_int_equal(rsum(db, "total(refused_other)", m, prov), ro);
			assert_int_equal(rsum(db, "coalesce(max(latency_max), 0)", m, prov), lmax);
		}
	}
	assert_int_equal(all_req, n);
	assert_int_equal(q64(db, "SELECT total(requests) FROM rollup_minute"), n);
	/* per user over the whole range: rollups agree with the facts */
	for (int u = 0; u < 5; u++) {
		int64_t tot = 0;
		char user[16];
		snprintf(user, sizeof user, "u%d", u);
		for (int i = 0; i < n; i++)
			if (!strcmp(f->ev[i].user, user))
				tot += f->ev[i].input + f->ev[i].output;
		assert_int_equal(q64(db,
				     "SELECT total(total) FROM rollup_minute WHERE user_id = '%s'",
				     user),
				 tot);
	}
}

/* ---- tests ---- */

static void test_open_migrate(void **state)
{
	struct fx *f = *state;
	int v = -1;
	assert_int_equal(lt_db_user_version(f->db, &v), LT_OK);
	assert_int_equal(v, 1);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN ('meta', "
				    "'days', 'rollup_minute', 'consumer_offsets', "
				    "'rollup_minute_t')"),
			 5);
	assert_int_equal(q64(f->db, "PRAGMA user_version"), 1);
	/* reopen: nothing to do, and a read-only open works */
	sqlite3 *db2 = open_db(f->dir);
	assert_non_null(db2);
	lt_db_close(db2);
	char err[LT_DB_ERR_MAX];
	assert_int_equal(lt_an_db_open(f->dir, true, LT_SYNC_NORMAL, 1000, &db2, err), LT_OK);
	assert_int_equal(q64(db2, "SELECT count(*) FROM days"), 0);
	lt_db_close(db2);
	/* a newer file is refused */
	assert_int_equal(lt_db_exec(f->db, "PRAGMA user_version = 9", NULL), LT_OK);
	assert_int_equal(lt_an_db_open(f->dir, false, LT_SYNC_NORMAL, 1000, &db2, err), LT_ESCHEMA);
	assert_null(db2);
	assert_int_equal(lt_an_db_open(f->dir, true, LT_SYNC_NORMAL, 1000, &db2, err), LT_ESCHEMA);
	assert_int_equal(lt_db_exec(f->db, "PRAGMA user_version = 1", NULL), LT_OK);
	/* day tables: a bad name is refused before any SQL */
	assert_int_equal(lt_an_ensure_day(f->db, "2026x123", 0), LT_EINVAL);
	assert_int_equal(lt_an_ensure_day(f->db, "20261123; DROP TABLE days", 0), LT_EINVAL);
	assert_int_equal(lt_an_ensure_day(f->db, "20261123", 5), LT_OK);
	assert_int_equal(lt_an_ensure_day(f->db, "20261123", 6), LT_OK);
	assert_int_equal(q64(f->db, "SELECT created_at FROM days"), 5);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN "
				    "('usage_20261123', 'usage_20261123_pt')"),
			 2);
}

static void test_parse(void **state)
{
	struct fx *f = *state;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 65536);
	struct lt_an_fact fa;
	for (int i = 0; i < 50; i++) {
		const struct gen *g = &f->ev[i];
		payload_of(g, &b);
		assert_int_equal(lt_an_fact_parse(b.data, b.len, 7, &fa), LT_OK);
		assert_int_equal(fa.event_id, 7);
		assert_int_equal(fa.at_ms, g->at);
		assert_string_equal(fa.user_id, g->user);
		assert_string_equal(fa.org_id, g->org);
		assert_string_equal(fa.provider, g->provider);
		assert_string_equal(fa.model, g->model);
		assert_string_equal(fa.reason, g->reason ? g->reason : "");
		assert_int_equal(fa.allowed, g->allowed);
		assert_int_equal(fa.input, g->input);
		assert_int_equal(fa.cached_input, g->cached);
		assert_int_equal(fa.output, g->output);
		assert_int_equal(fa.reasoning, g->reasoning);
		assert_int_equal(fa.total, g->input + g->output);
		assert_int_equal(fa.cost_micros, g->cost);
		assert_int_equal(fa.latency_ms, g->latency);
		assert_string_equal(fa.correlation_id, "corr");
		assert_string_equal(fa.endpoint, "chat");
	}
	lt_buf_release(&b);
#define OKBODY "\"type\":\"TOKEN_USAGE\",\"time\":\"2026-11-23T10:00:00.000Z\",\"allowed\":true,"
	struct {
		const char *json;
		enum lt_err want;
	} cases[] = {
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2}}", LT_OK},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2,\"total\":3},\"extra\":[1,{}]}",
		 LT_OK},
		{"{" OKBODY "\"userId\":null,\"tokens\":{\"input\":1,\"output\":2,\"total\":null}}",
		 LT_OK},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2,\"total\":4}}", LT_ERANGE},
		{"{" OKBODY "\"tokens\":{\"input\":-1,\"output\":2}}", LT_ERANGE},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2,\"cachedInput\":2}}", LT_ERANGE},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2,\"reasoning\":3}}", LT_ERANGE},
		{"{" OKBODY "\"tokens\":{\"input\":1.5,\"output\":2}}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":{\"input\":\"1\",\"output\":2}}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":{\"output\":2}}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":[1,2]}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2},\"userId\":5}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2},\"stream\":\"no\"}", LT_EINVAL},
		{"{" OKBODY "\"tokens\":{\"input\":1,\"output\":2},\"costMicros\":-3}", LT_ERANGE},
		{"{" OKBODY "\"tokens\":{\"input\":10000000000000,\"output\":2}}", LT_ERANGE},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":\"2026-11-23T10:00:00Z\",\"allowed\":"
		 "true,"
		 "\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_ESYNTAX},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":\"2026-11-23T10:00:00.000+00:00\","
		 "\"allowed\":true,\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_ESYNTAX},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":\"2026-11-23T10:00:00.000z\","
		 "\"allowed\":true,\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_ESYNTAX},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":\"2026-02-30T10:00:00.000Z\","
		 "\"allowed\":true,\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_ERANGE},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":1,\"allowed\":true,"
		 "\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_EINVAL},
		{"{\"type\":\"OTHER\",\"time\":\"2026-11-23T10:00:00.000Z\",\"allowed\":"
		 "true,"
		 "\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_EINVAL},
		{"{\"time\":\"2026-11-23T10:00:00.000Z\",\"allowed\":true,"
		 "\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_EINVAL},
		{"{" OKBODY "\"allowed\":1,\"tokens\":{\"input\":1,\"output\":2}}", LT_OK},
		{"{\"type\":\"TOKEN_USAGE\",\"time\":\"2026-11-23T10:00:00.000Z\","
		 "\"tokens\":{\"input\":1,\"output\":2}}",
		 LT_EINVAL},
		{"[1,2]", LT_ESYNTAX},
		{"{" OKBODY, LT_ESYNTAX},
		{"", LT_ESYNTAX},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum lt_err e = lt_an_fact_parse(cases[i].json, strlen(cases[i].json), 1, &fa);
		if (e != cases[i].want)
			fail_msg("case %zu: %s: got %s, want %s", i, cases[i].json, lt_strerror(e),
				 lt_strerror(cases[i].want));
	}
	/* a string over its cap */
	char big[512];
	char id[200];
	memset(id, 'a', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	snprintf(big, sizeof big,
		 "{" OKBODY "\"userId\":\"%s\",\"tokens\":{\"input\":1,\"output\":2}}", id);
	assert_int_equal(lt_an_fact_parse(big, strlen(big), 1, &fa), LT_ETOOBIG);
	assert_string_equal(fa.provider, ""); /* zeroed on error */
}

static void test_ingest_sums(void **state)
{
	struct fx *f = *state;
	struct lt_an_ingest g;
	ingest_init(&g, f, 37); /* small batches: several rollup rows per minute */
	/* nothing written yet: nothing to do, lag 0 */
	size_t n = 99;
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(lt_an_ingest_lag(&g), 0);
	append_gen(f, 0, NEV / 2);
	assert_int_equal(lt_an_ingest_lag(&g), NEV / 2);
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK);
	assert_int_equal(n, 37);
	assert_int_equal(offset_of(f->db), 37);
	assert_int_equal(atomic_load(&g.stats.lag), NEV / 2 - 37);
	uint64_t total = 0;
	assert_int_equal(lt_an_ingest_drain(&g, &total), LT_OK);
	assert_int_equal(total, NEV / 2 - 37);
	check_sums(f, NEV / 2);
	/* more later: catches up from the stored offset */
	append_gen(f, NEV / 2, NEV);
	assert_int_equal(lt_an_ingest_drain(&g, &total), LT_OK);
	assert_int_equal(total, NEV - NEV / 2);
	assert_int_equal(lt_an_ingest_lag(&g), 0);
	assert_int_equal(atomic_load(&g.stats.events), NEV);
	assert_int_equal(atomic_load(&g.stats.bad), 0);
	assert_int_equal(atomic_load(&g.stats.failures), 0);
	assert_int_equal(offset_of(f->db), NEV);
	check_sums(f, NEV);
	/* one key in one batch is one row; a later batch for the same minute
	 * and key appends another; the minute's total is the SUM over them */
	struct gen extra = f->ev[NEV - 1];
	snprintf(extra.user, sizeof extra.user, "solo");
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 65536);
	payload_of(&extra, &b);
	for (uint64_t i = 0; i < 3; i++)
		append_raw(f->log, 5000 + i, extra.at, b.data);
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK);
	assert_int_equal(n, 3);
	append_raw(f->log, 5003, extra.at, b.data);
	lt_buf_release(&b);
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM rollup_minute WHERE user_id = 'solo'"),
			 2);
	assert_int_equal(q64(f->db, "SELECT total(requests) FROM rollup_minute WHERE user_id = "
				    "'solo'"),
			 4);
	assert_int_equal(q64(f->db, "SELECT requests FROM rollup_minute WHERE user_id = 'solo' "
				    "ORDER BY rowid LIMIT 1"),
			 3);
	assert_int_equal(
		q64(f->db, "SELECT total(total) FROM rollup_minute WHERE user_id = 'solo'"),
		4 * (extra.input + extra.output));
	lt_an_ingest_release(&g);
}

static void test_bad_and_duplicate(void **state)
{
	struct fx *f = *state;
	append_gen(f, 0, 10);
	append_raw(f->log, 1000, BASE, "not json");
	append_raw(f->log, 1001, BASE, "{\"type\":\"TOKEN_USAGE\"}");
	append_gen(f, 10, 20);
	/* event id 5 again (a relay replay): counted once */
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 65536);
	payload_of(&f->ev[4], &b);
	append_raw(f->log, f->ev[4].id, f->ev[4].at, b.data);
	lt_buf_release(&b);
	struct lt_an_ingest g;
	ingest_init(&g, f, 1000);
	size_t n = 0;
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK);
	assert_int_equal(n, 23);
	assert_int_equal(atomic_load(&g.stats.events), 20);
	assert_int_equal(atomic_load(&g.stats.bad), 2);
	assert_int_equal(atomic_load(&g.stats.duplicates), 1);
	assert_int_equal(offset_of(f->db), 23);
	check_sums(f, 20);
	lt_an_ingest_release(&g);
}

static int fail_calls;
static enum lt_err fail_commit(void *arg)
{
	(void)arg;
	fail_calls++;
	return LT_EIO;
}

static void test_crash_before_commit(void **state)
{
	struct fx *f = *state;
	append_gen(f, 0, NEV);
	struct lt_an_ingest g;
	ingest_init(&g, f, 100);
	size_t n = 0;
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_OK); /* batch 1 commits */
	assert_int_equal(n, 100);
	/* batch 2: rows written, then the transaction fails before COMMIT */
	fail_calls = 0;
	g.before_commit = fail_commit;
	assert_int_equal(lt_an_ingest_poll(&g, &n), LT_EIO);
	assert_int_equal(fail_calls, 1);
	assert_int_equal(n, 0);
	assert_int_equal(offset_of(f->db), 100);
	assert_int_equal(q64(f->db, "SELECT total(requests) FROM rollup_minute"), 100);
	assert_int_equal(atomic_load(&g.stats.failures), 1);
	assert_int_equal(atomic_load(&g.stats.events), 100);
	check_sums(f, 100);
	lt_an_ingest_release(&g);
	/* "restart": close and reopen both, continue from the stored offset */
	lt_db_close(f->db);
	lt_evlog_close(f->log);
	f->log = open_log(f->events);
	f->db = open_db(f->dir);
	assert_non_null(f->log);
	assert_non_null(f->db);
	ingest_init(&g, f, 100);
	assert_int_equal(atomic_load(&g.stats.next_offset), 100);
	uint64_t total = 0;
	assert_int_equal(lt_an_ingest_drain(&g, &total), LT_OK);
	assert_int_equal(total, NEV - 100);
	assert_int_equal(atomic_load(&g.stats.duplicates), 0);
	check_sums(f, NEV);
	lt_an_ingest_release(&g);
}

static void test_rebuild(void **state)
{
	struct fx *f = *state;
	append_gen(f, 0, NEV);
	struct lt_an_ingest g;
	ingest_init(&g, f, 250);
	assert_int_equal(lt_an_ingest_drain(&g, NULL), LT_OK);
	check_sums(f, NEV);
	int64_t rows = q64(f->db, "SELECT count(*) FROM rollup_minute");
	char err[LT_DB_ERR_MAX] = "";
	assert_int_equal(lt_an_rebuild(f->db, err), LT_OK);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM days"), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM rollup_minute"), 0);
	assert_int_equal(
		q64(f->db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'usage_%%'"), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM consumer_offsets"), 0);
	assert_int_equal(offset_of(f->db), 0);
	/* the ingest (whose statements were cached on the dropped tables)
	 * starts over from offset 0 and reproduces the same numbers */
	uint64_t total = 0;
	assert_int_equal(lt_an_ingest_drain(&g, &total), LT_OK);
	assert_int_equal(total, NEV);
	assert_int_equal(atomic_load(&g.stats.duplicates), 0);
	check_sums(f, NEV);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM rollup_minute"), rows);
	/* in a transaction: refused */
	assert_int_equal(lt_db_exec(f->db, "BEGIN", NULL), LT_OK);
	assert_int_equal(lt_an_rebuild(f->db, err), LT_EINVAL);
	assert_int_equal(lt_db_exec(f->db, "ROLLBACK", NULL), LT_OK);
	lt_an_ingest_release(&g);
}

static void test_retention(void **state)
{
	struct fx *f = *state;
	/* events on five consecutive days, one per day */
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 65536);
	for (int d = 0; d < 5; d++) {
		f->ev[d].at = MIDNIGHT + d * LT_AN_MS_DAY + 1000;
		payload_of(&f->ev[d], &b);
		append_raw(f->log, f->ev[d].id, f->ev[d].at, b.data);
	}
	lt_buf_release(&b);
	struct lt_an_ingest g;
	ingest_init(&g, f, 1000);
	assert_int_equal(lt_an_ingest_drain(&g, NULL), LT_OK);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM days"), 5);
	/* now: noon of the last day; keep 2 days: the last day and the one
	 * before end after now - 2 days, the three before do not */
	int64_t now = MIDNIGHT + 4 * LT_AN_MS_DAY + 12 * LT_AN_MS_HOUR;
	size_t dropped = 99;
	assert_int_equal(lt_an_retain(f->db, now, 0, &dropped), LT_EINVAL);
	assert_int_equal(lt_an_retain(f->db, now, 2, &dropped), LT_OK);
	assert_int_equal(dropped, 2);
	/* day 2 ended at MIDNIGHT + 3 days, after now - 2 days (= day 2's
	 * noon): it still holds events younger than 2 days */
	assert_int_equal(q64(f->db, "SELECT count(*) FROM days"), 3);
	char d[LT_AN_DAY_LEN];
	for (int i = 0; i < 5; i++) {
		lt_an_day_name(MIDNIGHT + i * LT_AN_MS_DAY, d);
		assert_int_equal(q64(f->db,
				     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
				     "name = 'usage_%s'",
				     d),
				 i >= 2);
		assert_int_equal(q64(f->db, "SELECT count(*) FROM days WHERE day = '%s'", d),
				 i >= 2);
	}
	/* rollups are never dropped */
	assert_int_equal(q64(f->db, "SELECT total(requests) FROM rollup_minute"), 5);
	/* again: nothing more to drop */
	assert_int_equal(lt_an_retain(f->db, now, 2, &dropped), LT_OK);
	assert_int_equal(dropped, 0);
	/* a late event for a dropped day recreates its table (and days row) */
	lt_buf_init(&b, NULL, 0, 65536);
	f->ev[5].at = MIDNIGHT + 1;
	payload_of(&f->ev[5], &b);
	append_raw(f->log, f->ev[5].id, f->ev[5].at, b.data);
	lt_buf_release(&b);
	assert_int_equal(lt_an_ingest_drain(&g, NULL), LT_OK);
	lt_an_day_name(MIDNIGHT, d);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM usage_%s", d), 1);
	lt_an_ingest_release(&g);
}

struct wait_arg {
	struct lt_an_ingest *g;
	uint64_t want;
};

static bool ingested(void *arg)
{
	struct wait_arg *w = arg;
	return atomic_load(&w->g->stats.events) >= w->want;
}

static void test_thread(void **state)
{
	struct fx *f = *state;
	append_gen(f, 0, 300); /* backlog before start: caught up at start */
	struct lt_an_ingest g;
	ingest_init(&g, f, 64);
	g.poll_ms = 10;
	assert_int_equal(lt_an_ingest_start(&g), LT_OK);
	struct wait_arg w = {&g, 300};
	assert_true(tu_wait_until(ingested, &w));
	append_gen(f, 300, NEV);
	lt_an_ingest_kick(&g);
	w.want = NEV;
	assert_true(tu_wait_until(ingested, &w));
	lt_an_ingest_stop(&g);
	lt_an_ingest_stop(&g); /* twice is fine */
	assert_int_equal(lt_an_ingest_lag(&g), 0);
	assert_int_equal(atomic_load(&g.stats.events), NEV);
	check_sums(f, NEV);
	lt_an_ingest_release(&g);
}

static void test_args(void **state)
{
	struct fx *f = *state;
	struct lt_an_ingest g = {0};
	assert_int_equal(lt_an_ingest_init(&g), LT_EINVAL);
	g.evlog = f->log;
	g.db = f->db;
	g.batch = LT_AN_BATCH_MAX + 1;
	assert_int_equal(lt_an_ingest_init(&g), LT_EINVAL);
	assert_int_equal(lt_an_ingest_poll(&g, NULL), LT_EINVAL);
	lt_an_ingest_stop(&g); /* never started */
	g.batch = 0;
	assert_int_equal(lt_an_ingest_init(&g), LT_OK);
	assert_int_equal(g.batch, LT_AN_BATCH_DEFAULT);
	assert_int_equal(g.poll_ms, LT_AN_POLL_DEFAULT_MS);
	lt_an_ingest_release(&g);
	lt_an_ingest_release(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_sums, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_and_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_args, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
