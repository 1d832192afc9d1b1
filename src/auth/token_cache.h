/*
 * token_cache.h — a bounded cache of verified JWTs, so that the RSA check
 * (~240 µs) runs once per token rather than once per request.
 *
 * Key: the SHA-256 digest of the token text (the token itself is never
 * stored).  Value: the verified claims, the token's exp, and the identity
 * generation the caller saw before verifying it.  A lookup hits only while
 * now < exp and the entry's generation equals the caller's current one, so
 * bumping the generation (user disabled, roles changed, key revoked) makes
 * every older entry miss at once; stale entries are dropped as they are met.
 *
 * Correct use, on each request:
 *     gen = <current identity generation>;          (read it FIRST)
 *     lt_token_cache_digest(token, len, d);
 *     if (lt_token_cache_lookup(c, d, now, gen, &claims) != LT_OK) {
 *             lt_jwt_verify(token, ..., &claims, &why) or fail with 401;
 *             lt_token_cache_insert(c, d, &claims, now, gen);
 *     }
 * Reading the generation before verifying means a change that lands during
 * verification leaves the new entry already stale, never wrongly fresh.
 *
 * Bounds and eviction: capacity is fixed at init (rounded up to a multiple
 * of LT_TOKEN_CACHE_WAYS) and never exceeded.  The table is set-associative:
 * a digest maps to one set of LT_TOKEN_CACHE_WAYS slots; an insert takes a
 * free or expired slot of its set, else replaces the oldest insertion in
 * that set.  (So eviction is per set: a set may evict while
 * others have room.  Digests are uniform, so sets fill evenly.)
 *
 * Locking: sets are guarded by LT_TOKEN_CACHE_LOCKS mutexes (set i uses lock
 * i % LT_TOKEN_CACHE_LOCKS); each call takes exactly one lock for a handful
 * of comparisons and one struct copy, and never calls out while holding it.
 * All functions except init and release are safe from any thread.
 *
 * Ownership: the struct is the caller's (one per server); init allocates
 * the table, release frees it.  Claims are copied in and out by value.
 */
#ifndef LT_AUTH_TOKEN_CACHE_H
#define LT_AUTH_TOKEN_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "util/err.h"

#define LT_TOKEN_DIGEST_LEN 32
#define LT_TOKEN_CACHE_WAYS 8
#define LT_TOKEN_CACHE_LOCKS 64
#define LT_TOKEN_CACHE_DEFAULT 4096
#define LT_TOKEN_CACHE_MAX (1u << 20)

struct lt_token_cache_slot; /* private to token_cache.c */

struct lt_token_cache {
	struct lt_token_cache_slot *slots; /* n_sets * WAYS */
	size_t n_sets;
	size_t capacity; /* n_sets * WAYS */
	pthread_mutex_t locks[LT_TOKEN_CACHE_LOCKS];
	atomic_uint_least64_t seq; /* insertion counter, for "oldest" */
	/* statistics, monotonic */
	atomic_uint_least64_t hits, misses, inserts, evictions;
};

/* A snapshot of the counters and the number of live slots. */
struct lt_token_cache_stats {
	uint64_t hits, misses, inserts, evictions;
	size_t used, capacity;
};

/* Allocate room for `capacity` tokens (1..LT_TOKEN_CACHE_MAX, rounded up
 * to a multiple of LT_TOKEN_CACHE_WAYS).  LT_EINVAL outside the bounds,
 * LT_ENOMEM. */
enum lt_err lt_token_cache_init(struct lt_token_cache *c, size_t capacity);

/* Free the table.  No other thread may be using the cache. */
void lt_token_cache_release(struct lt_token_cache *c);

/* The cache key of token[0..len): its SHA-256 digest. */
void lt_token_cache_digest(const char *token, size_t len, unsigned char out[LT_TOKEN_DIGEST_LEN]);

/* LT_OK with *out a copy of the cached claims if digest is cached, now_s <
 * its exp and its generation equals `generation`; LT_ENOTFOUND otherwise
 * (an expired or stale entry is removed). */
enum lt_err lt_token_cache_lookup(struct lt_token_cache *c,
				  const unsigned char digest[LT_TOKEN_DIGEST_LEN], int64_t now_s,
				  uint64_t generation, struct lt_jwt_claims *out);

/* Remember claims (with claims->exp) for digest under `generation`, read
 * before the token was verified.  Replaces an entry for the same digest.
 * Does nothing if the token is already expired at now_s. */
void lt_token_cache_insert(struct lt_token_cache *c,
			   const unsigned char digest[LT_TOKEN_DIGEST_LEN],
			   const struct lt_jwt_claims *claims, int64_t now_s, uint64_t generation);

/* Drop every entry (e.g. on key rotation, if not using generations). */
void lt_token_cache_clear(struct lt_token_cache *c);

/* Counters, and the slots in use (which may include not yet noticed
 * expired or stale entries).  Takes each lock in turn: not for hot paths. */
void lt_token_cache_stats(struct lt_token_cache *c, struct lt_token_cache_stats *out);

#endif
