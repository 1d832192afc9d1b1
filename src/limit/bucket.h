/*
 * bucket.h — rate-limit algorithms as pure functions over (state, now,
 * cost, policy): leaky bucket (the default), token bucket, fixed window and
 * GCRA.  No I/O, no clock, no allocation; the LMDB store (bucket_store.h)
 * keeps one struct lt_bucket_state per key.
 *
 * Exact integer arithmetic: levels are in micro-tokens (1 token = 10^6),
 * time in nanoseconds, and the fractional part of a leak or refill is
 * carried in the state (`carry`), never dropped — the Java reference
 * dropped it, so a bucket leaking 10 tokens/s polled every 50 ms never
 * leaked at all.  Products are computed in 128 bits.
 *
 * Rules every algorithm keeps:
 *   - a fresh bucket (no stored state) is the empty leaky bucket, the FULL
 *     token bucket (the reference started it empty), a new window, a GCRA
 *     key that admits burst + 1 requests back to back;
 *   - a clock that steps backwards is clamped: now = max(now, last);
 *   - a refused request leaves the state exactly as it was;
 *   - a cost above what the bucket can ever admit (capacity; burst + 1
 *     for GCRA) is LT_ERANGE — a client error, never a misleading wait;
 *   - cost 0 is a peek: it is admitted and changes nothing but the leak
 *     (even in debt).
 *
 * Debt: lt_bucket_charge forces a charge after the fact (a call that used
 * more tokens than it was admitted with).  It is never refused and may push
 * the state past full: the bucket then admits nothing (but cost 0) until it
 * has leaked or refilled back, so the long-run rate stays exact.  The debt
 * is bounded so that no arithmetic can overflow: the state never goes more
 * than ONE capacity beyond full —
 *   LEAKY  level <= 2 × capacity        TOKEN  tokens >= -capacity
 *   FIXED  used <= 2 × capacity in its window (a new window drops the debt)
 *   GCRA   TAT <= now + 2 × (burst + 1) × T
 * — and whatever a charge would add beyond that is forgiven (a single
 * call's excess is bounded by the model's max_output anyway).  In debt:
 * remaining is 0 and used the limit (never beyond), reset_ns is the longer
 * time until fresh, retry_ns the exact time until the cost would pass, and
 * lt_bucket_expired is false.  A stored state beyond the bound (a policy
 * reloaded with a smaller capacity or burst) is read at the bound.
 *
 * Policies:
 *   LEAKY   capacity tokens; leaks rate tokens per period_ns.  Admit when
 *           level + cost <= capacity.
 *   TOKEN   capacity tokens; refills rate tokens per period_ns up to
 *           capacity.  Admit when tokens >= cost.
 *   FIXED   capacity tokens per window of period_ns, windows aligned to
 *           multiples of period_ns since the Unix epoch (clock-aligned, so
 *           "per minute" means per calendar minute).  rate is unused.
 *   GCRA    nginx limit_req semantics: emission interval T = period_ns /
 *           rate per token, tolerance = burst × T; each admitted token moves
 *           the theoretical arrival time (TAT) by T.  A fresh key admits
 *           burst + 1 unit-cost requests back to back; with rate 1 per
 *           second and burst 4: five admits at t=0, the sixth refused with
 *           retry 1 s, then admits at t=3 s and t=3.1 s.
 */
#ifndef LT_LIMIT_BUCKET_H
#define LT_LIMIT_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define LT_MICRO INT64_C(1000000) /* micro-tokens per token */

enum lt_bucket_algo { LT_ALGO_LEAKY, LT_ALGO_TOKEN, LT_ALGO_FIXED, LT_ALGO_GCRA };

/* "leaky", "token", "fixed", "gcra". */
const char *lt_bucket_algo_name(enum lt_bucket_algo a);
/* Parse one of those names (case-insensitive); LT_EINVAL otherwise. */
enum lt_err lt_bucket_algo_parse(const char *s, enum lt_bucket_algo *out);

struct lt_bucket_policy {
	enum lt_bucket_algo algo;
	int64_t capacity;  /* tokens, >= 1 (LEAKY, TOKEN, FIXED) */
	int64_t rate;	   /* tokens per period_ns, >= 1 (LEAKY, TOKEN, GCRA) */
	int64_t period_ns; /* >= 1 ms; FIXED: the window length */
	int64_t burst;	   /* GCRA only, >= 0 */
};

/* LT_EINVAL (with why) when a policy breaks the bounds above or would
 * overflow (capacity and rate at most 10^12 tokens, period at most 10
 * years). */
enum lt_err lt_bucket_policy_check(const struct lt_bucket_policy *p, char *why, size_t why_cap);

/* The stored state: 32 bytes, plain integers (kept as-is in LMDB). */
struct lt_bucket_state {
	int64_t level;	 /* LEAKY: micro-tokens in the bucket; TOKEN: micro-tokens available
			   (negative in debt); FIXED: micro-tokens used in the window; GCRA:
			   TAT in ns */
	int64_t last_ns; /* time of the last update */
	int64_t window;	 /* FIXED: start of the current window (ns) */
	int64_t carry;	 /* LEAKY/TOKEN: remainder of the last leak/refill, in
			    micro-token·ns units modulo period_ns */
};

/* The state of a key never seen before, at time now. */
void lt_bucket_fresh(const struct lt_bucket_policy *p, int64_t now_ns, struct lt_bucket_state *st);

struct lt_bucket_decision {
	bool allowed;
	int64_t limit;	   /* capacity (GCRA: burst + 1) */
	int64_t remaining; /* whole tokens that could still be admitted now, after this
			      decision (floor); 0 in debt, never negative */
	int64_t used;	   /* limit - remaining (at most limit, even in debt) */
	int64_t reset_ns;  /* until the bucket is back to its fresh state (0 if it is;
			      longer with debt) */
	int64_t retry_ns;  /* refused: until this same cost would be admitted; else 0 */
};

/* Decide whether `cost` tokens may pass at now_ns.  *st is updated only
 * when admitted (a refusal leaves it untouched; the caller need not write
 * it back).  LT_ERANGE when cost can never pass (d->limit still filled);
 * LT_EINVAL for a negative cost. */
enum lt_err lt_bucket_admit(const struct lt_bucket_policy *p, struct lt_bucket_state *st,
			    int64_t now_ns, int64_t cost, struct lt_bucket_decision *d);

/* Give back `cost` tokens admitted or charged earlier (a request that
 * failed later, or used less than it was admitted with): LEAKY level and
 * FIXED usage go down (not below 0, and FIXED only within the same window),
 * TOKEN tokens go up (not above capacity), GCRA TAT moves back by cost × T
 * (not before now).  From a state in debt the debt is paid off first.  cost
 * <= 0 changes nothing (not even the leak); a cost above 2 × limit is
 * 2 × limit (the whole span of the state). */
void lt_bucket_refund(const struct lt_bucket_policy *p, struct lt_bucket_state *st, int64_t now_ns,
		      int64_t cost);

/* Force a charge of `cost` tokens at now_ns, never refused (the real use of
 * a call exceeded what was admitted): LEAKY level += cost, TOKEN tokens -=
 * cost, FIXED used += cost in the window of now (a charge after the window
 * of the admission lands in the new window), GCRA TAT += cost × T — each
 * up to the debt bound above, the excess forgiven.  cost <= 0 changes
 * nothing (not even the leak).  Exact: charge(c) then refund(c) at the same
 * now gives back the state advanced to now, unless the bound forgave part
 * of c. */
void lt_bucket_charge(const struct lt_bucket_policy *p, struct lt_bucket_state *st, int64_t now_ns,
		      int64_t cost);

/* The current decision for cost 0 without changing anything (headers of a
 * request that was not charged). */
void lt_bucket_peek(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
		    int64_t now_ns, struct lt_bucket_decision *d);

/* True when the state is indistinguishable from a fresh bucket at now_ns,
 * so the record may be deleted (the TTL sweep). */
bool lt_bucket_expired(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
		       int64_t now_ns);

#endif
