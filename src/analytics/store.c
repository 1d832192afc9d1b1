/*
 * store.c — analytics.db: migrations, day tables, facts, rollups,
 * retention and the rebuild reset.  See store.h and schema.h.
 *
 * Day table names are built only from lt_an_day_name output or from
 * `days` rows checked with lt_an_day_parse, so the SQL spliced with them
 * is never attacker-controlled.  The per-day INSERT statement text differs
 * per day; stmt.h caches one per day seen on the connection (a few hundred
 * at most across a year of retention).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/store.h"
#include "events/consumer.h"
#include "events/outbox.h"
#include "store/db.h"
#include "store/stmt.h"

/* consumer_offsets is word for word leaky.db's (events/consumer.c). */
const char lt_an_schema_sql[] =
	"-- migration 1: analytics.db: meta, consumer offsets, days, minute rollups\n"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;\n"
	"INSERT INTO meta (key, value) VALUES ('schema', 'analytics');\n"
	"CREATE TABLE IF NOT EXISTS consumer_offsets (\n"
	"\tconsumer    TEXT NOT NULL,\n"
	"\ttopic       TEXT NOT NULL,\n"
	"\tnext_offset INTEGER NOT NULL CHECK (next_offset >= 0),\n"
	"\tupdated_at  INTEGER NOT NULL,\n"
	"\tPRIMARY KEY (consumer, topic)\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE days (day TEXT PRIMARY KEY, created_at INTEGER NOT NULL) STRICT;\n"
	"CREATE TABLE rollup_minute (\n"
	"\tminute INTEGER NOT NULL,\n"
	"\tuser_id TEXT NOT NULL DEFAULT '',\n"
	"\torg_id TEXT NOT NULL DEFAULT '',\n"
	"\tprovider TEXT NOT NULL DEFAULT '',\n"
	"\tmodel TEXT NOT NULL DEFAULT '',\n"
	"\trequests INTEGER NOT NULL DEFAULT 0,\n"
	"\tallowed INTEGER NOT NULL DEFAULT 0,\n"
	"\trefused_rate INTEGER NOT NULL DEFAULT 0,\n"
	"\trefused_quota INTEGER NOT NULL DEFAULT 0,\n"
	"\trefused_other INTEGER NOT NULL DEFAULT 0,\n"
	"\tinput INTEGER NOT NULL DEFAULT 0,\n"
	"\tcached_input INTEGER NOT NULL DEFAULT 0,\n"
	"\toutput INTEGER NOT NULL DEFAULT 0,\n"
	"\ttotal INTEGER NOT NULL DEFAULT 0,\n"
	"\tcost_micros INTEGER NOT NULL DEFAULT 0,\n"
	"\tlatency_sum INTEGER NOT NULL DEFAULT 0,\n"
	"\tlatency_max INTEGER NOT NULL DEFAULT 0\n"
	") STRICT;\n"
	"CREATE INDEX rollup_minute_t ON rollup_minute (minute, provider);\n";

enum lt_an_refusal lt_an_refusal_of(const struct lt_an_fact *f)
{
	if (f->allowed)
		return LT_AN_ALLOWED;
	if (!strcmp(f->reason, "rate_limited") || !strcmp(f->reason, "request_too_large"))
		return LT_AN_REFUSED_RATE;
	if (!strcmp(f->reason, "insufficient_quota"))
		return LT_AN_REFUSED_QUOTA;
	return LT_AN_REFUSED_OTHER;
}

void lt_an_rollup_init(struct lt_an_rollup *r, const struct lt_an_fact *f)
{
	memset(r, 0, sizeof *r);
	r->minute = lt_an_minute_start(f->at_ms);
	memcpy(r->user_id, f->user_id, sizeof r->user_id);
	memcpy(r->org_id, f->org_id, sizeof r->org_id);
	memcpy(r->provider, f->provider, sizeof r->provider);
	memcpy(r->model, f->model, sizeof r->model);
	lt_an_rollup_add(r, f);
}

void lt_an_rollup_add(struct lt_an_rollup *r, const struct lt_an_fact *f)
{
	r->requests++;
	switch (lt_an_refusal_of(f)) {
	case LT_AN_ALLOWED: r->allowed++; break;
	case LT_AN_REFUSED_RATE: r->refused_rate++; break;
	case LT_AN_REFUSED_QUOTA: r->refused_quota++; break;
	case LT_AN_REFUSED_OTHER: r->refused_other++; break;
	}
	r->input += f->input;
	r->cached_input += f->cached_input;
	r->output += f->output;
	r->total += f->total;
	r->cost_micros += f->cost_micros;
	r->latency_sum += f->latency_ms;
	if (f->latency_ms > r->latency_max)
		r->latency_max = f->latency_ms;
}

void lt_an_table_name(const char day[LT_AN_DAY_LEN], char out[LT_AN_TABLE_LEN])
{
	memcpy(out, "usage_", 6);
	memcpy(out + 6, day, LT_AN_DAY_LEN);
}

enum lt_err lt_an_db_open(const char *data_dir, bool readonly, int sync, int busy_timeout_ms,
			  sqlite3 **out, char *err)
{
	*out = NULL;
	char path[4096];
	int n = snprintf(path, sizeof path, "%s/%s", data_dir, LT_ANALYTICS_DB);
	if (n < 0 || (size_t)n >= sizeof path) {
		if (err)
			snprintf(err, LT_DB_ERR_MAX, "data directory path too long");
		return LT_EINVAL;
	}
	sqlite3 *db = NULL;
	enum lt_err e = lt_db_open(path, !readonly, readonly, sync, busy_timeout_ms, &db, err);
	if (e)
		return e;
	int from, to;
	if (readonly) {
		int latest;
		e = lt_db_user_version(db, &from);
		if (!e && !lt_schema_latest(lt_an_schema_sql, &latest) && from > latest) {
			if (err)
				snprintf(err, LT_DB_ERR_MAX,
					 "analytics.db schema version %d is newer than this build "
					 "knows (%d)",
					 from, latest);
			e = LT_ESCHEMA;
		}
	} else {
		e = lt_db_migrate(db, lt_an_schema_sql, &from, &to, err);
	}
	if (e) {
		lt_db_close(db);
		return e;
	}
	*out = db;
	return LT_OK;
}

static bool day_ok(const char *day)
{
	int64_t start;
	return day && lt_an_day_parse(day, &start) == LT_OK;
}

enum lt_err lt_an_ensure_day(sqlite3 *db, const char *day, int64_t now_ms)
{
	if (!day_ok(day))
		return LT_EINVAL;
	char sql[1024];
	int n = snprintf(sql, sizeof sql,
			 "CREATE TABLE IF NOT EXISTS usage_%s (\n"
			 "event_id INTEGER PRIMARY KEY,\n"
			 "at INTEGER NOT NULL,\n"
			 "user_id TEXT NOT NULL DEFAULT '',\n"
			 "org_id TEXT NOT NULL DEFAULT '',\n"
			 "key_id TEXT NOT NULL DEFAULT '',\n"
			 "provider TEXT NOT NULL,\n"
			 "model TEXT NOT NULL DEFAULT '',\n"
			 "endpoint TEXT NOT NULL DEFAULT '',\n"
			 "allowed INTEGER NOT NULL,\n"
			 "reason TEXT NOT NULL DEFAULT '',\n"
			 "input INTEGER NOT NULL DEFAULT 0,\n"
			 "cached_input INTEGER NOT NULL DEFAULT 0,\n"
			 "output INTEGER NOT NULL DEFAULT 0,\n"
			 "reasoning INTEGER NOT NULL DEFAULT 0,\n"
			 "total INTEGER NOT NULL DEFAULT 0,\n"
			 "cost_micros INTEGER NOT NULL DEFAULT 0,\n"
			 "latency_ms INTEGER NOT NULL DEFAULT 0,\n"
			 "correlation_id TEXT NOT NULL DEFAULT ''\n"
			 ") STRICT;\n"
			 "CREATE INDEX IF NOT EXISTS usage_%s_pt ON usage_%s (provider, at);",
			 day, day, day);
	if (n < 0 || (size_t)n >= sizeof sql)
		return LT_EINVAL;
	enum lt_err e = lt_db_exec(db, sql, NULL);
	if (e)
		return e;
	sqlite3_stmt *st;
	e = lt_stmt_prep(db, "INSERT OR IGNORE INTO days (day, created_at) VALUES (?1, ?2)", &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, day);
	sqlite3_bind_int64(st, 2, now_ms);
	return lt_stmt_run(db, st, NULL);
}

enum lt_err lt_an_append_fact(sqlite3 *db, const struct lt_an_fact *f, bool *inserted)
{
	if (inserted)
		*inserted = false;
	if (f->event_id < 1 || f->event_id > (uint64_t)INT64_MAX)
		return LT_EINVAL;
	char day[LT_AN_DAY_LEN], sql[512];
	lt_an_day_name(f->at_ms, day);
	snprintf(sql, sizeof sql,
		 "INSERT OR IGNORE INTO usage_%s (event_id, at, user_id, org_id, key_id, provider, "
		 "model, endpoint, allowed, reason, input, cached_input, output, reasoning, total, "
		 "cost_micros, latency_ms, correlation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
		 "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
		 day);
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, sql, &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)f->event_id);
	sqlite3_bind_int64(st, 2, f->at_ms);
	lt_stmt_bind_str(st, 3, f->user_id);
	lt_stmt_bind_str(st, 4, f->org_id);
	lt_stmt_bind_str(st, 5, f->key_id);
	lt_stmt_bind_str(st, 6, f->provider);
	lt_stmt_bind_str(st, 7, f->model);
	lt_stmt_bind_str(st, 8, f->endpoint);
	sqlite3_bind_int(st, 9, f->allowed ? 1 : 0);
	lt_stmt_bind_str(st, 10, f->reason);
	sqlite3_bind_int64(st, 11, f->input);
	sqlite3_bind_int64(st, 12, f->cached_input);
	sqlite3_bind_int64(st, 13, f->output);
	sqlite3_bind_int64(st, 14, f->reasoning);
	sqlite3_bind_int64(st, 15, f->total);
	sqlite3_bind_int64(st, 16, f->cost_micros);
	sqlite3_bind_int64(st, 17, f->latency_ms);
	lt_stmt_bind_str(st, 18, f->correlation_id);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (!e && inserted)
		*inserted = changes > 0;
	return e;
}

enum lt_err lt_an_append_rollup(sqlite3 *db, const struct lt_an_rollup *r)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(
		db,
		"INSERT INTO rollup_minute (minute, user_id, org_id, provider, model, requests, "
		"allowed, refused_rate, refused_quota, refused_other, input, cached_input, output, "
		"total, cost_micros, latency_sum, latency_max) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
		"?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
		&st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, r->minute);
	lt_stmt_bind_str(st, 2, r->user_id);
	lt_stmt_bind_str(st, 3, r->org_id);
	lt_stmt_bind_str(st, 4, r->provider);
	lt_stmt_bind_str(st, 5, r->model);
	const int64_t v[] = {r->requests,      r->allowed,     r->refused_rate, r->refused_quota,
			     r->refused_other, r->input,       r->cached_input, r->output,
			     r->total,	       r->cost_micros, r->latency_sum,	r->latency_max};
	for (int i = 0; i < (int)(sizeof v / sizeof v[0]); i++)
		sqlite3_bind_int64(st, 6 + i, v[i]);
	return lt_stmt_run(db, st, NULL);
}

/* ---- listing, retention, rebuild ---- */

enum lt_err lt_an_each_day(sqlite3 *db, enum lt_err (*fn)(void *arg, const char *day), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "SELECT day FROM days ORDER BY day", &st);
	if (e)
		return e;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char day[LT_AN_DAY_LEN + 1];
		lt_stmt_copy_col(st, 0, day, sizeof day);
		e = fn(arg, day);
		if (e)
			break;
	}
	lt_stmt_put(st);
	if (e)
		return e;
	return rc == SQLITE_DONE ? LT_OK : lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
}

#define DROP_MAX 4096 /* day tables dropped per call (more: call again) */

struct day_list {
	char (*days)[LT_AN_DAY_LEN];
	size_t n, cap;
	int64_t before_ms; /* list days whose start + 1 day <= this; INT64_MAX: all */
	size_t bad;	   /* rows of `days` that are not day names */
};

static enum lt_err list_day(void *arg, const char *day)
{
	struct day_list *l = arg;
	int64_t start;
	if (lt_an_day_parse(day, &start)) {
		l->bad++;
		return LT_OK;
	}
	if (l->before_ms != INT64_MAX && start > l->before_ms - LT_AN_MS_DAY)
		return LT_OK;
	if (l->n == l->cap)
		return LT_OK;
	memcpy(l->days[l->n++], day, LT_AN_DAY_LEN);
	return LT_OK;
}

/* Drop the listed tables and their days rows (in the caller's
 * transaction). */
static enum lt_err drop_days(sqlite3 *db, const struct day_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS usage_%s", l->days[i]);
		enum lt_err e = lt_db_exec(db, sql, NULL);
		if (e)
			return e;
		sqlite3_stmt *st;
		e = lt_stmt_prep(db, "DELETE FROM days WHERE day = ?1", &st);
		if (e)
			return e;
		lt_stmt_bind_str(st, 1, l->days[i]);
		e = lt_stmt_run(db, st, NULL);
		if (e)
			return e;
	}
	return LT_OK;
}

static enum lt_err in_tx_end(sqlite3 *db, enum lt_err e)
{
	if (!e)
		e = lt_db_exec(db, "COMMIT", NULL);
	if (e && !sqlite3_get_autocommit(db))
		lt_db_exec(db, "ROLLBACK", NULL);
	return e;
}

enum lt_err lt_an_retain(sqlite3 *db, int64_t now_ms, int64_t keep_days, size_t *dropped)
{
	if (dropped)
		*dropped = 0;
	if (!db || keep_days < 1 || keep_days > INT64_MAX / LT_AN_MS_DAY ||
	    !sqlite3_get_autocommit(db))
		return LT_EINVAL;
	struct day_list l = {0};
	l.cap = DROP_MAX;
	l.days = calloc(l.cap, sizeof *l.days);
	if (!l.days)
		return LT_ENOMEM;
	l.before_ms = now_ms - keep_days * LT_AN_MS_DAY;
	enum lt_err e = lt_db_exec(db, "BEGIN IMMEDIATE", NULL);
	if (!e) {
		e = lt_an_each_day(db, list_day, &l);
		if (!e)
			e = drop_days(db, &l);
		e = in_tx_end(db, e);
	}
	if (!e && dropped)
		*dropped = l.n;
	free(l.days);
	return e;
}

/* Every usage_ table in the schema (whether or not `days` lists it). */
static enum lt_err list_tables(sqlite3 *db, struct day_list *l)
{
	sqlite3_stmt *st;
	enum lt_err e =
		lt_stmt_prep(db,
			     "SELECT substr(name, 7) FROM sqlite_master WHERE type = 'table' "
			     "AND name GLOB 'usage_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'",
			     &st);
	if (e)
		return e;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char day[LT_AN_DAY_LEN + 1];
		lt_stmt_copy_col(st, 0, day, sizeof day);
		list_day(l, day);
	}
	lt_stmt_put(st);
	return rc == SQLITE_DONE ? LT_OK : lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
}

enum lt_err lt_an_rebuild(sqlite3 *db, char *err)
{
	if (!db || !sqlite3_get_autocommit(db))
		return LT_EINVAL;
	struct day_list l = {0};
	l.cap = DROP_MAX;
	l.days = calloc(l.cap, sizeof *l.days);
	if (!l.days)
		return LT_ENOMEM;
	l.before_ms = INT64_MAX;
	enum lt_err e = lt_db_exec(db, "BEGIN IMMEDIATE", err);
	if (!e) {
		do { /* DROP_MAX tables at a time, all in this transaction */
			l.n = 0;
			e = list_tables(db, &l);
			if (!e)
				e = drop_days(db, &l);
		} while (!e && l.n == l.cap);
		if (!e)
			e = lt_db_exec(db,
				       "DELETE FROM days; DELETE FROM rollup_minute; "
				       "DELETE FROM consumer_offsets WHERE consumer = "
				       "'" LT_ANALYTICS_CONSUMER "' AND topic = '" LT_TOPIC_USAGE
				       "'",
				       err);
		e = in_tx_end(db, e);
	}
	free(l.days);
	return e;
}
