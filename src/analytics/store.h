/*
 * store.h — analytics.db (schema.h): opening and migrating it, day tables
 * created on demand, appending usage facts and minute rollups, retention
 * of day tables, and the rebuild reset.
 *
 * Owns: the analytics.db migrations (lt_an_schema_sql, applied with
 * store/db.h's lt_db_migrate, so PRAGMA user_version of analytics.db
 * counts them, independently of leaky.db), the usage_YYYYMMDD DDL, the
 * mapping of a refusal reason to a rollup column.
 *
 * Invariants: nothing here UPDATEs a fact or a rollup row; a fact is
 * inserted at most once per event id (INSERT OR IGNORE); a day table exists
 * exactly when `days` has its row (both made in one transaction and dropped
 * in one).  Day names come from lt_an_day_name or are checked to be 8
 * digits before they are spliced into SQL.
 *
 * Transactions: lt_an_ensure_day, lt_an_append_fact and lt_an_append_rollup
 * run in the caller's transaction (the ingest's batch); lt_an_retain and
 * lt_an_rebuild run their own BEGIN IMMEDIATE transaction (db must not be
 * in one).  A connection is used by one thread at a time.
 *
 * Ownership: lt_an_db_open returns a handle the caller closes with
 * lt_db_close; statements are cached on it (stmt.h).
 */
#ifndef LT_ANALYTICS_STORE_H
#define LT_ANALYTICS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/schema.h"
#include "analytics/window.h"
#include "util/err.h"

struct sqlite3;

/* The analytics.db migrations ("-- migration N:" sections, db.h). */
extern const char lt_an_schema_sql[];

/* String caps of a fact (bytes, without the NUL): longer values are
 * refused by the parser (ingest.h). */
#define LT_AN_ID_MAX 128   /* user, org, key, model, correlation id */
#define LT_AN_NAME_MAX 64  /* provider, endpoint, reason, outcome */
#define LT_AN_TABLE_LEN 16 /* "usage_YYYYMMDD" and its NUL */

/* One usage fact: a row of a usage_ day table.  "" for absent strings. */
struct lt_an_fact {
	uint64_t event_id; /* the event's id (outbox id), 1..INT64_MAX */
	int64_t at_ms;	   /* the event's "time" */
	char user_id[LT_AN_ID_MAX + 1];
	char org_id[LT_AN_ID_MAX + 1];
	char key_id[LT_AN_ID_MAX + 1];
	char provider[LT_AN_NAME_MAX + 1];
	char model[LT_AN_ID_MAX + 1];
	char endpoint[LT_AN_NAME_MAX + 1];
	bool allowed;
	char reason[LT_AN_NAME_MAX + 1];
	char outcome[LT_AN_NAME_MAX + 1]; /* parsed, not stored */
	int64_t input, cached_input, output, reasoning, total;
	int64_t cost_micros, latency_ms;
	char correlation_id[LT_AN_ID_MAX + 1];
};

/* One rollup_minute row: the sums of some facts of one (minute, user, org,
 * provider, model). */
struct lt_an_rollup {
	int64_t minute;
	char user_id[LT_AN_ID_MAX + 1];
	char org_id[LT_AN_ID_MAX + 1];
	char provider[LT_AN_NAME_MAX + 1];
	char model[LT_AN_ID_MAX + 1];
	int64_t requests, allowed, refused_rate, refused_quota, refused_other;
	int64_t input, cached_input, output, total, cost_micros, latency_sum, latency_max;
};

/* Which refusal column a fact counts in (schema.h). */
enum lt_an_refusal { LT_AN_ALLOWED, LT_AN_REFUSED_RATE, LT_AN_REFUSED_QUOTA, LT_AN_REFUSED_OTHER };
enum lt_an_refusal lt_an_refusal_of(const struct lt_an_fact *f);

/* Start r as the empty rollup of f's key (minute of f->at_ms, user, org,
 * provider, model), then add f; lt_an_rollup_add adds another fact of the
 * same key (the caller checks the key). */
void lt_an_rollup_init(struct lt_an_rollup *r, const struct lt_an_fact *f);
void lt_an_rollup_add(struct lt_an_rollup *r, const struct lt_an_fact *f);

/* "usage_" + day into out. */
void lt_an_table_name(const char day[LT_AN_DAY_LEN], char out[LT_AN_TABLE_LEN]);

/* Open <data_dir>/analytics.db: create it (mode per umask) and migrate it
 * unless readonly (readonly: it must exist and be migrated to this build's
 * version or older).  sync is enum lt_sync_mode.  err (LT_DB_ERR_MAX bytes,
 * may be NULL) says why on error.  LT_EINVAL: a path too long; LT_EIO;
 * LT_ESCHEMA: the file is newer than this build. */
enum lt_err lt_an_db_open(const char *data_dir, bool readonly, int sync, int busy_timeout_ms,
			  struct sqlite3 **out, char *err);

/* Create usage_<day> and its index if missing, and record it in `days`
 * (created_at = now_ms).  Caller's transaction.  LT_EINVAL: a bad name. */
enum lt_err lt_an_ensure_day(struct sqlite3 *db, const char *day, int64_t now_ms);

/* Insert f into the day table of f->at_ms (which must exist: ensure it
 * first) unless a row with its event id is there; *inserted (may be NULL)
 * says whether it was new.  Caller's transaction. */
enum lt_err lt_an_append_fact(struct sqlite3 *db, const struct lt_an_fact *f, bool *inserted);

/* Append one rollup_minute row.  Caller's transaction. */
enum lt_err lt_an_append_rollup(struct sqlite3 *db, const struct lt_an_rollup *r);

/* Retention: drop every day table (and its `days` row) whose whole day
 * lies before now_ms - keep_days days (day start + 1 day <= now_ms -
 * keep_days * 86400000): every event it holds is older than keep_days.
 * Rollups are never deleted.  keep_days >= 1 (else LT_EINVAL).
 * *dropped (may be NULL) = tables dropped.  Own transaction. */
enum lt_err lt_an_retain(struct sqlite3 *db, int64_t now_ms, int64_t keep_days, size_t *dropped);

/* Rebuild reset: drop every day table, delete every `days` row, every
 * rollup row and the ingest's consumer offset (consumer "analytics", topic
 * "token-usage"), in one transaction, so the next ingest poll starts from
 * offset 0 of the log (or its first retained offset).  Own transaction. */
enum lt_err lt_an_rebuild(struct sqlite3 *db, char *err);

/* The day names in `days`, ascending; fn returning non-OK stops and is
 * returned. */
enum lt_err lt_an_each_day(struct sqlite3 *db, enum lt_err (*fn)(void *arg, const char *day),
			   void *arg);

#endif
