/*
 * retry.h — which upstream failures are retried and how long to wait
 * (pure: the caller supplies the random number).
 *
 * Retried: connect errors (LT_ECONNECT), and HTTP 429, 502, 503 and 504.
 * Never retried: anything after the first byte of a streamed body went to
 * the client, TLS certificate failures, timeouts of the whole call, other
 * statuses.  Backoff for attempt k (1 = the first retry) is
 * base × 2^(k-1), capped at max, with "equal jitter": half fixed, half
 * uniformly random, so waits are never near zero.  An upstream Retry-After
 * (seconds) replaces the computed wait when it is longer, but a wait that
 * would pass the call's deadline means: do not retry.
 */
#ifndef LT_PROVIDER_RETRY_H
#define LT_PROVIDER_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct lt_retry_policy {
	int attempts;	 /* total attempts, 1 = no retry (1..10) */
	int64_t base_ns; /* first backoff (reference: 250 ms) */
	int64_t max_ns;	 /* cap on one backoff */
};

/* Is this result worth another attempt?  err is the transport result
 * (LT_OK when an HTTP status was read), status the HTTP status (0 if
 * none). */
bool lt_retry_retryable(enum lt_err err, int status);

/* The wait before retry number `retry` (1-based), given a uniformly random
 * 64-bit value `rnd` and the upstream's Retry-After in seconds (-1 if
 * none). */
int64_t lt_retry_backoff_ns(const struct lt_retry_policy *p, int retry, uint64_t rnd,
			    int64_t retry_after_s);

/* Decide whether to make attempt number `attempt + 1` after attempt number
 * `attempt` (1-based) failed with (err, status): true with *wait_ns set when
 * the policy allows another attempt, the failure is retryable and now +
 * wait stays before deadline_ns. */
bool lt_retry_next(const struct lt_retry_policy *p, int attempt, enum lt_err err, int status,
		   int64_t retry_after_s, uint64_t rnd, int64_t now_ns, int64_t deadline_ns,
		   int64_t *wait_ns);

#endif
