/*
 * test_saga_store.c — src/saga/saga_store.c against a real leaky.db in a
 * temp directory, migrated by the project's own migration code.
 *
 * Covered: the amount and payload hash helpers; create with its "start"
 * step and TOKEN_PURCHASE_STARTED outbox row; insert-or-get by (user, key):
 * the same payload names the same saga with nothing written, another
 * payload is LT_EEXIST with nothing written, another user or no key makes
 * a new saga; two threads racing through the real writer thread with the
 * same key (200 rounds) always resolve to one saga; a whole purchase step
 * by step (state, steps, events in order, the pool credited exactly with
 * its ledger row); compensation removing tokens with a ledger row (and
 * only what is left when some were spent); atomicity: an advance whose
 * outbox insert fails (a trigger) through the real writer leaves the saga,
 * the pool, the ledger and the step log untouched, as does a rollback of
 * the caller's savepoint, and a stale version is LT_EEXIST with nothing
 * written; retries folding into one step row; marks (retry, compensate,
 * refused for final and captured sagas) and the compensate flag applied;
 * the recovery scan and the listing; a contradictory row is LT_ECORRUPT.
 * Every pool is checked against its ledger (lt_pool_store_check) at the
 * end of each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "events/outbox.h"
#include "quota/pool_store.h"
#include "saga/saga_store.h"
#include "store/datadir.h"
#include "store/db.h"
#include "store/writer.h"
#include "testutil.h"

#define T0 INT64_C(1760000000000)
#define U1 "00000000-0000-4000-8000-000000000001"
#define U2 "00000000-0000-4000-8000-000000000002"
#define O1 "00000000-0000-4000-8000-0000000000a1"

struct fx {
	char dir[TU_PATH_MAX];
	sqlite3 *db;
};

static sqlite3 *open_db(const char *dir)
{
	char err[LT_DATADIR_ERR_MAX] = "";
	int from, to;
	sqlite3 *db = NULL;
	if (lt_storage_open_db(dir, LT_SYNC_NORMAL, 5000, &db, &from, &to, err)) {
		fprintf(stderr, "open: %s\n", err);
		return NULL;
	}
	return db;
}

static int setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	f->db = open_db(f->dir);
	if (!f->db) {
		tu_rmtree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static size_t check_bad(sqlite3 *db)
{
	size_t pools = 0, bad = 0;
	assert_int_equal(lt_pool_store_check(db, &pools, &bad, NULL, NULL), LT_OK);
	return bad;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	assert_int_equal(check_bad(f->db), 0);
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static int64_t q64(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec(sqlite3 *db, const char *sql)
{
	assert_int_equal(lt_db_exec(db, sql, NULL), LT_OK);
}

/* Counts of the tables a saga step writes, to see that nothing moved. */
struct counts {
	int64_t sagas, steps, outbox, ledger, pools, version_sum, tries_sum;
};

static struct counts counts(sqlite3 *db)
{
	struct counts c;
	c.sagas = q64(db, "SELECT count(*) FROM sagas");
	c.steps = q64(db, "SELECT count(*) FROM saga_steps");
	c.outbox = q64(db, "SELECT count(*) FROM outbox");
	c.ledger = q64(db, "SELECT count(*) FROM ledger");
	c.pools = q64(db, "SELECT coalesce(sum(remaining), 0) FROM pools");
	c.version_sum = q64(db, "SELECT coalesce(sum(version), 0) FROM sagas");
	c.tries_sum = q64(db, "SELECT coalesce(sum(tries), 0) FROM saga_steps");
	return c;
}

static void assert_same_counts(const struct counts *a, const struct counts *b)
{
	assert_int_equal(a->sagas, b->sagas);
	assert_int_equal(a->steps, b->steps);
	assert_int_equal(a->outbox, b->outbox);
	assert_int_equal(a->ledger, b->ledger);
	assert_int_equal(a->pools, b->pools);
	assert_int_equal(a->version_sum, b->version_sum);
	assert_int_equal(a->tries_sum, b->tries_sum);
}

static void mksaga(struct lt_saga *s, const char *user, const char *org, int64_t tokens,
		   const char *key)
{
	memset(s, 0, sizeof *s);
	lt_uuid_v4(s->id);
	snprintf(s->user_id, sizeof s->user_id, "%s", user);
	snprintf(s->org_id, sizeof s->org_id, "%s", org ? org : "");
	snprintf(s->provider, sizeof s->provider, "openai");
	s->tokens = tokens;
	if (lt_saga_amount(tokens, 2000000, &s->amount_micros) != LT_OK)
		s->amount_micros = 0; /* a test of bounds */
	if (key) {
		s->has_key = true;
		snprintf(s->idem_key, sizeof s->idem_key, "%s", key);
	}
	lt_saga_payload_hash(s->user_id, s->org_id, s->provider, s->tokens, s->payload_hash);
}

static struct lt_saga create(sqlite3 *db, const char *user, const char *org, int64_t tokens,
			     const char *key)
{
	struct lt_saga s;
	bool created = false;
	mksaga(&s, user, org, tokens, key);
	assert_int_equal(lt_saga_store_create(db, &s, T0, &created), LT_OK);
	assert_true(created);
	return s;
}

/* Advance saga id by its next action with outcome o (the payment actions)
 * at time now; returns the result of the store. */
static enum lt_err advance(sqlite3 *db, const char *id, enum lt_saga_outcome o, const char *pid,
			   int64_t now, struct lt_saga_advance *a)
{
	struct lt_saga s;
	assert_int_equal(lt_saga_store_get(db, id, &s), LT_OK);
	memset(a, 0, sizeof *a);
	snprintf(a->id, sizeof a->id, "%s", id);
	a->version = s.version;
	a->compensate = s.compensate;
	a->action = lt_saga_action(&s.sm);
	a->outcome = o;
	a->detail = "test";
	a->payment_id = pid;
	a->now_ms = now;
	a->retry_max_ms = 30000;
	return lt_saga_store_advance(db, a);
}

static struct lt_saga adv_ok(sqlite3 *db, const char *id, enum lt_saga_outcome o, const char *pid,
			     int64_t now)
{
	struct lt_saga_advance a;
	assert_int_equal(advance(db, id, o, pid, now, &a), LT_OK);
	return a.saga;
}

static int64_t remaining(sqlite3 *db, const char *owner)
{
	struct lt_pool_key k = {LT_OWNER_USER, "", "openai"};
	snprintf(k.owner_id, sizeof k.owner_id, "%s", owner);
	if (!strcmp(owner, O1))
		k.kind = LT_OWNER_ORG;
	struct lt_pool_row r;
	enum lt_err e = lt_pool_store_get(db, &k, T0, &r);
	if (e == LT_ENOTFOUND)
		return -1;
	assert_int_equal(e, LT_OK);
	return r.pool.remaining;
}

/* The outbox types of saga id, in id order, joined with ",". */
static void events_of(sqlite3 *db, const char *id, char *out, size_t cap)
{
	sqlite3_stmt *st;
	assert_int_equal(
		sqlite3_prepare_v2(db,
				   "SELECT type, topic, payload FROM outbox WHERE key = ?1 "
				   "ORDER BY id",
				   -1, &st, NULL),
		SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	out[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_string_equal((const char *)sqlite3_column_text(st, 1), LT_TOPIC_PURCHASE);
		const char *payload = (const char *)sqlite3_column_text(st, 2);
		assert_non_null(strstr(payload, id));
		size_t n = strlen(out);
		snprintf(out + n, cap - n, "%s%s", n ? "," : "", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
}

struct steps_acc {
	char text[1024];
};

static enum lt_err step_cb(void *arg, const struct lt_saga_step_row *r)
{
	struct steps_acc *a = arg;
	size_t n = strlen(a->text);
	snprintf(a->text + n, sizeof a->text - n, "%s%s:%s:%lld", n ? "," : "", r->name, r->status,
		 (long long)r->tries);
	return LT_OK;
}

static void steps_of(sqlite3 *db, const char *id, char *out, size_t cap)
{
	struct steps_acc a = {""};
	assert_int_equal(lt_saga_store_steps(db, id, step_cb, &a), LT_OK);
	snprintf(out, cap, "%s", a.text);
}

/* ---- tests ---- */

static void test_amount_and_hash(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	int64_t a;
	assert_int_equal(lt_saga_amount(1000000, 2000000, &a), LT_OK);
	assert_int_equal(a, 2000000);
	assert_int_equal(lt_saga_amount(1, 2000000, &a), LT_OK);
	assert_int_equal(a, 2);
	assert_int_equal(lt_saga_amount(1, 1, &a), LT_OK); /* rounded up */
	assert_int_equal(a, 1);
	assert_int_equal(lt_saga_amount(3, 333333, &a), LT_OK);
	assert_int_equal(a, 1); /* 0.999999 */
	assert_int_equal(lt_saga_amount(10000000, 0, &a), LT_OK);
	assert_int_equal(a, 0);
	assert_int_equal(lt_saga_amount(10000000, INT64_C(1000000000000), &a), LT_OK);
	assert_int_equal(a, INT64_C(10000000000000));
	assert_int_equal(lt_saga_amount(10000000, INT64_MAX, &a), LT_ERANGE);
	assert_int_equal(lt_saga_amount(-1, 1, &a), LT_ERANGE);

	char h1[65], h2[65], h3[65], h4[65];
	lt_saga_payload_hash(U1, "", "openai", 10, h1);
	lt_saga_payload_hash(U1, "", "openai", 10, h2);
	assert_string_equal(h1, h2);
	assert_int_equal(strlen(h1), 64);
	lt_saga_payload_hash(U1, "", "openai", 11, h2);
	lt_saga_payload_hash(U1, O1, "openai", 10, h3);
	lt_saga_payload_hash(U1, "", "gemini", 10, h4);
	assert_string_not_equal(h1, h2);
	assert_string_not_equal(h1, h3);
	assert_string_not_equal(h1, h4);
}

static void test_create(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 5000, "k-1");
	assert_int_equal(s.sm.state, LT_SAGA_STARTED);
	assert_int_equal(s.version, 1);
	struct lt_saga got;
	assert_int_equal(lt_saga_store_get(f->db, s.id, &got), LT_OK);
	assert_string_equal(got.user_id, U1);
	assert_string_equal(got.org_id, "");
	assert_int_equal(got.tokens, 5000);
	assert_int_equal(got.amount_micros, 10000);
	assert_true(got.has_key);
	assert_string_equal(got.idem_key, "k-1");
	assert_int_equal(got.created_ms, T0);
	assert_int_equal(got.next_attempt_ms, T0);
	char ev[512], st[512];
	events_of(f->db, s.id, ev, sizeof ev);
	assert_string_equal(ev, "TOKEN_PURCHASE_STARTED");
	steps_of(f->db, s.id, st, sizeof st);
	assert_string_equal(st, "start:SUCCEEDED:1");

	/* same key, same payload: the same saga, nothing written */
	struct counts before = counts(f->db);
	struct lt_saga again;
	bool created = true;
	mksaga(&again, U1, NULL, 5000, "k-1");
	assert_int_equal(lt_saga_store_create(f->db, &again, T0 + 5, &created), LT_OK);
	assert_false(created);
	assert_string_equal(again.id, s.id);
	struct counts after = counts(f->db);
	assert_same_counts(&before, &after);

	/* same key, another payload: refused, nothing written */
	mksaga(&again, U1, NULL, 5001, "k-1");
	assert_int_equal(lt_saga_store_create(f->db, &again, T0 + 5, &created), LT_EEXIST);
	assert_false(created);
	assert_string_equal(again.id, s.id);
	after = counts(f->db);
	assert_same_counts(&before, &after);

	/* another user with the same key, or no key: new sagas */
	struct lt_saga other = create(f->db, U2, NULL, 5000, "k-1");
	assert_string_not_equal(other.id, s.id);
	struct lt_saga nokey1 = create(f->db, U1, NULL, 5000, NULL);
	struct lt_saga nokey2 = create(f->db, U1, NULL, 5000, NULL);
	assert_string_not_equal(nokey1.id, nokey2.id);
	assert_false(nokey1.has_key);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM sagas"), 4);

	/* out of bounds */
	mksaga(&again, U1, NULL, 0, NULL);
	assert_int_equal(lt_saga_store_create(f->db, &again, T0, &created), LT_EINVAL);
	mksaga(&again, U1, NULL, LT_SAGA_TOKENS_MAX + 1, NULL);
	assert_int_equal(lt_saga_store_create(f->db, &again, T0, &created), LT_EINVAL);
	mksaga(&again, "not-a-uuid", NULL, 1, NULL);
	assert_int_equal(lt_saga_store_create(f->db, &again, T0, &created), LT_EINVAL);
	assert_int_equal(lt_saga_store_get(f->db, "nope", &got), LT_ENOTFOUND);
	assert_int_equal(lt_saga_store_get(f->db, U2, &got), LT_ENOTFOUND);
}

/* ---- the race ---- */

#define RACE_ROUNDS 200

struct racer {
	pthread_t th;
	struct lt_writer *w;
	pthread_barrier_t *go;
	int round;
	struct lt_saga s;
	bool created;
	enum lt_err e;
};

struct create_op {
	struct lt_saga *s;
	bool *created;
};

static enum lt_err op_create(sqlite3 *db, void *arg)
{
	struct create_op *c = arg;
	return lt_saga_store_create(db, c->s, T0, c->created);
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	char key[32];
	snprintf(key, sizeof key, "race-%d", r->round);
	mksaga(&r->s, U1, NULL, 100, key);
	struct create_op op = {&r->s, &r->created};
	pthread_barrier_wait(r->go);
	r->e = lt_writer_run(r->w, op_create, &op);
	return NULL;
}

static void test_race_same_key(void **state)
{
	struct fx *f = *state;
	struct lt_writer w;
	memset(&w, 0, sizeof w);
	assert_int_equal(lt_writer_start(&w, f->db, 64, 32, NULL, NULL), LT_OK);
	pthread_barrier_t go;
	for (int round = 0; round < RACE_ROUNDS; round++) {
		struct racer rs[2];
		memset(rs, 0, sizeof rs);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++) {
			rs[i].w = &w;
			rs[i].go = &go;
			rs[i].round = round;
			assert_int_equal(pthread_create(&rs[i].th, NULL, racer_main, &rs[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(rs[i].th, NULL);
		pthread_barrier_destroy(&go);
		assert_int_equal(rs[0].e, LT_OK);
		assert_int_equal(rs[1].e, LT_OK);
		assert_true(rs[0].created != rs[1].created); /* exactly one made it */
		assert_string_equal(rs[0].s.id, rs[1].s.id);
	}
	lt_writer_stop(&w);
	lt_writer_release(&w);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM sagas"), RACE_ROUNDS);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM outbox"), RACE_ROUNDS);
	assert_int_equal(q64(f->db, "SELECT count(DISTINCT idempotency_key) FROM sagas"),
			 RACE_ROUNDS);
}

/* ---- a whole purchase ---- */

static void test_purchase_steps(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 5000, "buy");
	assert_int_equal(remaining(f->db, U1), -1); /* no pool yet */
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-1", T0 + 1);
	assert_int_equal(s.sm.state, LT_SAGA_PAYMENT_RESERVED);
	assert_string_equal(s.payment_id, "pay-1");
	assert_int_equal(s.version, 2);
	s = adv_ok(f->db, s.id, LT_SAGA_RETRY /* ignored: allocate finds its own */, NULL, T0 + 2);
	assert_int_equal(s.sm.state, LT_SAGA_TOKENS_ALLOCATED);
	assert_int_equal(remaining(f->db, U1), 5000);
	char reason[256];
	snprintf(reason, sizeof reason,
		 "SELECT count(*) FROM ledger WHERE kind = 'grant' AND d_remaining = 5000 AND "
		 "actor = 'saga' AND reason = 'purchase %s'",
		 s.id);
	assert_int_equal(q64(f->db, reason), 1);
	/* capture fails once (a time-out), then succeeds */
	struct lt_saga_advance a;
	assert_int_equal(advance(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 3, &a), LT_OK);
	assert_true(a.move.retry);
	assert_int_equal(a.saga.sm.attempts, 1);
	assert_int_equal(a.saga.next_attempt_ms, T0 + 3 + LT_SAGA_BACKOFF_BASE_MS);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 4);
	assert_true(s.sm.done & LT_SAGA_DONE_CAPTURED);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 5);
	assert_int_equal(s.sm.state, LT_SAGA_COMPLETED);
	assert_int_equal(s.updated_ms, T0 + 5);
	assert_int_equal(remaining(f->db, U1), 5000);

	char ev[512], st[512];
	events_of(f->db, s.id, ev, sizeof ev);
	assert_string_equal(ev, "TOKEN_PURCHASE_STARTED,TOKEN_PAYMENT_RESERVED,TOKEN_ALLOCATED,"
				"TOKEN_PAYMENT_CAPTURED,TOKEN_PURCHASE_COMPLETED");
	steps_of(f->db, s.id, st, sizeof st);
	assert_string_equal(st, "start:SUCCEEDED:1,authorize_payment:SUCCEEDED:1,"
				"allocate_tokens:SUCCEEDED:1,capture_payment:RETRYING:1,"
				"capture_payment:SUCCEEDED:1,complete:SUCCEEDED:1");
	/* nothing more to do */
	assert_int_equal(advance(f->db, s.id, LT_SAGA_OK, NULL, T0 + 6, &a), LT_EINVAL);
	assert_int_equal(lt_saga_store_mark(f->db, s.id, false, NULL), LT_EINVAL);
}

static void test_org_purchase_and_compensation(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, O1, 3000, NULL);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-2", T0 + 1);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 2);
	assert_int_equal(remaining(f->db, O1), 3000);
	assert_int_equal(remaining(f->db, U1), -1);
	/* the capture is refused: compensate, reverse, release, fail */
	s = adv_ok(f->db, s.id, LT_SAGA_REFUSED, NULL, T0 + 3);
	assert_int_equal(s.sm.state, LT_SAGA_COMPENSATING);
	assert_non_null(strstr(s.failure_reason, "capture_payment failed"));
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 4);
	assert_true(s.sm.done & LT_SAGA_DONE_REVERSED);
	assert_int_equal(remaining(f->db, O1), 0);
	char sql[200];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM ledger WHERE kind = 'adjust' AND d_remaining = -3000 AND "
		 "reason = 'purchase %s compensated'",
		 s.id);
	assert_int_equal(q64(f->db, sql), 1);
	/* the release fails twice, then passes */
	adv_ok(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 5);
	adv_ok(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 6);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 7);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 8);
	assert_int_equal(s.sm.state, LT_SAGA_FAILED);
	char ev[512], st[512];
	events_of(f->db, s.id, ev, sizeof ev);
	assert_string_equal(ev, "TOKEN_PURCHASE_STARTED,TOKEN_PAYMENT_RESERVED,TOKEN_ALLOCATED,"
				"TOKEN_PURCHASE_COMPENSATING,TOKEN_ALLOCATION_REVERSED,"
				"PAYMENT_RELEASE_REQUESTED,PAYMENT_RELEASED,TOKEN_PURCHASE_FAILED");
	steps_of(f->db, s.id, st, sizeof st);
	assert_string_equal(st, "start:SUCCEEDED:1,authorize_payment:SUCCEEDED:1,"
				"allocate_tokens:SUCCEEDED:1,capture_payment:FAILED:1,"
				"reverse_allocation:SUCCEEDED:1,release_payment:RETRYING:2,"
				"release_payment:SUCCEEDED:1,fail:SUCCEEDED:1");
}

static void test_reverse_after_spending(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 1000, NULL);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-3", T0 + 1);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 2);
	/* 700 of the 1000 are spent meanwhile */
	struct lt_pool_change c;
	memset(&c, 0, sizeof c);
	c.key.kind = LT_OWNER_USER;
	snprintf(c.key.owner_id, sizeof c.key.owner_id, U1);
	snprintf(c.key.provider, sizeof c.key.provider, "openai");
	c.adjust = true;
	c.amount = -700;
	c.window_cap = -1;
	c.now_ms = T0 + 2;
	assert_int_equal(lt_pool_store_change(f->db, &c), LT_OK);
	s = adv_ok(f->db, s.id, LT_SAGA_REFUSED, NULL, T0 + 3); /* refused (402) */
	assert_int_equal(s.sm.state, LT_SAGA_COMPENSATING);
	struct lt_saga_advance a;
	assert_int_equal(advance(f->db, s.id, LT_SAGA_OK, NULL, T0 + 4, &a), LT_OK);
	assert_true(a.saga.sm.done & LT_SAGA_DONE_REVERSED);
	assert_int_equal(remaining(f->db, U1), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'adjust' AND "
				    "d_remaining = -300 AND reason LIKE '% compensated'"),
			 1);
	char detail[300];
	snprintf(detail, sizeof detail,
		 "SELECT count(*) FROM saga_steps WHERE name = 'reverse_allocation' AND detail "
		 "LIKE 'removed 300 of 1000 tokens%%'");
	assert_int_equal(q64(f->db, detail), 1);
}

/* The outbox insert fails: the advance fails as a whole through the real
 * writer, and nothing of it is left. */
static void test_atomic_with_outbox(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 2500, NULL);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-4", T0 + 1);
	exec(f->db, "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox "
		    "BEGIN SELECT RAISE(ABORT, 'outbox is down'); END");
	struct counts before = counts(f->db);
	struct lt_writer w;
	memset(&w, 0, sizeof w);
	assert_int_equal(lt_writer_start(&w, f->db, 8, 4, NULL, NULL), LT_OK);
	struct lt_saga_advance a;
	memset(&a, 0, sizeof a);
	snprintf(a.id, sizeof a.id, "%s", s.id);
	a.version = s.version;
	a.action = LT_SAGA_ACT_ALLOCATE;
	a.now_ms = T0 + 2;
	a.retry_max_ms = 1000;
	assert_int_not_equal(lt_writer_run(&w, lt_saga_store_advance, &a), LT_OK);
	lt_writer_stop(&w);
	lt_writer_release(&w);
	struct counts after = counts(f->db);
	assert_same_counts(&before, &after);
	assert_int_equal(remaining(f->db, U1), -1);
	struct lt_saga now;
	assert_int_equal(lt_saga_store_get(f->db, s.id, &now), LT_OK);
	assert_int_equal(now.sm.state, LT_SAGA_PAYMENT_RESERVED);
	assert_int_equal(now.version, s.version);
	exec(f->db, "DROP TRIGGER no_outbox");

	/* the caller's savepoint rolled back: the same */
	exec(f->db, "SAVEPOINT t");
	struct lt_saga_advance b;
	assert_int_equal(advance(f->db, s.id, LT_SAGA_OK, NULL, T0 + 3, &b), LT_OK);
	assert_int_equal(remaining(f->db, U1), 2500);
	exec(f->db, "ROLLBACK TO t");
	exec(f->db, "RELEASE t");
	after = counts(f->db);
	assert_same_counts(&before, &after);

	/* a stale version: LT_EEXIST, nothing written */
	memset(&b, 0, sizeof b);
	snprintf(b.id, sizeof b.id, "%s", s.id);
	b.version = s.version - 1;
	b.action = LT_SAGA_ACT_ALLOCATE;
	b.now_ms = T0 + 4;
	assert_int_equal(lt_saga_store_advance(f->db, &b), LT_EEXIST);
	after = counts(f->db);
	assert_same_counts(&before, &after);
	/* the wrong action for the state: LT_EINVAL, nothing written */
	b.version = s.version;
	b.action = LT_SAGA_ACT_CAPTURE;
	assert_int_equal(lt_saga_store_advance(f->db, &b), LT_EINVAL);
	after = counts(f->db);
	assert_same_counts(&before, &after);
}

static void test_retries_fold(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 10, NULL);
	adv_ok(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 1);
	adv_ok(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 2);
	s = adv_ok(f->db, s.id, LT_SAGA_RETRY, NULL, T0 + 3); /* third: compensate */
	assert_int_equal(s.sm.state, LT_SAGA_COMPENSATING);
	/* the authorize may have worked: release (with a payment id learned) */
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-5", T0 + 4);
	assert_string_equal(s.payment_id, "pay-5");
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 5);
	assert_int_equal(s.sm.state, LT_SAGA_FAILED);
	char st[512];
	steps_of(f->db, s.id, st, sizeof st);
	assert_string_equal(st, "start:SUCCEEDED:1,authorize_payment:RETRYING:2,"
				"authorize_payment:FAILED:1,release_payment:SUCCEEDED:1,"
				"fail:SUCCEEDED:1");
	assert_int_equal(remaining(f->db, U1), -1);
}

static void test_marks_and_flag(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 400, NULL);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-6", T0 + 1);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 2);
	struct lt_saga m;
	assert_int_equal(lt_saga_store_mark(f->db, s.id, false, &m), LT_OK);
	assert_int_equal(m.next_attempt_ms, 0);
	assert_false(m.compensate);
	assert_int_equal(lt_saga_store_mark(f->db, s.id, true, &m), LT_OK);
	assert_true(m.compensate);
	assert_int_equal(lt_saga_store_get(f->db, s.id, &m), LT_OK);
	assert_true(m.compensate);
	assert_int_equal(m.next_attempt_ms, 0);
	assert_int_equal(m.version, s.version); /* a mark is not a state write */
	/* the flag applied: compensating, flag cleared, next try time set */
	struct lt_saga_advance a;
	assert_int_equal(advance(f->db, s.id, LT_SAGA_OK, NULL, T0 + 3, &a), LT_OK);
	assert_true(a.changed);
	assert_int_equal(a.saga.sm.state, LT_SAGA_COMPENSATING);
	assert_false(a.saga.compensate);
	assert_int_equal(lt_saga_store_get(f->db, s.id, &m), LT_OK);
	assert_false(m.compensate);
	assert_int_equal(m.next_attempt_ms, T0 + 3);
	assert_string_equal(m.failure_reason, "test");
	/* and compensation goes on */
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 4);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 5);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 6);
	assert_int_equal(s.sm.state, LT_SAGA_FAILED);
	assert_int_equal(remaining(f->db, U1), 0);
	assert_int_equal(lt_saga_store_mark(f->db, s.id, true, NULL), LT_EINVAL);
	char st[512];
	steps_of(f->db, s.id, st, sizeof st);
	assert_string_equal(st, "start:SUCCEEDED:1,authorize_payment:SUCCEEDED:1,"
				"allocate_tokens:SUCCEEDED:1,compensate:SUCCEEDED:1,"
				"reverse_allocation:SUCCEEDED:1,release_payment:SUCCEEDED:1,"
				"fail:SUCCEEDED:1");

	/* a captured payment cannot be compensated */
	s = create(f->db, U2, NULL, 400, NULL);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, "pay-7", T0 + 1);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 2);
	assert_int_equal(lt_saga_store_mark(f->db, s.id, true, NULL), LT_OK);
	/* the flag arrived after the capture (admin raced the worker): the
	 * flag is cleared, the purchase completes */
	exec(f->db, "UPDATE sagas SET compensate = 0");
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 3);
	assert_true(s.sm.done & LT_SAGA_DONE_CAPTURED);
	assert_int_equal(lt_saga_store_mark(f->db, s.id, true, NULL), LT_EDENIED);
	exec(f->db, "UPDATE sagas SET compensate = 1 WHERE user_id = '" U2 "'");
	assert_int_equal(advance(f->db, s.id, LT_SAGA_OK, NULL, T0 + 4, &a), LT_OK);
	assert_false(a.changed);
	assert_int_equal(a.saga.sm.state, LT_SAGA_TOKENS_ALLOCATED);
	assert_false(a.saga.compensate);
	s = adv_ok(f->db, s.id, LT_SAGA_OK, NULL, T0 + 5);
	assert_int_equal(s.sm.state, LT_SAGA_COMPLETED);
	assert_int_equal(remaining(f->db, U2), 400);
	assert_int_equal(lt_saga_store_mark(f->db, U1, false, NULL), LT_ENOTFOUND);
}

struct ids {
	char v[8][LT_UUID_LEN];
	size_t n;
};

static enum lt_err id_cb(void *arg, const char *id)
{
	struct ids *x = arg;
	if (x->n < 8)
		snprintf(x->v[x->n++], LT_UUID_LEN, "%s", id);
	return LT_OK;
}

static enum lt_err saga_cb(void *arg, const struct lt_saga *s)
{
	return id_cb(arg, s->id);
}

static void test_due_and_list(void **state)
{
	struct fx *f = *state;
	struct lt_saga a = create(f->db, U1, NULL, 1, NULL); /* created at T0 */
	struct lt_saga b = create(f->db, U1, NULL, 2, NULL);
	struct lt_saga c = create(f->db, U1, NULL, 3, NULL);
	b = adv_ok(f->db, b.id, LT_SAGA_OK, "pay-b", T0 + 100);	  /* touched later */
	c = adv_ok(f->db, c.id, LT_SAGA_REFUSED, NULL, T0 + 100); /* compensating */
	c = adv_ok(f->db, c.id, LT_SAGA_OK, NULL, T0 + 200);	  /* failed */
	assert_int_equal(c.sm.state, LT_SAGA_FAILED);
	struct ids x = {.n = 0};
	assert_int_equal(lt_saga_store_due(f->db, INT64_MAX, 10, id_cb, &x), LT_OK);
	assert_int_equal(x.n, 2); /* a, b: unfinished; c is final */
	assert_string_equal(x.v[0], a.id);
	assert_string_equal(x.v[1], b.id);
	x.n = 0;
	assert_int_equal(lt_saga_store_due(f->db, T0 + 50, 10, id_cb, &x), LT_OK);
	assert_int_equal(x.n, 1); /* idle since T0: a */
	assert_string_equal(x.v[0], a.id);
	x.n = 0;
	assert_int_equal(lt_saga_store_due(f->db, INT64_MIN, 10, id_cb, &x), LT_OK);
	assert_int_equal(x.n, 0); /* none marked */
	assert_int_equal(lt_saga_store_mark(f->db, b.id, false, NULL), LT_OK);
	assert_int_equal(lt_saga_store_due(f->db, INT64_MIN, 10, id_cb, &x), LT_OK);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.v[0], b.id);
	x.n = 0;
	assert_int_equal(lt_saga_store_due(f->db, INT64_MAX, 1, id_cb, &x), LT_OK);
	assert_int_equal(x.n, 1);

	x.n = 0;
	assert_int_equal(lt_saga_store_list(f->db, NULL, 10, saga_cb, &x), LT_OK);
	assert_int_equal(x.n, 3);
	enum lt_saga_state st = LT_SAGA_FAILED;
	x.n = 0;
	assert_int_equal(lt_saga_store_list(f->db, &st, 10, saga_cb, &x), LT_OK);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.v[0], c.id);
	st = LT_SAGA_COMPLETED;
	x.n = 0;
	assert_int_equal(lt_saga_store_list(f->db, &st, 10, saga_cb, &x), LT_OK);
	assert_int_equal(x.n, 0);
	assert_int_equal(lt_saga_store_list(f->db, NULL, 0, saga_cb, &x), LT_EINVAL);
	assert_int_equal(lt_saga_store_list(f->db, NULL, LT_SAGA_LIST_MAX + 1, saga_cb, &x),
			 LT_EINVAL);
}

static void test_corrupt_row(void **state)
{
	struct fx *f = *state;
	struct lt_saga s = create(f->db, U1, NULL, 7, NULL);
	struct lt_saga got;
	/* allocated without a payment: contradicts itself */
	exec(f->db, "UPDATE sagas SET status = 'TOKENS_ALLOCATED', done = 4");
	assert_int_equal(lt_saga_store_get(f->db, s.id, &got), LT_ECORRUPT);
	exec(f->db, "UPDATE sagas SET status = 'COMPLETED', done = 3"); /* not captured */
	assert_int_equal(lt_saga_store_get(f->db, s.id, &got), LT_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_amount_and_hash),
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race_same_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purchase_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_org_purchase_and_compensation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reverse_after_spending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_with_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retries_fold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marks_and_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_row, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
