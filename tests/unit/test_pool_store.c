/*
 * test_pool_store.c — src/quota/pool_store.c against a real leaky.db in a
 * temp directory, migrated by the project's own migration code.
 *
 * Each test gets a fresh database.  Writes run inside a SAVEPOINT as the
 * writer runs them, but the savepoint is RELEASEd (kept) even when the call
 * fails, so "nothing written" is a property of pool_store itself and not of
 * a rollback.  Covered: get, grant/adjust with creation and LT_ERANGE,
 * all-or-none reserve over two pools, duplicate ids, settle refund /
 * charge / overage, double settle, release, recover after a child process
 * reserved and was killed with SIGKILL, window rolls (window_reset rows,
 * get writes nothing), check on a good and a tampered database, stored
 * rows that contradict themselves (LT_ECORRUPT), a locked database
 * (LT_EBUSY), a 20k-step random sequence compared step by step with a
 * model built on quota/pool.h, and 8 threads × 2000 reserve+settle through
 * the real writer thread.  After the random run every statement pool_store
 * left cached on the connection must be idle, and their number bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/config.h"
#include "quota/pool_store.h"
#include "store/datadir.h"
#include "store/db.h"
#include "store/writer.h"
#include "testutil.h"

#define HOUR INT64_C(3600000)
#define DAY INT64_C(86400000)
#define T0 INT64_C(1706741999000) /* 2024-01-31T22:59:59Z: hour, day and month end soon */

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

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void sp_begin(sqlite3 *db)
{
	assert_int_equal(lt_db_exec(db, "SAVEPOINT t", NULL), LT_OK);
}

/* Keep whatever was written, even after an error (see the header). */
static enum lt_err sp_end(sqlite3 *db, enum lt_err e)
{
	assert_int_equal(lt_db_exec(db, "RELEASE t", NULL), LT_OK);
	return e;
}

#define SP(db, call) (sp_begin(db), sp_end((db), (call)))

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

static int64_t ledger_rows(sqlite3 *db)
{
	return q64(db, "SELECT count(*) FROM ledger");
}

static int64_t holds_rows(sqlite3 *db)
{
	return q64(db, "SELECT count(*) FROM reservations");
}

static struct lt_pool_key mkkey(enum lt_owner_kind kind, const char *owner, const char *provider)
{
	struct lt_pool_key k;
	memset(&k, 0, sizeof k);
	k.kind = kind;
	snprintf(k.owner_id, sizeof k.owner_id, "%s", owner);
	snprintf(k.provider, sizeof k.provider, "%s", provider);
	return k;
}

static const struct lt_ledger_note note = {"leakyctl", "test grant", "corr-1"};

static enum lt_err change(sqlite3 *db, const struct lt_pool_key *k, bool adjust, int64_t amount,
			  enum lt_window w, int64_t cap, int64_t now, struct lt_pool_row *out)
{
	struct lt_pool_change c = {.key = *k,
				   .adjust = adjust,
				   .amount = amount,
				   .window = w,
				   .window_cap = cap,
				   .now_ms = now,
				   .note = note};
	enum lt_err e = SP(db, lt_pool_store_change(db, &c));
	if (out)
		*out = c.out;
	return e;
}

static enum lt_err grant(sqlite3 *db, const struct lt_pool_key *k, int64_t amount, int64_t now)
{
	return change(db, k, false, amount, LT_WINDOW_NONE, -1, now, NULL);
}

static void mkres(struct lt_reservation *r, const char *id, int64_t now, size_t n,
		  const struct lt_pool_key *keys, const int64_t *amounts)
{
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", id);
	r->n = n;
	r->now_ms = now;
	r->note = (struct lt_ledger_note){U1, NULL, "corr-r"};
	for (size_t i = 0; i < n; i++) {
		r->items[i].key = keys[i];
		r->items[i].amount = amounts[i];
	}
	r->failed = 99;
}

static enum lt_err reserve1(sqlite3 *db, const char *id, const struct lt_pool_key *k,
			    int64_t amount, int64_t now)
{
	struct lt_reservation r;
	mkres(&r, id, now, 1, k, &amount);
	return SP(db, lt_pool_store_reserve(db, &r));
}

static void mkset(struct lt_settlement *s, const char *id, int64_t now, size_t n,
		  const struct lt_pool_key *keys, const int64_t *actual)
{
	memset(s, 0, sizeof *s);
	snprintf(s->id, sizeof s->id, "%s", id);
	s->n = n;
	s->now_ms = now;
	s->note = (struct lt_ledger_note){U1, "usage", "corr-s"};
	for (size_t i = 0; i < n; i++) {
		s->keys[i] = keys[i];
		s->actual[i] = actual[i];
	}
}

static struct lt_pool get(sqlite3 *db, const struct lt_pool_key *k, int64_t now)
{
	struct lt_pool_row row;
	assert_int_equal(lt_pool_store_get(db, k, now, &row), LT_OK);
	return row.pool;
}

/* pool_store keeps its statements on the connection: none may be left
 * running (it would hold a read transaction open), and they must not pile
 * up.  Returns how many there are. */
static int idle_statements(sqlite3 *db)
{
	int n = 0;
	for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) {
		assert_false(sqlite3_stmt_busy(st));
		n++;
	}
	return n;
}

static size_t check_bad(sqlite3 *db)
{
	size_t pools = 0, bad = 99;
	assert_int_equal(lt_pool_store_check(db, &pools, &bad, NULL, NULL), LT_OK);
	return bad;
}

/* ---- get, grant, adjust ---- */

static void test_get_absent(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_USER, U1, "openai");
	struct lt_pool_row row;
	assert_int_equal(lt_pool_store_get(f->db, &k, T0, &row), LT_ENOTFOUND);
	struct lt_pool_key upper = mkkey(LT_OWNER_USER, U1, "OpenAI");
	assert_int_equal(lt_pool_store_get(f->db, &upper, T0, &row), LT_EINVAL);
	struct lt_pool_key empty = mkkey(LT_OWNER_ORG, "", "openai");
	assert_int_equal(lt_pool_store_get(f->db, &empty, T0, &row), LT_EINVAL);
	size_t pools = 9, bad = 9;
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, NULL, NULL), LT_OK);
	assert_int_equal(pools, 0);
	assert_int_equal(bad, 0);
}

static void test_grant_adjust(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_ORG, O1, "openai");
	struct lt_pool_row r, got;
	assert_int_equal(change(f->db, &k, false, 100, LT_WINDOW_DAY, 500, T0, &r), LT_OK);
	assert_true(r.id > 0);
	assert_int_equal(r.pool.total, 100);
	assert_int_equal(r.pool.remaining, 100);
	assert_int_equal(r.pool.window, LT_WINDOW_DAY);
	assert_int_equal(r.pool.window_cap, 500);
	assert_int_equal(r.created_ms, T0);
	assert_int_equal(lt_pool_store_get(f->db, &k, T0, &got), LT_OK);
	assert_int_equal(got.id, r.id);
	assert_string_equal(got.key.owner_id, O1);
	assert_int_equal(got.key.kind, LT_OWNER_ORG);
	assert_int_equal(got.pool.window_start_ms, T0 - 22 * HOUR - 59 * 60000 - 59000);

	/* A second grant adds; window arguments are ignored without set_window. */
	assert_int_equal(change(f->db, &k, false, 50, LT_WINDOW_HOUR, 7, T0 + 1, &r), LT_OK);
	assert_int_equal(r.pool.total, 150);
	assert_int_equal(r.pool.remaining, 150);
	assert_int_equal(r.pool.window, LT_WINDOW_DAY);
	assert_int_equal(r.pool.window_cap, 500);
	assert_int_equal(ledger_rows(f->db), 2);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'grant' AND "
				    "actor = 'leakyctl' AND reason = 'test grant' AND "
				    "correlation_id = 'corr-1' AND d_reserved = 0"),
			 2);
	assert_int_equal(q64(f->db, "SELECT sum(d_remaining) FROM ledger"), 150);

	/* Adjust down, then past zero: refused, nothing written. */
	assert_int_equal(change(f->db, &k, true, -30, LT_WINDOW_NONE, -1, T0 + 2, &r), LT_OK);
	assert_int_equal(r.pool.remaining, 120);
	assert_int_equal(r.pool.total, 150);
	assert_int_equal(q64(f->db, "SELECT d_remaining FROM ledger WHERE kind = 'adjust'"), -30);
	assert_int_equal(change(f->db, &k, true, -121, LT_WINDOW_NONE, -1, T0 + 3, NULL),
			 LT_ERANGE);
	assert_int_equal(ledger_rows(f->db), 3);
	assert_int_equal(get(f->db, &k, T0 + 3).remaining, 120);
	assert_int_equal(change(f->db, &k, true, -120, LT_WINDOW_NONE, -1, T0 + 3, &r), LT_OK);
	assert_int_equal(r.pool.remaining, 0);
	assert_int_equal(change(f->db, &k, true, 10, LT_WINDOW_NONE, -1, T0 + 4, &r), LT_OK);
	assert_int_equal(r.pool.total, 160);

	/* A negative adjust does not create a pool; amount 0 is refused. */
	struct lt_pool_key k2 = mkkey(LT_OWNER_USER, U2, "$");
	assert_int_equal(change(f->db, &k2, true, -1, LT_WINDOW_NONE, -1, T0, NULL), LT_ERANGE);
	assert_int_equal(change(f->db, &k2, false, 0, LT_WINDOW_NONE, -1, T0, NULL), LT_EINVAL);
	assert_int_equal(change(f->db, &k2, false, -5, LT_WINDOW_NONE, -1, T0, NULL), LT_EINVAL);
	assert_int_equal(change(f->db, &k2, false, 5, LT_WINDOW_DAY, -2, T0, NULL), LT_EINVAL);
	assert_int_equal(lt_pool_store_get(f->db, &k2, T0, &got), LT_ENOTFOUND);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM pools"), 1);
	assert_int_equal(change(f->db, &k2, true, 5, LT_WINDOW_NONE, -1, T0, &r), LT_OK);
	assert_int_equal(r.pool.total, 5);
	assert_int_equal(ledger_rows(f->db), 6);
	assert_int_equal(check_bad(f->db), 0);
}

/* ---- reserve ---- */

static void test_reserve_all_or_none(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[3] = {mkkey(LT_OWNER_USER, U1, "openai"),
				   mkkey(LT_OWNER_USER, U1, LT_POOL_MONEY),
				   mkkey(LT_OWNER_USER, U1, "gemini")};
	assert_int_equal(grant(f->db, &k[0], 100, T0), LT_OK);
	assert_int_equal(grant(f->db, &k[1], 50, T0), LT_OK);
	int64_t before = ledger_rows(f->db);

	struct lt_reservation r;
	mkres(&r, "res-1", T0, 2, k, (int64_t[]){60, 70});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EDENIED);
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.items[0].out.pool.remaining, 100); /* as found */
	assert_int_equal(r.items[0].out.pool.reserved, 0);
	assert_int_equal(r.items[1].out.pool.remaining, 50);
	assert_int_equal(ledger_rows(f->db), before);
	assert_int_equal(holds_rows(f->db), 0);
	assert_int_equal(get(f->db, &k[0], T0).remaining, 100);
	assert_int_equal(get(f->db, &k[1], T0).remaining, 50);

	/* The first item insufficient: failed = 0. */
	mkres(&r, "res-1", T0, 2, k, (int64_t[]){101, 1});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EDENIED);
	assert_int_equal(r.failed, 0);

	/* A missing pool: LT_ENOTFOUND, failed names it. */
	struct lt_pool_key kc[2] = {k[0], k[2]};
	mkres(&r, "res-1", T0, 2, kc, (int64_t[]){10, 10});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_ENOTFOUND);
	assert_int_equal(r.failed, 1);
	assert_int_equal(ledger_rows(f->db), before);
	assert_int_equal(holds_rows(f->db), 0);

	/* Bad input. */
	struct lt_pool_key kd[2] = {k[0], k[0]};
	mkres(&r, "res-1", T0, 2, kd, (int64_t[]){10, 10});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EINVAL);
	mkres(&r, "res-1", T0, 1, k, (int64_t[]){0});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EINVAL);
	mkres(&r, "", T0, 1, k, (int64_t[]){1});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EINVAL);
	mkres(&r, "res-1", T0, 0, k, NULL);
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EINVAL);

	/* Both fit. */
	mkres(&r, "res-1", T0 + 5, 2, k, (int64_t[]){60, 40});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_OK);
	assert_int_equal(r.items[0].out.pool.remaining, 40);
	assert_int_equal(r.items[0].out.pool.reserved, 60);
	assert_int_equal(r.items[1].out.pool.remaining, 10);
	assert_int_equal(r.items[1].out.pool.reserved, 40);
	assert_int_equal(r.items[1].out.updated_ms, T0 + 5);
	assert_int_equal(ledger_rows(f->db), before + 2);
	assert_int_equal(holds_rows(f->db), 2);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'reserve' AND "
				    "reservation = 'res-1' AND d_remaining = -amount AND "
				    "d_reserved = amount AND actor = '" U1 "' AND "
				    "correlation_id = 'corr-r'"),
			 2);
	assert_int_equal(q64(f->db, "SELECT sum(held) FROM reservations WHERE id = 'res-1'"), 100);
	assert_int_equal(get(f->db, &k[0], T0).reserved, 60);

	/* The id is taken, whatever it asks for. */
	mkres(&r, "res-1", T0, 1, &k[0], (int64_t[]){1});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EEXIST);
	assert_int_equal(ledger_rows(f->db), before + 2);
	assert_int_equal(check_bad(f->db), 0);
}

/* ---- settle and release ---- */

/* An optional item (a money budget) is skipped when its pool does not
 * exist and held like any other when it does. */
static void test_reserve_optional(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[2] = {mkkey(LT_OWNER_USER, U1, "openai"),
				   mkkey(LT_OWNER_USER, U1, LT_POOL_MONEY)};
	assert_int_equal(grant(f->db, &k[0], 100, T0), LT_OK);
	struct lt_reservation r;
	mkres(&r, "opt-1", T0, 2, k, (int64_t[]){30, 500});
	r.items[1].optional = true;
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_OK);
	assert_true(r.items[0].held);
	assert_false(r.items[1].held);
	assert_int_equal(get(f->db, &k[0], T0).reserved, 30);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM pools WHERE provider = '$'"), 0);
	assert_int_equal(holds_rows(f->db), 1);
	struct lt_settlement s;
	mkset(&s, "opt-1", T0 + 1, 1, &k[0], (int64_t[]){20});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(get(f->db, &k[0], T0 + 1).remaining, 80);

	/* Not optional: the missing pool refuses the whole reservation. */
	mkres(&r, "opt-2", T0 + 2, 2, k, (int64_t[]){30, 500});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_ENOTFOUND);
	assert_int_equal(r.failed, 1);
	assert_int_equal(get(f->db, &k[0], T0 + 2).reserved, 0);

	/* Optional and present but short: refused like any item, nothing held. */
	assert_int_equal(grant(f->db, &k[1], 100, T0 + 3), LT_OK);
	mkres(&r, "opt-3", T0 + 3, 2, k, (int64_t[]){30, 500});
	r.items[1].optional = true;
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_EDENIED);
	assert_int_equal(r.failed, 1);
	assert_false(r.items[0].held);
	assert_int_equal(get(f->db, &k[0], T0 + 3).reserved, 0);

	/* Optional and present with enough: both held. */
	mkres(&r, "opt-4", T0 + 4, 2, k, (int64_t[]){30, 60});
	r.items[1].optional = true;
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_OK);
	assert_true(r.items[0].held && r.items[1].held);
	assert_int_equal(get(f->db, &k[1], T0 + 4).reserved, 60);
	assert_int_equal(holds_rows(f->db), 2);
	assert_int_equal(check_bad(f->db), 0);
}

struct top_seen {
	char provider[8][32];
	int64_t spent[8];
	size_t n;
};

static void top_fn(void *arg, const struct lt_pool_row *row)
{
	struct top_seen *t = arg;
	assert_true(t->n < 8);
	snprintf(t->provider[t->n], sizeof t->provider[t->n], "%s", row->key.provider);
	t->spent[t->n++] = row->pool.total - row->pool.remaining;
}

/* lt_pool_store_top: the pools that spent the most (reservations count),
 * most first, at most n. */
static void test_top(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[3] = {mkkey(LT_OWNER_USER, U1, "openai"),
				   mkkey(LT_OWNER_USER, U1, "gemini"),
				   mkkey(LT_OWNER_USER, U1, "qwen")};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(grant(f->db, &k[i], 1000, T0), LT_OK);
	assert_int_equal(reserve1(f->db, "t1", &k[1], 300, T0), LT_OK);
	assert_int_equal(reserve1(f->db, "t2", &k[2], 100, T0), LT_OK);
	struct top_seen t = {0};
	assert_int_equal(lt_pool_store_top(f->db, 2, top_fn, &t), LT_OK);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.provider[0], "gemini");
	assert_int_equal(t.spent[0], 300);
	assert_string_equal(t.provider[1], "qwen");
	assert_int_equal(lt_pool_store_top(f->db, 0, top_fn, &t), LT_EINVAL);
	assert_int_equal(lt_pool_store_top(f->db, 101, top_fn, &t), LT_EINVAL);
}

static void test_settle(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_USER, U1, "openai");
	struct lt_settlement s;
	assert_int_equal(grant(f->db, &k, 1000, T0), LT_OK);

	/* Refund: used less than held. */
	assert_int_equal(reserve1(f->db, "a", &k, 100, T0), LT_OK);
	mkset(&s, "a", T0 + 1, 1, &k, (int64_t[]){40});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(s.charged[0], 40);
	assert_int_equal(s.unbilled[0], 0);
	struct lt_pool p = get(f->db, &k, T0 + 1);
	assert_int_equal(p.remaining, 960);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(holds_rows(f->db), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'settle' AND "
				    "reservation = 'a' AND amount = 40 AND d_remaining = 60 AND "
				    "d_reserved = -100 AND unbilled = 0 AND reason = 'usage'"),
			 1);

	/* Settled twice: LT_ENOTFOUND, nothing billed again. */
	int64_t before = ledger_rows(f->db);
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_ENOTFOUND);
	assert_int_equal(ledger_rows(f->db), before);
	assert_int_equal(get(f->db, &k, T0 + 1).remaining, 960);

	/* Charge: used more than held, remaining pays the difference. */
	assert_int_equal(reserve1(f->db, "b", &k, 100, T0), LT_OK);
	mkset(&s, "b", T0 + 2, 1, &k, (int64_t[]){150});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(s.charged[0], 150);
	assert_int_equal(s.unbilled[0], 0);
	assert_int_equal(get(f->db, &k, T0 + 2).remaining, 810);

	/* Overage beyond remaining: remaining stops at 0, the rest is unbilled. */
	assert_int_equal(reserve1(f->db, "c", &k, 800, T0), LT_OK);
	mkset(&s, "c", T0 + 3, 1, &k, (int64_t[]){900});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(s.charged[0], 810);
	assert_int_equal(s.unbilled[0], 90);
	p = get(f->db, &k, T0 + 3);
	assert_int_equal(p.remaining, 0);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.total, 1000);
	assert_int_equal(q64(f->db, "SELECT unbilled FROM ledger WHERE reservation = 'c' AND "
				    "kind = 'settle' AND amount = 900"),
			 90);
	assert_int_equal(check_bad(f->db), 0);
}

static void test_settle_several(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[3] = {mkkey(LT_OWNER_USER, U1, "qwen"),
				   mkkey(LT_OWNER_USER, U1, LT_POOL_MONEY),
				   mkkey(LT_OWNER_ORG, O1, "qwen")};
	for (int i = 0; i < 3; i++)
		assert_int_equal(grant(f->db, &k[i], 1000, T0), LT_OK);
	struct lt_reservation r;
	mkres(&r, "multi", T0, 2, k, (int64_t[]){100, 200});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_OK);

	/* A key the reservation does not hold, or one named twice: refused. */
	struct lt_settlement s;
	int64_t before = ledger_rows(f->db);
	mkset(&s, "multi", T0, 1, &k[2], (int64_t[]){5});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_EINVAL);
	struct lt_pool_key twice[2] = {k[0], k[0]};
	mkset(&s, "multi", T0, 2, twice, (int64_t[]){5, 5});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_EINVAL);
	mkset(&s, "multi", T0, 1, &k[0], (int64_t[]){-1});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_EINVAL);
	assert_int_equal(ledger_rows(f->db), before);
	assert_int_equal(holds_rows(f->db), 2);

	/* Naming only the money pool: the token pool is settled at 0. */
	mkset(&s, "multi", T0, 1, &k[1], (int64_t[]){250});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(s.charged[0], 250);
	assert_int_equal(get(f->db, &k[0], T0).remaining, 1000);
	assert_int_equal(get(f->db, &k[0], T0).reserved, 0);
	assert_int_equal(get(f->db, &k[1], T0).remaining, 750);
	assert_int_equal(ledger_rows(f->db), before + 2);
	assert_int_equal(q64(f->db, "SELECT amount FROM ledger WHERE kind = 'settle' AND "
				    "d_reserved = -100"),
			 0);
	assert_int_equal(check_bad(f->db), 0);
}

static void test_release(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[2] = {mkkey(LT_OWNER_USER, U1, "openai"),
				   mkkey(LT_OWNER_USER, U1, LT_POOL_MONEY)};
	assert_int_equal(grant(f->db, &k[0], 300, T0), LT_OK);
	assert_int_equal(grant(f->db, &k[1], 300, T0), LT_OK);
	struct lt_reservation r;
	mkres(&r, "rel", T0, 2, k, (int64_t[]){120, 30});
	assert_int_equal(SP(f->db, lt_pool_store_reserve(f->db, &r)), LT_OK);
	struct lt_ledger_note n = {"system", "client went away", "corr-x"};
	assert_int_equal(SP(f->db, lt_pool_store_release(f->db, "rel", T0 + 9, &n)), LT_OK);
	for (int i = 0; i < 2; i++) {
		struct lt_pool p = get(f->db, &k[i], T0 + 9);
		assert_int_equal(p.remaining, 300);
		assert_int_equal(p.reserved, 0);
		assert_int_equal(p.window_used, 0);
	}
	assert_int_equal(holds_rows(f->db), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'release' AND "
				    "reservation = 'rel' AND d_remaining = -d_reserved AND "
				    "d_remaining > 0 AND amount IS NULL AND reason = "
				    "'client went away' AND at = 1706741999009"),
			 2);
	int64_t before = ledger_rows(f->db);
	assert_int_equal(SP(f->db, lt_pool_store_release(f->db, "rel", T0, NULL)), LT_ENOTFOUND);
	assert_int_equal(SP(f->db, lt_pool_store_release(f->db, "", T0, NULL)), LT_EINVAL);
	assert_int_equal(ledger_rows(f->db), before);
	assert_int_equal(check_bad(f->db), 0);
}

/* ---- recovery after a crash ---- */

/* In a child: reserve three calls, each committed, start a fourth and die
 * with SIGKILL before committing it. */
static void crash_child(const char *dir, const struct lt_pool_key *k)
{
	sqlite3 *db = open_db(dir);
	if (!db)
		_exit(2);
	for (int i = 0; i < 4; i++) {
		int64_t amounts[2] = {10 + i, 1 + i};
		struct lt_reservation r;
		mkres(&r, "", T0, 2, k, amounts);
		snprintf(r.id, sizeof r.id, "crash-%d", i);
		if (lt_db_exec(db, "BEGIN IMMEDIATE", NULL) || lt_pool_store_reserve(db, &r))
			_exit(3);
		if (i < 3 && lt_db_exec(db, "COMMIT", NULL))
			_exit(4);
	}
	kill(getpid(), SIGKILL);
	_exit(5);
}

static void test_recover_after_crash(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[2] = {mkkey(LT_OWNER_ORG, O1, "gemini"),
				   mkkey(LT_OWNER_ORG, O1, LT_POOL_MONEY)};
	assert_int_equal(change(f->db, &k[0], false, 1000, LT_WINDOW_HOUR, 500, T0, NULL), LT_OK);
	assert_int_equal(grant(f->db, &k[1], 100, T0), LT_OK);
	lt_db_close(f->db);
	f->db = NULL;

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f->dir, k);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	f->db = open_db(f->dir);
	assert_non_null(f->db);
	assert_int_equal(q64(f->db, "SELECT count(DISTINCT id) FROM reservations"), 3);
	assert_int_equal(get(f->db, &k[0], T0).reserved, 10 + 11 + 12);
	assert_int_equal(get(f->db, &k[1], T0).reserved, 1 + 2 + 3);
	assert_int_equal(check_bad(f->db), 0); /* consistent with the calls in flight */

	/* At the next start, two hours later: everything comes back. */
	size_t released = 99;
	assert_int_equal(SP(f->db, lt_pool_store_recover(f->db, T0 + 2 * HOUR, &released)), LT_OK);
	assert_int_equal(released, 3);
	assert_int_equal(holds_rows(f->db), 0);
	struct lt_pool p = get(f->db, &k[0], T0 + 2 * HOUR);
	assert_int_equal(p.remaining, 1000);
	assert_int_equal(p.reserved, 0);
	assert_int_equal(p.window_used, 0);
	assert_int_equal(get(f->db, &k[1], T0).remaining, 100);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'release' AND "
				    "actor = 'system' AND reason = 'released at start: the call "
				    "did not survive a restart'"),
			 6);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'window_reset'"), 1);
	assert_int_equal(check_bad(f->db), 0);
	assert_int_equal(SP(f->db, lt_pool_store_recover(f->db, T0 + 2 * HOUR, &released)), LT_OK);
	assert_int_equal(released, 0);
}

/* ---- windows ---- */

static void test_window_roll(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_USER, U2, "openai");
	struct lt_pool_row r;
	struct lt_settlement s;
	int64_t h0 = T0 - 59 * 60000 - 59000; /* 22:00 */
	assert_int_equal(change(f->db, &k, false, 1000, LT_WINDOW_HOUR, 100, T0, &r), LT_OK);
	assert_int_equal(r.pool.window_start_ms, h0);
	assert_int_equal(reserve1(f->db, "w1", &k, 80, T0), LT_OK);
	mkset(&s, "w1", T0, 1, &k, (int64_t[]){80});
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_OK);
	assert_int_equal(reserve1(f->db, "w2", &k, 21, T0), LT_EDENIED); /* cap 100 */
	assert_int_equal(reserve1(f->db, "w2", &k, 20, T0), LT_OK);	 /* held into the roll */

	/* get rolls in memory only. */
	int64_t rows = ledger_rows(f->db);
	struct lt_pool p = get(f->db, &k, T0 + 1000);
	assert_int_equal(p.window_start_ms, h0 + HOUR);
	assert_int_equal(p.window_used, 20);
	assert_int_equal(ledger_rows(f->db), rows);
	assert_int_equal(q64(f->db, "SELECT window_start FROM pools"), h0);
	assert_int_equal(q64(f->db, "SELECT window_used FROM pools"), 100);

	/* A reserve in the new window writes window_reset first. */
	assert_int_equal(reserve1(f->db, "w3", &k, 80, T0 + 1000), LT_OK);
	assert_int_equal(ledger_rows(f->db), rows + 2);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'window_reset' AND "
				    "d_remaining = 0 AND d_reserved = 0 AND at = 1706742000000"),
			 1);
	assert_int_equal(q64(f->db, "SELECT max(id) FROM ledger WHERE kind = 'window_reset'") + 1,
			 q64(f->db, "SELECT max(id) FROM ledger WHERE kind = 'reserve'"));
	assert_int_equal(q64(f->db, "SELECT window_used FROM pools"), 100);
	assert_int_equal(reserve1(f->db, "w4", &k, 1, T0 + 1000), LT_EDENIED);
	assert_int_equal(ledger_rows(f->db), rows + 2); /* a refusal writes no roll */

	/* A grant in the following window rolls too; a reserve refused after
	 * a roll writes nothing. */
	rows = ledger_rows(f->db);
	assert_int_equal(reserve1(f->db, "w4", &k, 101, T0 + HOUR + 1000), LT_EDENIED);
	assert_int_equal(ledger_rows(f->db), rows);
	assert_int_equal(change(f->db, &k, false, 5, LT_WINDOW_NONE, -1, T0 + HOUR + 1000, &r),
			 LT_OK);
	assert_int_equal(ledger_rows(f->db), rows + 2);
	assert_int_equal(r.pool.window_used, 100); /* w2 and w3 still held */
	assert_int_equal(r.pool.window_start_ms, h0 + 2 * HOUR);

	/* Changing only the cap: no reset row; changing the window: one. */
	struct lt_pool_change c = {.key = k,
				   .amount = 1,
				   .window = LT_WINDOW_HOUR,
				   .set_window = true,
				   .window_cap = 1000,
				   .now_ms = T0 + HOUR + 2000};
	rows = ledger_rows(f->db);
	assert_int_equal(SP(f->db, lt_pool_store_change(f->db, &c)), LT_OK);
	assert_int_equal(ledger_rows(f->db), rows + 1);
	assert_int_equal(c.out.pool.window_cap, 1000);
	c.window = LT_WINDOW_DAY;
	c.window_cap = -1;
	assert_int_equal(SP(f->db, lt_pool_store_change(f->db, &c)), LT_OK);
	assert_int_equal(ledger_rows(f->db), rows + 3);
	assert_int_equal(c.out.pool.window, LT_WINDOW_DAY);
	assert_int_equal(c.out.pool.window_start_ms, T0 + 1000 + HOUR); /* Feb 1 */
	assert_int_equal(c.out.pool.window_used, 100);
	/* Rolled and changed at once: still one reset row. */
	c.window = LT_WINDOW_MONTH;
	c.now_ms = T0 + 3 * DAY;
	assert_int_equal(SP(f->db, lt_pool_store_change(f->db, &c)), LT_OK);
	assert_int_equal(ledger_rows(f->db), rows + 5);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'window_reset'"), 4);
	assert_int_equal(c.out.pool.window_start_ms, T0 + 1000 + HOUR); /* 2024-02-01 */
	assert_int_equal(check_bad(f->db), 0);
}

/* ---- check, corruption, busy ---- */

struct seen {
	size_t n;
	int64_t ids[8];
	char problems[8][256];
};

static void on_bad(void *arg, const struct lt_pool_row *row, const char *problem)
{
	struct seen *s = arg;
	if (s->n < 8) {
		s->ids[s->n] = row->id;
		snprintf(s->problems[s->n], sizeof s->problems[0], "%s", problem);
	}
	s->n++;
}

static void test_check(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k[3] = {mkkey(LT_OWNER_USER, U1, "openai"),
				   mkkey(LT_OWNER_USER, U2, "openai"),
				   mkkey(LT_OWNER_ORG, O1, LT_POOL_MONEY)};
	struct lt_pool_row r[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(change(f->db, &k[i], false, 100, LT_WINDOW_NONE, -1, T0, &r[i]),
				 LT_OK);
	assert_int_equal(reserve1(f->db, "chk", &k[2], 10, T0), LT_OK);
	size_t pools = 0, bad = 99;
	struct seen s = {0};
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, on_bad, &s), LT_OK);
	assert_int_equal(pools, 3);
	assert_int_equal(bad, 0);
	assert_int_equal(s.n, 0);

	/* Tamper with a pool row by hand. */
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE pools SET remaining = remaining + 1 WHERE id = %lld",
		 (long long)r[0].id);
	assert_int_equal(lt_db_exec(f->db, sql, NULL), LT_OK);
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, on_bad, &s), LT_OK);
	assert_int_equal(bad, 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], r[0].id);
	assert_non_null(strstr(s.problems[0], "remaining 101 but the ledger sums to 100"));

	/* A reservation nobody reserved through the ledger. */
	snprintf(sql, sizeof sql,
		 "INSERT INTO reservations (id, pool_id, held, created_at) "
		 "VALUES ('ghost', %lld, 5, 0)",
		 (long long)r[1].id);
	assert_int_equal(lt_db_exec(f->db, sql, NULL), LT_OK);
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, on_bad, &s), LT_OK);
	assert_int_equal(pools, 3);
	assert_int_equal(bad, 2);
	assert_int_equal(s.ids[1], r[1].id);
	assert_non_null(strstr(s.problems[1], "reserved 0 but open reservations hold 5"));

	/* A hand-made grant row that moves total but not the pool. */
	snprintf(sql, sizeof sql,
		 "INSERT INTO ledger (pool_id, at, kind, d_remaining, d_reserved) "
		 "VALUES (%lld, 0, 'grant', 7, 0)",
		 (long long)r[2].id);
	assert_int_equal(lt_db_exec(f->db, sql, NULL), LT_OK);
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, on_bad, &s), LT_OK);
	assert_int_equal(bad, 3);
	assert_non_null(strstr(s.problems[2], "remaining 90 but the ledger sums to 97"));
	assert_non_null(strstr(s.problems[2], "total 100 but grants and adjusts sum to 107"));

	/* Rows naming a pool that does not exist (foreign keys off). */
	assert_int_equal(lt_db_exec(f->db,
				    "PRAGMA foreign_keys = OFF; INSERT INTO ledger (pool_id, at, "
				    "kind, d_remaining, d_reserved) VALUES (4242, 0, 'grant', 1, "
				    "0); PRAGMA foreign_keys = ON;",
				    NULL),
			 LT_OK);
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, on_bad, &s), LT_OK);
	assert_int_equal(pools, 3);
	assert_int_equal(bad, 4);
	assert_int_equal(s.ids[3], 4242);
}

static void test_corrupt_and_busy(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_USER, U1, "openai");
	assert_int_equal(grant(f->db, &k, 100, T0), LT_OK);
	/* A reservation holding more than its pool's reserved. */
	assert_int_equal(lt_db_exec(f->db,
				    "INSERT INTO reservations (id, pool_id, held, created_at) "
				    "SELECT 'bad', id, 50, 0 FROM pools",
				    NULL),
			 LT_OK);
	int64_t rows = ledger_rows(f->db);
	assert_int_equal(SP(f->db, lt_pool_store_release(f->db, "bad", T0, NULL)), LT_ECORRUPT);
	struct lt_settlement s;
	mkset(&s, "bad", T0, 0, NULL, NULL);
	assert_int_equal(SP(f->db, lt_pool_store_settle(f->db, &s)), LT_ECORRUPT);
	size_t released = 0;
	assert_int_equal(SP(f->db, lt_pool_store_recover(f->db, T0, &released)), LT_ECORRUPT);
	assert_int_equal(ledger_rows(f->db), rows);
	assert_int_equal(get(f->db, &k, T0).remaining, 100);
	assert_int_equal(lt_db_exec(f->db, "DELETE FROM reservations", NULL), LT_OK);

	/* Another connection holds the write lock. */
	sqlite3 *other = open_db(f->dir);
	assert_non_null(other);
	assert_int_equal(lt_db_exec(other, "BEGIN IMMEDIATE", NULL), LT_OK);
	sqlite3_busy_timeout(f->db, 0);
	assert_int_equal(grant(f->db, &k, 1, T0), LT_EBUSY);
	assert_int_equal(reserve1(f->db, "busy", &k, 1, T0), LT_EBUSY);
	assert_int_equal(lt_db_exec(other, "ROLLBACK", NULL), LT_OK);
	lt_db_close(other);
	assert_int_equal(grant(f->db, &k, 1, T0), LT_OK);
	assert_int_equal(check_bad(f->db), 0);
	idle_statements(f->db);
}

/* ---- random operations against a model ---- */

#define NPOOLS 6
#define NOPEN 48
#define STEPS 20000

struct model {
	struct lt_pool_key key[NPOOLS];
	struct lt_pool pool[NPOOLS];
	bool exists[NPOOLS];
	struct {
		char id[40];
		size_t n, idx[3];
		int64_t held[3];
	} open[NOPEN];
	size_t nopen;
	uint64_t rng;
	int64_t now;
	unsigned seq;
};

static uint64_t rnd(struct model *m, uint64_t n)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng % n;
}

static void expect_pool(sqlite3 *db, struct model *m, size_t i)
{
	struct lt_pool_row row;
	if (!m->exists[i]) {
		assert_int_equal(lt_pool_store_get(db, &m->key[i], m->now, &row), LT_ENOTFOUND);
		return;
	}
	struct lt_pool want = m->pool[i];
	lt_pool_roll(&want, m->now);
	assert_int_equal(lt_pool_store_get(db, &m->key[i], m->now, &row), LT_OK);
	assert_int_equal(row.pool.total, want.total);
	assert_int_equal(row.pool.remaining, want.remaining);
	assert_int_equal(row.pool.reserved, want.reserved);
	assert_int_equal(row.pool.window, want.window);
	assert_int_equal(row.pool.window_start_ms, want.window_start_ms);
	assert_int_equal(row.pool.window_cap, want.window_cap);
	assert_int_equal(row.pool.window_used, want.window_used);
	assert_true(row.pool.remaining >= 0);
}

static enum lt_window rnd_window(struct model *m)
{
	return (enum lt_window)rnd(m, 4);
}

static int64_t rnd_cap(struct model *m)
{
	return rnd(m, 3) == 0 ? -1 : (int64_t)(50 + rnd(m, 2000));
}

static void step_change(sqlite3 *db, struct model *m)
{
	size_t i = rnd(m, NPOOLS);
	struct lt_pool_change c = {.key = m->key[i], .now_ms = m->now, .note = note};
	c.adjust = rnd(m, 3) == 0;
	c.amount = c.adjust ? (int64_t)rnd(m, 601) - 300 : (int64_t)(1 + rnd(m, 500));
	if (c.amount == 0)
		c.amount = 1;
	c.set_window = rnd(m, 8) == 0;
	c.window = rnd_window(m);
	c.window_cap = rnd_cap(m);
	struct lt_pool p = m->pool[i];
	if (!m->exists[i]) {
		lt_pool_init(&p, c.window, c.window_cap, m->now);
	} else {
		lt_pool_roll(&p, m->now);
		if (c.set_window && c.window != p.window) {
			p.window = c.window;
			p.window_start_ms = lt_window_start(c.window, m->now);
			p.window_used = p.reserved;
		}
		if (c.set_window)
			p.window_cap = c.window_cap;
	}
	enum lt_err want = c.adjust ? lt_pool_adjust(&p, c.amount) : lt_pool_grant(&p, c.amount);
	assert_int_equal(SP(db, lt_pool_store_change(db, &c)), want);
	if (!want) {
		m->pool[i] = p;
		m->exists[i] = true;
	}
	expect_pool(db, m, i);
}

/* Which of the n items of a model reservation the model refuses, if any. */
static enum lt_err model_reserve(struct model *m, const size_t *idx, const int64_t *amt, size_t n,
				 struct lt_pool *after, size_t *failed)
{
	for (size_t j = 0; j < n; j++) {
		if (!m->exists[idx[j]]) {
			*failed = j;
			return LT_ENOTFOUND;
		}
	}
	for (size_t j = 0; j < n; j++) {
		after[j] = m->pool[idx[j]];
		lt_pool_roll(&after[j], m->now);
		enum lt_err e = lt_pool_reserve(&after[j], amt[j]);
		if (e) {
			*failed = j;
			return e;
		}
	}
	return LT_OK;
}

static void step_reserve(sqlite3 *db, struct model *m)
{
	if (m->nopen == NOPEN)
		return;
	size_t n = 1 + rnd(m, 3), idx[3];
	int64_t amt[3];
	struct lt_reservation r;
	memset(&r, 0, sizeof r);
	for (size_t j = 0; j < n; j++) {
		bool dup;
		do {
			idx[j] = rnd(m, NPOOLS);
			dup = false;
			for (size_t q = 0; q < j; q++)
				dup |= idx[q] == idx[j];
		} while (dup);
		amt[j] = 1 + (int64_t)rnd(m, 200);
		r.items[j].key = m->key[idx[j]];
		r.items[j].amount = amt[j];
	}
	snprintf(r.id, sizeof r.id, "r-%u", m->seq++);
	r.n = n;
	r.now_ms = m->now;
	struct lt_pool after[3];
	size_t failed = 99;
	enum lt_err want = model_reserve(m, idx, amt, n, after, &failed);
	assert_int_equal(SP(db, lt_pool_store_reserve(db, &r)), want);
	if (want) {
		assert_int_equal(r.failed, failed);
	} else {
		for (size_t j = 0; j < n; j++) {
			m->pool[idx[j]] = after[j];
			assert_int_equal(r.items[j].out.pool.remaining, after[j].remaining);
		}
		memcpy(m->open[m->nopen].id, r.id, sizeof r.id);
		m->open[m->nopen].n = n;
		memcpy(m->open[m->nopen].idx, idx, sizeof idx);
		memcpy(m->open[m->nopen].held, amt, sizeof amt);
		m->nopen++;
	}
	for (size_t j = 0; j < n; j++)
		expect_pool(db, m, idx[j]);
}

/* Close open reservation o in the model and the store: settle it with
 * random actual amounts for a random subset of its pools, or release it. */
static void close_one(sqlite3 *db, struct model *m, size_t o, bool settle)
{
	struct lt_settlement s;
	memset(&s, 0, sizeof s);
	memcpy(s.id, m->open[o].id, sizeof s.id);
	s.now_ms = m->now;
	int64_t actual[3] = {0, 0, 0};
	size_t named[3];
	for (size_t j = 0; j < m->open[o].n; j++) {
		if (rnd(m, 4) == 0)
			continue; /* settled at 0 */
		actual[j] = (int64_t)rnd(m, 400);
		s.keys[s.n] = m->key[m->open[o].idx[j]];
		s.actual[s.n] = actual[j];
		named[s.n++] = j;
	}
	int64_t charged[3] = {0}, unbilled[3] = {0};
	for (size_t j = 0; j < m->open[o].n; j++) {
		struct lt_pool *p = &m->pool[m->open[o].idx[j]];
		lt_pool_roll(p, m->now);
		if (settle)
			assert_int_equal(lt_pool_settle(p, m->open[o].held[j], actual[j],
							&charged[j], &unbilled[j], NULL, NULL),
					 LT_OK);
		else
			assert_int_equal(lt_pool_release(p, m->open[o].held[j]), LT_OK);
	}
	if (settle) {
		assert_int_equal(SP(db, lt_pool_store_settle(db, &s)), LT_OK);
		for (size_t q = 0; q < s.n; q++) {
			assert_int_equal(s.charged[q], charged[named[q]]);
			assert_int_equal(s.unbilled[q], unbilled[named[q]]);
		}
		assert_int_equal(SP(db, lt_pool_store_settle(db, &s)), LT_ENOTFOUND);
	} else {
		assert_int_equal(SP(db, lt_pool_store_release(db, s.id, m->now, NULL)), LT_OK);
	}
	for (size_t j = 0; j < m->open[o].n; j++)
		expect_pool(db, m, m->open[o].idx[j]);
	m->open[o] = m->open[--m->nopen];
}

static void step_recover(sqlite3 *db, struct model *m)
{
	size_t want = m->nopen, released = 0;
	for (size_t o = 0; o < m->nopen; o++)
		for (size_t j = 0; j < m->open[o].n; j++) {
			struct lt_pool *p = &m->pool[m->open[o].idx[j]];
			lt_pool_roll(p, m->now);
			assert_int_equal(lt_pool_release(p, m->open[o].held[j]), LT_OK);
		}
	m->nopen = 0;
	assert_int_equal(SP(db, lt_pool_store_recover(db, m->now, &released)), LT_OK);
	assert_int_equal(released, want);
}

static void test_random_ops(void **state)
{
	struct fx *f = *state;
	static struct model m;
	memset(&m, 0, sizeof m);
	m.rng = UINT64_C(0x9e3779b97f4a7c15);
	m.now = T0 - 2 * HOUR;
	const char *providers[3] = {"openai", "gemini", LT_POOL_MONEY};
	for (size_t i = 0; i < NPOOLS; i++)
		m.key[i] = mkkey(i < 3 ? LT_OWNER_USER : LT_OWNER_ORG, i < 3 ? U1 : O1,
				 providers[i % 3]);
	for (unsigned step = 0; step < STEPS; step++) {
		m.now += (int64_t)rnd(&m, 120000);
		uint64_t op = rnd(&m, 100);
		if (op < 15)
			step_change(f->db, &m);
		else if (op < 55)
			step_reserve(f->db, &m);
		else if (op < 80 && m.nopen)
			close_one(f->db, &m, rnd(&m, m.nopen), true);
		else if (op < 90 && m.nopen)
			close_one(f->db, &m, rnd(&m, m.nopen), false);
		else if (op < 93)
			m.now += (int64_t)rnd(&m, 3 * HOUR);
		else if (op == 93)
			step_recover(f->db, &m);
		else if (op == 94)
			assert_int_equal(
				SP(f->db, lt_pool_store_release(f->db, "never", m.now, NULL)),
				LT_ENOTFOUND);
		if (step % 1000 == 0) {
			for (size_t i = 0; i < NPOOLS; i++)
				expect_pool(f->db, &m, i);
			assert_int_equal(check_bad(f->db), 0);
		}
	}
	size_t pools = 0, bad = 99;
	assert_int_equal(lt_pool_store_check(f->db, &pools, &bad, NULL, NULL), LT_OK);
	assert_int_equal(pools, NPOOLS);
	assert_int_equal(bad, 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM pools WHERE remaining < 0"), 0);
	assert_true(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'window_reset'") > 0);
	assert_true(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'settle' AND "
			       "unbilled > 0") > 0);
	for (size_t i = 0; i < NPOOLS; i++)
		expect_pool(f->db, &m, i);
	int cached = idle_statements(f->db);
	assert_true(cached > 10);  /* cached, not finalized */
	assert_true(cached <= 24); /* one per distinct statement, about 18 */
}

/* ---- concurrency through the writer thread ---- */

#define THREADS 8
#define ROUNDS 2000
#define GRANT 12000

struct worker {
	struct lt_writer *w;
	struct lt_pool_key key;
	unsigned id;
	int64_t charged, unbilled, actual, denied, negative, errors;
	pthread_t th;
};

static enum lt_err op_reserve(sqlite3 *db, void *arg)
{
	return lt_pool_store_reserve(db, arg);
}

static enum lt_err op_settle(sqlite3 *db, void *arg)
{
	return lt_pool_store_settle(db, arg);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	uint64_t rng = 0x2545f4914f6cdd1dULL * (wk->id + 1);
	for (unsigned i = 0; i < ROUNDS; i++) {
		struct lt_reservation r;
		int64_t one = 1;
		mkres(&r, "", 1000, 1, &wk->key, &one);
		snprintf(r.id, sizeof r.id, "t%u-%u", wk->id, i);
		enum lt_err e = lt_writer_run(wk->w, op_reserve, &r);
		if (e == LT_EDENIED) {
			wk->denied++;
			continue;
		}
		if (e) {
			wk->errors++;
			continue;
		}
		if (r.items[0].out.pool.remaining < 0)
			wk->negative++;
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		int64_t actual = (int64_t)(rng % 3);
		struct lt_settlement s;
		mkset(&s, r.id, 1000, 1, &wk->key, &actual);
		if (lt_writer_run(wk->w, op_settle, &s)) {
			wk->errors++;
			continue;
		}
		wk->actual += actual;
		wk->charged += s.charged[0];
		wk->unbilled += s.unbilled[0];
	}
	return NULL;
}

static void test_concurrent_writer(void **state)
{
	struct fx *f = *state;
	struct lt_pool_key k = mkkey(LT_OWNER_ORG, O1, "openai");
	assert_int_equal(grant(f->db, &k, GRANT, 1000), LT_OK);
	struct lt_writer w;
	memset(&w, 0, sizeof w);
	assert_int_equal(lt_writer_start(&w, f->db, 64, 32, NULL, NULL), LT_OK);
	static struct worker wk[THREADS];
	for (unsigned t = 0; t < THREADS; t++) {
		wk[t] = (struct worker){.w = &w, .key = k, .id = t};
		assert_int_equal(pthread_create(&wk[t].th, NULL, worker_main, &wk[t]), 0);
	}
	int64_t charged = 0, unbilled = 0, actual = 0, denied = 0;
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(wk[t].th, NULL);
		assert_int_equal(wk[t].errors, 0);
		assert_int_equal(wk[t].negative, 0);
		charged += wk[t].charged;
		unbilled += wk[t].unbilled;
		actual += wk[t].actual;
		denied += wk[t].denied;
	}
	lt_writer_stop(&w);
	lt_writer_release(&w);

	struct lt_pool p = get(f->db, &k, 1000);
	assert_true(p.remaining >= 0);
	assert_int_equal(p.reserved, 0);
	assert_true(charged <= GRANT);
	assert_int_equal(p.remaining, GRANT - charged);
	assert_int_equal(charged + unbilled, actual);
	assert_true(denied > 0); /* the grant ran out (expected use is 16000) */
	assert_int_equal(holds_rows(f->db), 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM ledger WHERE kind = 'settle'"),
			 THREADS * ROUNDS - denied);
	assert_int_equal(check_bad(f->db), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_adjust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_all_or_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_optional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_several, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_roll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_and_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
