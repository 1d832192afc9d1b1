/*
 * db.c — SQLite open, pragmas and forward-only migrations.  See db.h.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"

static void set_err(char *err, const char *what, sqlite3 *db)
{
	if (err)
		snprintf(err, LT_DB_ERR_MAX, "%s: %s", what,
			 db ? sqlite3_errmsg(db) : "out of memory");
}

enum lt_err lt_db_exec(sqlite3 *db, const char *sql, char *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		if (err)
			snprintf(err, LT_DB_ERR_MAX, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? LT_EBUSY : LT_EIO;
	}
	return LT_OK;
}

enum lt_err lt_db_open(const char *path, bool create, bool readonly, int sync, int busy_timeout_ms,
		       sqlite3 **out, char *err)
{
	static const char *const sync_sql[] = {
		"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"};
	*out = NULL;
	int flags = readonly ? SQLITE_OPEN_READONLY
			     : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		if (err)
			snprintf(err, LT_DB_ERR_MAX, "open %s: %s", path,
				 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return LT_EIO;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, busy_timeout_ms);
	if (sync < 0 || sync > 2)
		sync = 1;
	enum lt_err e = LT_OK;
	if (!readonly) {
		sqlite3_stmt *st = NULL;
		/* journal_mode answers with the mode actually in force. */
		if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW ||
		    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
			set_err(err, "journal_mode=WAL", db);
			e = LT_EIO;
		}
		sqlite3_finalize(st);
	}
	if (!e)
		e = lt_db_exec(db, sync_sql[sync], err);
	if (!e)
		e = lt_db_exec(db, "PRAGMA foreign_keys=ON", err);
	if (e) {
		sqlite3_close(db);
		return e;
	}
	*out = db;
	return LT_OK;
}

void lt_db_close(sqlite3 *db)
{
	if (!db)
		return;
	/* Finalize anything a caller left prepared, then close. */
	sqlite3_stmt *st;
	while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
	sqlite3_close(db);
}

enum lt_err lt_db_user_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *st = NULL;
	enum lt_err e = LT_EIO;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		e = LT_OK;
	}
	sqlite3_finalize(st);
	return e;
}

/* Find "-- migration N:" header lines.  Calls fn for each migration with its
 * number and body span; stops early if fn returns an error. */
typedef enum lt_err (*migration_fn)(void *arg, int num, const char *body, size_t len);

static enum lt_err each_migration(const char *schema, migration_fn fn, void *arg, int *last)
{
	static const char tag[] = "-- migration ";
	const char *p = schema;
	int expect = 1;
	const char *cur_body = NULL;
	int cur_num = 0;
	*last = 0;
	for (;;) {
		const char *hit = strstr(p, tag);
		while (hit && hit != schema && hit[-1] != '\n')
			hit = strstr(hit + 1, tag);
		if (cur_body) {
			size_t len = hit ? (size_t)(hit - cur_body) : strlen(cur_body);
			if (fn) {
				enum lt_err e = fn(arg, cur_num, cur_body, len);
				if (e)
					return e;
			}
		}
		if (!hit)
			break;
		char *end;
		long n = strtol(hit + sizeof tag - 1, &end, 10);
		if (n != expect || *end != ':')
			return LT_ESYNTAX;
		cur_num = (int)n;
		*last = cur_num;
		expect++;
		const char *nl = strchr(end, '\n');
		cur_body = nl ? nl + 1 : end + strlen(end);
		p = cur_body;
	}
	return *last ? LT_OK : LT_ESYNTAX;
}

enum lt_err lt_schema_latest(const char *schema, int *out)
{
	return each_migration(schema, NULL, NULL, out);
}

struct apply_ctx {
	sqlite3 *db;
	int from;
	char *err;
};

static enum lt_err apply_one(void *arg, int num, const char *body, size_t len)
{
	struct apply_ctx *c = arg;
	if (num <= c->from)
		return LT_OK;
	char *sql = malloc(len + 1);
	if (!sql)
		return LT_ENOMEM;
	memcpy(sql, body, len);
	sql[len] = '\0';
	enum lt_err e = lt_db_exec(c->db, sql, c->err);
	free(sql);
	if (e && c->err) {
		char tmp[LT_DB_ERR_MAX];
		snprintf(tmp, sizeof tmp, "migration %d: %s", num, c->err);
		memcpy(c->err, tmp, sizeof tmp);
	}
	return e;
}

enum lt_err lt_db_migrate(sqlite3 *db, const char *schema, int *from, int *to, char *err)
{
	int latest, cur;
	enum lt_err e = lt_schema_latest(schema, &latest);
	if (e) {
		if (err)
			snprintf(err, LT_DB_ERR_MAX,
				 "embedded schema has malformed migration headers");
		return e;
	}
	e = lt_db_exec(db, "BEGIN IMMEDIATE", err);
	if (e)
		return e;
	e = lt_db_user_version(db, &cur);
	if (e) {
		set_err(err, "user_version", db);
		goto out;
	}
	*from = cur;
	*to = cur;
	if (cur > latest) {
		if (err)
			snprintf(err, LT_DB_ERR_MAX,
				 "database schema version %d is newer than this build knows (%d); "
				 "upgrade leakyd",
				 cur, latest);
		e = LT_ESCHEMA;
		goto out;
	}
	if (cur == latest)
		goto out;
	struct apply_ctx c = {db, cur, err};
	int last;
	e = each_migration(schema, apply_one, &c, &last);
	if (e)
		goto out;
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version=%d", latest);
	e = lt_db_exec(db, sql, err);
	if (!e)
		*to = latest;
out:
	if (e) {
		lt_db_exec(db, "ROLLBACK", NULL);
		*to = *from;
		return e;
	}
	return lt_db_exec(db, "COMMIT", err);
}

enum lt_err lt_db_integrity(sqlite3 *db, bool *ok, char *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		set_err(err, "integrity_check", db);
		return LT_EIO;
	}
	*ok = false;
	enum lt_err e = LT_EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		*ok = r && strcmp(r, "ok") == 0;
		if (!*ok && err)
			snprintf(err, LT_DB_ERR_MAX, "%s", r ? r : "(null)");
		e = LT_OK;
	} else {
		set_err(err, "integrity_check", db);
	}
	sqlite3_finalize(st);
	return e;
}

enum lt_err lt_db_checkpoint(sqlite3 *db, int *log_frames, int *ckpt_frames)
{
	int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, log_frames,
					   ckpt_frames);
	return rc == SQLITE_OK ? LT_OK : (rc == SQLITE_BUSY ? LT_EBUSY : LT_EIO);
}
