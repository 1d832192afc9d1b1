/*
 * throttle.c — failed-login table.  See throttle.h.
 *
 * Layout: `entries` is a fixed array.  A live entry is in exactly one bucket
 * chain (linked by `next`) and in the heap (at `heap_pos`); a free entry is
 * only on the free list (linked by `next`).  used == heap size == live
 * entries.  The heap is ordered on `expires`, so its root is the entry to
 * evict.  Every field is guarded by t->mu.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/throttle.h"
#include "util/clock.h"

#define TAG_LEN crypto_shorthash_siphashx24_BYTES
_Static_assert(crypto_shorthash_siphashx24_KEYBYTES == 16, "hash key size");
_Static_assert(TAG_LEN == 16, "tag size");

struct lt_throttle_entry {
	unsigned char tag[TAG_LEN]; /* keyed hash of the key */
	int64_t window_start;	    /* first failure of the current window */
	int64_t until;		    /* refused while now < until (0: not locked) */
	int64_t expires;	    /* forgotten at this time; the heap's order */
	uint32_t fails;		    /* failures in this window (saturating) */
	uint32_t next;		    /* chain or free list: index + 1, 0 = end */
	uint32_t heap_pos;
};

void lt_throttle_policy_default(struct lt_throttle_policy *p)
{
	p->max_failures = 5;
	p->window_ns = 300 * LT_NS_PER_S;
	p->lockout_ns = 60 * LT_NS_PER_S;
	p->max_lockout_ns = 900 * LT_NS_PER_S;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

enum lt_err lt_throttle_init(struct lt_throttle *t, const struct lt_throttle_policy *policy,
			     uint32_t capacity)
{
	enum lt_err e = LT_ENOMEM;

	memset(t, 0, sizeof *t);
	if (policy)
		t->policy = *policy;
	else
		lt_throttle_policy_default(&t->policy);
	const struct lt_throttle_policy *p = &t->policy;
	if (p->max_failures < 1 || p->window_ns <= 0 || p->lockout_ns <= 0 ||
	    p->max_lockout_ns < p->lockout_ns || capacity < 1 ||
	    capacity > LT_THROTTLE_MAX_CAPACITY)
		return LT_EINVAL;

	t->capacity = capacity;
	t->nbuckets = 1;
	while (t->nbuckets < capacity)
		t->nbuckets <<= 1;
	t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
	t->heap = calloc(capacity, sizeof *t->heap);
	t->entries = calloc(capacity, sizeof *t->entries);
	if (!t->buckets || !t->heap || !t->entries)
		goto out;
	for (uint32_t i = 0; i < capacity; i++)
		t->entries[i].next = i + 1 < capacity ? i + 2 : 0;
	t->free_head = 1;
	randombytes_buf(t->hash_key, sizeof t->hash_key);
	if (pthread_mutex_init(&t->mu, NULL) != 0)
		goto out;
	e = LT_OK;
out:
	if (e != LT_OK) {
		free(t->buckets);
		free(t->heap);
		free(t->entries);
		t->buckets = t->heap = NULL;
		t->entries = NULL;
	}
	return e;
}

void lt_throttle_release(struct lt_throttle *t)
{
	pthread_mutex_destroy(&t->mu);
	free(t->buckets);
	free(t->heap);
	free(t->entries);
	sodium_memzero(t->hash_key, sizeof t->hash_key);
	t->buckets = t->heap = NULL;
	t->entries = NULL;
}

/* ---- heap on expires ---- */

static bool heap_less(const struct lt_throttle *t, uint32_t a, uint32_t b)
{
	return t->entries[t->heap[a]].expires < t->entries[t->heap[b]].expires;
}

static void heap_swap(struct lt_throttle *t, uint32_t a, uint32_t b)
{
	uint32_t x = t->heap[a];
	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->entries[t->heap[a]].heap_pos = a;
	t->entries[t->heap[b]].heap_pos = b;
}

static void heap_up(struct lt_throttle *t, uint32_t i)
{
	while (i > 0 && heap_less(t, i, (i - 1) / 2)) {
		heap_swap(t, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct lt_throttle *t, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->used && heap_less(t, l, m))
			m = l;
		if (r < t->used && heap_less(t, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(t, i, m);
		i = m;
	}
}

static void heap_fix(struct lt_throttle *t, uint32_t i)
{
	heap_up(t, i);
	heap_down(t, i);
}

/* ---- lookup ---- */

static uint32_t bucket_of(const struct lt_throttle *t, const unsigned char tag[TAG_LEN])
{
	uint32_t h;
	memcpy(&h, tag, sizeof h);
	return h & (t->nbuckets - 1);
}

static void tag_of(const struct lt_throttle *t, const void *key, size_t n,
		   unsigned char tag[TAG_LEN])
{
	crypto_shorthash_siphashx24(tag, key, n, t->hash_key);
}

static struct lt_throttle_entry *find(struct lt_throttle *t, const unsigned char tag[TAG_LEN])
{
	for (uint32_t i = t->buckets[bucket_of(t, tag)]; i; i = t->entries[i - 1].next)
		if (memcmp(t->entries[i - 1].tag, tag, TAG_LEN) == 0)
			return &t->entries[i - 1];
	return NULL;
}

/* Unlink e from its chain and the heap and put it on the free list. */
static void forget(struct lt_throttle *t, struct lt_throttle_entry *e)
{
	uint32_t idx = (uint32_t)(e - t->entries) + 1;
	uint32_t *link = &t->buckets[bucket_of(t, e->tag)];
	while (*link != idx)
		link = &t->entries[*link - 1].next;
	*link = e->next;

	uint32_t pos = e->heap_pos, last = t->used - 1;
	if (pos != last) {
		heap_swap(t, pos, last);
		t->used--;
		heap_fix(t, pos);
	} else {
		t->used--;
	}
	memset(e, 0, sizeof *e);
	e->next = t->free_head;
	t->free_head = idx;
}

static int64_t lockout_for(const struct lt_throttle_policy *p, uint32_t fails)
{
	uint32_t k = fails - (uint32_t)p->max_failures; /* fails >= max_failures */
	if (k >= 63 || p->lockout_ns > (p->max_lockout_ns >> k))
		return p->max_lockout_ns;
	return p->lockout_ns << k;
}

static void set_expiry(struct lt_throttle *t, struct lt_throttle_entry *e)
{
	if (e->fails >= (uint32_t)t->policy.max_failures)
		e->expires = sat_add(e->until, t->policy.window_ns);
	else
		e->expires = sat_add(e->window_start, t->policy.window_ns);
	heap_fix(t, e->heap_pos);
}

/* Time went backwards: keep windows and lockouts within their bounds. */
static void clamp_to_now(struct lt_throttle *t, struct lt_throttle_entry *e, int64_t now)
{
	bool changed = false;
	if (e->window_start > now) {
		e->window_start = now;
		changed = true;
	}
	if (e->until > sat_add(now, t->policy.max_lockout_ns)) {
		e->until = sat_add(now, t->policy.max_lockout_ns);
		changed = true;
	}
	if (changed)
		set_expiry(t, e);
}

enum lt_err lt_throttle_check(struct lt_throttle *t, const void *key, size_t n, int64_t now_ns,
			      int64_t *retry_after_ns)
{
	unsigned char tag[TAG_LEN];
	enum lt_err e = LT_OK;

	*retry_after_ns = 0;
	tag_of(t, key, n, tag);
	pthread_mutex_lock(&t->mu);
	struct lt_throttle_entry *ent = find(t, tag);
	if (!ent)
		goto out;
	if (now_ns >= ent->expires) {
		forget(t, ent);
		goto out;
	}
	clamp_to_now(t, ent, now_ns);
	if (now_ns < ent->until) {
		*retry_after_ns = ent->until - now_ns;
		e = LT_EBUSY;
	}
out:
	pthread_mutex_unlock(&t->mu);
	return e;
}

/* A free entry, evicting the one that expires first when none is free. */
static struct lt_throttle_entry *take_entry(struct lt_throttle *t, int64_t now)
{
	if (!t->free_head) {
		struct lt_throttle_entry *victim = &t->entries[t->heap[0]];
		if (now < victim->expires)
			t->evictions++;
		forget(t, victim);
	}
	uint32_t idx = t->free_head;
	struct lt_throttle_entry *e = &t->entries[idx - 1];
	t->free_head = e->next;
	return e;
}

void lt_throttle_fail(struct lt_throttle *t, const void *key, size_t n, int64_t now_ns)
{
	unsigned char tag[TAG_LEN];
	const struct lt_throttle_policy *p = &t->policy;

	tag_of(t, key, n, tag);
	pthread_mutex_lock(&t->mu);
	struct lt_throttle_entry *e = find(t, tag);
	if (e && now_ns >= e->expires) {
		/* Forgotten: start a new window in place. */
		e->fails = 0;
		e->until = 0;
		e->window_start = now_ns;
	} else if (e) {
		clamp_to_now(t, e, now_ns);
	} else {
		e = take_entry(t, now_ns);
		memcpy(e->tag, tag, TAG_LEN);
		e->window_start = now_ns;
		uint32_t idx = (uint32_t)(e - t->entries) + 1;
		uint32_t b = bucket_of(t, tag);
		e->next = t->buckets[b];
		t->buckets[b] = idx;
		e->heap_pos = t->used;
		t->heap[t->used++] = idx - 1;
	}
	if (e->fails < UINT32_MAX)
		e->fails++;
	if (e->fails >= (uint32_t)p->max_failures)
		e->until = sat_add(now_ns, lockout_for(p, e->fails));
	set_expiry(t, e);
	pthread_mutex_unlock(&t->mu);
}

void lt_throttle_success(struct lt_throttle *t, const void *key, size_t n)
{
	unsigned char tag[TAG_LEN];

	tag_of(t, key, n, tag);
	pthread_mutex_lock(&t->mu);
	struct lt_throttle_entry *e = find(t, tag);
	if (e)
		forget(t, e);
	pthread_mutex_unlock(&t->mu);
}

void lt_throttle_stats(struct lt_throttle *t, uint32_t *used, uint64_t *evictions)
{
	pthread_mutex_lock(&t->mu);
	*used = t->used;
	*evictions = t->evictions;
	pthread_mutex_unlock(&t->mu);
}
