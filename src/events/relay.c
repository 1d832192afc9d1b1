/*
 * relay.c — outbox rows to the event log.  See relay.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events/evlog.h"
#include "events/outbox.h"
#include "events/relay.h"
#include "store/dbpool.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/log.h"

#define READER_WAIT_MS 1000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

/* One pass's rows, copied out of the reader's statement. */
struct pass {
	struct lt_event *ev; /* cap entries */
	char **owned;	     /* per entry: topic, type, key, payload packed */
	int64_t *created_ms; /* per entry: the row's created_at */
	size_t n, cap;
	int64_t first_created_ms;
};

static enum lt_err take_row(void *arg, const struct lt_outbox_row *row)
{
	struct pass *p = arg;
	size_t tl = strlen(row->topic), yl = strlen(row->type), kl = strlen(row->key);
	char *m = malloc(tl + yl + kl + row->payload_len + 1);
	if (!m)
		return LT_ENOMEM;
	memcpy(m, row->topic, tl);
	memcpy(m + tl, row->type, yl);
	memcpy(m + tl + yl, row->key, kl);
	memcpy(m + tl + yl + kl, row->payload, row->payload_len);
	struct lt_event *e = &p->ev[p->n];
	memset(e, 0, sizeof *e);
	e->event_id = (uint64_t)row->id;
	e->topic = m;
	e->topic_len = tl;
	e->type = m + tl;
	e->type_len = yl;
	e->key = m + tl + yl;
	e->key_len = kl;
	e->payload = m + tl + yl + kl;
	e->payload_len = row->payload_len;
	if (p->n == 0)
		p->first_created_ms = row->created_ms;
	p->created_ms[p->n] = row->created_ms;
	p->owned[p->n++] = m;
	return LT_OK;
}

static void pass_clear(struct pass *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->owned[i]);
	p->n = 0;
}

struct mark_op {
	int64_t up_to, now_ms;
};

static enum lt_err op_mark(struct sqlite3 *db, void *arg)
{
	struct mark_op *m = arg;
	return lt_outbox_mark(db, m->up_to, m->now_ms, NULL);
}

static int64_t now_ms(const struct lt_relay *r)
{
	return lt_clock_now_ns(r->clock) / LT_NS_PER_MS;
}

/* Mark what was appended and not yet marked.  false: the writer refused
 * (retried on the next pass; the rows are not read again). */
static bool mark(struct lt_relay *r)
{
	if (r->marked_id >= r->last_id)
		return true;
	struct mark_op m = {r->last_id, now_ms(r)};
	enum lt_err e = lt_writer_run(r->writer, op_mark, &m);
	if (e) {
		atomic_fetch_add(&r->failures, 1);
		if (e != LT_ESTOPPED)
			lt_log_warn(r->log, "relay: marking events up to %lld published failed: %s",
				    (long long)r->last_id, lt_strerror(e));
		return false;
	}
	r->marked_id = r->last_id;
	return true;
}

/* Make the commits of the rows just read durable before their events are:
 * with synchronous=NORMAL a WAL commit is not synced, and an event in the
 * (synced) log whose row a power loss took back would be a phantom.
 * fdatasync of the WAL file through our own descriptor syncs the file, so
 * every commit in it is durable after this.  No WAL file: nothing to do
 * (the rows were checkpointed, and checkpoints sync). */
static enum lt_err sync_wal(struct lt_relay *r)
{
	if (!r->wal_path)
		return LT_OK;
	int fd = open(r->wal_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? LT_OK : LT_EIO;
	int rc = fdatasync(fd);
	close(fd);
	return rc == 0 ? LT_OK : LT_EIO;
}

/* Append one batch.  *more: a full batch was read (there may be more). */
static enum lt_err pass_once(struct lt_relay *r, struct pass *p, bool *more)
{
	*more = false;
	struct sqlite3 *db;
	enum lt_err e = lt_dbpool_acquire(r->readers, READER_WAIT_MS, &db);
	if (e)
		return e;
	e = lt_outbox_pending(db, r->last_id, p->cap, take_row, p);
	lt_dbpool_release(r->readers, db);
	if (e || p->n == 0) {
		pass_clear(p);
		return e;
	}
	int64_t t = now_ms(r);
	for (size_t i = 0; i < p->n; i++)
		p->ev[i].time_ms = t;
	e = sync_wal(r);
	if (!e)
		e = lt_evlog_append(r->evlog, p->ev, p->n);
	if (!e) {
		r->last_id = (int64_t)p->ev[p->n - 1].event_id;
		atomic_fetch_add(&r->published, p->n);
		atomic_fetch_add(&r->batches, 1);
		atomic_store(&r->lag_ms, t - p->first_created_ms);
		for (size_t i = 0; r->observe && i < p->n; i++)
			r->observe(r->observe_arg, t - p->created_ms[i]);
		atomic_store(&r->last_append_ms, t);
		*more = p->n == p->cap;
	}
	pass_clear(p);
	return e;
}

/* Publish until nothing is pending or something fails. */
static enum lt_err drain(struct lt_relay *r, struct pass *p)
{
	bool more = true;
	enum lt_err e = LT_OK;
	while (!e && more) {
		e = pass_once(r, p, &more);
		if (!mark(r) && !e)
			e = LT_EBUSY;
	}
	return e;
}

static void *relay_main(void *arg)
{
	struct lt_relay *r = arg;
	struct pass p = {0};
	p.cap = r->batch;
	p.ev = calloc(p.cap, sizeof *p.ev);
	p.owned = calloc(p.cap, sizeof *p.owned);
	p.created_ms = calloc(p.cap, sizeof *p.created_ms);
	if (!p.ev || !p.owned || !p.created_ms) {
		lt_log_error(r->log, "relay: out of memory; events stay in the outbox");
		free(p.ev);
		free(p.owned);
		free(p.created_ms);
		return NULL;
	}
	int64_t backoff = 0;
	for (;;) {
		bool stop = lt_worker_wait(&r->worker, backoff ? backoff : r->poll_ms);
		enum lt_err e = drain(r, &p);
		if (e && e != LT_ESTOPPED) {
			backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
			if (backoff > BACKOFF_MAX_MS)
				backoff = BACKOFF_MAX_MS;
			if (e != LT_EBUSY)
				lt_log_error(r->log,
					     "relay: appending to the event log failed (%s); "
					     "retrying in %lld ms",
					     lt_strerror(e), (long long)backoff);
		} else {
			backoff = 0;
		}
		if (stop)
			break;
	}
	free(p.ev);
	free(p.owned);
	free(p.created_ms);
	return NULL;
}

/* ---- recovery ---- */

/* The largest event id of each topic: its last record's (a topic's
 * records are in id order). */
struct topic_max {
	char name[LT_EV_TOPIC_MAX + 1];
	uint64_t end;
	int64_t max_id;
};

struct recovery {
	struct lt_relay *r;
	struct topic_max *t;
	size_t n, cap;
	enum lt_err err;
	int64_t max_id, now_ms, marked;
};

static void collect_topic(void *arg, const struct lt_evlog_topic_stat *st)
{
	struct recovery *rc = arg;
	if (rc->err || st->end == 0)
		return;
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? rc->cap * 2 : 8;
		struct topic_max *t = realloc(rc->t, cap * sizeof *t);
		if (!t) {
			rc->err = LT_ENOMEM;
			return;
		}
		rc->t = t;
		rc->cap = cap;
	}
	struct topic_max *m = &rc->t[rc->n++];
	snprintf(m->name, sizeof m->name, "%s", st->name);
	m->end = st->end;
	m->max_id = 0;
}

static enum lt_err last_id_of(void *arg, const struct lt_event *ev)
{
	*(int64_t *)arg = (int64_t)ev->event_id;
	return LT_OK;
}

static enum lt_err op_recover(struct sqlite3 *db, void *arg)
{
	struct recovery *rc = arg;
	enum lt_err e = lt_outbox_reserve_ids(db, rc->max_id);
	for (size_t i = 0; !e && i < rc->n; i++) {
		int64_t n = 0;
		e = lt_outbox_mark_topic(db, rc->t[i].name, rc->t[i].max_id, rc->now_ms, &n);
		rc->marked += n;
	}
	return e;
}

/* After a crash: a batch's topics are written and synced one file after
 * another, so a topic may hold rows of a batch whose other topics were
 * lost.  Each topic's file holds a prefix of its rows in id order, so
 * marking, per topic, the rows up to that topic's largest event id marks
 * exactly what is in the log; the rest stays pending and is appended
 * again.  Ids are reserved up to the largest in the log so no new row can
 * reuse one (a database restored from an older copy). */
static enum lt_err recover(struct lt_relay *r)
{
	struct recovery rc = {.r = r, .now_ms = now_ms(r)};
	enum lt_err e = lt_evlog_stat(r->evlog, collect_topic, &rc);
	if (!e)
		e = rc.err;
	for (size_t i = 0; !e && i < rc.n; i++) {
		struct topic_max *m = &rc.t[i];
		e = lt_evlog_read(r->evlog, m->name, m->end - 1, 1, last_id_of, &m->max_id, NULL);
		if (m->max_id > rc.max_id)
			rc.max_id = m->max_id;
	}
	if (!e)
		e = lt_writer_run(r->writer, op_recover, &rc);
	free(rc.t);
	if (e) {
		lt_log_error(r->log, "relay: recovering the outbox against the log failed: %s",
			     lt_strerror(e));
		return e;
	}
	r->last_id = 0; /* pending rows are exactly those not in the log */
	r->marked_id = 0;
	if (rc.max_id)
		lt_log_info(r->log,
			    "relay: the event log holds events up to id %lld (%lld outbox row(s) "
			    "found already published)",
			    (long long)rc.max_id, (long long)rc.marked);
	return LT_OK;
}

enum lt_err lt_relay_start(struct lt_relay *r)
{
	if (!r->evlog || !r->writer || !r->readers || !r->clock || !r->log || r->poll_ms < 1 ||
	    r->batch < 1 || r->batch > 4096 || atomic_load(&r->worker.started))
		return LT_EINVAL;
	enum lt_err e = recover(r);
	if (e)
		return e;
	return lt_worker_start(&r->worker, relay_main, r);
}

void lt_relay_kick(struct lt_relay *r)
{
	lt_worker_kick(&r->worker);
}

void lt_relay_stop(struct lt_relay *r)
{
	lt_worker_stop(&r->worker);
}
