/*
 * breaker.h — a circuit breaker over the last N calls (pure state machine;
 * the caller supplies the time and the lock).
 *
 * CLOSED: calls pass; each outcome enters a ring of the last `window`
 * outcomes.  Once at least `min_calls` outcomes are in the ring and the
 * failure share reaches `failure_pct` percent, the breaker OPENs.
 * OPEN: calls are refused until `open_ns` has passed since it opened; then
 * the next call moves it to HALF_OPEN.
 * HALF_OPEN: up to `probes` calls are let through at once; others are
 * refused.  If `probes` probe calls succeed the breaker CLOSEs (ring
 * cleared); any probe failure OPENs it again for another open_ns.
 *
 * Defaults (the reference's): window 20, min_calls 10, failure_pct 50,
 * open 10 s, probes 3.
 *
 * Not thread-safe by itself: provider/registry.c guards each breaker with a
 * mutex.  Time is lt_clock_now_ns (so the manual clock can move it).
 */
#ifndef LT_PROVIDER_BREAKER_H
#define LT_PROVIDER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define LT_BREAKER_WINDOW_MAX 256

enum lt_breaker_state { LT_BREAKER_CLOSED, LT_BREAKER_OPEN, LT_BREAKER_HALF_OPEN };

struct lt_breaker_policy {
	int window;	 /* 1..LT_BREAKER_WINDOW_MAX */
	int min_calls;	 /* 1..window */
	int failure_pct; /* 1..100 */
	int64_t open_ns; /* > 0 */
	int probes;	 /* 1..100 */
};

struct lt_breaker {
	enum lt_breaker_state state;
	unsigned char ring[LT_BREAKER_WINDOW_MAX]; /* 1 = failure */
	int ring_len;				   /* outcomes recorded (≤ window) */
	int ring_pos;				   /* next slot */
	int failures;				   /* failures in the ring */
	int64_t opened_at;			   /* ns, when it last opened */
	int probes_inflight;
	int probes_ok;
	uint64_t opens; /* times it opened, for metrics */
};

/* "closed", "open", "half_open". */
const char *lt_breaker_state_name(enum lt_breaker_state s);

void lt_breaker_init(struct lt_breaker *b);

/* May a call go ahead at time now?  true: the call must later be reported
 * with lt_breaker_record (exactly once).  false: refused; *retry_in_ns (may
 * be NULL) says how long until the breaker half-opens (0 when half-open and
 * all probe slots are taken). */
bool lt_breaker_allow(struct lt_breaker *b, const struct lt_breaker_policy *p, int64_t now,
		      int64_t *retry_in_ns);

/* The outcome of an allowed call.  `failure` means the provider misbehaved
 * (5xx, timeout, connect or TLS error, cut stream); a client error (4xx
 * other than 429) is a success for the breaker. */
void lt_breaker_record(struct lt_breaker *b, const struct lt_breaker_policy *p, int64_t now,
		       bool failure);

/* A call that was allowed but never made (e.g. bulkhead full after the
 * breaker let it through): give back a probe slot without an outcome. */
void lt_breaker_cancel(struct lt_breaker *b);

/* Failure share of the ring in percent (0 when empty). */
int lt_breaker_failure_pct(const struct lt_breaker *b);

#endif
