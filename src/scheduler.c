/*
 * scheduler.c — periodic maintenance thread.  See scheduler.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "analytics/store.h"
#include "conf/config.h"
#include "saga/runner.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "limit/bucket_store.h"
#include "scheduler.h"
#include "server.h"
#include "store/db.h"
#include "store/kv.h"

#define TICK_MS 100
#define READER_CHECK_MS 10000
#define EVENTS_MAINT_MS 60000
#define OUTBOX_PRUNE_MAX 10000
#define BUCKET_SWEEP_MAX 100000

struct prune_op {
	int64_t before_ms;
	int64_t n;
};

static enum lt_err op_prune(struct sqlite3 *db, void *arg)
{
	struct prune_op *p = arg;
	return lt_outbox_prune(db, p->before_ms, OUTBOX_PRUNE_MAX, &p->n);
}

/* Every minute: expired buckets, event log retention, the outbox rows
 * already in the log, analytics day tables past retention. */
static void events_maintenance(struct lt_server *srv, const struct lt_config *cfg)
{
	int64_t now_ms = lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS;
	size_t removed = 0;
	/* buckets back to their fresh state carry nothing: drop them (the
	 * bucket store also sweeps when its map fills) */
	if (srv->kv &&
	    lt_bucket_sweep(srv->kv, now_ms * LT_NS_PER_MS, BUCKET_SWEEP_MAX, &removed) == LT_OK &&
	    removed)
		lt_log_debug(&srv->log, "scheduler: swept %zu expired bucket(s)", removed);
	removed = 0;
	if (srv->evlog && lt_evlog_retain(srv->evlog, now_ms, &removed) == LT_OK && removed)
		lt_log_info(&srv->log, "scheduler: event log retention removed %zu segment(s)",
			    removed);
	if (!lt_server_is_ready(srv))
		return;
	/* analytics: whole day tables past [analytics] retention_days */
	struct sqlite3 *an = NULL;
	char err[LT_DB_ERR_MAX];
	size_t dropped = 0;
	if (srv->analytics_open &&
	    lt_an_db_open(cfg->storage_data_dir, false, (int)cfg->storage_sqlite_synchronous,
			  (int)cfg->storage_busy_timeout_ms, &an, err) == LT_OK) {
		if (lt_an_retain(an, now_ms, cfg->analytics_retention_days, &dropped) == LT_OK &&
		    dropped)
			lt_log_info(&srv->log,
				    "scheduler: analytics retention dropped %zu day table(s)",
				    dropped);
		lt_db_close(an);
	}
	struct prune_op p = {now_ms - cfg->events_outbox_retention_hours * 3600 * INT64_C(1000), 0};
	if (lt_writer_run(&srv->writer, op_prune, &p) == LT_OK && p.n)
		lt_log_debug(&srv->log, "scheduler: pruned %lld published outbox row(s)",
			     (long long)p.n);
}

static void *sched_main(void *arg)
{
	struct lt_scheduler *s = arg;
	struct lt_server *srv = s->srv;
	struct sqlite3 *db = NULL;
	char err[LT_DB_ERR_MAX];
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	if (lt_db_open(srv->db_path, false, false, (int)cfg->storage_sqlite_synchronous,
		       (int)cfg->storage_busy_timeout_ms, &db, err))
		lt_log_error(&srv->log, "scheduler: no checkpoint connection: %s", err);
	lt_server_config_release(srv, cfg);
	int64_t last_sync = lt_clock_mono_ns(), last_readers = last_sync, last_ckpt = last_sync;
	int64_t last_events = last_sync;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->wake, &s->lock, &until);
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->lock);

		int64_t now = lt_clock_mono_ns();
		cfg = lt_server_config_acquire(srv);
		if (srv->kv &&
		    now - last_sync >= cfg->storage_lmdb_sync_interval_ms * LT_NS_PER_MS) {
			if (lt_kv_sync(srv->kv))
				lt_log_error(&srv->log, "scheduler: LMDB sync failed");
			last_sync = now;
		}
		if (srv->kv && now - last_readers >= READER_CHECK_MS * LT_NS_PER_MS) {
			int dead = 0;
			if (lt_kv_reader_check(srv->kv, &dead) == LT_OK && dead)
				lt_log_warn(&srv->log,
					    "scheduler: cleared %d stale LMDB reader slots", dead);
			last_readers = now;
		}
		if (db && now - last_ckpt >= cfg->storage_checkpoint_interval_ms * LT_NS_PER_MS) {
			int logf = 0, done = 0;
			enum lt_err e = lt_db_checkpoint(db, &logf, &done);
			if (e && e != LT_EBUSY)
				lt_log_error(&srv->log, "scheduler: WAL checkpoint failed");
			else
				lt_log_debug(&srv->log, "scheduler: WAL checkpoint %d/%d frames",
					     done, logf);
			last_ckpt = now;
		}
		if (now - last_events >= EVENTS_MAINT_MS * LT_NS_PER_MS) {
			events_maintenance(srv, cfg);
			last_events = now;
		}
		/* saga recovery: paces itself ([saga] recovery_interval_ms) */
		lt_sagas_tick(srv, lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS);
		lt_server_config_release(srv, cfg);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	lt_db_close(db);
	return NULL;
}

enum lt_err lt_scheduler_start(struct lt_scheduler *s, struct lt_server *srv)
{
	s->srv = srv;
	s->stopping = false;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0)
		return LT_ENOMEM;
	s->started = true;
	return LT_OK;
}

void lt_scheduler_stop(struct lt_scheduler *s)
{
	if (!s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	s->started = false;
}
