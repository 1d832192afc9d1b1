/*
 * bucket_store.c — rate-limit buckets in LMDB.  See bucket_store.h.
 *
 * Owns the record layout (struct rec, 48 bytes) and every transaction on
 * the "buckets" database of store/kv.  The algorithms are bucket.c's; this
 * file only loads, decides on copies, and writes back.
 *
 * Invariants: a write transaction either commits every item of a request or
 * nothing; items are visited in key order; a record that is missing, of
 * another size or of another version reads as the fresh bucket.  A write
 * transaction does nothing but LMDB calls (no I/O of ours, no allocation),
 * so the writer lock is held for microseconds.
 *
 * Locking: LMDB's writer mutex serialises write transactions; read
 * transactions (MDB_NOTLS) may be begun on any thread.
 *
 * Errors: MDB_MAP_FULL becomes LT_EBUSY after one sweep and one retry; any
 * other LMDB failure is LT_EIO.  Nothing is logged here: the caller logs.
 * A full map recovers only as far as deletions free whole pages: LMDB
 * reuses the pages a commit frees only after one more commit, and a few
 * scattered deletions empty no page, so with few expired records the
 * retry stays LT_EBUSY until more expire.  The map must be sized for the
 * live buckets (stat: lt_kv_stat).
 */
#include <lmdb.h>
#include <string.h>

#include "limit/bucket_store.h"
#include "store/kv_int.h"

#define REC_VERSION 1
#define SWEEP_BATCH 1000 /* deletions per sweep transaction */
#define SWEEP_SCAN 10000 /* records examined per sweep transaction (bounds the lock hold) */
#define KEY_BUF 512	 /* LMDB's largest key is 511 bytes */

/* The stored value, native byte order. */
struct rec {
	struct lt_bucket_state st;
	int64_t expires_ns; /* back to fresh at this time: the sweep deletes from here on */
	int64_t version;    /* REC_VERSION */
};
_Static_assert(sizeof(struct rec) == 48, "the bucket record is 48 bytes");

static enum lt_err map_rc(int rc)
{
	return rc == 0 ? LT_OK : rc == MDB_MAP_FULL ? LT_EBUSY : LT_EIO;
}

static bool key_ok(const char *key)
{
	size_t len = strnlen(key, LT_BUCKET_KEY_MAX + 1);
	return len >= 1 && len <= LT_BUCKET_KEY_MAX;
}

static bool policy_ok(const struct lt_bucket_policy *p)
{
	char why[128];
	return lt_bucket_policy_check(p, why, sizeof why) == LT_OK;
}

/* When the bucket is fresh again: reset_ns counts from the caller's now,
 * including any wait for a clock that stepped back (bucket.h).  Saturating. */
static int64_t expiry(int64_t t, int64_t reset_ns)
{
	return reset_ns > 0 && t > INT64_MAX - reset_ns ? INT64_MAX : t + reset_ns;
}

/* The version field also records the algorithm the state was written
 * under: a reload that changes a bucket's algorithm must not read a leaky
 * level as a GCRA arrival time, so such a record reads as fresh. */
static int64_t rec_tag(enum lt_bucket_algo algo)
{
	return REC_VERSION | ((int64_t)algo + 1) << 8;
}

/* A record is usable when it has our size and version (v may be unaligned). */
static bool rec_read(const MDB_val *v, struct rec *r)
{
	if (v->mv_size != sizeof *r)
		return false;
	memcpy(r, v->mv_data, sizeof *r);
	return (r->version & 0xff) == REC_VERSION;
}

/* The state of key into *st, *found = true; a missing or unusable record
 * gives the fresh state and *found = false.  Returns an LMDB code. */
static int load(MDB_txn *txn, MDB_dbi dbi, const char *key, const struct lt_bucket_policy *p,
		int64_t now_ns, struct lt_bucket_state *st, bool *found)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	struct rec r;
	int rc = mdb_get(txn, dbi, &k, &v);
	*found = rc == 0 && rec_read(&v, &r) && r.version == rec_tag(p->algo);
	if (*found)
		*st = r.st;
	else
		lt_bucket_fresh(p, now_ns, st);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store(MDB_txn *txn, MDB_dbi dbi, const char *key, enum lt_bucket_algo algo,
		 const struct lt_bucket_state *st, int64_t expires_ns)
{
	struct rec r = {*st, expires_ns, rec_tag(algo)};
	MDB_val k = {strlen(key), (void *)key}, v = {sizeof r, &r};
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Check the items and write into ord[] their indices in key order
 * (insertion sort: n <= LT_ADMIT_MAX).  LT_EINVAL on a bad item or a key
 * given twice. */
static enum lt_err sort_items(const struct lt_admit_item *items, size_t n, size_t *ord)
{
	if (n < 1 || n > LT_ADMIT_MAX)
		return LT_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!key_ok(items[i].key) || !policy_ok(&items[i].policy) || items[i].cost < 0)
			return LT_EINVAL;
		size_t j = i;
		for (; j > 0 && strcmp(items[ord[j - 1]].key, items[i].key) > 0; j--)
			ord[j] = ord[j - 1];
		ord[j] = i;
	}
	for (size_t i = 1; i < n; i++)
		if (strcmp(items[ord[i - 1]].key, items[ord[i]].key) == 0)
			return LT_EINVAL;
	return LT_OK;
}

/* --- write transactions with one retry on a full map --------------------- */

/* The work of one write transaction: returns an LMDB code; sets *commit
 * when what it wrote is to be kept. */
typedef int txn_body(MDB_txn *txn, MDB_dbi dbi, void *ctx, bool *commit);

static int write_once(MDB_env *env, MDB_dbi dbi, txn_body *body, void *ctx)
{
	MDB_txn *txn;
	bool commit = false;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		return rc;
	rc = body(txn, dbi, ctx, &commit);
	if (rc || !commit) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

static enum lt_err write_retry(struct lt_kv *kv, int64_t now_ns, txn_body *body, void *ctx)
{
	MDB_env *env;
	MDB_dbi dbi;
	lt_kv_handles(kv, &env, &dbi);
	int rc = write_once(env, dbi, body, ctx);
	if (rc == MDB_MAP_FULL) {
		size_t removed;
		/* Its own failure shows up as the retry's. */
		(void)lt_bucket_sweep(kv, now_ns, 0, &removed);
		rc = write_once(env, dbi, body, ctx);
	}
	return map_rc(rc);
}

/* --- admission ----------------------------------------------------------- */

struct admit {
	struct lt_admit_item *items;
	const size_t *ord;
	size_t n;
	int64_t now_ns;
	enum lt_err err; /* first item error (LT_ERANGE), in key order */
	bool allowed;	 /* every item admitted (and written) */
};

static int admit_body(MDB_txn *txn, MDB_dbi dbi, void *ctx, bool *commit)
{
	struct admit *a = ctx;
	struct lt_bucket_state next[LT_ADMIT_MAX];
	int64_t expires[LT_ADMIT_MAX];
	a->err = LT_OK;
	a->allowed = true;
	for (size_t i = 0; i < a->n; i++) {
		struct lt_admit_item *it = &a->items[a->ord[i]];
		bool found;
		int rc = load(txn, dbi, it->key, &it->policy, a->now_ns, &next[i], &found);
		if (rc)
			return rc;
		memset(&it->decision, 0, sizeof it->decision);
		it->err =
			lt_bucket_admit(&it->policy, &next[i], a->now_ns, it->cost, &it->decision);
		expires[i] = expiry(a->now_ns, it->decision.reset_ns);
		if (it->err != LT_OK && a->err == LT_OK)
			a->err = it->err;
		a->allowed = a->allowed && it->err == LT_OK && it->decision.allowed;
	}
	if (!a->allowed)
		return 0; /* decisions filled, nothing written */
	for (size_t i = 0; i < a->n; i++) {
		const struct lt_admit_item *it = &a->items[a->ord[i]];
		int rc = store(txn, dbi, it->key, it->policy.algo, &next[i], expires[i]);
		if (rc)
			return rc;
	}
	*commit = true;
	return 0;
}

enum lt_err lt_bucket_admit_all(struct lt_kv *kv, struct lt_admit_item *items, size_t n,
				int64_t now_ns, bool *allowed)
{
	size_t ord[LT_ADMIT_MAX];
	*allowed = false;
	enum lt_err e = sort_items(items, n, ord);
	if (e != LT_OK)
		return e;
	struct admit a = {items, ord, n, now_ns, LT_OK, false};
	e = write_retry(kv, now_ns, admit_body, &a);
	if (e != LT_OK)
		return e;
	*allowed = a.allowed;
	return a.err;
}

/* --- refund ---------------------------------------------------------------- */

struct refund {
	const struct lt_admit_item *items;
	const size_t *ord;
	size_t n;
	int64_t now_ns;
};

static int refund_body(MDB_txn *txn, MDB_dbi dbi, void *ctx, bool *commit)
{
	const struct refund *r = ctx;
	for (size_t i = 0; i < r->n; i++) {
		const struct lt_admit_item *it = &r->items[r->ord[i]];
		struct lt_bucket_state st;
		struct lt_bucket_decision d;
		bool found;
		int rc = load(txn, dbi, it->key, &it->policy, r->now_ns, &st, &found);
		if (rc)
			return rc;
		if (!found)
			continue; /* swept: nothing to give back */
		lt_bucket_refund(&it->policy, &st, r->now_ns, it->cost);
		lt_bucket_peek(&it->policy, &st, r->now_ns, &d);
		rc = store(txn, dbi, it->key, it->policy.algo, &st, expiry(r->now_ns, d.reset_ns));
		if (rc)
			return rc;
	}
	*commit = true;
	return 0;
}

enum lt_err lt_bucket_refund_all(struct lt_kv *kv, const struct lt_admit_item *items, size_t n,
				 int64_t now_ns)
{
	size_t ord[LT_ADMIT_MAX];
	enum lt_err e = sort_items(items, n, ord);
	if (e != LT_OK)
		return e;
	struct refund r = {items, ord, n, now_ns};
	return write_retry(kv, now_ns, refund_body, &r);
}

/* --- settlement ------------------------------------------------------------ */

struct settle {
	const struct lt_admit_item *items;
	const int64_t *actual;
	const size_t *ord;
	size_t n;
	int64_t now_ns;
};

static int settle_body(MDB_txn *txn, MDB_dbi dbi, void *ctx, bool *commit)
{
	const struct settle *s = ctx;
	for (size_t i = 0; i < s->n; i++) {
		size_t j = s->ord[i];
		const struct lt_admit_item *it = &s->items[j];
		int64_t actual = s->actual[j];
		struct lt_bucket_state st;
		struct lt_bucket_decision d;
		bool found;
		if (actual == it->cost)
			continue; /* admitted exactly what was used: untouched */
		int rc = load(txn, dbi, it->key, &it->policy, s->now_ns, &st, &found);
		if (rc)
			return rc;
		if (actual < it->cost) {
			if (!found)
				continue; /* swept: nothing to give back */
			lt_bucket_refund(&it->policy, &st, s->now_ns, it->cost - actual);
		} else {
			/* a missing record is the fresh state, charged */
			lt_bucket_charge(&it->policy, &st, s->now_ns, actual - it->cost);
		}
		lt_bucket_peek(&it->policy, &st, s->now_ns, &d);
		rc = store(txn, dbi, it->key, it->policy.algo, &st, expiry(s->now_ns, d.reset_ns));
		if (rc)
			return rc;
	}
	*commit = true;
	return 0;
}

enum lt_err lt_bucket_settle_all(struct lt_kv *kv, const struct lt_admit_item *items, size_t n,
				 const int64_t *actual, int64_t now_ns)
{
	size_t ord[LT_ADMIT_MAX];
	if (!kv || !items || !actual)
		return LT_EINVAL;
	enum lt_err e = sort_items(items, n, ord);
	if (e != LT_OK)
		return e;
	for (size_t i = 0; i < n; i++)
		if (actual[i] < 0)
			return LT_EINVAL;
	struct settle s = {items, actual, ord, n, now_ns};
	return write_retry(kv, now_ns, settle_body, &s);
}

/* --- peek ------------------------------------------------------------------ */

enum lt_err lt_bucket_store_peek(struct lt_kv *kv, const char *key,
				 const struct lt_bucket_policy *policy, int64_t now_ns,
				 struct lt_bucket_decision *d)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	struct lt_bucket_state st;
	bool found;
	if (!key_ok(key) || !policy_ok(policy))
		return LT_EINVAL;
	lt_kv_handles(kv, &env, &dbi);
	int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return map_rc(rc);
	rc = load(txn, dbi, key, policy, now_ns, &st, &found);
	mdb_txn_abort(txn);
	if (rc)
		return map_rc(rc);
	lt_bucket_peek(policy, &st, now_ns, d);
	return LT_OK;
}

/* --- sweep ----------------------------------------------------------------- */

/* Where the next sweep transaction starts. */
struct sweep_pos {
	char key[KEY_BUF];
	size_t len; /* 0: from the first record */
	bool done;
};

/* Expired, or not ours (absent and fresh are the same thing). */
static bool sweepable(const MDB_val *v, int64_t now_ns)
{
	struct rec r;
	return !rec_read(v, &r) || r.expires_ns <= now_ns;
}

/* One write transaction: from pos, delete up to limit sweepable records,
 * examining at most SWEEP_SCAN.  Once committed, pos moves to the first
 * record not examined and *removed grows; on failure neither changes. */
static int sweep_batch(MDB_env *env, MDB_dbi dbi, int64_t now_ns, size_t limit,
		       struct sweep_pos *pos, size_t *removed)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {pos->len, pos->key}, v;
	struct sweep_pos next = {.len = 0, .done = false};
	size_t deleted = 0, seen = 0;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_cursor_get(cur, &k, &v, pos->len ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0 && deleted < limit && seen < SWEEP_SCAN) {
		seen++;
		if (sweepable(&v, now_ns)) {
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
			deleted++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* after a delete: its successor */
	}
	if (rc == MDB_NOTFOUND || (rc == 0 && k.mv_size > sizeof next.key)) {
		next.done = true; /* the end (or a key longer than LMDB allows) */
		rc = 0;
	} else if (rc == 0) {
		memcpy(next.key, k.mv_data, k.mv_size);
		next.len = k.mv_size;
	}
	mdb_cursor_close(cur);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc == 0) {
		*pos = next;
		*removed += deleted;
	}
	return rc;
}

/* A full map (MDB_MAP_FULL) has no page for a big batch: LMDB reuses the
 * pages a commit freed only after one more commit, so shrink the batch
 * until one fits, then grow it back. */
enum lt_err lt_bucket_sweep(struct lt_kv *kv, int64_t now_ns, size_t max, size_t *removed)
{
	MDB_env *env;
	MDB_dbi dbi;
	struct sweep_pos pos = {.len = 0, .done = false};
	size_t batch = SWEEP_BATCH;
	*removed = 0;
	lt_kv_handles(kv, &env, &dbi);
	while (!pos.done && (max == 0 || *removed < max)) {
		size_t limit = max && max - *removed < batch ? max - *removed : batch;
		int rc = sweep_batch(env, dbi, now_ns, limit, &pos, removed);
		if (rc == MDB_MAP_FULL && batch > 1) {
			batch /= 2;
			continue;
		}
		if (rc)
			return map_rc(rc);
		batch = batch * 2 < SWEEP_BATCH ? batch * 2 : SWEEP_BATCH;
	}
	return LT_OK;
}
