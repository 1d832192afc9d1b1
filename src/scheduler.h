/*
 * scheduler.h — the scheduler thread: periodic maintenance.
 *
 * Flush LMDB (lmdb_sync_interval_ms), clear stale LMDB readers left by dead
 * processes (every 10 s), checkpoint the SQLite WAL on its own connection
 * (checkpoint_interval_ms), event log retention and the pruning of
 * published outbox rows, the sweep of expired rate-limit buckets and
 * analytics retention (every 60 s), saga recovery (lt_sagas_tick paces
 * itself: [saga] recovery_interval_ms).
 * Quota windows need no job: they roll when a pool is next used.
 * Intervals are read from the current config snapshot at each tick, so
 * SIGHUP changes them.
 *
 * Locking: `lock` + `wake` guard `stopping` only.
 * Ownership: the scheduler opens and closes its own SQLite connection.
 */
#ifndef LT_SCHEDULER_H
#define LT_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>

#include "util/err.h"

struct lt_server;

struct lt_scheduler {
	struct lt_server *srv;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping, started;
};

enum lt_err lt_scheduler_start(struct lt_scheduler *s, struct lt_server *srv);
void lt_scheduler_stop(struct lt_scheduler *s);

#endif
