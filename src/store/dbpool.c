/*
 * dbpool.c — read connection pool.  See dbpool.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/db.h"
#include "store/dbpool.h"

enum lt_err lt_dbpool_open(struct lt_dbpool *p, const char *path, size_t size, int busy_ms,
			   char *err)
{
	memset(p, 0, sizeof *p);
	p->conns = calloc(size, sizeof *p->conns);
	p->idle = calloc(size, sizeof *p->idle);
	if (!p->conns || !p->idle) {
		free(p->conns);
		free(p->idle);
		return LT_ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->freed, NULL);
	for (size_t i = 0; i < size; i++) {
		enum lt_err e = lt_db_open(path, false, false, 1, busy_ms, &p->conns[i], err);
		if (e) {
			p->size = i;
			lt_dbpool_close(p);
			return e;
		}
		p->idle[i] = p->conns[i];
	}
	p->size = p->nidle = size;
	return LT_OK;
}

void lt_dbpool_close(struct lt_dbpool *p)
{
	if (!p->conns)
		return;
	for (size_t i = 0; i < p->size; i++)
		lt_db_close(p->conns[i]);
	free(p->conns);
	free(p->idle);
	p->conns = p->idle = NULL;
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
}

enum lt_err lt_dbpool_acquire(struct lt_dbpool *p, int64_t timeout_ms, struct sqlite3 **out)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000);
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (p->nidle == 0) {
		if (pthread_cond_timedwait(&p->freed, &p->lock, &until) != 0 && p->nidle == 0) {
			pthread_mutex_unlock(&p->lock);
			return LT_EBUSY;
		}
	}
	*out = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->lock);
	return LT_OK;
}

void lt_dbpool_release(struct lt_dbpool *p, struct sqlite3 *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&p->lock);
	p->idle[p->nidle++] = db;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}
