/*
 * test_bucket_store.c — src/limit/bucket_store.c on a real LMDB environment
 * in a temporary directory (lt_kv_open): all-or-none admission with every
 * decision filled, LT_ERANGE items, refunds, settlement to the real use
 * (refund, forced charge into debt, mixed, missing records, bad arguments
 * writing nothing, a full map), the TTL sweep (exact, batched,
 * bounded), records of the wrong size or version, argument checks, a full
 * map (expired records swept automatically; live records give LT_EBUSY
 * with nothing damaged) and 8 threads on one bucket under a shared
 * synthetic clock.  Time is always an explicit now_ns; no real clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "limit/bucket_store.h"
#include "store/kv.h"
#include "store/kv_int.h"
#include "testutil.h"

#define MIB (UINT64_C(1) << 20)
#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1700000000) * SEC) /* any fixed instant */

struct fixture {
	char dir[TU_PATH_MAX];
	char env[TU_PATH_MAX];
	struct lt_kv *kv;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[LT_KV_ERR_MAX];
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->env, f->dir, "buckets");
	if (lt_kv_open(f->env, 16 * MIB, false, &f->kv, err) != LT_OK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	lt_kv_close(f->kv);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* Leaky bucket: capacity tokens, leaking rate per period. */
static struct lt_bucket_policy leaky(int64_t capacity, int64_t rate, int64_t period_ns)
{
	struct lt_bucket_policy p = {LT_ALGO_LEAKY, capacity, rate, period_ns, 0};
	return p;
}

static void item(struct lt_admit_item *it, const char *key, struct lt_bucket_policy p, int64_t cost)
{
	memset(it, 0, sizeof *it);
	snprintf(it->key, sizeof it->key, "%s", key);
	it->policy = p;
	it->cost = cost;
	it->err = LT_EIO; /* must be overwritten */
	it->decision.limit = -1;
}

/* Admit one item; returns allowed, asserts LT_OK. */
static bool admit1(struct lt_kv *kv, const char *key, struct lt_bucket_policy p, int64_t cost,
		   int64_t now)
{
	struct lt_admit_item it;
	bool ok = true;
	item(&it, key, p, cost);
	assert_int_equal(lt_bucket_admit_all(kv, &it, 1, now, &ok), LT_OK);
	assert_int_equal(it.err, LT_OK);
	assert_int_equal(ok, it.decision.allowed);
	return ok;
}

static int64_t remaining(struct lt_kv *kv, const char *key, struct lt_bucket_policy p, int64_t now)
{
	struct lt_bucket_decision d;
	assert_int_equal(lt_bucket_store_peek(kv, key, &p, now, &d), LT_OK);
	return d.remaining;
}

static uint64_t entries(struct lt_kv *kv)
{
	struct lt_kv_stat st;
	assert_int_equal(lt_kv_stat(kv, &st), LT_OK);
	return st.entries;
}

static void raw_put(struct lt_kv *kv, const char *key, const void *val, size_t len)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	lt_kv_handles(kv, &env, &dbi);
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

/* Size of the stored value (0 when absent); copies up to cap bytes to out. */
static size_t raw_get(struct lt_kv *kv, const char *key, void *out, size_t cap)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	size_t n = 0;
	lt_kv_handles(kv, &env, &dbi);
	MDB_val k = {strlen(key), (void *)key}, v;
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0) {
		n = v.mv_size;
		if (out)
			memcpy(out, v.mv_data, n < cap ? n : cap);
	} else {
		assert_int_equal(rc, MDB_NOTFOUND);
	}
	mdb_txn_abort(txn);
	return n;
}

/* One full bucket among three: nothing is written to the other two, and
 * every decision is filled; then the same items all pass and all are
 * written. */
static void test_all_or_none(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(5, 1, SEC);
	struct lt_admit_item it[3];
	bool ok = true;

	for (int i = 0; i < 5; i++)
		assert_true(admit1(f->kv, "user:b", p, 1, T0));
	assert_false(admit1(f->kv, "user:b", p, 1, T0));
	assert_int_equal(entries(f->kv), 1);

	/* unsorted on purpose */
	item(&it[0], "user:c", p, 2);
	item(&it[1], "user:b", p, 1);
	item(&it[2], "user:a", p, 1);
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 3, T0, &ok), LT_OK);
	assert_false(ok);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(it[i].err, LT_OK);
		assert_int_equal(it[i].decision.limit, 5);
	}
	assert_false(it[1].decision.allowed);
	assert_int_equal(it[1].decision.remaining, 0);
	assert_true(it[1].decision.retry_ns > 0);
	/* what a and c would have been, had the request passed */
	assert_true(it[0].decision.allowed);
	assert_int_equal(it[0].decision.remaining, 3);
	assert_true(it[2].decision.allowed);
	assert_int_equal(it[2].decision.remaining, 4);
	/* ... but nothing was written */
	assert_int_equal(remaining(f->kv, "user:a", p, T0), 5);
	assert_int_equal(remaining(f->kv, "user:c", p, T0), 5);
	assert_int_equal(remaining(f->kv, "user:b", p, T0), 0);
	assert_int_equal(entries(f->kv), 1);

	/* one token leaks out of b after a second: now all three pass */
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 3, T0 + SEC, &ok), LT_OK);
	assert_true(ok);
	for (int i = 0; i < 3; i++)
		assert_true(it[i].decision.allowed);
	assert_int_equal(remaining(f->kv, "user:a", p, T0 + SEC), 4);
	assert_int_equal(remaining(f->kv, "user:b", p, T0 + SEC), 0);
	assert_int_equal(remaining(f->kv, "user:c", p, T0 + SEC), 3);
	assert_int_equal(entries(f->kv), 3);
}

/* A cost no bucket can ever admit: LT_ERANGE, nothing written, the other
 * item's decision still filled. */
static void test_erange(void **state)
{
	struct fixture *f = *state;
	struct lt_admit_item it[2];
	bool ok = true;
	item(&it[0], "route:x", leaky(10, 1, SEC), 1);
	item(&it[1], "model:tpm", leaky(100, 1, SEC), 101);
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 2, T0, &ok), LT_ERANGE);
	assert_false(ok);
	assert_int_equal(it[0].err, LT_OK);
	assert_true(it[0].decision.allowed);
	assert_int_equal(it[0].decision.limit, 10);
	assert_int_equal(it[1].err, LT_ERANGE);
	assert_false(it[1].decision.allowed);
	assert_int_equal(it[1].decision.limit, 100);
	assert_int_equal(entries(f->kv), 0);
	/* exactly the capacity is fine */
	it[1].cost = 100;
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 2, T0, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(entries(f->kv), 2);
}

static void test_refund(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(10, 1, SEC);
	struct lt_admit_item it[2];
	bool ok = false;
	item(&it[0], "k1", p, 3);
	item(&it[1], "k2", p, 7);
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 2, T0, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(remaining(f->kv, "k1", p, T0), 7);
	assert_int_equal(remaining(f->kv, "k2", p, T0), 3);
	assert_int_equal(lt_bucket_refund_all(f->kv, it, 2, T0), LT_OK);
	assert_int_equal(remaining(f->kv, "k1", p, T0), 10);
	assert_int_equal(remaining(f->kv, "k2", p, T0), 10);
	/* the refunded bucket admits the full capacity again */
	it[0].cost = 10;
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 1, T0, &ok), LT_OK);
	assert_true(ok);

	/* a refund for a record that is gone creates nothing */
	struct lt_admit_item gone;
	item(&gone, "never-admitted", p, 5);
	uint64_t before = entries(f->kv);
	assert_int_equal(lt_bucket_refund_all(f->kv, &gone, 1, T0), LT_OK);
	assert_int_equal(entries(f->kv), before);
	assert_int_equal(raw_get(f->kv, "never-admitted", NULL, 0), 0);
}

/* 2500 keys with costs 1..10 on a 1 token/s bucket expire 1..10 s after
 * T0; a sweep at T0 + 5.5 s removes exactly those with cost <= 5, across
 * several batches, and the others keep their state. */
static void test_sweep(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(10, 1, SEC);
	char key[32];
	size_t removed = 99;
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof key, "sweep:%05d", i);
		assert_true(admit1(f->kv, key, p, i % 10 + 1, T0));
	}
	assert_int_equal(entries(f->kv), 2500);

	assert_int_equal(lt_bucket_sweep(f->kv, T0, 0, &removed), LT_OK);
	assert_int_equal(removed, 0);

	/* bounded: exactly max, all from the expired ones */
	assert_int_equal(lt_bucket_sweep(f->kv, T0 + 5 * SEC + SEC / 2, 100, &removed), LT_OK);
	assert_int_equal(removed, 100);
	assert_int_equal(entries(f->kv), 2400);
	assert_int_equal(lt_bucket_sweep(f->kv, T0 + 5 * SEC + SEC / 2, 0, &removed), LT_OK);
	assert_int_equal(removed, 1150);
	assert_int_equal(entries(f->kv), 1250);
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof key, "sweep:%05d", i);
		struct lt_bucket_decision d;
		size_t n = raw_get(f->kv, key, NULL, 0);
		assert_int_equal(n, i % 10 + 1 <= 5 ? 0 : 48);
		if (n) {
			assert_int_equal(lt_bucket_store_peek(f->kv, key, &p, T0, &d), LT_OK);
			assert_int_equal(d.used, i % 10 + 1);
		}
	}
	assert_int_equal(lt_bucket_sweep(f->kv, T0 + 5 * SEC + SEC / 2, 0, &removed), LT_OK);
	assert_int_equal(removed, 0);
	/* at T0 + 10 s everything is back to fresh */
	assert_int_equal(lt_bucket_sweep(f->kv, T0 + 10 * SEC, 0, &removed), LT_OK);
	assert_int_equal(removed, 1250);
	assert_int_equal(entries(f->kv), 0);
}

/* Values of another size or version read as fresh, are overwritten by an
 * admission, ignored by a refund and removed by the sweep. */
static void test_wrong_size(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(4, 1, SEC);
	unsigned char junk[10], buf[64];
	int64_t other[6] = {1, 2, 3, 4, INT64_MAX, 7}; /* version 7 */
	size_t removed;
	memset(junk, 0xAB, sizeof junk);
	raw_put(f->kv, "short", junk, sizeof junk);
	raw_put(f->kv, "version", other, sizeof other);

	assert_int_equal(remaining(f->kv, "short", p, T0), 4);
	assert_int_equal(remaining(f->kv, "version", p, T0), 4);

	struct lt_admit_item it;
	item(&it, "version", p, 1);
	assert_int_equal(lt_bucket_refund_all(f->kv, &it, 1, T0), LT_OK);
	assert_int_equal(raw_get(f->kv, "version", buf, sizeof buf), 48);
	assert_memory_equal(buf, other, sizeof other);

	assert_true(admit1(f->kv, "short", p, 3, T0));
	assert_int_equal(raw_get(f->kv, "short", buf, sizeof buf), 48);
	assert_int_equal(remaining(f->kv, "short", p, T0), 1);

	assert_int_equal(lt_bucket_sweep(f->kv, T0, 0, &removed), LT_OK);
	assert_int_equal(removed, 1);
	assert_int_equal(raw_get(f->kv, "version", buf, sizeof buf), 0);
	assert_int_equal(raw_get(f->kv, "short", buf, sizeof buf), 48);
}

/* A reload that changes a bucket's algorithm starts it fresh instead of
 * reading the old state under the new algorithm. */
static void test_algorithm_change(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy lk = leaky(10, 1, INT64_C(1000000000));
	for (int i = 0; i < 3; i++)
		assert_true(admit1(f->kv, "algo", lk, 1, T0));
	assert_int_equal(remaining(f->kv, "algo", lk, T0), 7);
	struct lt_bucket_policy tb = lk;
	tb.algo = LT_ALGO_TOKEN;
	/* a leaky level of 3 must not read as 3 tokens left: the bucket is new */
	assert_int_equal(remaining(f->kv, "algo", tb, T0), 10);
	assert_true(admit1(f->kv, "algo", tb, 8, T0));
	assert_int_equal(remaining(f->kv, "algo", tb, T0), 2);
	/* and back: 2 tokens left is not a leaky level of 2 */
	assert_int_equal(remaining(f->kv, "algo", lk, T0), 10);
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(4, 1, SEC);
	struct lt_admit_item it[LT_ADMIT_MAX + 1];
	struct lt_bucket_decision d;
	char key[32];
	bool ok;
	for (int i = 0; i <= LT_ADMIT_MAX; i++) {
		snprintf(key, sizeof key, "k%02d", i);
		item(&it[i], key, p, 1);
	}

#define EXPECT_EINVAL(n)                                                                           \
	do {                                                                                       \
		ok = true;                                                                         \
		assert_int_equal(lt_bucket_admit_all(f->kv, it, (n), T0, &ok), LT_EINVAL);         \
		assert_false(ok);                                                                  \
		assert_int_equal(lt_bucket_refund_all(f->kv, it, (n), T0), LT_EINVAL);             \
	} while (0)

	EXPECT_EINVAL(0);
	EXPECT_EINVAL(LT_ADMIT_MAX + 1);
	/* the same key twice, not adjacent */
	snprintf(it[5].key, sizeof it[5].key, "k01");
	EXPECT_EINVAL(6);
	snprintf(it[5].key, sizeof it[5].key, "k05");
	it[2].key[0] = '\0';
	EXPECT_EINVAL(3);
	memset(it[2].key, 'x', sizeof it[2].key); /* no terminator */
	EXPECT_EINVAL(3);
	snprintf(it[2].key, sizeof it[2].key, "k02");
	it[1].cost = -1;
	EXPECT_EINVAL(3);
	it[1].cost = 1;
	it[0].policy.capacity = 0;
	EXPECT_EINVAL(3);
	it[0].policy = p;
	assert_int_equal(entries(f->kv), 0);

	/* the longest key passes; peek checks its arguments too */
	memset(it[0].key, 'y', LT_BUCKET_KEY_MAX);
	it[0].key[LT_BUCKET_KEY_MAX] = '\0';
	assert_int_equal(lt_bucket_admit_all(f->kv, it, LT_ADMIT_MAX, T0, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(entries(f->kv), LT_ADMIT_MAX);
	assert_int_equal(lt_bucket_store_peek(f->kv, it[0].key, &p, T0, &d), LT_OK);
	assert_int_equal(d.remaining, 3);
	assert_int_equal(lt_bucket_store_peek(f->kv, "", &p, T0, &d), LT_EINVAL);
	p.rate = 0;
	assert_int_equal(lt_bucket_store_peek(f->kv, "k01", &p, T0, &d), LT_EINVAL);
}

/* --- a full map ------------------------------------------------------------ */

/* The smallest map leakyd accepts: [storage] lmdb_map_size >= 1M
 * (config.c; kv.c itself has no floor). */
#define SMALL_MAP MIB

/* Admit distinct keys "fill:N" at now until the map is full; returns how
 * many were written. */
static int fill_map(struct lt_kv *kv, struct lt_bucket_policy p, int64_t now)
{
	char key[32];
	for (int i = 0; i < 1000000; i++) {
		struct lt_admit_item it;
		bool ok = false;
		snprintf(key, sizeof key, "fill:%07d", i);
		item(&it, key, p, 1);
		enum lt_err e = lt_bucket_admit_all(kv, &it, 1, now, &ok);
		if (e == LT_EBUSY) {
			assert_false(ok);
			return i;
		}
		assert_int_equal(e, LT_OK);
		assert_true(ok);
	}
	fail_msg("a 1 MiB map never filled up");
	return -1;
}

static struct lt_kv *open_small(struct fixture *f, const char *name)
{
	char path[TU_PATH_MAX], err[LT_KV_ERR_MAX];
	struct lt_kv *kv = NULL;
	assert_int_equal(lt_kv_open(tu_path(path, f->dir, name), SMALL_MAP, false, &kv, err),
			 LT_OK);
	return kv;
}

/* Every record fill:0..n-1 is there, used as the policy says. */
static void check_filled(struct lt_kv *kv, struct lt_bucket_policy p, int n, int64_t now)
{
	char key[32];
	for (int i = 0; i < n; i++) {
		struct lt_bucket_decision d;
		snprintf(key, sizeof key, "fill:%07d", i);
		assert_int_equal(raw_get(kv, key, NULL, 0), 48);
		assert_int_equal(lt_bucket_store_peek(kv, key, &p, now, &d), LT_OK);
		assert_int_equal(d.used, 1);
	}
}

/* Full of records that expire 1 ms after they were written: a new key is
 * refused with LT_EBUSY while they are live, and admitted once they have
 * expired, because the admission sweeps and retries by itself. */
static void test_map_full_expired(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = open_small(f, "small-expired");
	struct lt_bucket_policy shortp = leaky(1, 1, SEC / 1000);
	struct lt_bucket_policy p = leaky(5, 1, SEC);
	struct lt_admit_item it;
	bool ok = true;

	int n = fill_map(kv, shortp, T0);
	assert_true(n > 1000);
	assert_int_equal(entries(kv), (uint64_t)n);

	item(&it, "new-key", p, 1);
	assert_int_equal(lt_bucket_admit_all(kv, &it, 1, T0, &ok), LT_EBUSY);
	assert_false(ok);
	assert_int_equal(entries(kv), (uint64_t)n);

	assert_int_equal(lt_bucket_admit_all(kv, &it, 1, T0 + SEC, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(it.err, LT_OK);
	uint64_t left = entries(kv);
	assert_true(left < (uint64_t)n);
	assert_int_equal(remaining(kv, "new-key", p, T0 + SEC), 4);
	/* and the store keeps working */
	for (int i = 0; i < 100; i++) {
		char key[32];
		snprintf(key, sizeof key, "after:%03d", i);
		assert_true(admit1(kv, key, p, 1, T0 + SEC));
	}
	lt_kv_close(kv);
}

/* Full of live records: LT_EBUSY, nothing written, every record intact
 * (also after reopening); refusals still work; once the records expire,
 * admissions work again. */
static void test_map_full_live(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = open_small(f, "small-live");
	struct lt_bucket_policy hour = leaky(1, 1, 3600 * SEC);
	struct lt_admit_item it[2];
	size_t removed = 99;
	bool ok = true;

	int n = fill_map(kv, hour, T0);
	assert_true(n > 1000);

	item(&it[0], "new-a", hour, 1);
	item(&it[1], "new-b", hour, 1);
	for (int i = 0; i < 3; i++) {
		ok = true;
		assert_int_equal(lt_bucket_admit_all(kv, it, 2, T0 + SEC, &ok), LT_EBUSY);
		assert_false(ok);
	}
	assert_int_equal(entries(kv), (uint64_t)n);
	assert_int_equal(raw_get(kv, "new-a", NULL, 0), 0);
	/* a full bucket is refused without needing space */
	assert_false(admit1(kv, "fill:0000000", hour, 1, T0 + SEC));
	check_filled(kv, hour, n, T0 + SEC);
	assert_int_equal(lt_bucket_sweep(kv, T0 + SEC, 0, &removed), LT_OK);
	assert_int_equal(removed, 0);

	lt_kv_close(kv);
	kv = open_small(f, "small-live");
	assert_int_equal(entries(kv), (uint64_t)n);
	check_filled(kv, hour, n, T0 + SEC);

	/* an hour later every record is fresh again: the sweep makes room */
	assert_int_equal(lt_bucket_admit_all(kv, it, 2, T0 + 3601 * SEC, &ok), LT_OK);
	assert_true(ok);
	assert_true(entries(kv) < (uint64_t)n);
	lt_kv_close(kv);
}

/* --- settlement ------------------------------------------------------------ */

/* The raw record of key: state (level, last_ns, window, carry), expires_ns,
 * version; asserts it is there. */
static void raw_rec(struct lt_kv *kv, const char *key, int64_t rec[6])
{
	assert_int_equal(raw_get(kv, key, rec, 6 * sizeof rec[0]), 48);
}

/* What a peek shows of one bucket. */
struct shown {
	int64_t remaining, used, reset_ns;
};

static struct shown view(struct lt_kv *kv, const char *key, struct lt_bucket_policy p, int64_t now)
{
	struct lt_bucket_decision d;
	assert_int_equal(lt_bucket_store_peek(kv, key, &p, now, &d), LT_OK);
	struct shown v = {d.remaining, d.used, d.reset_ns};
	return v;
}

/* Admitted 600 (prompt + max_tokens) on a 1000-token bucket leaking 10/s;
 * the call used 200: 400 come back, the record expires 20 s later. */
static void test_settle_refund(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(1000, 10, SEC);
	struct lt_admit_item it;
	int64_t actual = 200, rec[6];
	bool ok = false;
	item(&it, "tok", p, 600);
	assert_int_equal(lt_bucket_admit_all(f->kv, &it, 1, T0, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(remaining(f->kv, "tok", p, T0), 400);
	assert_int_equal(lt_bucket_settle_all(f->kv, &it, 1, &actual, T0), LT_OK);
	struct shown v = view(f->kv, "tok", p, T0);
	assert_int_equal(v.remaining, 800);
	assert_int_equal(v.used, 200);
	assert_int_equal(v.reset_ns, 20 * SEC);
	raw_rec(f->kv, "tok", rec);
	assert_int_equal(rec[0], 200 * INT64_C(1000000));
	assert_int_equal(rec[4], T0 + 20 * SEC);
	/* actual 0: the whole admission comes back (a second settle of the
	 * same item is the caller's bug, but it only refunds again) */
	actual = 0;
	assert_int_equal(lt_bucket_settle_all(f->kv, &it, 1, &actual, T0 + SEC), LT_OK);
	assert_int_equal(remaining(f->kv, "tok", p, T0 + SEC), 1000);
	raw_rec(f->kv, "tok", rec);
	assert_int_equal(rec[4], T0 + SEC); /* fresh: the sweep may take it */
}

/* Admitted 600, used 1700: 1100 more are charged, the bucket is 700 beyond
 * full.  Nothing passes until (1700 - 999) / 10 s = 70.1 s; the record
 * lives until the whole debt has leaked, 170 s. */
static void test_settle_charge(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(1000, 10, SEC);
	struct lt_admit_item it;
	int64_t actual = 1700, rec[6];
	size_t removed = 99;
	bool ok = false;
	item(&it, "tok", p, 600);
	assert_int_equal(lt_bucket_admit_all(f->kv, &it, 1, T0, &ok), LT_OK);
	assert_true(ok);
	assert_int_equal(lt_bucket_settle_all(f->kv, &it, 1, &actual, T0), LT_OK);
	struct shown v = view(f->kv, "tok", p, T0);
	assert_int_equal(v.remaining, 0);
	assert_int_equal(v.used, 1000);
	assert_int_equal(v.reset_ns, 170 * SEC);
	raw_rec(f->kv, "tok", rec);
	assert_int_equal(rec[0], 1700 * INT64_C(1000000));
	assert_int_equal(rec[4], T0 + 170 * SEC);

	/* refused with the exact wait, nothing written */
	struct lt_admit_item one;
	item(&one, "tok", p, 1);
	assert_int_equal(lt_bucket_admit_all(f->kv, &one, 1, T0, &ok), LT_OK);
	assert_false(ok);
	assert_int_equal(one.decision.retry_ns, 70 * SEC + SEC / 10);
	assert_int_equal(one.decision.remaining, 0);
	assert_false(admit1(f->kv, "tok", p, 1, T0 + 70 * SEC + SEC / 10 - 1));
	assert_true(admit1(f->kv, "tok", p, 1, T0 + 70 * SEC + SEC / 10));

	/* the sweep keeps it until the debt has leaked */
	raw_rec(f->kv, "tok", rec);
	const int64_t back = T0 + 170 * SEC + SEC / 10; /* 999 + 1 at 70.1 s: 100 s more */
	assert_int_equal(rec[4], back);
	assert_int_equal(lt_bucket_sweep(f->kv, back - 1, 0, &removed), LT_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(lt_bucket_sweep(f->kv, back, 0, &removed), LT_OK);
	assert_int_equal(removed, 1);

	/* the debt is bounded at one capacity beyond full, the rest forgiven */
	item(&it, "big", p, 0);
	actual = 1000000;
	assert_int_equal(lt_bucket_settle_all(f->kv, &it, 1, &actual, T0), LT_OK);
	raw_rec(f->kv, "big", rec);
	assert_int_equal(rec[0], 2000 * INT64_C(1000000));
	assert_int_equal(rec[4], T0 + 200 * SEC);
}

/* Three buckets settled in one call: one refunded, one charged, one
 * untouched (not rewritten at all), in any order. */
static void test_settle_mixed(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy lk = leaky(1000, 10, SEC);
	struct lt_bucket_policy tb = {LT_ALGO_TOKEN, 1000, 10, SEC, 0};
	struct lt_bucket_policy gc = {LT_ALGO_GCRA, 0, 10, SEC, 999};
	struct lt_admit_item it[3];
	int64_t before[6], after[6];
	bool ok = false;
	item(&it[0], "org", tb, 500);
	item(&it[1], "model", gc, 500);
	item(&it[2], "user", lk, 500);
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 3, T0, &ok), LT_OK);
	assert_true(ok);
	raw_rec(f->kv, "user", before);

	/* 10 s later (100 refilled or leaked): org used 1600, model 100 */
	int64_t actual[3] = {1600, 100, 500};
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0 + 10 * SEC), LT_OK);
	/* token: 1000 - 500 + 100 - 1100 = -500: 1500 to refill */
	struct shown v = view(f->kv, "org", tb, T0 + 10 * SEC);
	assert_int_equal(v.remaining, 0);
	assert_int_equal(v.used, 1000);
	assert_int_equal(v.reset_ns, 150 * SEC);
	int64_t rec[6];
	raw_rec(f->kv, "org", rec);
	assert_int_equal(rec[0], -500 * INT64_C(1000000));
	assert_int_equal(rec[4], T0 + 160 * SEC);
	/* gcra: TAT 50 s, back 400 × 0.1 s = 10 s: reset 0 at 10 s */
	v = view(f->kv, "model", gc, T0 + 10 * SEC);
	assert_int_equal(v.remaining, 1000);
	assert_int_equal(v.reset_ns, 0);
	/* equal: the record is exactly as admission wrote it */
	raw_rec(f->kv, "user", after);
	assert_memory_equal(before, after, sizeof before);
	assert_int_equal(remaining(f->kv, "user", lk, T0 + 10 * SEC), 600);

	/* a GCRA charge: TAT 10 s + 1500 × 0.1 s = 160 s */
	actual[0] = 500;
	actual[1] = 2000;
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0 + 10 * SEC), LT_OK);
	raw_rec(f->kv, "model", rec);
	assert_int_equal(rec[0], T0 + 160 * SEC);
	assert_int_equal(rec[4], T0 + 160 * SEC);
	v = view(f->kv, "model", gc, T0 + 10 * SEC);
	assert_int_equal(v.remaining, 0);
	assert_int_equal(v.reset_ns, 150 * SEC);
	assert_false(admit1(f->kv, "model", gc, 1, T0 + 60 * SEC));
	assert_true(admit1(f->kv, "model", gc, 1, T0 + 60 * SEC + SEC / 10));
}

/* A record that is gone: a charge starts from the fresh state, a refund
 * has nothing to give back and creates nothing. */
static void test_settle_missing(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(1000, 10, SEC);
	struct lt_bucket_policy tb = {LT_ALGO_TOKEN, 1000, 10, SEC, 0};
	struct lt_admit_item it[3];
	int64_t actual[3] = {300, 1200, 0};
	item(&it[0], "gone-leaky", p, 100);
	item(&it[1], "gone-token", tb, 100);
	item(&it[2], "gone-refund", p, 100);
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_OK);
	assert_int_equal(entries(f->kv), 2);
	assert_int_equal(raw_get(f->kv, "gone-refund", NULL, 0), 0);
	assert_int_equal(remaining(f->kv, "gone-leaky", p, T0), 800);
	struct shown v = view(f->kv, "gone-token", tb, T0);
	assert_int_equal(v.remaining, 0); /* full 1000 - 1100 = -100 */
	assert_int_equal(v.reset_ns, 110 * SEC);
	int64_t rec[6];
	raw_rec(f->kv, "gone-token", rec);
	assert_int_equal(rec[0], -100 * INT64_C(1000000));
	assert_int_equal(rec[4], T0 + 110 * SEC);
}

/* Bad arguments: LT_EINVAL and nothing written, not even the good items. */
static void test_settle_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct lt_bucket_policy p = leaky(1000, 10, SEC);
	struct lt_admit_item it[LT_ADMIT_MAX + 1];
	int64_t actual[LT_ADMIT_MAX + 1], before[6], after[6];
	char key[32];
	bool ok = false;
	for (int i = 0; i <= LT_ADMIT_MAX; i++) {
		snprintf(key, sizeof key, "s%02d", i);
		item(&it[i], key, p, 10);
		actual[i] = 500;
	}
	assert_int_equal(lt_bucket_admit_all(f->kv, it, 2, T0, &ok), LT_OK);
	assert_true(ok);
	raw_rec(f->kv, "s00", before);
	uint64_t n0 = entries(f->kv);

	assert_int_equal(lt_bucket_settle_all(f->kv, it, 0, actual, T0), LT_EINVAL);
	assert_int_equal(lt_bucket_settle_all(f->kv, it, LT_ADMIT_MAX + 1, actual, T0), LT_EINVAL);
	assert_int_equal(lt_bucket_settle_all(f->kv, NULL, 1, actual, T0), LT_EINVAL);
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 1, NULL, T0), LT_EINVAL);
	/* a negative actual in the last item: the first is not settled either */
	actual[2] = -1;
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	actual[2] = INT64_MIN;
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	actual[2] = 500;
	it[2].cost = -1;
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	it[2].cost = 10;
	it[2].policy.period_ns = 0;
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	it[2].policy = p;
	snprintf(it[2].key, sizeof it[2].key, "s00");
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	it[2].key[0] = '\0';
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_EINVAL);
	snprintf(it[2].key, sizeof it[2].key, "s02");
	raw_rec(f->kv, "s00", after);
	assert_memory_equal(before, after, sizeof before);
	assert_int_equal(entries(f->kv), n0);
	assert_int_equal(remaining(f->kv, "s00", p, T0), 990);

	/* the same call, fixed, settles all three (s02 was never admitted: it
	 * is charged from fresh) */
	assert_int_equal(lt_bucket_settle_all(f->kv, it, 3, actual, T0), LT_OK);
	assert_int_equal(remaining(f->kv, "s00", p, T0), 500);
	assert_int_equal(remaining(f->kv, "s01", p, T0), 500);
	assert_int_equal(remaining(f->kv, "s02", p, T0), 510);
	/* the largest batch */
	assert_int_equal(lt_bucket_settle_all(f->kv, it, LT_ADMIT_MAX, actual, T0), LT_OK);
	assert_int_equal(entries(f->kv), LT_ADMIT_MAX);
}

/* A full map: a settlement that needs room sweeps the expired records and
 * retries once; with live records it is LT_EBUSY and writes nothing. */
static void test_settle_map_full(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = open_small(f, "small-settle");
	struct lt_bucket_policy shortp = leaky(1, 1, SEC / 1000);
	struct lt_bucket_policy p = leaky(1000, 10, SEC);
	struct lt_admit_item it;
	int64_t actual = 300;

	int n = fill_map(kv, shortp, T0);
	assert_true(n > 1000);
	item(&it, "settle-new", p, 100);
	assert_int_equal(lt_bucket_settle_all(kv, &it, 1, &actual, T0), LT_EBUSY);
	assert_int_equal(entries(kv), (uint64_t)n);
	assert_int_equal(raw_get(kv, "settle-new", NULL, 0), 0);
	check_filled(kv, shortp, n, T0);

	assert_int_equal(lt_bucket_settle_all(kv, &it, 1, &actual, T0 + SEC), LT_OK);
	assert_true(entries(kv) < (uint64_t)n);
	assert_int_equal(remaining(kv, "settle-new", p, T0 + SEC), 800);
	lt_kv_close(kv);
}

/* --- concurrency ------------------------------------------------------------ */

#define THREADS 8
#define PER_THREAD 2000
#define STEP_NS (SEC / 1000) /* each admission advances the shared clock 1 ms */

struct race {
	struct lt_kv *kv;
	struct lt_bucket_policy p;
	atomic_int_fast64_t clock;
	atomic_long admitted;
	atomic_long failures; /* calls that did not return LT_OK */
};

static void *racer(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct lt_admit_item it;
		bool ok = false;
		int64_t now = atomic_fetch_add(&r->clock, STEP_NS) + STEP_NS;
		item(&it, "hot", r->p, 1);
		if (lt_bucket_admit_all(r->kv, &it, 1, now, &ok) != LT_OK)
			atomic_fetch_add(&r->failures, 1);
		else if (ok)
			atomic_fetch_add(&r->admitted, 1);
	}
	return NULL;
}

/* 8 threads x 2000 unit admissions on a leaky bucket of 1000 tokens
 * leaking 10/s: the total admitted never exceeds capacity + rate x
 * elapsed, and reaches at least 99 % of it. */
static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct race r = {.kv = f->kv, .p = leaky(1000, 10, SEC)};
	pthread_t th[THREADS];
	atomic_init(&r.clock, T0);
	atomic_init(&r.admitted, 0);
	atomic_init(&r.failures, 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, racer, &r), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);

	int64_t elapsed = atomic_load(&r.clock) - T0;
	assert_int_equal(elapsed, (int64_t)THREADS * PER_THREAD * STEP_NS);
	long bound = 1000 + (long)(10 * elapsed / SEC); /* 1160 */
	long admitted = atomic_load(&r.admitted);
	print_message("admitted %ld of bound %ld\n", admitted, bound);
	assert_int_equal(atomic_load(&r.failures), 0);
	assert_true(admitted <= bound);
	assert_true(admitted * 100 >= bound * 99);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(test_all_or_none),
		T(test_erange),
		T(test_refund),
		T(test_sweep),
		T(test_wrong_size),
		T(test_algorithm_change),
		T(test_bad_arguments),
		T(test_map_full_expired),
		T(test_map_full_live),
		T(test_settle_refund),
		T(test_settle_charge),
		T(test_settle_mixed),
		T(test_settle_missing),
		T(test_settle_bad_arguments),
		T(test_settle_map_full),
		T(test_concurrent),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
