/*
 * outbox.c — the transactional outbox rows (schema.sql migration 4).  See
 * outbox.h.
 */
#include <stdbool.h>
#include <string.h>

#include "events/outbox.h"
#include "store/stmt.h"

static bool field_ok(const char *s, size_t max, bool empty_ok)
{
	size_t n = s ? strlen(s) : 0;
	return n <= max && (empty_ok || n > 0);
}

enum lt_err lt_outbox_add(sqlite3 *db, const char *topic, const char *key, const char *type,
			  const char *payload, int64_t now_ms, int64_t *id)
{
	if (!db || !field_ok(topic, LT_EV_TOPIC_MAX, false) ||
	    !field_ok(type, LT_EV_TYPE_MAX, false) || !field_ok(key, LT_EV_KEY_MAX, true) ||
	    !payload || strlen(payload) > LT_EV_PAYLOAD_MAX)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "INSERT INTO outbox (topic, key, type, payload, created_at) "
				     "VALUES (?1, ?2, ?3, ?4, ?5)",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, topic);
	lt_stmt_bind_str(st, 2, key ? key : "");
	lt_stmt_bind_str(st, 3, type);
	lt_stmt_bind_str(st, 4, payload);
	sqlite3_bind_int64(st, 5, now_ms);
	e = lt_stmt_run(db, st, NULL);
	if (!e && id)
		*id = sqlite3_last_insert_rowid(db);
	return e;
}

struct pending_ctx {
	enum lt_err (*fn)(void *arg, const struct lt_outbox_row *row);
	void *arg;
};

static enum lt_err pending_row(sqlite3_stmt *st, void *arg)
{
	struct pending_ctx *c = arg;
	struct lt_outbox_row r;
	r.id = sqlite3_column_int64(st, 0);
	lt_stmt_copy_col(st, 1, r.topic, sizeof r.topic);
	lt_stmt_copy_col(st, 2, r.key, sizeof r.key);
	lt_stmt_copy_col(st, 3, r.type, sizeof r.type);
	r.payload = (const char *)sqlite3_column_text(st, 4);
	r.payload_len = r.payload ? (size_t)sqlite3_column_bytes(st, 4) : 0;
	if (!r.payload)
		r.payload = "";
	r.created_ms = sqlite3_column_int64(st, 5);
	return c->fn(c->arg, &r);
}

enum lt_err lt_outbox_pending(sqlite3 *db, int64_t after_id, size_t max,
			      enum lt_err (*fn)(void *arg, const struct lt_outbox_row *row),
			      void *arg)
{
	if (!db || !fn || max < 1)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT id, topic, key, type, payload, created_at FROM outbox "
				     "WHERE published_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	struct pending_ctx c = {fn, arg};
	return lt_stmt_each(st, pending_row, &c);
}

enum lt_err lt_outbox_mark(sqlite3 *db, int64_t up_to, int64_t now_ms, int64_t *n)
{
	if (!db)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "UPDATE outbox SET published_at = ?2 "
				     "WHERE published_at IS NULL AND id <= ?1",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, up_to);
	sqlite3_bind_int64(st, 2, now_ms);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (n)
		*n = changes;
	return e;
}

enum lt_err lt_outbox_mark_topic(sqlite3 *db, const char *topic, int64_t up_to, int64_t now_ms,
				 int64_t *n)
{
	if (!db || !topic)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "UPDATE outbox SET published_at = ?3 "
				     "WHERE published_at IS NULL AND id <= ?1 AND topic = ?2",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, up_to);
	lt_stmt_bind_str(st, 2, topic);
	sqlite3_bind_int64(st, 3, now_ms);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (n)
		*n = changes;
	return e;
}

enum lt_err lt_outbox_reserve_ids(sqlite3 *db, int64_t min_id)
{
	if (!db || min_id < 0)
		return LT_EINVAL;
	sqlite3_stmt *st;
	/* sqlite_sequence has the row once the table had one; insert it
	 * otherwise */
	enum lt_err e = lt_stmt_prep(db,
				     "UPDATE sqlite_sequence SET seq = max(seq, ?1) "
				     "WHERE name = 'outbox'",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, min_id);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (e || changes || min_id == 0)
		return e;
	e = lt_stmt_prep(db, "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?1)", &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, min_id);
	return lt_stmt_run(db, st, NULL);
}

static enum lt_err stat_row(sqlite3_stmt *st, void *arg)
{
	struct lt_outbox_stat *o = arg;
	o->pending = sqlite3_column_int64(st, 0);
	o->oldest_pending_ms = sqlite3_column_int64(st, 1);
	o->max_id = sqlite3_column_int64(st, 2);
	o->published_retained = sqlite3_column_int64(st, 3);
	return LT_OK;
}

enum lt_err lt_outbox_stat(sqlite3 *db, struct lt_outbox_stat *out)
{
	if (!db || !out)
		return LT_EINVAL;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *st;
	/* pending rows are found through the partial index; max id from
	 * sqlite_sequence (AUTOINCREMENT keeps it even when rows are gone) */
	enum lt_err e = lt_stmt_prep(
		db,
		"SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), "
		"coalesce((SELECT created_at FROM outbox WHERE published_at IS NULL "
		"ORDER BY id LIMIT 1), 0), "
		"coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), "
		"(SELECT count(*) FROM outbox WHERE published_at IS NOT NULL)",
		&st);
	if (e)
		return e;
	return lt_stmt_each(st, stat_row, out);
}

enum lt_err lt_outbox_prune(sqlite3 *db, int64_t before_ms, size_t max, int64_t *n)
{
	if (!db || max < 1)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
				     "WHERE published_at IS NOT NULL AND published_at < ?1 "
				     "ORDER BY id LIMIT ?2)",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (n)
		*n = changes;
	return e;
}
