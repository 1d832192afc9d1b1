/*
 * test_token_cache.c — src/auth/token_cache.c: hits, misses at exp and after
 * a generation bump, replacement, the capacity bound and which entry is
 * evicted, the digest, and a multi-threaded smoke test checking that a hit
 * always returns the claims stored under that digest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/token_cache.h"

#define NOW INT64_C(1767225600)

static void claims_for(struct lt_jwt_claims *c, unsigned id, int64_t exp)
{
	memset(c, 0, sizeof *c);
	snprintf(c->sub, sizeof c->sub, "u%u", id);
	snprintf(c->iss, sizeof c->iss, "iss");
	snprintf(c->aud, sizeof c->aud, "aud");
	snprintf(c->roles[0], sizeof c->roles[0], "USER");
	c->n_roles = 1;
	c->iat = c->nbf = NOW;
	c->exp = exp;
}

static void digest_for(unsigned id, unsigned char d[LT_TOKEN_DIGEST_LEN])
{
	char tok[32];
	int n = snprintf(tok, sizeof tok, "token-%u", id);
	lt_token_cache_digest(tok, (size_t)n, d);
}

static size_t used(struct lt_token_cache *c)
{
	struct lt_token_cache_stats st;
	lt_token_cache_stats(c, &st);
	return st.used;
}

static void test_init_bounds(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 0), LT_EINVAL);
	assert_int_equal(lt_token_cache_init(&c, LT_TOKEN_CACHE_MAX + 1), LT_EINVAL);
	lt_token_cache_release(&c); /* released state: safe */
	assert_int_equal(lt_token_cache_init(&c, 1), LT_OK);
	assert_int_equal(c.capacity, LT_TOKEN_CACHE_WAYS);
	lt_token_cache_release(&c);
	assert_int_equal(lt_token_cache_init(&c, LT_TOKEN_CACHE_DEFAULT), LT_OK);
	assert_int_equal(c.capacity, LT_TOKEN_CACHE_DEFAULT);
	lt_token_cache_release(&c);
	lt_token_cache_release(&c);
}

static void test_digest(void **state)
{
	(void)state;
	unsigned char d[LT_TOKEN_DIGEST_LEN], ref[crypto_hash_sha256_BYTES];
	lt_token_cache_digest("abc", 3, d);
	static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
					      0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
					      0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
					      0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	assert_memory_equal(d, abc, 32);
	crypto_hash_sha256(ref, (const unsigned char *)"token-7", 7);
	digest_for(7, d);
	assert_memory_equal(d, ref, 32);
}

static void test_hit_and_miss(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 64), LT_OK);
	struct lt_jwt_claims in, out;
	unsigned char d1[32], d2[32];
	digest_for(1, d1);
	digest_for(2, d2);
	claims_for(&in, 1, NOW + 100);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 0, &out), LT_ENOTFOUND);
	lt_token_cache_insert(&c, d1, &in, NOW, 0);
	memset(&out, 0, sizeof out);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 0, &out), LT_OK);
	assert_memory_equal(&out, &in, sizeof in);
	assert_int_equal(lt_token_cache_lookup(&c, d2, NOW, 0, &out), LT_ENOTFOUND);
	/* a digest differing in one late byte is another token */
	d1[31] ^= 1;
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 0, &out), LT_ENOTFOUND);
	d1[31] ^= 1;

	/* inserting the same token again replaces, not duplicates */
	claims_for(&in, 1, NOW + 200);
	snprintf(in.tier, sizeof in.tier, "PRO");
	lt_token_cache_insert(&c, d1, &in, NOW, 0);
	assert_int_equal(used(&c), 1);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW + 150, 0, &out), LT_OK);
	assert_string_equal(out.tier, "PRO");

	struct lt_token_cache_stats st;
	lt_token_cache_stats(&c, &st);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.inserts, 2);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.capacity, 64);

	lt_token_cache_clear(&c);
	assert_int_equal(used(&c), 0);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 0, &out), LT_ENOTFOUND);
	lt_token_cache_release(&c);
}

static void test_expiry(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 64), LT_OK);
	struct lt_jwt_claims in, out;
	unsigned char d[32];
	digest_for(1, d);
	claims_for(&in, 1, NOW + 100);
	lt_token_cache_insert(&c, d, &in, NOW, 0);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW + 99, 0, &out), LT_OK);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW + 100, 0, &out), LT_ENOTFOUND);
	/* the expired entry is gone, even for an earlier clock */
	assert_int_equal(used(&c), 0);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW, 0, &out), LT_ENOTFOUND);

	/* already expired at insertion: not stored */
	lt_token_cache_insert(&c, d, &in, NOW + 100, 0);
	lt_token_cache_insert(&c, d, &in, NOW + 5000, 0);
	assert_int_equal(used(&c), 0);
	lt_token_cache_release(&c);
}

static void test_generation(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 64), LT_OK);
	struct lt_jwt_claims in, out;
	unsigned char d1[32], d2[32];
	digest_for(1, d1);
	digest_for(2, d2);
	claims_for(&in, 1, NOW + 100);
	lt_token_cache_insert(&c, d1, &in, NOW, 41);
	lt_token_cache_insert(&c, d2, &in, NOW, 41);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 41, &out), LT_OK);
	/* bumped: a miss at once */
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 42, &out), LT_ENOTFOUND);
	assert_int_equal(lt_token_cache_lookup(&c, d2, NOW, 42, &out), LT_ENOTFOUND);
	/* and the stale entries are dropped, not revived */
	assert_int_equal(used(&c), 0);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 41, &out), LT_ENOTFOUND);
	/* re-verified under the new generation: cached again */
	lt_token_cache_insert(&c, d1, &in, NOW, 42);
	assert_int_equal(lt_token_cache_lookup(&c, d1, NOW, 42, &out), LT_OK);
	/* an insert that raced a bump (old generation read first) is stale */
	lt_token_cache_insert(&c, d2, &in, NOW, 42);
	assert_int_equal(lt_token_cache_lookup(&c, d2, NOW, 43, &out), LT_ENOTFOUND);
	lt_token_cache_release(&c);
}

static void test_capacity_bound(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 64), LT_OK);
	struct lt_jwt_claims in, out;
	unsigned char d[32];
	for (unsigned i = 0; i < 5000; i++) {
		digest_for(i, d);
		claims_for(&in, i, NOW + 1000);
		lt_token_cache_insert(&c, d, &in, NOW, 0);
		assert_true(used(&c) <= 64);
		/* the newest is always there */
		assert_int_equal(lt_token_cache_lookup(&c, d, NOW, 0, &out), LT_OK);
		assert_memory_equal(&out, &in, sizeof in);
	}
	struct lt_token_cache_stats st;
	lt_token_cache_stats(&c, &st);
	assert_int_equal(st.used, 64); /* full */
	assert_int_equal(st.evictions, 5000 - 64);
	lt_token_cache_release(&c);
}

static void test_eviction_order(void **state)
{
	(void)state;
	/* capacity 8: a single set, so every digest competes for it */
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 8), LT_OK);
	struct lt_jwt_claims in, out;
	unsigned char d[32];
	for (unsigned i = 0; i < 8; i++) {
		digest_for(i, d);
		claims_for(&in, i, i == 5 ? NOW + 10 : NOW + 1000);
		lt_token_cache_insert(&c, d, &in, NOW, 0);
	}
	/* full; at NOW + 20 token 5 has expired: the newcomer takes its slot */
	digest_for(100, d);
	claims_for(&in, 100, NOW + 1000);
	lt_token_cache_insert(&c, d, &in, NOW + 20, 0);
	for (unsigned i = 0; i < 8; i++) {
		digest_for(i, d);
		enum lt_err want = i == 5 ? LT_ENOTFOUND : LT_OK;
		if (lt_token_cache_lookup(&c, d, NOW + 20, 0, &out) != want)
			fail_msg("token %u", i);
	}
	/* nothing expired now: the oldest insertion (token 0) goes */
	digest_for(101, d);
	claims_for(&in, 101, NOW + 1000);
	lt_token_cache_insert(&c, d, &in, NOW + 20, 0);
	digest_for(0, d);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW + 20, 0, &out), LT_ENOTFOUND);
	for (unsigned i = 1; i < 8; i++) {
		if (i == 5)
			continue;
		digest_for(i, d);
		if (lt_token_cache_lookup(&c, d, NOW + 20, 0, &out) != LT_OK)
			fail_msg("token %u evicted out of order", i);
	}
	digest_for(100, d);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW + 20, 0, &out), LT_OK);
	digest_for(101, d);
	assert_int_equal(lt_token_cache_lookup(&c, d, NOW + 20, 0, &out), LT_OK);
	lt_token_cache_release(&c);
}

/* ---- threads ---- */

#define THREADS 8
#define OPS 20000
#define IDS 1024

struct worker {
	struct lt_token_cache *c;
	unsigned seed;
	atomic_uint *wrong;
	atomic_uint *hits;
	atomic_uint *gen;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned x = w->seed;
	struct lt_jwt_claims in, out;
	unsigned char d[32];
	for (int op = 0; op < OPS; op++) {
		x = x * 1103515245u + 12345u;
		unsigned id = (x >> 8) % IDS;
		unsigned gen = atomic_load(w->gen);
		digest_for(id, d);
		if (lt_token_cache_lookup(w->c, d, NOW, gen, &out) == LT_OK) {
			char want[16];
			snprintf(want, sizeof want, "u%u", id);
			if (strcmp(out.sub, want) != 0 || out.exp != NOW + 1000 + id)
				atomic_fetch_add(w->wrong, 1);
			atomic_fetch_add(w->hits, 1);
		} else {
			claims_for(&in, id, NOW + 1000 + id);
			lt_token_cache_insert(w->c, d, &in, NOW, gen);
		}
		if (w->seed == 1 && op % 5000 == 4999)
			atomic_fetch_add(w->gen, 1); /* one thread bumps now and then */
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct lt_token_cache c;
	assert_int_equal(lt_token_cache_init(&c, 256), LT_OK);
	atomic_uint wrong = 0, hits = 0, gen = 0;
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){&c, (unsigned)i + 1, &wrong, &hits, &gen};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&wrong), 0);
	assert_true(atomic_load(&hits) > 0);
	struct lt_token_cache_stats st;
	lt_token_cache_stats(&c, &st);
	assert_true(st.used <= 256);
	assert_int_equal(st.hits + st.misses, (uint64_t)THREADS * OPS);
	assert_int_equal(st.hits, atomic_load(&hits));
	lt_token_cache_release(&c);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_hit_and_miss),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_capacity_bound),
		cmocka_unit_test(test_eviction_order),
		cmocka_unit_test(test_threads),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
