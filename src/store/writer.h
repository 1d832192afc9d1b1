/*
 * writer.h — the writer thread: every hot-path write to leaky.db goes here.
 *
 * Callers submit a write (a function that runs SQL on the writer's
 * connection) and block on their own ticket until it has been committed.
 * The writer takes up to `batch` queued writes, runs them in one
 * BEGIN IMMEDIATE ... COMMIT (group commit), each inside its own SAVEPOINT so
 * one failing write rolls back alone, then wakes each caller with its own
 * result.  If the COMMIT itself fails, every write of the group gets LT_EIO.
 *
 * The queue is bounded: a full queue answers LT_EBUSY at once (the HTTP layer
 * turns it into 503).  lt_writer_stop() commits everything already queued,
 * then refuses new writes with LT_ESTOPPED; the queue and its lock stay
 * valid until lt_writer_release(), so a late caller gets LT_ESTOPPED rather
 * than a destroyed mutex.
 *
 * Locking: `lock` guards the queue and the stop flag.  The sqlite3 handle is
 * used only by the writer thread while it runs.  Stats are atomics.
 * Ownership: the writer borrows `db`; the caller closes it after stop.
 */
#ifndef LT_STORE_WRITER_H
#define LT_STORE_WRITER_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct sqlite3;

/* Runs on the writer thread inside a transaction.  Return LT_OK to keep
 * its changes, anything else to roll them back. */
typedef enum lt_err (*lt_write_fn)(struct sqlite3 *db, void *arg);

struct lt_write { /* a caller's ticket; lives on the caller's stack */
	lt_write_fn fn;
	void *arg;
	enum lt_err result;
	sem_t done;
};

struct lt_writer_stats {
	uint64_t commits;   /* transactions committed */
	uint64_t writes;    /* writes that succeeded */
	uint64_t failed;    /* writes that returned an error or lost a commit */
	uint64_t max_group; /* largest group seen */
	size_t depth;	    /* writes waiting now */
};

struct lt_writer {
	struct sqlite3 *db;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t nonempty;
	struct lt_write **ring; /* capacity `cap` */
	size_t cap, head, count;
	size_t batch;
	bool stopping;	     /* guarded by lock */
	atomic_bool started; /* thread running; lock and ring valid until release */
	bool initialised;    /* lock and ring exist */
	atomic_uint_least64_t commits, writes, failed, max_group;
	void (*on_group)(void *arg, size_t group); /* optional observer */
	void *on_group_arg;
};

/* on_group (may be NULL) is called on the writer thread after each commit
 * with the group's size. */
enum lt_err lt_writer_start(struct lt_writer *w, struct sqlite3 *db, size_t queue_cap, size_t batch,
			    void (*on_group)(void *arg, size_t group), void *on_group_arg);
/* Commit what is queued, stop the thread.  Safe to call twice. */
void lt_writer_stop(struct lt_writer *w);
/* Free the queue and lock after stop, once no thread can call run. */
void lt_writer_release(struct lt_writer *w);

/* Run fn(db, arg) on the writer and wait for its commit.  Returns fn's
 * result, LT_EIO if the commit failed, LT_EBUSY if the queue is full,
 * LT_ESTOPPED after stop. */
enum lt_err lt_writer_run(struct lt_writer *w, lt_write_fn fn, void *arg);

void lt_writer_get_stats(struct lt_writer *w, struct lt_writer_stats *out);

#endif
