/*
 * outbox.h — the transactional outbox in leaky.db (schema.sql migration 4).
 *
 * A state change that others must hear about inserts its event with
 * lt_outbox_add in the SAME transaction as the change (inside a writer
 * operation, or leakyctl's own transaction), so the event exists exactly
 * when the change does.  The relay thread (relay.h) later appends pending
 * rows to the event log in id order and marks them published.  The row id
 * is the event id (AUTOINCREMENT: never reused).
 *
 * Topics: LT_TOPIC_USAGE, LT_TOPIC_PURCHASE, LT_TOPIC_AUDIT (and any name
 * the event log accepts).  Payloads are JSON objects, at most
 * LT_EV_PAYLOAD_MAX bytes.
 *
 * Ownership: no allocation survives a call except the payload of a row
 * handed to a callback, which is valid during the callback only.
 */
#ifndef LT_EVENTS_OUTBOX_H
#define LT_EVENTS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "events/frame.h"
#include "util/err.h"

struct sqlite3;

#define LT_TOPIC_USAGE "token-usage"
#define LT_TOPIC_PURCHASE "token-purchase"
#define LT_TOPIC_AUDIT "audit"

/* Insert one event (a pending row) in the caller's transaction.  key may
 * be NULL (""); *id (may be NULL) = its event id.  LT_EINVAL for a topic,
 * type or key out of frame.h's bounds or a payload over
 * LT_EV_PAYLOAD_MAX. */
enum lt_err lt_outbox_add(struct sqlite3 *db, const char *topic, const char *key, const char *type,
			  const char *payload, int64_t now_ms, int64_t *id);

struct lt_outbox_row {
	int64_t id;
	char topic[LT_EV_TOPIC_MAX + 1];
	char type[LT_EV_TYPE_MAX + 1];
	char key[LT_EV_KEY_MAX + 1];
	const char *payload; /* valid during the callback */
	size_t payload_len;
	int64_t created_ms;
};

/* Pending rows with id > after_id, in id order, at most max; fn per row
 * (returning non-OK stops and is returned).  Read-only. */
enum lt_err lt_outbox_pending(struct sqlite3 *db, int64_t after_id, size_t max,
			      enum lt_err (*fn)(void *arg, const struct lt_outbox_row *row),
			      void *arg);

/* Mark every pending row with id <= up_to published at now_ms; *n (may be
 * NULL) = rows marked.  A writer operation. */
enum lt_err lt_outbox_mark(struct sqlite3 *db, int64_t up_to, int64_t now_ms, int64_t *n);

/* The same for the rows of one topic only (the relay's recovery: each
 * topic's file holds a prefix of its rows in id order, so "id <= the
 * topic's largest event id in the log" is exactly what is in the log). */
enum lt_err lt_outbox_mark_topic(struct sqlite3 *db, const char *topic, int64_t up_to,
				 int64_t now_ms, int64_t *n);

/* Make sure no future row gets an id <= min_id (after a database restored
 * from a copy older than the event log, or commits lost with the machine:
 * new rows must not reuse ids already in the log).  A writer operation. */
enum lt_err lt_outbox_reserve_ids(struct sqlite3 *db, int64_t min_id);

struct lt_outbox_stat {
	int64_t pending;	    /* rows not yet in the log */
	int64_t oldest_pending_ms;  /* created_at of the oldest pending row; 0 if none */
	int64_t max_id;		    /* the largest event id so far; 0 if none */
	int64_t published_retained; /* published rows not yet pruned */
};
enum lt_err lt_outbox_stat(struct sqlite3 *db, struct lt_outbox_stat *out);

/* Delete at most max published rows published before before_ms (they are
 * in the event log); *n = rows deleted.  A writer operation. */
enum lt_err lt_outbox_prune(struct sqlite3 *db, int64_t before_ms, size_t max, int64_t *n);

#endif
