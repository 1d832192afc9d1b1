/*
 * retry.c — retry classification and backoff (pure; contract in retry.h).
 *
 * Backoff for retry k: step = base × 2^(k-1), capped at max (computed by
 * doubling, so it cannot overflow); the wait is step/2 plus a uniformly
 * random share of the other half, mapped from rnd by a 64×64→128-bit
 * multiply: rnd 0 gives exactly step/2 and rnd UINT64_MAX exactly step.
 * Retry-After seconds are converted to nanoseconds saturating at INT64_MAX.
 * All arithmetic on times avoids signed overflow.
 */
#include "provider/retry.h"

#define NS_PER_S INT64_C(1000000000)

bool lt_retry_retryable(enum lt_err err, int status)
{
	if (err == LT_ECONNECT)
		return true;
	if (err != LT_OK)
		return false;
	return status == 429 || status == 502 || status == 503 || status == 504;
}

/* The high 64 bits of a × b. */
static uint64_t mul_hi(uint64_t a, uint64_t b)
{
	uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
	uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
	uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo;
	uint64_t lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
	uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + lo_hi;
	return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

int64_t lt_retry_backoff_ns(const struct lt_retry_policy *p, int retry, uint64_t rnd,
			    int64_t retry_after_s)
{
	int64_t max = p->max_ns > 0 ? p->max_ns : 0;
	int64_t step = p->base_ns > 0 ? p->base_ns : 0;
	if (step > max)
		step = max;
	for (int k = 1; k < retry && step < max; k++)
		step = step > max / 2 ? max : step * 2;
	int64_t half = step / 2;
	uint64_t span = (uint64_t)(step - half); /* ≥ 0, < 2^63, so span + 1 fits */
	int64_t wait = half + (int64_t)mul_hi(rnd, span + 1);
	if (retry_after_s >= 0) {
		int64_t ra =
			retry_after_s > INT64_MAX / NS_PER_S ? INT64_MAX : retry_after_s * NS_PER_S;
		if (ra > wait)
			wait = ra;
	}
	return wait;
}

bool lt_retry_next(const struct lt_retry_policy *p, int attempt, enum lt_err err, int status,
		   int64_t retry_after_s, uint64_t rnd, int64_t now_ns, int64_t deadline_ns,
		   int64_t *wait_ns)
{
	if (wait_ns)
		*wait_ns = 0;
	if (attempt < 1 || attempt >= p->attempts || !lt_retry_retryable(err, status))
		return false;
	int64_t wait = lt_retry_backoff_ns(p, attempt, rnd, retry_after_s);
	/* now + wait < deadline, without overflow: the difference of two
	 * int64 values with deadline > now always fits in a uint64. */
	if (now_ns >= deadline_ns || (uint64_t)wait >= (uint64_t)deadline_ns - (uint64_t)now_ns)
		return false;
	if (wait_ns)
		*wait_ns = wait;
	return true;
}
