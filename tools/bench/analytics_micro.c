/*
 * analytics_micro.c — the analytics store in-process (tools/bench/analytics.sh).
 *
 *   analytics_micro DIR EVENTS USERS REPS
 *
 * 1. Writes EVENTS token-usage events (lt_usage_event_json payloads,
 *    lt_evlog_append in batches of 1000, no fsync: the log is not what is
 *    measured) spread evenly over one UTC day, USERS users, 2 providers,
 *    3 models, 1 in 10 refused, into DIR/events.
 * 2. Ingest: a fresh DIR/analytics.db (lt_an_db_open, synchronous=NORMAL),
 *    lt_an_ingest_drain with batches of 1000 (one transaction each):
 *    events/s, the rollup rows it appended, the file size.
 * 3. A report over that day for one provider (count, allowed, tokens,
 *    unique users, top 5 users), two ways: from rollup_minute (sums over
 *    minute rows) and by scanning the usage_ day table; and a cost series
 *    by hour grouped by model from the rollups.  Median of REPS runs each
 *    (a cold first run is printed separately).  The two ways must agree
 *    (exit 1 if not).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analytics/ingest.h"
#include "analytics/store.h"
#include "analytics/window.h"
#include "conf/config.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "events/usage_event.h"
#include "store/db.h"
#include "util/buf.h"

#define DAY0 INT64_C(1795392000000) /* 2026-11-23T00:00:00Z */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void die(const char *what)
{
	fprintf(stderr, "analytics_micro: %s\n", what);
	exit(2);
}

static void write_log(struct lt_evlog *log, long n, long users)
{
	enum { B = 1000 };
	static struct lt_event ev[B];
	static char payload[B][1024];
	static char user[B][32];
	uint64_t s = 7;
	for (long base = 0; base < n; base += B) {
		long m = n - base < B ? n - base : B;
		for (long j = 0; j < m; j++) {
			long i = base + j;
			s = s * UINT64_C(6364136223846793005) + 1442695040888963407u;
			uint64_t r = s >> 20;
			snprintf(user[j], sizeof user[j], "user-%05ld",
				 (long)(r % (uint64_t)users));
			struct lt_usage_event u = {0};
			u.time_ms = DAY0 + (int64_t)((double)i * (double)LT_AN_MS_DAY / (double)n);
			u.correlation_id = "bench";
			u.user_id = user[j];
			u.provider = (r >> 8) % 2 ? "openai" : "gemini";
			static const char *models[] = {"gpt-4o-mini", "gpt-4o", "gemini-1.5"};
			u.model = models[(r >> 10) % 3];
			u.endpoint = "chat";
			u.allowed = (r >> 12) % 10 != 0;
			u.reason = u.allowed ? NULL : "rate_limited";
			if (u.allowed) {
				u.tokens.input = (int64_t)((r >> 16) % 2000);
				u.tokens.output = (int64_t)((r >> 24) % 800);
				u.cost_micros = u.tokens.input * 3 + u.tokens.output * 12;
			}
			u.latency_ms = (int64_t)((r >> 32) % 3000);
			struct lt_buf b;
			lt_buf_init(&b, payload[j], sizeof payload[j], sizeof payload[j] - 1);
			lt_usage_event_json(&u, &b);
			if (b.err)
				die("payload too large");
			ev[j] = (struct lt_event){0};
			ev[j].time_ms = u.time_ms;
			ev[j].event_id = (uint64_t)i + 1;
			ev[j].topic = LT_TOPIC_USAGE;
			ev[j].topic_len = strlen(LT_TOPIC_USAGE);
			ev[j].type = LT_USAGE_EVENT_TYPE;
			ev[j].type_len = strlen(LT_USAGE_EVENT_TYPE);
			ev[j].key = user[j];
			ev[j].key_len = strlen(user[j]);
			ev[j].payload = b.data;
			ev[j].payload_len = b.len;
		}
		if (lt_evlog_append(log, ev, (size_t)m))
			die("append");
	}
}

struct report {
	int64_t events, allowed, tokens, users;
	char top[5][32];
	int64_t top_tokens[5];
};

static void run_report(sqlite3 *db, const char *sql, struct report *r, bool with_top,
		       const char *top_sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die(sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, DAY0);
	sqlite3_bind_int64(st, 2, DAY0 + LT_AN_MS_DAY);
	if (sqlite3_step(st) != SQLITE_ROW)
		die(sqlite3_errmsg(db));
	r->events = sqlite3_column_int64(st, 0);
	r->allowed = sqlite3_column_int64(st, 1);
	r->tokens = sqlite3_column_int64(st, 2);
	r->users = sqlite3_column_int64(st, 3);
	sqlite3_finalize(st);
	if (!with_top)
		return;
	if (sqlite3_prepare_v2(db, top_sql, -1, &st, NULL) != SQLITE_OK)
		die(sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, DAY0);
	sqlite3_bind_int64(st, 2, DAY0 + LT_AN_MS_DAY);
	for (int i = 0; i < 5 && sqlite3_step(st) == SQLITE_ROW; i++) {
		snprintf(r->top[i], sizeof r->top[i], "%s", sqlite3_column_text(st, 0));
		r->top_tokens[i] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
}

static double time_report(sqlite3 *db, const char *sql, const char *top_sql, int reps,
			  struct report *r, double *cold)
{
	double *t = calloc((size_t)reps, sizeof *t);
	for (int i = 0; i <= reps; i++) {
		memset(r, 0, sizeof *r);
		double t0 = now_s();
		run_report(db, sql, r, true, top_sql);
		double dt = now_s() - t0;
		if (i == 0)
			*cold = dt;
		else
			t[i - 1] = dt;
	}
	qsort(t, (size_t)reps, sizeof *t, cmp_d);
	double med = t[reps / 2];
	free(t);
	return med;
}

static double time_sql(sqlite3 *db, const char *sql, int reps, long *rows)
{
	double *t = calloc((size_t)reps, sizeof *t);
	for (int i = 0; i < reps; i++) {
		sqlite3_stmt *st;
		double t0 = now_s();
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			die(sqlite3_errmsg(db));
		sqlite3_bind_int64(st, 1, DAY0);
		sqlite3_bind_int64(st, 2, DAY0 + LT_AN_MS_DAY);
		*rows = 0;
		while (sqlite3_step(st) == SQLITE_ROW)
			(*rows)++;
		sqlite3_finalize(st);
		t[i] = now_s() - t0;
	}
	qsort(t, (size_t)reps, sizeof *t, cmp_d);
	double med = t[reps / 2];
	free(t);
	return med;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		die("usage: analytics_micro DIR EVENTS USERS REPS");
	const char *dir = argv[1];
	long n = strtol(argv[2], NULL, 10), users = strtol(argv[3], NULL, 10);
	int reps = (int)strtol(argv[4], NULL, 10);
	if (n < 1000 || users < 1 || reps < 1)
		die("bad arguments");
	char path[4096];
	snprintf(path, sizeof path, "%s/events", dir);
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.fsync = false;
	struct lt_evlog *log;
	char why[256];
	if (lt_evlog_open(path, &o, &log, NULL, why, sizeof why))
		die(why);
	double t0 = now_s();
	write_log(log, n, users);
	printf("log: %ld token-usage events written in %.2f s (not measured below)\n", n,
	       now_s() - t0);

	sqlite3 *db;
	char err[LT_DB_ERR_MAX];
	if (lt_an_db_open(dir, false, LT_SYNC_NORMAL, 10000, &db, err))
		die(err);
	struct lt_an_ingest g = {0};
	g.evlog = log;
	g.db = db;
	g.batch = 1000;
	if (lt_an_ingest_init(&g))
		die("ingest init");
	uint64_t consumed = 0;
	t0 = now_s();
	if (lt_an_ingest_drain(&g, &consumed))
		die("ingest");
	double dt = now_s() - t0;
	lt_db_checkpoint(db, NULL, NULL);
	snprintf(path, sizeof path, "%s/analytics.db", dir);
	struct stat sb;
	stat(path, &sb);
	printf("ingest: %llu events in %.2f s = %.0f events/s (batches of 1000, "
	       "synchronous=NORMAL); %llu rollup rows (%.2f per event); analytics.db %.0f MiB\n",
	       (unsigned long long)consumed, dt, (double)consumed / dt,
	       (unsigned long long)atomic_load(&g.stats.rollup_rows),
	       (double)atomic_load(&g.stats.rollup_rows) / (double)consumed,
	       (double)sb.st_size / 1048576.0);
	if (consumed != (uint64_t)n || atomic_load(&g.stats.events) != (uint64_t)n)
		die("not every event was ingested");

	char day[LT_AN_DAY_LEN], q_scan[512], q_scan_top[512];
	lt_an_day_name(DAY0, day);
	snprintf(q_scan, sizeof q_scan,
		 "SELECT count(*), total(allowed), total(total), count(DISTINCT user_id) FROM "
		 "usage_%s WHERE provider = 'openai' AND at >= ?1 AND at < ?2",
		 day);
	snprintf(q_scan_top, sizeof q_scan_top,
		 "SELECT user_id, sum(total) AS t FROM usage_%s WHERE provider = 'openai' AND at "
		 ">= ?1 AND at < ?2 GROUP BY user_id ORDER BY t DESC, user_id LIMIT 5",
		 day);
	const char *q_roll = "SELECT total(requests), total(allowed), total(total), count(DISTINCT "
			     "user_id) FROM rollup_minute WHERE minute >= ?1 AND minute < ?2 AND "
			     "provider = 'openai'";
	const char *q_roll_top = "SELECT user_id, sum(total) AS t FROM rollup_minute WHERE minute "
				 ">= ?1 AND minute < ?2 AND provider = 'openai' GROUP BY user_id "
				 "ORDER BY t DESC, user_id LIMIT 5";
	struct report a, b;
	double cold_a, cold_b;
	double ta = time_report(db, q_roll, q_roll_top, reps, &a, &cold_a);
	double tb = time_report(db, q_scan, q_scan_top, reps, &b, &cold_b);
	printf("report over one day (%ld events, provider openai: %lld events, %lld tokens, "
	       "%lld users):\n",
	       n, (long long)b.events, (long long)b.tokens, (long long)b.users);
	printf("  from rollup_minute: %8.1f ms median of %d (first run %.1f ms)\n", ta * 1e3, reps,
	       cold_a * 1e3);
	printf("  scanning usage_%s: %8.1f ms median of %d (first run %.1f ms)\n", day, tb * 1e3,
	       reps, cold_b * 1e3);
	if (memcmp(&a, &b, sizeof a) != 0) {
		fprintf(stderr, "analytics_micro: the rollups and the day table disagree\n");
		return 1;
	}
	long rows = 0;
	double tc =
		time_sql(db,
			 "SELECT minute / 3600000 * 3600000 AS h, model, total(cost_micros) FROM "
			 "rollup_minute WHERE minute >= ?1 AND minute < ?2 GROUP BY h, model",
			 reps, &rows);
	printf("  cost by hour and model from rollup_minute: %.1f ms median (%ld rows)\n", tc * 1e3,
	       rows);
	lt_an_ingest_release(&g);
	lt_db_close(db);
	lt_evlog_close(log);
	return 0;
}
