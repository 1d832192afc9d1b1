/*
 * worker.h — a background thread that sleeps until it is kicked, a period
 * passes, or it is told to stop: the loop of the event relay and the
 * analytics ingest.
 *
 *   lt_worker_start(w, fn, arg)   run fn(arg) on a new thread
 *   lt_worker_wait(w, ms)         in fn: sleep until a kick, ms, or stop;
 *                                 true when stopping (the kick is consumed)
 *   lt_worker_stopping(w)         in fn: has stop been asked (no wait)
 *   lt_worker_kick(w)             any thread: wake it (no-op when not started)
 *   lt_worker_stop(w)             ask it to stop, join it; safe twice
 *
 * Waits use CLOCK_MONOTONIC, so a wall-clock step does not stretch them.
 * Locking: mu guards kicked and stop; started is atomic so a kick from any
 * thread after stop does nothing.
 */
#ifndef LT_UTIL_WORKER_H
#define LT_UTIL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct lt_worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool kicked, stop; /* [mu] */
	atomic_bool started;
};

enum lt_err lt_worker_start(struct lt_worker *w, void *(*fn)(void *arg), void *arg);
bool lt_worker_wait(struct lt_worker *w, int64_t ms);
bool lt_worker_stopping(struct lt_worker *w);
void lt_worker_kick(struct lt_worker *w);
void lt_worker_stop(struct lt_worker *w);

#endif
