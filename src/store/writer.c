/*
 * writer.c — group-commit writer thread.  See writer.h.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "store/writer.h"

static void *writer_main(void *arg);

enum lt_err lt_writer_start(struct lt_writer *w, sqlite3 *db, size_t queue_cap, size_t batch,
			    void (*on_group)(void *arg, size_t group), void *on_group_arg)
{
	memset(w, 0, sizeof *w);
	w->on_group = on_group;
	w->on_group_arg = on_group_arg;
	w->ring = calloc(queue_cap, sizeof *w->ring);
	if (!w->ring)
		return LT_ENOMEM;
	w->db = db;
	w->cap = queue_cap;
	w->batch = batch ? batch : 1;
	atomic_init(&w->commits, 0);
	atomic_init(&w->writes, 0);
	atomic_init(&w->failed, 0);
	atomic_init(&w->max_group, 0);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->nonempty, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->nonempty);
		pthread_mutex_destroy(&w->lock);
		free(w->ring);
		w->ring = NULL;
		return LT_ENOMEM;
	}
	w->initialised = true;
	atomic_store(&w->started, true);
	return LT_OK;
}

void lt_writer_stop(struct lt_writer *w)
{
	if (!atomic_load(&w->started))
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->nonempty);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	atomic_store(&w->started, false);
}

void lt_writer_release(struct lt_writer *w)
{
	lt_writer_stop(w);
	if (!w->initialised)
		return;
	pthread_cond_destroy(&w->nonempty);
	pthread_mutex_destroy(&w->lock);
	free(w->ring);
	w->ring = NULL;
	w->initialised = false;
}

enum lt_err lt_writer_run(struct lt_writer *w, lt_write_fn fn, void *arg)
{
	struct lt_write job = {.fn = fn, .arg = arg, .result = LT_OK};
	if (!w->initialised)
		return LT_ESTOPPED;
	sem_init(&job.done, 0, 0);
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		sem_destroy(&job.done);
		return LT_ESTOPPED;
	}
	if (w->count == w->cap) {
		pthread_mutex_unlock(&w->lock);
		sem_destroy(&job.done);
		return LT_EBUSY;
	}
	w->ring[(w->head + w->count) % w->cap] = &job;
	w->count++;
	if (w->count == 1)
		pthread_cond_signal(&w->nonempty);
	pthread_mutex_unlock(&w->lock);
	while (sem_wait(&job.done) != 0 && errno == EINTR)
		;
	sem_destroy(&job.done);
	return job.result;
}

/* Run one group of writes in a transaction and set each job's result. */
static void run_group(struct lt_writer *w, struct lt_write **jobs, size_t n)
{
	size_t ok = 0;
	enum lt_err e = lt_db_exec(w->db, "BEGIN IMMEDIATE", NULL);
	if (e) {
		for (size_t i = 0; i < n; i++)
			jobs[i]->result = LT_EIO;
		atomic_fetch_add(&w->failed, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct lt_write *j = jobs[i];
		if (lt_db_exec(w->db, "SAVEPOINT w", NULL)) {
			j->result = LT_EIO;
			continue;
		}
		j->result = j->fn(w->db, j->arg);
		if (j->result)
			lt_db_exec(w->db, "ROLLBACK TO w", NULL);
		else
			ok++;
		lt_db_exec(w->db, "RELEASE w", NULL);
	}
	if (lt_db_exec(w->db, "COMMIT", NULL)) {
		lt_db_exec(w->db, "ROLLBACK", NULL);
		for (size_t i = 0; i < n; i++)
			if (jobs[i]->result == LT_OK)
				jobs[i]->result = LT_EIO;
		atomic_fetch_add(&w->failed, n);
		return;
	}
	atomic_fetch_add(&w->commits, 1);
	atomic_fetch_add(&w->writes, ok);
	atomic_fetch_add(&w->failed, n - ok);
}

static void *writer_main(void *arg)
{
	struct lt_writer *w = arg;
	struct lt_write **group = calloc(w->batch, sizeof *group);
	size_t batch = group ? w->batch : 1;
	struct lt_write *one;
	if (!group)
		group = &one;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (w->count == 0 && !w->stopping)
			pthread_cond_wait(&w->nonempty, &w->lock);
		if (w->count == 0 && w->stopping) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		size_t n = w->count < batch ? w->count : batch;
		for (size_t i = 0; i < n; i++)
			group[i] = w->ring[(w->head + i) % w->cap];
		w->head = (w->head + n) % w->cap;
		w->count -= n;
		pthread_mutex_unlock(&w->lock);

		run_group(w, group, n);
		uint_least64_t mg = atomic_load(&w->max_group);
		while (n > mg && !atomic_compare_exchange_weak(&w->max_group, &mg, n))
			;
		if (w->on_group)
			w->on_group(w->on_group_arg, n);
		for (size_t i = 0; i < n; i++)
			sem_post(&group[i]->done);
	}
	if (group != &one)
		free(group);
	return NULL;
}

void lt_writer_get_stats(struct lt_writer *w, struct lt_writer_stats *out)
{
	out->commits = atomic_load(&w->commits);
	out->writes = atomic_load(&w->writes);
	out->failed = atomic_load(&w->failed);
	out->max_group = atomic_load(&w->max_group);
	if (w->initialised) {
		pthread_mutex_lock(&w->lock);
		out->depth = w->count;
		pthread_mutex_unlock(&w->lock);
	} else {
		out->depth = 0;
	}
}
