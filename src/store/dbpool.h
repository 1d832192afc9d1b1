/*
 * dbpool.h — a fixed set of read connections to leaky.db.
 *
 * A SQLite connection serves one thread at a time; request threads borrow
 * one for a cache miss and give it back.  The pool holds `size` connections
 * opened at start; lt_dbpool_acquire waits (bounded) when all are lent out.
 * Locking: one mutex and condition variable around the free list.
 * Ownership: the pool owns its connections; a borrowed one must be
 * returned with lt_dbpool_release before the pool is closed.
 */
#ifndef LT_STORE_DBPOOL_H
#define LT_STORE_DBPOOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct sqlite3;

struct lt_dbpool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct sqlite3 **conns; /* all connections */
	struct sqlite3 **idle;	/* stack of idle ones */
	size_t size, nidle;
};

/* Open `size` read-write connections (writes still go through the writer;
 * read-write lets SQLite's WAL recovery run) to path.  err: LT_DB_ERR_MAX. */
enum lt_err lt_dbpool_open(struct lt_dbpool *p, const char *path, size_t size, int busy_ms,
			   char *err);
void lt_dbpool_close(struct lt_dbpool *p);

/* Borrow a connection, waiting up to timeout_ms; LT_EBUSY on time-out. */
enum lt_err lt_dbpool_acquire(struct lt_dbpool *p, int64_t timeout_ms, struct sqlite3 **out);
void lt_dbpool_release(struct lt_dbpool *p, struct sqlite3 *db);

#endif
