/*
 * relay.h — the relay thread: moves committed outbox rows (outbox.h) into
 * the event log (evlog.h), in id order, exactly once.
 *
 * Each pass reads up to `batch` pending rows after the last id it
 * appended (a reader connection), appends them as one batch (synced before
 * lt_evlog_append returns), then marks them published (a writer
 * operation).  It runs when kicked (the writer kicks it after every
 * commit) and at least every poll_ms as a backstop.  When the log is not
 * writable it retries with doubling backoff (up to 5 s), losing nothing:
 * the rows stay pending.
 *
 * Crash between append and mark: at start the relay marks, per topic, the
 * rows up to that topic's largest event id in the log published (a batch's
 * topics are separate files, synced one after another, so a crash can keep
 * one topic's part of a batch and lose another's), and reserves ids up to
 * the log's largest so no new row reuses one; no row is appended twice.
 *
 * Durability: before appending, the relay fdatasyncs leaky.db's WAL, so a
 * row's commit is durable before its event is (synchronous=NORMAL does not
 * sync commits): no event can outlive its change in a power loss.
 *
 * Order: rows are appended in id order, and ids are assigned in commit
 * order (SQLite has one writer at a time), so the order per aggregate (and
 * overall) is the commit order.
 *
 * Threads: lt_relay_kick from any thread; the rest from the owner.
 */
#ifndef LT_EVENTS_RELAY_H
#define LT_EVENTS_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/worker.h"

struct lt_evlog;
struct lt_writer;
struct lt_dbpool;
struct lt_clock;
struct lt_log;

struct lt_relay {
	/* borrowed, set before start */
	struct lt_evlog *evlog;
	struct lt_writer *writer;
	struct lt_dbpool *readers;
	struct lt_clock *clock;
	struct lt_log *log;
	const char *wal_path; /* leaky.db's WAL file, synced before each append; NULL: not */
	int64_t poll_ms;      /* backstop period, >= 1 */
	size_t batch;	      /* rows per append, 1..4096 */
	/* optional: told each appended event's commit-to-log delay (append
	 * time − the row's created_at, ms), on the relay thread */
	void (*observe)(void *arg, int64_t lag_ms);
	void *observe_arg;

	/* private */
	struct lt_worker worker;
	int64_t last_id;   /* the largest event id appended (relay thread) */
	int64_t marked_id; /* the largest id marked published (relay thread) */

	/* stats, any thread */
	atomic_uint_least64_t published; /* events appended */
	atomic_uint_least64_t batches;
	atomic_uint_least64_t failures; /* appends or marks that failed */
	atomic_int_least64_t lag_ms;	/* append time − created_at of the batch's first row */
	atomic_int_least64_t last_append_ms;
};

/* Recover (mark up to the log's largest event id), then start the
 * thread. */
enum lt_err lt_relay_start(struct lt_relay *r);

/* Wake the relay: rows may be pending. */
void lt_relay_kick(struct lt_relay *r);

/* One last pass (publish what is pending, while the writer still runs),
 * then stop the thread.  Safe to call twice, or without start. */
void lt_relay_stop(struct lt_relay *r);

#endif
