/*
 * test_password.c — src/auth/password.c: Argon2id hash and verify, rehash
 * detection, bounds, the concurrency gate, the dummy verify.
 *
 * Argon2id at the interactive limits costs ~80 ms and 64 MiB per call, so
 * only two tests use it (two hashes and three verifies in all); the rest use
 * libsodium's minimum limits or no hashing.  Gate tests synchronise on the
 * gate's own counters (tu_wait_until), never on sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "testutil.h"
#include "util/clock.h"

/* Real Argon2id (interactive): one hash, verify right and wrong. */
static void test_hash_verify(void **state)
{
	(void)state;
	char h[LT_PASSWORD_HASH_LEN];
	bool ok = false, rehash = true;
	const char *pw = "correct horse battery staple";

	assert_int_equal(lt_password_hash(pw, strlen(pw), h), LT_OK);
	assert_memory_equal(h, "$argon2id$v=19$m=65536,t=2,p=1$", 31);
	assert_non_null(memchr(h, '\0', sizeof h));

	assert_int_equal(lt_password_verify(h, pw, strlen(pw), &ok, &rehash), LT_OK);
	assert_true(ok);
	assert_false(rehash); /* current limits */

	ok = rehash = true;
	assert_int_equal(
		lt_password_verify(h, "correct horse battery stapl", strlen(pw) - 1, &ok, &rehash),
		LT_OK);
	assert_false(ok);
	assert_false(rehash);
}

/* Hashes made with other limits verify and ask for a rehash. */
static void test_needs_rehash(void **state)
{
	(void)state;
	char h[crypto_pwhash_STRBYTES];
	bool ok, rehash;
	const char *pw = "password123";

	assert_int_equal(crypto_pwhash_str(h, pw, strlen(pw), crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN),
			 0);
	assert_int_equal(lt_password_verify(h, pw, strlen(pw), &ok, &rehash), LT_OK);
	assert_true(ok);
	assert_true(rehash);
	/* a wrong password never asks for a rehash */
	assert_int_equal(lt_password_verify(h, "password124", 11, &ok, &rehash), LT_OK);
	assert_false(ok);
	assert_false(rehash);

	/* argon2i (the older variant) verifies and is replaced */
	assert_int_equal(crypto_pwhash_argon2i_str(h, pw, strlen(pw),
						   crypto_pwhash_argon2i_OPSLIMIT_MIN,
						   crypto_pwhash_argon2i_MEMLIMIT_MIN),
			 0);
	assert_int_equal(lt_password_verify(h, pw, strlen(pw), &ok, &rehash), LT_OK);
	assert_true(ok);
	assert_true(rehash);
}

static void test_bounds_and_corrupt(void **state)
{
	(void)state;
	char big[LT_PASSWORD_MAX + 2];
	char h[LT_PASSWORD_HASH_LEN];
	bool ok = true, rehash = true;
	memset(big, 'p', sizeof big);

	assert_int_equal(lt_password_hash(big, LT_PASSWORD_MAX + 1, h), LT_ETOOBIG);
	assert_int_equal(h[0], '\0');

	/* a valid (cheap) hash, to check that length is refused before work */
	assert_int_equal(crypto_pwhash_str(h, big, 8, crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN),
			 0);
	assert_int_equal(lt_password_verify(h, big, LT_PASSWORD_MAX + 1, &ok, &rehash), LT_ETOOBIG);
	assert_false(ok);
	assert_false(rehash);

	/* the longest allowed password is accepted (cheap hash, same bytes) */
	assert_int_equal(crypto_pwhash_str(h, big, LT_PASSWORD_MAX, crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN),
			 0);
	assert_int_equal(lt_password_verify(h, big, LT_PASSWORD_MAX, &ok, &rehash), LT_OK);
	assert_true(ok);

	/* stored strings that are not hashes */
	char junk[LT_PASSWORD_HASH_LEN];
	memset(junk, '$', sizeof junk); /* no NUL within the buffer */
	ok = rehash = true;
	assert_int_equal(lt_password_verify(junk, "password", 8, &ok, &rehash), LT_ECORRUPT);
	assert_false(ok);
	assert_false(rehash);
	memset(junk, 0, sizeof junk);
	assert_int_equal(lt_password_verify(junk, "password", 8, &ok, &rehash), LT_ECORRUPT);
	strcpy(junk, "$argon2id$v=19$m=65536,t=2,p=1$bm90YXNhbHQ$");
	assert_int_equal(lt_password_verify(junk, "password", 8, &ok, &rehash), LT_ECORRUPT);
	strcpy(junk, "$2b$12$abcdefghijklmnopqrstuu0123456789012345678901234567890");
	assert_int_equal(lt_password_verify(junk, "password", 8, &ok, &rehash), LT_ECORRUPT);
	assert_false(ok);
}

/* ---- gate ---- */

struct entrant {
	struct lt_pwhash_gate *g;
	int64_t timeout_ns;
	enum lt_err got;
	bool leave; /* leave at once after entering */
	pthread_t th;
};

static void *enter_thread(void *arg)
{
	struct entrant *en = arg;
	en->got = lt_pwhash_gate_enter(en->g, en->timeout_ns);
	if (en->got == LT_OK && en->leave)
		lt_pwhash_gate_leave(en->g);
	return NULL;
}

static bool one_waiting(void *arg)
{
	int running, waiting;
	lt_pwhash_gate_stats(arg, &running, &waiting);
	return waiting == 1;
}

static void test_gate_init(void **state)
{
	(void)state;
	struct lt_pwhash_gate g;
	assert_int_equal(lt_pwhash_gate_init(&g, 0, 1), LT_EINVAL);
	assert_int_equal(lt_pwhash_gate_init(&g, 1, -1), LT_EINVAL);
	assert_int_equal(lt_pwhash_gate_init(&g, 2, 0), LT_OK);
	/* max 2, no queue: two enter, the third is refused without waiting */
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_OK);
	assert_int_equal(lt_pwhash_gate_enter(&g, LT_NS_PER_S), LT_OK);
	assert_int_equal(lt_pwhash_gate_enter(&g, 30 * LT_NS_PER_S), LT_EBUSY);
	lt_pwhash_gate_leave(&g);
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_OK);
	lt_pwhash_gate_leave(&g);
	lt_pwhash_gate_leave(&g);
	int r, w;
	lt_pwhash_gate_stats(&g, &r, &w);
	assert_int_equal(r, 0);
	assert_int_equal(w, 0);
	lt_pwhash_gate_release(&g);
}

/* max 1, max_waiting 1: holder, one waiter, third refused at once; the
 * waiter gets the slot when the holder leaves. */
static void test_gate_queue_full(void **state)
{
	(void)state;
	struct lt_pwhash_gate g;
	assert_int_equal(lt_pwhash_gate_init(&g, 1, 1), LT_OK);
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_OK); /* holder: this thread */

	struct entrant b = {.g = &g, .timeout_ns = 60 * LT_NS_PER_S, .got = LT_EIO, .leave = true};
	assert_int_equal(pthread_create(&b.th, NULL, enter_thread, &b), 0);
	assert_true(tu_wait_until(one_waiting, &g));

	/* third entrant: the queue is full, refused however long it would wait */
	int64_t t0 = lt_clock_mono_ns();
	assert_int_equal(lt_pwhash_gate_enter(&g, 60 * LT_NS_PER_S), LT_EBUSY);
	assert_true(lt_clock_mono_ns() - t0 < 30 * LT_NS_PER_S); /* did not wait out 60 s */
	/* and a zero timeout never queues */
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_EBUSY);

	lt_pwhash_gate_leave(&g);
	assert_int_equal(pthread_join(b.th, NULL), 0);
	assert_int_equal(b.got, LT_OK);
	int r, w;
	lt_pwhash_gate_stats(&g, &r, &w);
	assert_int_equal(r, 0);
	assert_int_equal(w, 0);
	lt_pwhash_gate_release(&g);
}

/* A waiter whose timeout passes gets LT_EBUSY and leaves the queue. */
static void test_gate_timeout(void **state)
{
	(void)state;
	struct lt_pwhash_gate g;
	assert_int_equal(lt_pwhash_gate_init(&g, 1, 4), LT_OK);
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_OK);

	struct entrant c = {.g = &g, .timeout_ns = 20 * LT_NS_PER_MS, .got = LT_EIO};
	int64_t t0 = lt_clock_mono_ns();
	assert_int_equal(pthread_create(&c.th, NULL, enter_thread, &c), 0);
	assert_int_equal(pthread_join(c.th, NULL), 0); /* the holder never leaves */
	assert_int_equal(c.got, LT_EBUSY);
	assert_true(lt_clock_mono_ns() - t0 >= 20 * LT_NS_PER_MS); /* it did wait */
	int r, w;
	lt_pwhash_gate_stats(&g, &r, &w);
	assert_int_equal(r, 1);
	assert_int_equal(w, 0);

	/* the slot is still usable after the timeout */
	lt_pwhash_gate_leave(&g);
	assert_int_equal(lt_pwhash_gate_enter(&g, 0), LT_OK);
	lt_pwhash_gate_leave(&g);
	lt_pwhash_gate_release(&g);
}

/* Many threads through a gate of 2: never more than 2 inside, all get in. */
struct stress {
	struct lt_pwhash_gate *g;
	pthread_mutex_t mu;
	int inside, peak, done;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	for (int i = 0; i < 200; i++) {
		if (lt_pwhash_gate_enter(s->g, 60 * LT_NS_PER_S) != LT_OK)
			continue;
		pthread_mutex_lock(&s->mu);
		s->inside++;
		if (s->inside > s->peak)
			s->peak = s->inside;
		s->done++;
		pthread_mutex_unlock(&s->mu);
		pthread_mutex_lock(&s->mu);
		s->inside--;
		pthread_mutex_unlock(&s->mu);
		lt_pwhash_gate_leave(s->g);
	}
	return NULL;
}

static void test_gate_stress(void **state)
{
	(void)state;
	struct lt_pwhash_gate g;
	struct stress s = {.g = &g};
	pthread_t th[8];
	assert_int_equal(lt_pwhash_gate_init(&g, 2, 8), LT_OK);
	pthread_mutex_init(&s.mu, NULL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &s), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_true(s.peak <= 2);
	assert_int_equal(s.done, 8 * 200); /* queue of 8 >= the other 6 threads */
	pthread_mutex_destroy(&s.mu);
	lt_pwhash_gate_release(&g);
}

/* The dummy hash uses the same algorithm and limits as real hashes, and a
 * dummy verify runs (and matches nothing). */
static void test_dummy(void **state)
{
	(void)state;
	struct lt_password_dummy d;
	assert_int_equal(lt_password_dummy_init(&d), LT_OK);
	assert_memory_equal(d.hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31);
	assert_int_equal(crypto_pwhash_str_needs_rehash(d.hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
							crypto_pwhash_MEMLIMIT_INTERACTIVE),
			 0);
	lt_password_dummy_verify(&d, "hunter22", 8);
	lt_password_dummy_verify(&d, "x", LT_PASSWORD_MAX + 1); /* refused like a real one */
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_verify),	   cmocka_unit_test(test_needs_rehash),
		cmocka_unit_test(test_bounds_and_corrupt), cmocka_unit_test(test_gate_init),
		cmocka_unit_test(test_gate_queue_full),	   cmocka_unit_test(test_gate_timeout),
		cmocka_unit_test(test_gate_stress),	   cmocka_unit_test(test_dummy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
