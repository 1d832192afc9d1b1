/*
 * runner.c — the purchase sagas' workers, queue, waiters and recovery.
 * See runner.h.
 *
 * Invariants (under r->mu): a saga id is at most once in the queue, and a
 * queued id is not running; a running id sits in its worker's `run` slot.
 * A kick of a running saga sets the slot's `kicked`, and the worker queues
 * it again, due now, when it finishes.  Waiters are slots too; a worker
 * updates every waiter of a saga after each state it commits and
 * broadcasts `progress`.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/payment.h"
#include "saga/runner.h"
#include "saga/saga_store.h"
#include "server.h"
#include "store/db.h"

#define STEPS_PER_RUN 64    /* then the saga goes back in the queue */
#define STORE_RETRY_MS 1000 /* after a write or read of leaky.db failed */

struct job {
	char id[LT_UUID_LEN];
	int64_t due_ns; /* lt_clock_mono_ns */
};

struct run_slot {
	char id[LT_UUID_LEN];
	bool busy;
	bool kicked;
};

struct waiter {
	char id[LT_UUID_LEN];
	bool used, seen, final;
	enum lt_saga_state state;
};

struct worker {
	struct lt_sagas *r;
	size_t idx;
	pthread_t thread;
	bool started;
	struct sqlite3 *db; /* this worker's read connection */
};

struct lt_sagas {
	struct lt_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t work;	 /* the queue changed, or stop */
	pthread_cond_t progress; /* a saga wrote a state, or stop */
	bool stopping;
	struct job *q; /* LT_SAGAS_QUEUE_MAX */
	size_t qn;
	struct run_slot *run; /* one per worker */
	struct waiter waiters[LT_SAGAS_WAITERS_MAX];
	struct worker *workers;
	size_t nworkers;
	struct lt_payment *pay;
	struct sqlite3 *scan_db; /* start's and the tick's */
	int64_t last_mark_ns, last_idle_ns;
};

struct lt_sagas *lt_sagas_get(struct lt_server *srv)
{
	return __atomic_load_n(&srv->sagas, __ATOMIC_ACQUIRE);
}

static int64_t wall_ms(const struct lt_sagas *r)
{
	return lt_clock_now_ns(&r->srv->clock) / LT_NS_PER_MS;
}

static struct timespec mono_ts(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / LT_NS_PER_S), (long)(ns % LT_NS_PER_S)};
	return ts;
}

/* ---- the queue (r->mu held) ---- */

static enum lt_err enqueue_locked(struct lt_sagas *r, const char *id, int64_t due_ns)
{
	if (r->stopping)
		return LT_ESTOPPED;
	for (size_t i = 0; i < r->nworkers; i++) {
		if (r->run[i].busy && !strcmp(r->run[i].id, id)) {
			if (due_ns <= lt_clock_mono_ns())
				r->run[i].kicked = true;
			return LT_OK;
		}
	}
	for (size_t i = 0; i < r->qn; i++) {
		if (!strcmp(r->q[i].id, id)) {
			if (due_ns < r->q[i].due_ns) {
				r->q[i].due_ns = due_ns;
				pthread_cond_signal(&r->work);
			}
			return LT_OK;
		}
	}
	if (r->qn >= LT_SAGAS_QUEUE_MAX)
		return LT_EBUSY;
	snprintf(r->q[r->qn].id, sizeof r->q[r->qn].id, "%s", id);
	r->q[r->qn].due_ns = due_ns;
	r->qn++;
	pthread_cond_signal(&r->work);
	return LT_OK;
}

/* The next due saga for worker idx (false when stopping). */
static bool take(struct lt_sagas *r, size_t idx, char id[LT_UUID_LEN])
{
	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (r->stopping) {
			pthread_mutex_unlock(&r->mu);
			return false;
		}
		size_t best = r->qn;
		for (size_t i = 0; i < r->qn; i++)
			if (best == r->qn || r->q[i].due_ns < r->q[best].due_ns)
				best = i;
		if (best == r->qn) {
			pthread_cond_wait(&r->work, &r->mu);
			continue;
		}
		int64_t now = lt_clock_mono_ns();
		if (r->q[best].due_ns > now) {
			struct timespec ts = mono_ts(r->q[best].due_ns);
			pthread_cond_timedwait(&r->work, &r->mu, &ts);
			continue;
		}
		memcpy(id, r->q[best].id, LT_UUID_LEN);
		r->q[best] = r->q[--r->qn];
		r->run[idx].busy = true;
		r->run[idx].kicked = false;
		memcpy(r->run[idx].id, id, LT_UUID_LEN);
		pthread_mutex_unlock(&r->mu);
		return true;
	}
}

/* Worker idx is done with id; again_ns >= 0 queues it again then (now if
 * it was kicked meanwhile). */
static void finish(struct lt_sagas *r, size_t idx, const char *id, int64_t again_ns)
{
	pthread_mutex_lock(&r->mu);
	bool kicked = r->run[idx].kicked;
	r->run[idx].busy = r->run[idx].kicked = false;
	if (kicked)
		again_ns = lt_clock_mono_ns();
	if (again_ns >= 0 && enqueue_locked(r, id, again_ns) == LT_EBUSY)
		lt_log_warn(&r->srv->log,
			    "saga %s: the saga queue is full; the recovery scan will resume it",
			    id);
	pthread_mutex_unlock(&r->mu);
}

enum lt_err lt_sagas_kick(struct lt_sagas *r, const char *id)
{
	pthread_mutex_lock(&r->mu);
	enum lt_err e = enqueue_locked(r, id, lt_clock_mono_ns());
	pthread_mutex_unlock(&r->mu);
	return e;
}

/* A worker committed state s: tell its waiters. */
static void notify(struct lt_sagas *r, const struct lt_saga *s)
{
	pthread_mutex_lock(&r->mu);
	bool any = false;
	for (size_t i = 0; i < LT_SAGAS_WAITERS_MAX; i++) {
		struct waiter *w = &r->waiters[i];
		if (w->used && !strcmp(w->id, s->id)) {
			w->seen = true;
			w->state = s->sm.state;
			w->final = lt_saga_state_final(s->sm.state);
			any = true;
		}
	}
	if (any)
		pthread_cond_broadcast(&r->progress);
	pthread_mutex_unlock(&r->mu);
}

enum lt_err lt_sagas_run_wait(struct lt_sagas *r, const char *id, int64_t wait_ms, bool *final,
			      enum lt_saga_state *state)
{
	*final = false;
	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		return LT_ESTOPPED;
	}
	struct waiter *w = NULL;
	for (size_t i = 0; !w && i < LT_SAGAS_WAITERS_MAX; i++)
		if (!r->waiters[i].used)
			w = &r->waiters[i];
	if (w) {
		memset(w, 0, sizeof *w);
		w->used = true;
		snprintf(w->id, sizeof w->id, "%s", id);
	}
	enum lt_err e = enqueue_locked(r, id, lt_clock_mono_ns());
	if (e == LT_EBUSY)
		lt_log_warn(&r->srv->log,
			    "saga %s: the saga queue is full; the recovery scan will run it", id);
	if (w && e == LT_OK && wait_ms > 0) {
		struct timespec ts = mono_ts(lt_clock_mono_ns() + wait_ms * LT_NS_PER_MS);
		while (!w->final && !r->stopping)
			if (pthread_cond_timedwait(&r->progress, &r->mu, &ts) == ETIMEDOUT)
				break;
	}
	if (w) {
		*final = w->final;
		if (w->seen && state)
			*state = w->state;
		w->used = false;
	}
	bool stopping = r->stopping;
	pthread_mutex_unlock(&r->mu);
	return stopping ? LT_ESTOPPED : LT_OK;
}

/* ---- one saga ---- */

/* Call the payment service for a payment action of s: the outcome, the
 * step's detail and any payment id learned (pid). */
static enum lt_saga_outcome pay(struct lt_sagas *r, const struct lt_config *cfg,
				const struct lt_saga *s, enum lt_saga_action act, char *detail,
				size_t cap, char pid[LT_PAY_ID_MAX + 1])
{
	struct lt_pay_call c = {
		.base_url = cfg->payment_base_url,
		.timeout_ms = cfg->payment_timeout_ms,
		.saga_id = s->id,
		.payment_id = s->payment_id,
		.amount_micros = s->amount_micros,
	};
	pid[0] = '\0';
	if (act == LT_SAGA_ACT_AUTHORIZE ||
	    (act == LT_SAGA_ACT_RELEASE_PAYMENT && !s->payment_id[0])) {
		/* for a release: an authorize whose answer was lost may have
		 * taken effect; the same key answers it again (or makes the
		 * payment now, which is released at once) */
		c.op = LT_PAY_AUTHORIZE;
		lt_payment_call(r->pay, &c);
		if (c.outcome == LT_SAGA_OK)
			snprintf(pid, LT_PAY_ID_MAX + 1, "%s", c.answer.payment_id);
		if (act == LT_SAGA_ACT_AUTHORIZE || c.outcome != LT_SAGA_OK) {
			snprintf(detail, cap, "%s", c.why);
			if (act == LT_SAGA_ACT_AUTHORIZE || c.outcome == LT_SAGA_RETRY ||
			    c.outcome == LT_SAGA_UNSENT)
				return c.outcome;
			snprintf(detail, cap, "no payment to release (%.200s)", c.why);
			return LT_SAGA_GONE;
		}
		c.payment_id = pid;
	}
	c.op = act == LT_SAGA_ACT_CAPTURE ? LT_PAY_CAPTURE : LT_PAY_RELEASE;
	lt_payment_call(r->pay, &c);
	snprintf(detail, cap, "%s", c.why);
	return c.outcome;
}

static void log_move(struct lt_sagas *r, const struct lt_saga_advance *a)
{
	const struct lt_saga *s = &a->saga;
	const char *st = lt_saga_state_name(s->sm.state);
	if (a->move.compensating)
		lt_log_warn(&r->srv->log, "saga %s: compensating: %s", s->id, s->failure_reason);
	else if (s->sm.state == LT_SAGA_FAILED)
		lt_log_warn(&r->srv->log, "saga %s: %s after compensation (%s)", s->id, st,
			    s->failure_reason);
	else if (s->sm.state == LT_SAGA_COMPLETED)
		lt_log_info(&r->srv->log, "saga %s: %s: %lld %s tokens", s->id, st,
			    (long long)s->tokens, s->provider);
	else if (a->move.retry)
		lt_log_info(&r->srv->log, "saga %s: %s failed (try %d), retrying", s->id,
			    lt_saga_action_name(a->action), s->sm.attempts);
}

/* Run saga id until it is final, must wait, or the runner stops.
 * *again_ns: when to run it again (-1: not at all). */
static void run_saga(struct lt_sagas *r, struct worker *w, const char *id, int64_t *again_ns)
{
	struct lt_server *srv = r->srv;
	struct lt_saga s;
	*again_ns = -1;
	enum lt_err e = lt_saga_store_get(w->db, id, &s);
	if (e == LT_ENOTFOUND)
		return;
	if (e) {
		lt_log_warn(&srv->log, "saga %s: cannot read it: %s", id, lt_strerror(e));
		*again_ns = lt_clock_mono_ns() + STORE_RETRY_MS * LT_NS_PER_MS;
		return;
	}
	for (int step = 0; step < STEPS_PER_RUN; step++) {
		pthread_mutex_lock(&r->mu);
		bool stopping = r->stopping;
		pthread_mutex_unlock(&r->mu);
		if (stopping)
			return;
		if (lt_saga_state_final(s.sm.state)) {
			notify(r, &s);
			return;
		}
		const struct lt_config *cfg = lt_server_config_acquire(srv);
		struct lt_saga_advance a;
		memset(&a, 0, sizeof a);
		memcpy(a.id, s.id, sizeof a.id);
		a.version = s.version;
		char detail[LT_SAGA_TEXT_MAX + 1] = "", pid[LT_PAY_ID_MAX + 1] = "";
		if (s.compensate) {
			a.compensate = true;
			a.detail = "compensation requested";
		} else {
			a.action = lt_saga_action(&s.sm);
			if (a.action == LT_SAGA_ACT_AUTHORIZE || a.action == LT_SAGA_ACT_CAPTURE ||
			    a.action == LT_SAGA_ACT_RELEASE_PAYMENT)
				a.outcome = pay(r, cfg, &s, a.action, detail, sizeof detail, pid);
			a.detail = detail;
			a.payment_id = pid;
		}
		int64_t retry_max = cfg->saga_retry_max_ms;
		lt_server_config_release(srv, cfg);
		a.now_ms = wall_ms(r);
		a.retry_max_ms = retry_max;
		e = lt_writer_run(&srv->writer, lt_saga_store_advance, &a);
		if (e == LT_EEXIST) { /* changed under us: read it again */
			e = lt_saga_store_get(w->db, id, &s);
			if (!e)
				continue;
		}
		if (e == LT_ESTOPPED)
			return;
		if (e) {
			lt_log_warn(&srv->log, "saga %s: recording %s failed: %s", id,
				    a.compensate ? "compensate" : lt_saga_action_name(a.action),
				    lt_strerror(e));
			*again_ns = lt_clock_mono_ns() + STORE_RETRY_MS * LT_NS_PER_MS;
			return;
		}
		s = a.saga;
		notify(r, &s);
		if (a.changed)
			log_move(r, &a);
		if (a.move.retry) {
			*again_ns = lt_clock_mono_ns() +
				    lt_saga_backoff_ms(s.sm.attempts, retry_max) * LT_NS_PER_MS;
			return;
		}
	}
	*again_ns = lt_clock_mono_ns(); /* a long run: let others go first */
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct lt_sagas *r = w->r;
	char id[LT_UUID_LEN];
	while (take(r, w->idx, id)) {
		int64_t again = -1;
		run_saga(r, w, id, &again);
		finish(r, w->idx, id, again);
	}
	return NULL;
}

/* ---- recovery ---- */

struct scan {
	struct lt_sagas *r;
	size_t queued;
};

static enum lt_err scan_one(void *arg, const char *id)
{
	struct scan *sc = arg;
	if (lt_sagas_kick(sc->r, id) == LT_OK)
		sc->queued++;
	return LT_OK;
}

static enum lt_err scan(struct lt_sagas *r, int64_t idle_before_ms, size_t *queued)
{
	struct scan sc = {r, 0};
	pthread_mutex_lock(&r->mu);
	size_t room = LT_SAGAS_QUEUE_MAX - r->qn;
	pthread_mutex_unlock(&r->mu);
	enum lt_err e =
		room ? lt_saga_store_due(r->scan_db, idle_before_ms, room, scan_one, &sc) : LT_OK;
	if (queued)
		*queued = sc.queued;
	return e;
}

void lt_sagas_tick(struct lt_server *srv, int64_t now_ms)
{
	struct lt_sagas *r = lt_sagas_get(srv);
	if (!r)
		return;
	int64_t mono = lt_clock_mono_ns();
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	int64_t interval = cfg->saga_recovery_interval_ms, idle = cfg->saga_recovery_idle_ms;
	lt_server_config_release(srv, cfg);
	size_t n = 0;
	if (mono - r->last_mark_ns >= LT_SAGAS_MARK_POLL_MS * LT_NS_PER_MS) {
		r->last_mark_ns = mono;
		if (scan(r, INT64_MIN, &n) == LT_OK && n)
			lt_log_info(&srv->log, "resuming %zu saga(s) marked for a try", n);
	}
	if (mono - r->last_idle_ns >= interval * LT_NS_PER_MS) {
		r->last_idle_ns = mono;
		enum lt_err e = scan(r, now_ms - idle, &n);
		if (e)
			lt_log_warn(&srv->log, "saga recovery scan failed: %s", lt_strerror(e));
		else if (n)
			lt_log_info(&srv->log, "recovery: resuming %zu idle saga(s)", n);
	}
}

/* ---- lifecycle ---- */

static void release(struct lt_sagas *r)
{
	for (size_t i = 0; r->workers && i < r->nworkers; i++)
		lt_db_close(r->workers[i].db);
	lt_db_close(r->scan_db);
	lt_payment_free(r->pay);
	pthread_cond_destroy(&r->progress);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->mu);
	free(r->workers);
	free(r->run);
	free(r->q);
	free(r);
}

static enum lt_err open_reader(struct lt_server *srv, const struct lt_config *cfg,
			       struct sqlite3 **db)
{
	char err[LT_DB_ERR_MAX];
	enum lt_err e = lt_db_open(srv->db_path, false, false, (int)cfg->storage_sqlite_synchronous,
				   (int)cfg->storage_busy_timeout_ms, db, err);
	if (e)
		lt_log_error(&srv->log, "sagas: cannot open leaky.db: %s", err);
	return e;
}

static void stop_workers(struct lt_sagas *r)
{
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->progress);
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < r->nworkers; i++)
		if (r->workers[i].started)
			pthread_join(r->workers[i].thread, NULL);
}

enum lt_err lt_sagas_start(struct lt_server *srv)
{
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	size_t n = (size_t)cfg->saga_workers;
	enum lt_err e = LT_ENOMEM;
	struct lt_sagas *r = calloc(1, sizeof *r);
	if (!r)
		goto fail_cfg;
	r->srv = srv;
	r->nworkers = n;
	r->q = calloc(LT_SAGAS_QUEUE_MAX, sizeof *r->q);
	r->run = calloc(n, sizeof *r->run);
	r->workers = calloc(n, sizeof *r->workers);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work, &ca);
	pthread_cond_init(&r->progress, &ca);
	pthread_condattr_destroy(&ca);
	if (!r->q || !r->run || !r->workers || lt_payment_new(&r->pay))
		goto fail;
	if ((e = open_reader(srv, cfg, &r->scan_db)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		r->workers[i].r = r;
		r->workers[i].idx = i;
		if ((e = open_reader(srv, cfg, &r->workers[i].db)))
			goto fail;
	}
	lt_server_config_release(srv, cfg);
	cfg = NULL;
	for (size_t i = 0; i < n; i++) {
		if (pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]) != 0) {
			lt_log_error(&srv->log, "sagas: cannot start a worker thread");
			stop_workers(r);
			release(r);
			return LT_ENOMEM;
		}
		r->workers[i].started = true;
	}
	/* resume what the last run left unfinished */
	size_t queued = 0;
	e = scan(r, INT64_MAX, &queued);
	if (e) {
		lt_log_error(&srv->log, "sagas: cannot read the unfinished sagas: %s",
			     lt_strerror(e));
		stop_workers(r);
		release(r);
		return e;
	}
	if (queued)
		lt_log_warn(&srv->log,
			    "resuming %zu unfinished purchase saga(s) left by the last run",
			    queued);
	r->last_mark_ns = r->last_idle_ns = lt_clock_mono_ns();
	__atomic_store_n(&srv->sagas, r, __ATOMIC_RELEASE);
	return LT_OK;
fail:
	release(r);
fail_cfg:
	if (cfg)
		lt_server_config_release(srv, cfg);
	if (e == LT_ENOMEM)
		lt_log_error(&srv->log, "sagas: out of memory");
	return e ? e : LT_ENOMEM;
}

void lt_sagas_stop(struct lt_server *srv)
{
	struct lt_sagas *r = lt_sagas_get(srv);
	if (!r)
		return;
	__atomic_store_n(&srv->sagas, NULL, __ATOMIC_RELEASE);
	stop_workers(r);
	if (atomic_load(&srv->inflight) == 0) /* else a handler may still hold r */
		release(r);
}
