/*
 * consumer.h — named consumers of the event log (evlog.h) with durable
 * offsets, applied exactly once.
 *
 * A consumer is a name (e.g. "analytics") and, per topic, the next offset
 * it will read, kept in the consumer_offsets table (schema.sql migration 4)
 * of the database the consumer applies its effects to: leaky.db, or any
 * other SQLite database (the table is created there with the same
 * definition when missing).  lt_consumer_poll runs one batch in ONE
 * transaction on that database: read the offset, call apply for each
 * event, store the new offset, commit.  The effects and the offset advance
 * commit together or not at all, so after a crash at any instant every
 * event's effect is in the database exactly once: an event whose effect
 * committed is never delivered again, one whose effect did not is.
 *
 * Retention: when the stored offset is below the topic's first retained
 * offset (retention deleted events the consumer had not read), the poll
 * skips to that start and says so in *skipped; the skip is stored with
 * the batch.
 *
 * Names: 1..LT_CONSUMER_NAME_MAX bytes of [a-z0-9._-].
 *
 * Threads: a database connection is used by one thread at a time (SQLite's
 * rule); the log may be shared.  Two processes or threads polling the same
 * consumer on the same database are serialised by BEGIN IMMEDIATE: each
 * batch reads the offset inside its transaction, so no event is applied
 * twice.
 *
 * Ownership: nothing is allocated across calls; the event handed to apply
 * points into the log's read buffer and is valid during the call only.
 */
#ifndef LT_EVENTS_CONSUMER_H
#define LT_EVENTS_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/frame.h"
#include "util/err.h"

struct sqlite3;
struct lt_evlog;

#define LT_CONSUMER_NAME_MAX 64
#define LT_CONSUMER_BATCH_MAX 4096 /* events per poll */

/* Apply one event's effects with db, inside the poll's transaction (apply
 * may use SAVEPOINTs, never BEGIN, COMMIT or ROLLBACK).  LT_OK: applied;
 * anything else rolls the whole batch back and is returned by the poll. */
typedef enum lt_err (*lt_consumer_apply_fn)(void *arg, struct sqlite3 *db,
					    const struct lt_event *ev);

/* true when name is a valid consumer name. */
bool lt_consumer_name_ok(const char *name);

/* One batch: up to max (1..LT_CONSUMER_BATCH_MAX) events of topic from the
 * consumer's next offset (0 when it has none), each given to apply, and
 * the offset after the last one stored, in one BEGIN IMMEDIATE
 * transaction on db (which must not be in a transaction; BEGIN waits for
 * the connection's busy_timeout).  *applied (may be NULL) = events
 * applied and committed; *skipped (may be NULL) = events the consumer
 * missed because retention had deleted them (0 normally).  A topic that
 * was never written, or an offset at or past its end: LT_OK, nothing
 * applied.  Errors (nothing committed, the offset unchanged, *applied 0):
 * apply's error; LT_EINVAL (a bad name, topic or max, NULL log, db or
 * apply, or db already in a transaction); LT_EBUSY (db stayed locked);
 * the log's read errors (LT_ECORRUPT, LT_EIO, LT_ENOMEM); LT_EIO. */
enum lt_err lt_consumer_poll(struct lt_evlog *log, struct sqlite3 *db, const char *name,
			     const char *topic, size_t max, lt_consumer_apply_fn apply, void *arg,
			     size_t *applied, uint64_t *skipped);

/* The consumer's next offset for topic.  LT_ENOTFOUND (and *next = 0)
 * when it has none (or db has no consumer_offsets table: nothing is
 * created).  Read-only; runs in the caller's transaction if any. */
enum lt_err lt_consumer_get(struct sqlite3 *db, const char *name, const char *topic,
			    uint64_t *next);

/* Set the consumer's next offset for topic (creating the row, and the
 * table when missing), in the caller's transaction if any (leakyctl
 * events replay checks the offset against the log first).  updated_at =
 * now_ms.  LT_EINVAL: a bad name or topic, or next above INT64_MAX. */
enum lt_err lt_consumer_set(struct sqlite3 *db, const char *name, const char *topic, uint64_t next,
			    int64_t now_ms);

/* Every (consumer, topic) row, ordered by consumer then topic; fn returning
 * non-OK stops and is returned.  No table: LT_OK, nothing listed. */
struct lt_consumer_row {
	char name[LT_CONSUMER_NAME_MAX + 1];
	char topic[LT_EV_TOPIC_MAX + 1];
	uint64_t next;
	int64_t updated_ms;
};
enum lt_err lt_consumer_list(struct sqlite3 *db,
			     enum lt_err (*fn)(void *arg, const struct lt_consumer_row *row),
			     void *arg);

#endif
