/*
 * throttle.h — failed-login throttling in a fixed-size table.
 *
 * One struct lt_throttle per dimension: leakyd keeps one keyed by username
 * and one keyed by client IP.  Time is passed in (pure module; no clock, no
 * I/O).  Pass a monotonic time (lt_clock_mono_ns): the table is not persisted,
 * and if time moves backwards, remaining lockouts are clamped to the policy
 * maximum and windows to the present, so nobody is locked out for longer.
 *
 * Policy (struct lt_throttle_policy, defaults in brackets):
 *   - failures count within a window of window_ns [300 s] from the first;
 *   - the max_failures'th failure [5] locks the key for lockout_ns [60 s];
 *     every further failure locks it again, from that failure, for twice the
 *     previous lockout, capped at max_lockout_ns [900 s] (callers check
 *     first, so further failures normally come once a lockout has ended;
 *     requests already past the check when the lockout began still count);
 *   - a locked key stays counted until window_ns after its lockout ends, so
 *     a long lockout does not reset the doubling; after that it is forgotten;
 *   - lt_throttle_success forgets the key at once.
 * lt_throttle_check refuses (LT_EBUSY, retry-after) while a key is locked; it
 * never creates entries, so probing with new keys costs no memory.
 *
 * Keys are arbitrary bytes <key, n>.  They are not stored: an entry holds the
 * 128-bit SipHash (crypto_shorthash_siphashx24) of the key under a random
 * 16-byte key made at init, so an attacker can neither aim keys at one
 * bucket nor find two keys sharing an entry.
 *
 * Memory is fixed at init: `capacity` entries (~64 bytes each) plus
 * buckets.  When the table is full, a new key evicts the entry that
 * expires first — the one whose information runs out soonest (an unlocked
 * key's window end; a locked key's lockout end + window).  Forgotten entries
 * go first, and a flood of new keys cannot push out a lockout still running
 * while an entry with a nearer expiry is left.  Eviction is O(log capacity)
 * (a min-heap on expiry); lookups are O(1) expected.
 *
 * Thread safety: every function but init/release takes t->mu; the table may
 * be used from any thread.  init/release must not race with other use.
 */
#ifndef LT_AUTH_THROTTLE_H
#define LT_AUTH_THROTTLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_THROTTLE_DEFAULT_CAPACITY 8192
#define LT_THROTTLE_MAX_CAPACITY (1u << 24)

struct lt_throttle_policy {
	int max_failures;	/* F >= 1 */
	int64_t window_ns;	/* W > 0 */
	int64_t lockout_ns;	/* first lockout, > 0 */
	int64_t max_lockout_ns; /* cap, >= lockout_ns */
};

/* F = 5, W = 300 s, first lockout 60 s, cap 900 s. */
void lt_throttle_policy_default(struct lt_throttle_policy *p);

struct lt_throttle_entry;

struct lt_throttle {
	pthread_mutex_t mu;
	struct lt_throttle_policy policy;
	unsigned char hash_key[16]; /* random at init; never leaves the struct */
	uint32_t capacity;	    /* entries */
	uint32_t used;		    /* guarded by mu: live entries = heap size */
	uint32_t nbuckets;	    /* power of two >= capacity */
	uint32_t *buckets;	    /* chain heads, entry index + 1 (0 = empty) */
	uint32_t *heap;		    /* entry indices, min-heap on expiry */
	uint32_t free_head;	    /* free entries, index + 1 (0 = none) */
	struct lt_throttle_entry *entries;
	uint64_t evictions; /* guarded by mu: entries pushed out while live */
};

/* policy NULL = defaults.  LT_EINVAL for a bad policy or a capacity outside
 * 1..LT_THROTTLE_MAX_CAPACITY; LT_ENOMEM.  Release with lt_throttle_release. */
enum lt_err lt_throttle_init(struct lt_throttle *t, const struct lt_throttle_policy *policy,
			     uint32_t capacity);
void lt_throttle_release(struct lt_throttle *t);

/* LT_OK: the key may try.  LT_EBUSY: refused; *retry_after_ns (> 0) is when
 * the lockout ends.  *retry_after_ns is 0 on LT_OK. */
enum lt_err lt_throttle_check(struct lt_throttle *t, const void *key, size_t n, int64_t now_ns,
			      int64_t *retry_after_ns);

/* Record a failed attempt for key (creating its entry, evicting if full). */
void lt_throttle_fail(struct lt_throttle *t, const void *key, size_t n, int64_t now_ns);

/* Forget key: a successful login clears its failures and any lockout. */
void lt_throttle_success(struct lt_throttle *t, const void *key, size_t n);

/* Snapshot for metrics and tests: live entries and evictions so far. */
void lt_throttle_stats(struct lt_throttle *t, uint32_t *used, uint64_t *evictions);

#endif
