/*
 * worker.c — a kickable background thread.  See worker.h.
 */
#include <errno.h>
#include <time.h>

#include "util/worker.h"

enum lt_err lt_worker_start(struct lt_worker *w, void *(*fn)(void *arg), void *arg)
{
	if (atomic_load(&w->started))
		return LT_EINVAL;
	w->kicked = w->stop = false;
	if (pthread_mutex_init(&w->mu, NULL))
		return LT_ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		pthread_mutex_destroy(&w->mu);
		return LT_ENOMEM;
	}
	if (pthread_create(&w->thread, NULL, fn, arg)) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		return LT_ENOMEM;
	}
	atomic_store(&w->started, true);
	return LT_OK;
}

bool lt_worker_wait(struct lt_worker *w, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->kicked && !w->stop)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	w->kicked = false;
	bool stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

bool lt_worker_stopping(struct lt_worker *w)
{
	pthread_mutex_lock(&w->mu);
	bool stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

void lt_worker_kick(struct lt_worker *w)
{
	if (!atomic_load(&w->started))
		return;
	pthread_mutex_lock(&w->mu);
	w->kicked = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void lt_worker_stop(struct lt_worker *w)
{
	if (!atomic_load(&w->started))
		return;
	atomic_store(&w->started, false); /* no more kicks */
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}
