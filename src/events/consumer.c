/*
 * consumer.c — named consumers with durable offsets, applied exactly once.
 * See consumer.h.
 *
 * One poll is one BEGIN IMMEDIATE transaction on the consumer's database:
 * the offset is read inside it (so two pollers of one consumer serialise
 * on the write lock and never apply an event twice), the log is read from
 * there and every event handed to apply as it is read (the log's callback
 * runs without its locks), then the new offset is stored and the
 * transaction committed.  Any failure rolls everything back.
 */
#include <string.h>

#include "events/consumer.h"
#include "events/evlog.h"
#include "store/db.h"
#include "store/stmt.h"
#include "util/clock.h"

/* schema.sql migration 4, word for word but for IF NOT EXISTS: a consumer
 * may keep its offsets in a database that is not leaky.db. */
#define TABLE_SQL                                                                                  \
	"CREATE TABLE IF NOT EXISTS consumer_offsets (\n"                                          \
	"\tconsumer    TEXT NOT NULL,\n"                                                           \
	"\ttopic       TEXT NOT NULL,\n"                                                           \
	"\tnext_offset INTEGER NOT NULL CHECK (next_offset >= 0),\n"                               \
	"\tupdated_at  INTEGER NOT NULL,\n"                                                        \
	"\tPRIMARY KEY (consumer, topic)\n"                                                        \
	") STRICT, WITHOUT ROWID"

/* Retention can move the start again while a poll skips to it; a few
 * rounds settle it (each round deletes at least one segment). */
#define SKIP_ROUNDS 8

bool lt_consumer_name_ok(const char *name)
{
	/* the event log's rule for topic names, the same length */
	return name && strlen(name) <= LT_CONSUMER_NAME_MAX &&
	       lt_evlog_topic_ok(name, strlen(name));
}

/* The event log's rule for topic names (evlog.h). */
static bool topic_ok(const char *topic)
{
	return topic && lt_evlog_topic_ok(topic, strlen(topic));
}

static bool table_exists(sqlite3 *db, enum lt_err *err)
{
	sqlite3_stmt *st;
	*err = lt_stmt_prep(db,
			    "SELECT 1 FROM sqlite_master WHERE type = 'table' "
			    "AND name = 'consumer_offsets'",
			    &st);
	if (*err)
		return false;
	int rc = sqlite3_step(st);
	lt_stmt_put(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		*err = lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
	return rc == SQLITE_ROW;
}

static enum lt_err ensure_table(sqlite3 *db)
{
	enum lt_err e;
	if (table_exists(db, &e) || e)
		return e;
	return lt_db_exec(db, TABLE_SQL, NULL);
}

/* The stored offset without checks; LT_ENOTFOUND when there is none. */
static enum lt_err get_offset(sqlite3 *db, const char *name, const char *topic, uint64_t *next)
{
	*next = 0;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT next_offset FROM consumer_offsets "
				     "WHERE consumer = ?1 AND topic = ?2",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, name);
	lt_stmt_bind_str(st, 2, topic);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(st, 0);
		*next = v > 0 ? (uint64_t)v : 0;
	}
	lt_stmt_put(st);
	if (rc == SQLITE_ROW)
		return LT_OK;
	if (rc == SQLITE_DONE)
		return LT_ENOTFOUND;
	return lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
}

static enum lt_err set_offset(sqlite3 *db, const char *name, const char *topic, uint64_t next,
			      int64_t now_ms)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(
		db,
		"INSERT INTO consumer_offsets (consumer, topic, next_offset, updated_at) "
		"VALUES (?1, ?2, ?3, ?4) ON CONFLICT (consumer, topic) DO UPDATE SET "
		"next_offset = excluded.next_offset, updated_at = excluded.updated_at",
		&st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, name);
	lt_stmt_bind_str(st, 2, topic);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)next);
	sqlite3_bind_int64(st, 4, now_ms);
	return lt_stmt_run(db, st, NULL);
}

struct poll_ctx {
	sqlite3 *db;
	lt_consumer_apply_fn apply;
	void *arg;
	uint64_t next;	  /* the offset of the next event to apply */
	size_t applied;	  /* in this transaction */
	enum lt_err fail; /* apply's error (or an offset out of sequence) */
};

static enum lt_err deliver(void *arg, const struct lt_event *ev)
{
	struct poll_ctx *c = arg;
	if (ev->offset != c->next) { /* the log delivers consecutive offsets */
		c->fail = LT_ECORRUPT;
		return c->fail;
	}
	enum lt_err e = c->apply(c->arg, c->db, ev);
	if (e) {
		c->fail = e;
		return e;
	}
	c->next = ev->offset + 1;
	c->applied++;
	return LT_OK;
}

/* Read and apply inside the open transaction; *skip counts events retention
 * took from under the consumer. */
static enum lt_err apply_batch(struct lt_evlog *log, const char *topic, size_t max,
			       struct poll_ctx *c, uint64_t *skip)
{
	for (int round = 0;; round++) {
		uint64_t next = c->next;
		enum lt_err e =
			lt_evlog_read(log, topic, c->next, max - c->applied, deliver, c, &next);
		if (c->fail)
			return c->fail;
		if (e == LT_ENOTFOUND) /* nothing was ever written to the topic */
			return LT_OK;
		if (e != LT_ERANGE)
			return e;
		/* below the retained start (from the beginning, or because
		 * retention deleted the next segment during the read) */
		if (next <= c->next || round == SKIP_ROUNDS)
			return LT_ERANGE;
		*skip += next - c->next;
		c->next = next;
		if (c->applied == max)
			return LT_OK;
	}
}

enum lt_err lt_consumer_poll(struct lt_evlog *log, sqlite3 *db, const char *name, const char *topic,
			     size_t max, lt_consumer_apply_fn apply, void *arg, size_t *applied,
			     uint64_t *skipped)
{
	if (applied)
		*applied = 0;
	if (skipped)
		*skipped = 0;
	if (!log || !db || !apply || !lt_consumer_name_ok(name) || !topic_ok(topic) || max < 1 ||
	    max > LT_CONSUMER_BATCH_MAX || !sqlite3_get_autocommit(db))
		return LT_EINVAL;
	enum lt_err e = lt_db_exec(db, "BEGIN IMMEDIATE", NULL);
	if (e)
		return e;
	uint64_t from = 0, skip = 0;
	e = ensure_table(db);
	if (!e) {
		e = get_offset(db, name, topic, &from);
		if (e == LT_ENOTFOUND)
			e = LT_OK;
	}
	struct poll_ctx c = {db, apply, arg, from, 0, LT_OK};
	if (!e)
		e = apply_batch(log, topic, max, &c, &skip);
	if (!e && c.next != from)
		e = set_offset(db, name, topic, c.next, lt_clock_real_ns() / LT_NS_PER_MS);
	if (!e)
		e = lt_db_exec(db, "COMMIT", NULL);
	if (e) {
		if (!sqlite3_get_autocommit(db))
			lt_db_exec(db, "ROLLBACK", NULL);
		return e;
	}
	if (applied)
		*applied = c.applied;
	if (skipped)
		*skipped = skip;
	return LT_OK;
}

enum lt_err lt_consumer_get(sqlite3 *db, const char *name, const char *topic, uint64_t *next)
{
	if (next)
		*next = 0;
	if (!db || !next || !lt_consumer_name_ok(name) || !topic_ok(topic))
		return LT_EINVAL;
	enum lt_err e;
	if (!table_exists(db, &e))
		return e ? e : LT_ENOTFOUND;
	return get_offset(db, name, topic, next);
}

enum lt_err lt_consumer_set(sqlite3 *db, const char *name, const char *topic, uint64_t next,
			    int64_t now_ms)
{
	if (!db || !lt_consumer_name_ok(name) || !topic_ok(topic) || next > (uint64_t)INT64_MAX)
		return LT_EINVAL;
	enum lt_err e = ensure_table(db);
	return e ? e : set_offset(db, name, topic, next, now_ms);
}

struct list_ctx {
	enum lt_err (*fn)(void *arg, const struct lt_consumer_row *row);
	void *arg;
};

static enum lt_err list_row(sqlite3_stmt *st, void *arg)
{
	struct list_ctx *c = arg;
	struct lt_consumer_row r;
	lt_stmt_copy_col(st, 0, r.name, sizeof r.name);
	lt_stmt_copy_col(st, 1, r.topic, sizeof r.topic);
	sqlite3_int64 v = sqlite3_column_int64(st, 2);
	r.next = v > 0 ? (uint64_t)v : 0;
	r.updated_ms = sqlite3_column_int64(st, 3);
	return c->fn(c->arg, &r);
}

enum lt_err lt_consumer_list(sqlite3 *db,
			     enum lt_err (*fn)(void *arg, const struct lt_consumer_row *row),
			     void *arg)
{
	if (!db || !fn)
		return LT_EINVAL;
	enum lt_err e;
	if (!table_exists(db, &e))
		return e;
	sqlite3_stmt *st;
	e = lt_stmt_prep(db,
			 "SELECT consumer, topic, next_offset, updated_at FROM consumer_offsets "
			 "ORDER BY consumer, topic",
			 &st);
	if (e)
		return e;
	struct list_ctx c = {fn, arg};
	return lt_stmt_each(st, list_row, &c);
}
