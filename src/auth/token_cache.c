/*
 * token_cache.c — set-associative cache of verified JWT claims.  See
 * token_cache.h for the contract, locking and eviction rules.
 *
 * Owns the slot table (one calloc at init).  Invariants: a slot is live iff
 * `used`; a live slot's digest is unique within its set; every field of a
 * slot is read or written only under its set's lock.  The counters are
 * relaxed atomics, for metrics only.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "auth/token_cache.h"

struct lt_token_cache_slot {
	unsigned char digest[LT_TOKEN_DIGEST_LEN];
	bool used;
	int64_t exp;
	uint64_t generation;
	uint64_t seq; /* insertion order, for eviction */
	struct lt_jwt_claims claims;
};

#define BUMP(counter) atomic_fetch_add_explicit(&(counter), 1, memory_order_relaxed)

enum lt_err lt_token_cache_init(struct lt_token_cache *c, size_t capacity)
{
	memset(c, 0, sizeof *c);
	if (capacity == 0 || capacity > LT_TOKEN_CACHE_MAX)
		return LT_EINVAL;
	size_t n_sets = (capacity + LT_TOKEN_CACHE_WAYS - 1) / LT_TOKEN_CACHE_WAYS;
	c->slots = calloc(n_sets * LT_TOKEN_CACHE_WAYS, sizeof *c->slots);
	if (!c->slots)
		return LT_ENOMEM;
	c->n_sets = n_sets;
	c->capacity = n_sets * LT_TOKEN_CACHE_WAYS;
	for (size_t i = 0; i < LT_TOKEN_CACHE_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	atomic_init(&c->seq, 0);
	atomic_init(&c->hits, 0);
	atomic_init(&c->misses, 0);
	atomic_init(&c->inserts, 0);
	atomic_init(&c->evictions, 0);
	return LT_OK;
}

void lt_token_cache_release(struct lt_token_cache *c)
{
	if (!c->slots)
		return;
	for (size_t i = 0; i < LT_TOKEN_CACHE_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->slots);
	c->slots = NULL;
	c->n_sets = c->capacity = 0;
}

void lt_token_cache_digest(const char *token, size_t len, unsigned char out[LT_TOKEN_DIGEST_LEN])
{
	br_sha256_context h;
	br_sha256_init(&h);
	br_sha256_update(&h, token, len);
	br_sha256_out(&h, out);
}

static size_t set_of(const struct lt_token_cache *c, const unsigned char *digest)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | digest[i];
	return (size_t)(v % c->n_sets);
}

static pthread_mutex_t *lock_of(struct lt_token_cache *c, size_t set)
{
	return &c->locks[set % LT_TOKEN_CACHE_LOCKS];
}

enum lt_err lt_token_cache_lookup(struct lt_token_cache *c,
				  const unsigned char digest[LT_TOKEN_DIGEST_LEN], int64_t now_s,
				  uint64_t generation, struct lt_jwt_claims *out)
{
	size_t set = set_of(c, digest);
	struct lt_token_cache_slot *s = c->slots + set * LT_TOKEN_CACHE_WAYS;
	enum lt_err err = LT_ENOTFOUND;
	pthread_mutex_t *mu = lock_of(c, set);

	pthread_mutex_lock(mu);
	for (size_t w = 0; w < LT_TOKEN_CACHE_WAYS; w++) {
		if (!s[w].used || memcmp(s[w].digest, digest, LT_TOKEN_DIGEST_LEN) != 0)
			continue;
		if (now_s < s[w].exp && s[w].generation == generation) {
			*out = s[w].claims;
			err = LT_OK;
		} else {
			s[w].used = false; /* expired or stale: never valid again */
		}
		break;
	}
	pthread_mutex_unlock(mu);
	if (err == LT_OK)
		BUMP(c->hits);
	else
		BUMP(c->misses);
	return err;
}

void lt_token_cache_insert(struct lt_token_cache *c,
			   const unsigned char digest[LT_TOKEN_DIGEST_LEN],
			   const struct lt_jwt_claims *claims, int64_t now_s, uint64_t generation)
{
	if (now_s >= claims->exp)
		return;
	size_t set = set_of(c, digest);
	struct lt_token_cache_slot *s = c->slots + set * LT_TOKEN_CACHE_WAYS;
	struct lt_token_cache_slot *victim = NULL;
	pthread_mutex_t *mu = lock_of(c, set);
	uint64_t seq = atomic_fetch_add_explicit(&c->seq, 1, memory_order_relaxed);
	int victim_rank = 3; /* 0 free, 1 expired, 2 live (then oldest first) */
	bool same = false;

	pthread_mutex_lock(mu);
	for (size_t w = 0; w < LT_TOKEN_CACHE_WAYS; w++) {
		if (s[w].used && memcmp(s[w].digest, digest, LT_TOKEN_DIGEST_LEN) == 0) {
			victim = &s[w]; /* the same token again: replace in place */
			same = true;
			break;
		}
		int rank = !s[w].used ? 0 : now_s >= s[w].exp ? 1 : 2;
		if (rank < victim_rank ||
		    (rank == 2 && victim_rank == 2 && s[w].seq < victim->seq)) {
			victim = &s[w];
			victim_rank = rank;
		}
	}
	bool evicted = !same && victim_rank == 2;
	memcpy(victim->digest, digest, LT_TOKEN_DIGEST_LEN);
	victim->used = true;
	victim->exp = claims->exp;
	victim->generation = generation;
	victim->seq = seq;
	victim->claims = *claims;
	pthread_mutex_unlock(mu);
	BUMP(c->inserts);
	if (evicted)
		BUMP(c->evictions);
}

void lt_token_cache_clear(struct lt_token_cache *c)
{
	for (size_t set = 0; set < c->n_sets; set++) {
		pthread_mutex_t *mu = lock_of(c, set);
		pthread_mutex_lock(mu);
		for (size_t w = 0; w < LT_TOKEN_CACHE_WAYS; w++)
			c->slots[set * LT_TOKEN_CACHE_WAYS + w].used = false;
		pthread_mutex_unlock(mu);
	}
}

void lt_token_cache_stats(struct lt_token_cache *c, struct lt_token_cache_stats *out)
{
	size_t used = 0;
	for (size_t set = 0; set < c->n_sets; set++) {
		pthread_mutex_t *mu = lock_of(c, set);
		pthread_mutex_lock(mu);
		for (size_t w = 0; w < LT_TOKEN_CACHE_WAYS; w++)
			used += c->slots[set * LT_TOKEN_CACHE_WAYS + w].used;
		pthread_mutex_unlock(mu);
	}
	out->used = used;
	out->capacity = c->capacity;
	out->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
	out->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
	out->inserts = atomic_load_explicit(&c->inserts, memory_order_relaxed);
	out->evictions = atomic_load_explicit(&c->evictions, memory_order_relaxed);
}
