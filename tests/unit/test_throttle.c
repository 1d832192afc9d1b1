/*
 * test_throttle.c — src/auth/throttle.c: the lockout policy (threshold,
 * doubling, cap, window expiry, success), bounded memory with eviction by
 * earliest expiry (checked against a brute-force model), keyed hashing, time
 * moving backwards, and concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/throttle.h"
#include "util/clock.h"

#define S LT_NS_PER_S
#define T0 (INT64_C(1000000) * S) /* an arbitrary start time */

static enum lt_err check(struct lt_throttle *t, const char *key, int64_t now, int64_t *retry)
{
	return lt_throttle_check(t, key, strlen(key), now, retry);
}

static void fail_at(struct lt_throttle *t, const char *key, int64_t now)
{
	lt_throttle_fail(t, key, strlen(key), now);
}

static void expect_ok(struct lt_throttle *t, const char *key, int64_t now)
{
	int64_t retry = -1;
	assert_int_equal(check(t, key, now, &retry), LT_OK);
	assert_int_equal(retry, 0);
}

static void expect_locked(struct lt_throttle *t, const char *key, int64_t now, int64_t retry_want)
{
	int64_t retry = -1;
	assert_int_equal(check(t, key, now, &retry), LT_EBUSY);
	assert_int_equal(retry, retry_want);
}

static void test_init(void **state)
{
	(void)state;
	struct lt_throttle t;
	struct lt_throttle_policy p;
	lt_throttle_policy_default(&p);
	assert_int_equal(p.max_failures, 5);
	assert_int_equal(p.window_ns, 300 * S);
	assert_int_equal(p.max_lockout_ns, 900 * S);
	assert_int_equal(lt_throttle_init(&t, NULL, 0), LT_EINVAL);
	assert_int_equal(lt_throttle_init(&t, NULL, LT_THROTTLE_MAX_CAPACITY + 1), LT_EINVAL);
	p.max_failures = 0;
	assert_int_equal(lt_throttle_init(&t, &p, 16), LT_EINVAL);
	lt_throttle_policy_default(&p);
	p.max_lockout_ns = p.lockout_ns - 1;
	assert_int_equal(lt_throttle_init(&t, &p, 16), LT_EINVAL);
	lt_throttle_policy_default(&p);
	p.window_ns = 0;
	assert_int_equal(lt_throttle_init(&t, &p, 16), LT_EINVAL);
	assert_int_equal(lt_throttle_init(&t, NULL, 1), LT_OK);
	lt_throttle_release(&t);
}

/* Defaults: 5 failures lock for 60 s, then 120, 240, 480, 900, 900. */
static void test_lockout_doubling_cap(void **state)
{
	(void)state;
	struct lt_throttle t;
	assert_int_equal(lt_throttle_init(&t, NULL, 64), LT_OK);
	int64_t now = T0;
	for (int i = 0; i < 4; i++) {
		expect_ok(&t, "alice", now);
		fail_at(&t, "alice", now);
		now += S;
	}
	expect_ok(&t, "alice", now);
	fail_at(&t, "alice", now); /* the fifth, at T0 + 4 s */
	expect_locked(&t, "alice", now, 60 * S);
	expect_locked(&t, "alice", now + 59 * S, 1 * S);
	expect_locked(&t, "alice", now + 60 * S - 1, 1);
	expect_ok(&t, "alice", now + 60 * S);
	/* another user is not affected */
	expect_ok(&t, "bob", now);

	static const int64_t next[] = {120, 240, 480, 900, 900, 900};
	for (size_t i = 0; i < sizeof next / sizeof next[0]; i++) {
		/* each failure after a lockout ends (within the window) doubles it */
		int64_t prev = i ? next[i - 1] : 60;
		now += prev * S + 10 * S;
		expect_ok(&t, "alice", now);
		fail_at(&t, "alice", now);
		expect_locked(&t, "alice", now, next[i] * S);
	}
	/* a success forgets everything */
	lt_throttle_success(&t, "alice", 5);
	expect_ok(&t, "alice", now);
	fail_at(&t, "alice", now);
	expect_ok(&t, "alice", now);
	lt_throttle_release(&t);
}

/* Failures older than the window are forgotten; a locked key stays counted
 * until window_ns after its lockout ends. */
static void test_window_expiry(void **state)
{
	(void)state;
	struct lt_throttle t;
	assert_int_equal(lt_throttle_init(&t, NULL, 64), LT_OK);
	/* 4 failures, then the window (from the first) passes */
	for (int i = 0; i < 4; i++)
		fail_at(&t, "carol", T0 + i * S);
	int64_t now = T0 + 300 * S;
	fail_at(&t, "carol", now); /* a new window: 1 failure */
	expect_ok(&t, "carol", now);
	for (int i = 1; i < 4; i++)
		fail_at(&t, "carol", now + i * S);
	expect_ok(&t, "carol", now + 3 * S); /* 4 in this window */
	fail_at(&t, "carol", now + 299 * S); /* 5th, still inside */
	expect_locked(&t, "carol", now + 299 * S, 60 * S);

	/* the lockout ends at now+359; counted until now+659 */
	int64_t until = now + 359 * S;
	fail_at(&t, "carol", until + 299 * S); /* within: doubles */
	expect_locked(&t, "carol", until + 299 * S, 120 * S);
	int64_t until2 = until + 299 * S + 120 * S;
	fail_at(&t, "carol", until2 + 300 * S); /* window after the lockout passed */
	expect_ok(&t, "carol", until2 + 300 * S);

	/* four failures spread across almost the whole window do not lock */
	for (int i = 0; i < 4; i++)
		fail_at(&t, "dave", T0 + i * 99 * S);
	expect_ok(&t, "dave", T0 + 297 * S);
	fail_at(&t, "dave", T0 + 300 * S - 1); /* 5th, one ns inside the window */
	expect_locked(&t, "dave", T0 + 300 * S - 1, 60 * S);
	lt_throttle_release(&t);
}

static void test_success_resets(void **state)
{
	(void)state;
	struct lt_throttle t;
	assert_int_equal(lt_throttle_init(&t, NULL, 64), LT_OK);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++)
			fail_at(&t, "erin", T0 + i);
		expect_ok(&t, "erin", T0 + 5);
		lt_throttle_success(&t, "erin", 4);
	}
	/* success during a lockout lifts it (e.g. an admin reset) */
	for (int i = 0; i < 5; i++)
		fail_at(&t, "erin", T0 + 10);
	expect_locked(&t, "erin", T0 + 10, 60 * S);
	lt_throttle_success(&t, "erin", 4);
	expect_ok(&t, "erin", T0 + 10);
	uint32_t used;
	uint64_t ev;
	lt_throttle_stats(&t, &used, &ev);
	assert_int_equal(used, 0);
	lt_throttle_success(&t, "nobody", 6); /* unknown: no effect */
	lt_throttle_release(&t);
}

/* Full table: the entry that expires first goes; memory stays put. */
static void test_capacity_eviction(void **state)
{
	(void)state;
	struct lt_throttle t;
	struct lt_throttle_policy p = {.max_failures = 1,
				       .window_ns = 300 * S,
				       .lockout_ns = 1000 * S,
				       .max_lockout_ns = 1000 * S};
	char key[32];
	uint32_t used;
	uint64_t ev;
	assert_int_equal(lt_throttle_init(&t, &p, 64), LT_OK);
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof key, "k%d", i);
		fail_at(&t, key, T0 + i * S); /* locked until T0 + i + 1000 s */
	}
	lt_throttle_stats(&t, &used, &ev);
	assert_int_equal(used, 64);
	assert_int_equal(ev, 0);
	fail_at(&t, "new", T0 + 100 * S); /* evicts k0, the first to expire */
	lt_throttle_stats(&t, &used, &ev);
	assert_int_equal(used, 64);
	assert_int_equal(ev, 1);
	expect_ok(&t, "k0", T0 + 100 * S);
	for (int i = 1; i < 64; i++) {
		snprintf(key, sizeof key, "k%d", i);
		expect_locked(&t, key, T0 + 100 * S, (int64_t)(i + 900) * S);
	}
	expect_locked(&t, "new", T0 + 100 * S, 1000 * S);
	/* a flood of distinct keys: memory stays at capacity */
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof key, "flood%d", i);
		fail_at(&t, key, T0 + 200 * S + i);
		lt_throttle_stats(&t, &used, &ev);
		assert_true(used <= 64);
	}
	assert_int_equal(ev, 10001); /* every one pushed out a live entry */
	lt_throttle_release(&t);
}

/* A running lockout outlives a flood of new keys with one failure each. */
static void test_lockout_survives_flood(void **state)
{
	(void)state;
	struct lt_throttle t;
	struct lt_throttle_policy p;
	lt_throttle_policy_default(&p);
	char key[32];
	assert_int_equal(lt_throttle_init(&t, &p, 128), LT_OK);
	for (int i = 0; i < 5; i++)
		fail_at(&t, "victim", T0);
	expect_locked(&t, "victim", T0, 60 * S);
	/* 100,000 distinct keys within the lockout: each expires at its time +
	 * 300 s, before the victim's lockout end + 300 s */
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
		fail_at(&t, key, T0 + 1 + (int64_t)i * 500000); /* across 50 s */
	}
	expect_locked(&t, "victim", T0 + 55 * S, 5 * S);
	uint32_t used;
	uint64_t ev;
	lt_throttle_stats(&t, &used, &ev);
	assert_int_equal(used, 128);
	assert_true(ev > 0);
	lt_throttle_release(&t);
}

/* ---- against a brute-force model ---- */

struct model_entry {
	int key;
	bool live;
	uint32_t fails;
	int64_t window_start, until, expires;
};

struct model {
	struct lt_throttle_policy p;
	struct model_entry e[32];
	int cap;
};

static int64_t model_lockout(const struct lt_throttle_policy *p, uint32_t fails)
{
	int64_t l = p->lockout_ns;
	for (uint32_t k = (uint32_t)p->max_failures; k < fails; k++) {
		l *= 2;
		if (l >= p->max_lockout_ns)
			return p->max_lockout_ns;
	}
	return l < p->max_lockout_ns ? l : p->max_lockout_ns;
}

static struct model_entry *model_find(struct model *m, int key)
{
	for (int i = 0; i < m->cap; i++)
		if (m->e[i].live && m->e[i].key == key)
			return &m->e[i];
	return NULL;
}

static void model_expiry(struct model *m, struct model_entry *e)
{
	e->expires = (e->fails >= (uint32_t)m->p.max_failures ? e->until : e->window_start) +
		     m->p.window_ns;
}

static enum lt_err model_check(struct model *m, int key, int64_t now, int64_t *retry)
{
	*retry = 0;
	struct model_entry *e = model_find(m, key);
	if (!e)
		return LT_OK;
	if (now >= e->expires) {
		e->live = false;
		return LT_OK;
	}
	if (now < e->until) {
		*retry = e->until - now;
		return LT_EBUSY;
	}
	return LT_OK;
}

static void model_fail(struct model *m, int key, int64_t now)
{
	struct model_entry *e = model_find(m, key);
	if (e && now >= e->expires) {
		e->fails = 0;
		e->until = 0;
		e->window_start = now;
	} else if (!e) {
		for (int i = 0; i < m->cap && !e; i++)
			if (!m->e[i].live)
				e = &m->e[i];
		if (!e) {
			e = &m->e[0];
			for (int i = 1; i < m->cap; i++)
				if (m->e[i].expires < e->expires)
					e = &m->e[i];
		}
		memset(e, 0, sizeof *e);
		e->live = true;
		e->key = key;
		e->window_start = now;
	}
	e->fails++;
	if (e->fails >= (uint32_t)m->p.max_failures)
		e->until = now + model_lockout(&m->p, e->fails);
	model_expiry(m, e);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_against_model(void **state)
{
	(void)state;
	struct lt_throttle t;
	struct model m = {.cap = 32};
	m.p = (struct lt_throttle_policy){.max_failures = 3,
					  .window_ns = 120 * S,
					  .lockout_ns = 5 * S,
					  .max_lockout_ns = 60 * S};
	assert_int_equal(lt_throttle_init(&t, &m.p, 32), LT_OK);
	int64_t now = T0;
	char key[16];
	int refused = 0;
	for (int op = 0; op < 200000; op++) {
		/* odd nanosecond steps keep expiry times distinct, so "the first
		 * to expire" is never a tie the two could break differently */
		now += (int64_t)(rng() % S) | 1;
		int k = (int)(rng() % 48);
		snprintf(key, sizeof key, "user%d", k);
		int64_t r1, r2;
		switch (rng() % 10) {
		case 0:
			lt_throttle_success(&t, key, strlen(key));
			{
				struct model_entry *e = model_find(&m, k);
				if (e)
					e->live = false;
			}
			break;
		case 1:
		case 2:
		case 3:
		case 4:
			assert_int_equal(check(&t, key, now, &r1), model_check(&m, k, now, &r2));
			assert_int_equal(r1, r2);
			refused += r1 > 0;
			break;
		default:
			fail_at(&t, key, now);
			model_fail(&m, k, now);
			break;
		}
	}
	/* the run covered lockouts and evictions of live entries */
	uint32_t used;
	uint64_t ev;
	lt_throttle_stats(&t, &used, &ev);
	assert_true(refused > 1000);
	assert_true(ev > 1000);
	assert_true(used <= 32);
	/* and a final sweep of every key */
	for (int k = 0; k < 48; k++) {
		int64_t r1, r2;
		snprintf(key, sizeof key, "user%d", k);
		assert_int_equal(check(&t, key, now, &r1), model_check(&m, k, now, &r2));
		assert_int_equal(r1, r2);
	}
	lt_throttle_release(&t);
}

/* Keys are hashed under a per-table random key; behaviour depends only on
 * the keys and times, not on that key or on insertion order. */
static void test_keyed_hash_order(void **state)
{
	(void)state;
	struct lt_throttle a, b;
	struct lt_throttle_policy p;
	lt_throttle_policy_default(&p);
	p.max_failures = 2;
	assert_int_equal(lt_throttle_init(&a, &p, 256), LT_OK);
	assert_int_equal(lt_throttle_init(&b, &p, 256), LT_OK);
	assert_true(memcmp(a.hash_key, b.hash_key, sizeof a.hash_key) != 0);

	char key[32];
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof key, "user-%d", i);
		int n = i % 3; /* 0, 1 or 2 failures: 2 locks */
		for (int j = 0; j < n; j++)
			fail_at(&a, key, T0);
		snprintf(key, sizeof key, "user-%d", 199 - i);
		n = (199 - i) % 3;
		for (int j = 0; j < n; j++)
			fail_at(&b, key, T0);
	}
	for (int i = 0; i < 300; i++) { /* 200..299 were never seen */
		int64_t ra, rb;
		snprintf(key, sizeof key, "user-%d", i);
		enum lt_err ea = check(&a, key, T0, &ra), eb = check(&b, key, T0, &rb);
		assert_int_equal(ea, eb);
		assert_int_equal(ra, rb);
		assert_int_equal(ea, i < 200 && i % 3 == 2 ? LT_EBUSY : LT_OK);
	}

	/* arbitrary bytes: empty, embedded NUL, prefixes and long keys differ */
	static const char bin[] = "user\0x";
	int64_t r;
	lt_throttle_fail(&a, "", 0, T0);
	lt_throttle_fail(&a, "", 0, T0);
	assert_int_equal(lt_throttle_check(&a, "", 0, T0, &r), LT_EBUSY);
	lt_throttle_fail(&a, bin, 6, T0);
	lt_throttle_fail(&a, bin, 6, T0);
	assert_int_equal(lt_throttle_check(&a, bin, 6, T0, &r), LT_EBUSY);
	assert_int_equal(lt_throttle_check(&a, bin, 5, T0, &r), LT_OK);
	assert_int_equal(lt_throttle_check(&a, bin, 4, T0, &r), LT_OK);
	char longkey[4096];
	memset(longkey, 'q', sizeof longkey);
	lt_throttle_fail(&a, longkey, sizeof longkey, T0);
	lt_throttle_fail(&a, longkey, sizeof longkey, T0);
	assert_int_equal(lt_throttle_check(&a, longkey, sizeof longkey, T0, &r), LT_EBUSY);
	longkey[4095] = 'r';
	assert_int_equal(lt_throttle_check(&a, longkey, sizeof longkey, T0, &r), LT_OK);
	lt_throttle_release(&a);
	lt_throttle_release(&b);
}

/* Time stepping backwards never extends a lockout past the maximum. */
static void test_time_backwards(void **state)
{
	(void)state;
	struct lt_throttle t;
	assert_int_equal(lt_throttle_init(&t, NULL, 16), LT_OK);
	for (int i = 0; i < 5; i++)
		fail_at(&t, "frank", T0);
	expect_locked(&t, "frank", T0, 60 * S);
	/* a day earlier: still locked, but only for at most 900 s */
	expect_locked(&t, "frank", T0 - 86400 * S, 900 * S);
	expect_ok(&t, "frank", T0 - 86400 * S + 900 * S);
	/* extreme times do not overflow */
	fail_at(&t, "grace", INT64_MAX - 1);
	for (int i = 0; i < 5; i++)
		fail_at(&t, "heidi", INT64_MAX - 10);
	expect_locked(&t, "heidi", INT64_MAX - 10, 10);
	lt_throttle_release(&t);
}

/* ---- concurrency (meaningful under the sanitizers) ---- */

struct worker {
	struct lt_throttle *t;
	int id;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char key[32];
	int64_t r;
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "ip-%d", (i * 7 + w->id) % 300);
		int64_t now = T0 + i;
		switch (i % 4) {
		case 0:
		case 1: lt_throttle_fail(w->t, key, strlen(key), now); break;
		case 2: (void)lt_throttle_check(w->t, key, strlen(key), now, &r); break;
		default: lt_throttle_success(w->t, key, strlen(key)); break;
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct lt_throttle t;
	assert_int_equal(lt_throttle_init(&t, NULL, 128), LT_OK);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.t = &t, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	uint32_t used;
	uint64_t ev;
	lt_throttle_stats(&t, &used, &ev);
	assert_true(used <= 128);
	lt_throttle_release(&t);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_lockout_doubling_cap),
		cmocka_unit_test(test_window_expiry),
		cmocka_unit_test(test_success_resets),
		cmocka_unit_test(test_capacity_eviction),
		cmocka_unit_test(test_lockout_survives_flood),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_keyed_hash_order),
		cmocka_unit_test(test_time_backwards),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
