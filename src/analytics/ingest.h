/*
 * ingest.h — the analytics ingest: a consumer of the event log's
 * "token-usage" topic (events/consumer.h's offsets, consumer "analytics")
 * that appends each event's usage fact to its day table and the batch's
 * per-minute rollups to rollup_minute in analytics.db (store.h), and the
 * strict parser of a token-usage payload (events/usage_event.h).
 *
 * Exactly once: one poll is one BEGIN IMMEDIATE transaction on
 * analytics.db: read the stored offset, read up to `batch` events from the
 * log from there, insert their facts (INSERT OR IGNORE by event id: an id
 * already stored is counted as a duplicate and adds nothing to the
 * rollups), append one rollup row per (minute, user, org, provider, model)
 * the batch touched, store the offset after the last event, commit.  The
 * rows and the offset commit together or not at all, so after a crash at
 * any instant every event counts exactly once; after downtime the thread
 * catches up batch after batch from the stored offset.  lt_consumer_poll
 * is not used because the rollups are written at the batch's end; this is
 * the same transaction shape with that step added.
 *
 * Bad events: a payload the parser refuses is logged (the first of each
 * batch, with the count) and skipped: its offset is consumed, nothing is
 * stored, stats.bad counts it.  Events that retention deleted before they
 * were read are skipped to the log's start (stats.skipped), as in
 * consumer.h.
 *
 * Threads: lt_an_ingest_start runs the polls on a thread of its own that
 * owns `db` until lt_an_ingest_stop; lt_an_ingest_kick and the stats (and
 * lt_an_ingest_lag) may be used from any thread.  Without start, polls
 * run on the caller's thread (tests, leakyctl).
 *
 * Ownership: every pointer set before init is borrowed and must outlive
 * the ingest; lt_an_ingest_init allocates the batch scratch that
 * lt_an_ingest_release frees (after stop).
 */
#ifndef LT_ANALYTICS_INGEST_H
#define LT_ANALYTICS_INGEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/store.h"
#include "util/err.h"
#include "util/worker.h"

struct sqlite3;
struct lt_evlog;
struct lt_clock;
struct lt_log;

#define LT_AN_BATCH_DEFAULT 1000
#define LT_AN_BATCH_MAX 4096 /* events per transaction */
#define LT_AN_POLL_DEFAULT_MS 200
#define LT_AN_PAYLOAD_MAX 65536 /* larger payloads are refused unparsed */

/* Bounds of a parsed fact's numbers (larger is refused: per-event values
 * stay far from overflowing the int64 sums of a rollup or a query). */
#define LT_AN_TOKENS_MAX INT64_C(1000000000000)	 /* 1e12 */
#define LT_AN_COST_MAX INT64_C(1000000000000000) /* 1e15 micro-dollars */
#define LT_AN_LATENCY_MAX INT64_C(1000000000000) /* ms */

/* Parse a token-usage payload (n bytes of JSON) into *out, strictly:
 *   - a JSON object with "type" == "TOKEN_USAGE";
 *   - "time" a string exactly "YYYY-MM-DDTHH:MM:SS.mmmZ" (the form
 *     lt_time_iso writes: it must format back to the same bytes);
 *   - "allowed" a boolean;
 *   - "userId", "orgId", "keyId", "provider", "model", "endpoint",
 *     "reason", "outcome", "correlationId": a string or null/absent ("");
 *   - "tokens" an object with integers "input" and "output" (required),
 *     "cachedInput" and "reasoning" (absent/null: 0) and "total" (absent/
 *     null, or exactly input + output); 0 <= each <= LT_AN_TOKENS_MAX,
 *     cachedInput <= input, reasoning <= output;
 *   - "costMicros" (0..LT_AN_COST_MAX), "latencyMs" (0..LT_AN_LATENCY_MAX),
 *     "requestedTokens" integers, "stream" and "estimated" booleans, each
 *     optional (absent/null: 0 / false);
 *   - any other member is ignored.
 * out->event_id is set to event_id (the frame's, not the payload's).
 * Errors (*out zeroed): LT_ESYNTAX (not JSON, not an object, a bad time
 * string), LT_EINVAL (a member of the wrong type, a wrong "type", a
 * missing required member), LT_ERANGE (a number out of bounds or
 * inconsistent tokens, a time out of range), LT_ETOOBIG (a string over its
 * cap in store.h, or a payload over LT_AN_PAYLOAD_MAX), LT_ENOMEM. */
enum lt_err lt_an_fact_parse(const char *json, size_t n, uint64_t event_id, struct lt_an_fact *out);

struct lt_an_ingest_stats {
	atomic_uint_least64_t events;	    /* facts appended */
	atomic_uint_least64_t duplicates;   /* events whose id was already stored */
	atomic_uint_least64_t bad;	    /* events skipped: payload refused */
	atomic_uint_least64_t skipped;	    /* events retention deleted unread */
	atomic_uint_least64_t batches;	    /* committed transactions that consumed events */
	atomic_uint_least64_t rollup_rows;  /* rollup_minute rows appended */
	atomic_uint_least64_t failures;	    /* polls rolled back */
	atomic_uint_least64_t next_offset;  /* the stored offset after the last poll */
	atomic_uint_least64_t lag;	    /* log end - next offset, after the last poll */
	atomic_int_least64_t last_batch_ms; /* real time of the last committed batch */
};

struct lt_an_ingest {
	/* borrowed, set before lt_an_ingest_init */
	struct lt_evlog *evlog;
	struct sqlite3 *db;	/* analytics.db, from lt_an_db_open */
	struct lt_clock *clock; /* days.created_at; NULL: real time */
	struct lt_log *log;	/* NULL: no logging */
	int64_t poll_ms;	/* backstop period (0: LT_AN_POLL_DEFAULT_MS) */
	size_t batch;		/* events per transaction, 0: LT_AN_BATCH_DEFAULT */
	/* test seam: called after the batch's rows are written and the offset
	 * stored, before COMMIT; non-OK rolls everything back and is returned
	 * by the poll (a crash before the commit, as far as the file goes) */
	enum lt_err (*before_commit)(void *arg);
	void *before_commit_arg;

	struct lt_an_ingest_stats stats;

	/* private */
	struct lt_an_scratch *scratch;
	struct lt_worker worker;
};

/* Check the settings and allocate the scratch; reads the stored offset
 * into stats.next_offset.  LT_EINVAL (no log or db, batch or poll out of
 * range), LT_ENOMEM, storage errors. */
enum lt_err lt_an_ingest_init(struct lt_an_ingest *g);
void lt_an_ingest_release(struct lt_an_ingest *g);

/* One batch, on the caller's thread (not while the thread runs).
 * *consumed (may be NULL) = offsets consumed (facts, duplicates and bad
 * events; not retention skips).  A topic never written, or nothing new:
 * LT_OK, 0.  Errors (nothing committed, the offset unchanged): LT_EBUSY
 * (the database stayed locked), the log's read errors (LT_ECORRUPT,
 * LT_EIO, LT_ENOMEM), LT_EIO, before_commit's error. */
enum lt_err lt_an_ingest_poll(struct lt_an_ingest *g, size_t *consumed);

/* Poll until a batch comes back short (caught up) or fails. */
enum lt_err lt_an_ingest_drain(struct lt_an_ingest *g, uint64_t *consumed);

/* The log's end minus the stored offset now (0 when the topic was never
 * written).  Any thread (uses only the log and the stats). */
uint64_t lt_an_ingest_lag(struct lt_an_ingest *g);

/* Start the thread: it drains at start, when kicked and every poll_ms;
 * after a failed poll it retries with doubling backoff up to 5 s. */
enum lt_err lt_an_ingest_start(struct lt_an_ingest *g);
void lt_an_ingest_kick(struct lt_an_ingest *g);
/* Stop and join the thread.  Safe to call twice, or without start. */
void lt_an_ingest_stop(struct lt_an_ingest *g);

#endif
